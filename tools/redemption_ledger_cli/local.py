"""``make run``'s stack as ``--local`` finds it: the conventions the local stack follows, in one place.

The local stack (``ledger_dev.local_stack``, dev only) listens where these say and names its resources so, and it
takes them from here; the CLI therefore reaches it without importing the harness or reading a checkout:

- the embedded AWS (moto's server) on ``http://127.0.0.1:$LOCAL_AWS_PORT`` (default 5000; ``LOCAL_AWS_HOST``,
  default 127.0.0.1, where a wildcard bind such as 0.0.0.0 is reached through loopback), dummy credentials,
  region eu-west-1;
- the ledger table ``voucherify-ledger`` and the rollback queue ``voucherify-ledger-local-rollback-queue`` (the
  template's ``RollbackQueue`` named after the local stack, as the local stack names every queue without a
  ``QueueName``; a test holds the two equal);
- the ledger's events (what ``LedgerEventsFunction`` puts on the event bus, source ``voucherify.ledger``) kept in the
  log group ``/voucherify-ledger/local/ledger-events`` by a rule of the local stack's own on that bus;
- the fake Voucherify on ``$LOCAL_VOUCHERIFY_PORT`` (default 8787, bound like the embedded AWS), and the API keys
  the rollback worker and the reconciler read in the embedded Secrets Manager under ``voucherify-ledger/api`` (the
  template's ``VoucherifyApiSecretId`` default; a test holds the two equal).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HOST = "127.0.0.1"
AWS_HOST_ENV = "LOCAL_AWS_HOST"
AWS_PORT_ENV = "LOCAL_AWS_PORT"
DEFAULT_AWS_PORT = 5000
REGION = "eu-west-1"
TABLE_NAME = "voucherify-ledger"
STACK_NAME = "voucherify-ledger-local"  # AWS::StackName of the local stack (queue names derive from it)
ROLLBACK_QUEUE_NAME = f"{STACK_NAME}-rollback-queue"  # the template's RollbackQueue, locally
LEDGER_EVENTS_SOURCE = "voucherify.ledger"  # the Source of every event LedgerEventsFunction puts on the bus
LEDGER_EVENTS_LOG_GROUP = "/voucherify-ledger/local/ledger-events"  # where the local stack keeps them
VOUCHERIFY_PORT_ENV = "LOCAL_VOUCHERIFY_PORT"
DEFAULT_VOUCHERIFY_PORT = 8787  # the fake Voucherify
API_SECRET_ID = "voucherify-ledger/api"  # the template's VoucherifyApiSecretId default: the API keys
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_WILDCARDS = ("0.0.0.0", "::", "")


def port_from_env(env: Mapping[str, str], name: str, default: int) -> int:
    """The port ``env[name]`` names (``default`` when unset or blank); ValueError saying what is wrong otherwise."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a port number (0-65535), got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{name} must be a port number (0-65535), got {port}")
    return port


def aws_host_from_env(env: Mapping[str, str]) -> str:
    return env.get(AWS_HOST_ENV, "").strip() or HOST


def endpoint_url(host: str, port: int) -> str:
    """An HTTP endpoint as clients reach it (a wildcard bind is reached through loopback)."""
    return f"http://{HOST if host in _WILDCARDS else host}:{port}"


def voucherify_url(env: Mapping[str, str] | None = None) -> str:
    """The local stack's fake Voucherify as clients reach it: bound like the embedded AWS (``LOCAL_AWS_HOST``) on
    ``LOCAL_VOUCHERIFY_PORT``; ValueError for a bad port."""
    env = os.environ if env is None else env
    return endpoint_url(aws_host_from_env(env), port_from_env(env, VOUCHERIFY_PORT_ENV, DEFAULT_VOUCHERIFY_PORT))


@dataclass(frozen=True)
class LocalAws:
    """The local stack's embedded AWS: where it listens and what it holds."""

    endpoint: str
    region: str = REGION
    table_name: str = TABLE_NAME
    rollback_queue_name: str = ROLLBACK_QUEUE_NAME
    events_log_group: str = LEDGER_EVENTS_LOG_GROUP

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalAws:
        """From ``LOCAL_AWS_HOST`` / ``LOCAL_AWS_PORT``, as ``make run`` reads them; ValueError for a bad port."""
        env = os.environ if env is None else env
        return cls(endpoint_url(aws_host_from_env(env), port_from_env(env, AWS_PORT_ENV, DEFAULT_AWS_PORT)))

    @property
    def host_and_port(self) -> tuple[str, int]:
        host, port = self.endpoint.rsplit("//", 1)[1].rsplit(":", 1)
        return host, int(port)


def aws_client(service: str, endpoint: str, region: str = REGION) -> Any:
    """A boto3 client for the embedded AWS: dummy credentials, short timeouts, few retries."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )
    config = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"})
    return session.client(service, endpoint_url=endpoint, config=config)
