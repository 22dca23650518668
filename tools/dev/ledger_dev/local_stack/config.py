"""The local stack's settings: where it listens, what it creates, what ``make run`` reads from the environment.

What ``redemption-ledger --local`` relies on (the embedded AWS's host, port and region, the table's name, the stack
name that queue names derive from, the dummy credentials, the fake Voucherify's port and the API keys' secret) is
defined once, in ``redemption_ledger_cli.local``, and followed here; the rest (the API's port, the webhook secret, a
real API instead of the fake, the fake's history, the reconciler's local schedule) is the harness's own.

``LocalConfig()`` is the bare stack the tests start (no history, no scheduled reconciler); ``LocalConfig.from_env()``
is ``make run``'s, with its defaults: a history of ``LOCAL_HISTORY`` objects (400) over 90 days, a share
``LOCAL_HISTORY_WEBHOOKS`` (0.5) of their webhooks sent at start-up, and the reconciler every
``LOCAL_RECONCILE_SECONDS`` (60; 0: never).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ledger_dev.harness.template import PROJECT_ROOT, parameter_default
from redemption_ledger_cli.local import (
    API_SECRET_ID,
    AWS_HOST_ENV,
    AWS_PORT_ENV,
    DEFAULT_AWS_PORT,
    DEFAULT_VOUCHERIFY_PORT,
    DUMMY_CREDENTIALS,
    HOST,
    REGION,
    STACK_NAME,
    TABLE_NAME,
    VOUCHERIFY_PORT_ENV,
    aws_client,
    aws_host_from_env,
    endpoint_url,
    port_from_env,
)

__all__ = [
    "ACCOUNT_ID",
    "API_PORT_ENV",
    "API_SECRET_ID",
    "AWS_HOST_ENV",
    "AWS_PORT_ENV",
    "DEFAULT_API_PORT",
    "DEFAULT_AWS_PORT",
    "DEFAULT_HEADER_TOKEN",
    "DEFAULT_HISTORY",
    "DEFAULT_HISTORY_WEBHOOKS",
    "DEFAULT_RECONCILE_SECONDS",
    "DEFAULT_SIGNING_SECRET",
    "DEFAULT_VOUCHERIFY_PORT",
    "DUMMY_CREDENTIALS",
    "HEADER_TOKEN_ENV",
    "HISTORY_DAYS",
    "HISTORY_ENV",
    "HISTORY_WEBHOOKS_ENV",
    "HOST",
    "LOCAL_RECONCILE_TIMEOUT_SECONDS",
    "PAYLOADS_DIR",
    "PER_FUNCTION_SETTINGS",
    "RECONCILER_FUNCTION",
    "RECONCILE_SECONDS_ENV",
    "REGION",
    "SIGNING_SECRET_ENV",
    "STACK_NAME",
    "TABLE_NAME",
    "VOUCHERIFY_API_URL_ENV",
    "VOUCHERIFY_APP_ID_ENV",
    "VOUCHERIFY_APP_TOKEN_ENV",
    "VOUCHERIFY_PORT_ENV",
    "WORKER_FUNCTION",
    "WORKER_QUEUE",
    "LocalConfig",
    "aws_client",
]

API_PORT_ENV = "LOCAL_API_PORT"
DEFAULT_API_PORT = 3000  # what `sam local start-api` uses
ACCOUNT_ID = "123456789012"  # moto's default account
SIGNING_SECRET_ENV = "VOUCHERIFY_WEBHOOK_SECRET"
HEADER_TOKEN_ENV = "VOUCHERIFY_WEBHOOK_TOKEN"
DEFAULT_SIGNING_SECRET = "local-dev-webhook-secret"  # documented; also signs the committed events/*.json
DEFAULT_HEADER_TOKEN = "local-dev-token"
VOUCHERIFY_API_URL_ENV = "VOUCHERIFY_API_URL"  # set: the worker calls this API instead of the fake
VOUCHERIFY_APP_ID_ENV = "VOUCHERIFY_APP_ID"
VOUCHERIFY_APP_TOKEN_ENV = "VOUCHERIFY_APP_TOKEN"
WORKER_FUNCTION = "RollbackWorkerFunction"
WORKER_QUEUE = "RollbackQueue"
RECONCILER_FUNCTION = "ReconcilerFunction"
RECONCILE_SECONDS_ENV = "LOCAL_RECONCILE_SECONDS"
DEFAULT_RECONCILE_SECONDS = 60.0  # make run's: a scheduled run a minute (the template's default is rate(1 hour))
# The remaining time of a local reconciler invocation's context, instead of the template's Timeout (900 s): a run
# stops SAVE_SECONDS (20 s) before it and saves, so a stop of the stack never waits for a long walk.
LOCAL_RECONCILE_TIMEOUT_SECONDS = 60.0
HISTORY_ENV = "LOCAL_HISTORY"
DEFAULT_HISTORY = 400  # make run's fake holds this many objects (redemptions, rollbacks, failed ones) to list
HISTORY_WEBHOOKS_ENV = "LOCAL_HISTORY_WEBHOOKS"
DEFAULT_HISTORY_WEBHOOKS = 0.5  # the share of the history's webhooks make run delivers at start-up
HISTORY_DAYS = 90.0  # the history spans the last 90 days
PAYLOADS_DIR = PROJECT_ROOT / "events" / "payloads"
# Settings that differ between functions by design (per route in the template) and that each function reads when it
# is loaded (WebhookSettings at init), so one process serves both routes right: no clash warning for them.
PER_FUNCTION_SETTINGS = frozenset({"WEBHOOK_AUTH"})


@dataclass(frozen=True)
class LocalConfig:
    """Where the local stack listens and what it creates. Port 0 picks a free port (tests)."""

    aws_host: str = HOST
    aws_port: int = DEFAULT_AWS_PORT
    api_host: str = HOST
    api_port: int = DEFAULT_API_PORT
    region: str = REGION
    table_name: str = TABLE_NAME
    secret_id: str = field(default_factory=lambda: parameter_default("WebhookSecretId"))
    signing_secret: str = DEFAULT_SIGNING_SECRET
    header_token: str = DEFAULT_HEADER_TOKEN
    signing_secret_from_env: bool = False
    header_token_from_env: bool = False
    # The rollback worker: its queue polled, its API a fake Voucherify on voucherify_port, or the real
    # (or any) API at voucherify_api_url with these keys.
    rollbacks: bool = True
    voucherify_port: int = DEFAULT_VOUCHERIFY_PORT
    voucherify_api_url: str = ""
    voucherify_app_id: str = ""
    voucherify_app_token: str = ""
    # The fake's history (with the fake only): ``history`` objects over HISTORY_DAYS up to now, seeded with
    # ``history_seed``; a seeded share ``history_webhooks`` of their webhooks sent, signed, at start-up (in the
    # background), the rest left for the reconciler to find.
    history: int = 0
    history_webhooks: float = DEFAULT_HISTORY_WEBHOOKS
    history_seed: int = 0
    # The ledger table's stream (as the template defines it) polled for the functions of its DynamoDB events, the
    # ledger's events kept in a log group; False: a table without a stream, nothing polled.
    streams: bool = True
    # ReconcilerFunction invoked every ``reconcile_seconds`` (0: never), as its ScheduleV2 event would.
    reconcile_seconds: float = 0.0
    # Template parameters other than their defaults, as `sam deploy --parameter-overrides` gives them.
    parameter_overrides: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalConfig:
        env = os.environ if env is None else env
        secret = env.get(SIGNING_SECRET_ENV, "")
        token = env.get(HEADER_TOKEN_ENV, "")
        api_url = env.get(VOUCHERIFY_API_URL_ENV, "").strip().rstrip("/")
        app_id, app_token = env.get(VOUCHERIFY_APP_ID_ENV, "").strip(), env.get(VOUCHERIFY_APP_TOKEN_ENV, "").strip()
        return cls(
            aws_host=aws_host_from_env(env),
            aws_port=port_from_env(env, AWS_PORT_ENV, DEFAULT_AWS_PORT),
            api_port=port_from_env(env, API_PORT_ENV, DEFAULT_API_PORT),
            signing_secret=secret or DEFAULT_SIGNING_SECRET,
            header_token=token or DEFAULT_HEADER_TOKEN,
            signing_secret_from_env=bool(secret),
            header_token_from_env=bool(token),
            voucherify_port=port_from_env(env, VOUCHERIFY_PORT_ENV, DEFAULT_VOUCHERIFY_PORT),
            voucherify_api_url=api_url,
            voucherify_app_id=app_id,
            voucherify_app_token=app_token,
            history=_count_from_env(env, HISTORY_ENV, DEFAULT_HISTORY),
            history_webhooks=_share_from_env(env, HISTORY_WEBHOOKS_ENV, DEFAULT_HISTORY_WEBHOOKS),
            reconcile_seconds=_seconds_from_env(env, RECONCILE_SECONDS_ENV, DEFAULT_RECONCILE_SECONDS),
        )

    @property
    def aws_endpoint(self) -> str:
        """The embedded AWS as clients reach it (a wildcard bind is reached through loopback)."""
        return endpoint_url(self.aws_host, self.aws_port)

    def aws_environment(self) -> dict[str, str]:
        """What makes boto3 talk to the embedded AWS with dummy credentials."""
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            **DUMMY_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def secret_value(self) -> dict[str, str]:
        return {"signing_secret": self.signing_secret, "header_token": self.header_token}


def _count_from_env(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number of objects, 0 or more; ValueError saying what is wrong otherwise."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{name} must be a whole number of objects (0 or more), got {raw!r}")
    return value


def _number_from_env(env: Mapping[str, str], name: str, default: float, *, at_most: float, what: str) -> float:
    """A finite number between 0 and ``at_most``; ValueError saying what is wrong otherwise."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= at_most:  # NaN and infinity too
        raise ValueError(f"{name} must be {what}, got {raw!r}")
    return value


def _share_from_env(env: Mapping[str, str], name: str, default: float) -> float:
    return _number_from_env(env, name, default, at_most=1.0, what="a share between 0 and 1")


def _seconds_from_env(env: Mapping[str, str], name: str, default: float) -> float:
    return _number_from_env(env, name, default, at_most=86_400.0, what="a number of seconds up to 86400 (0: off)")
