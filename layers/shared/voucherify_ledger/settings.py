"""Settings of the bundle's functions (the webhooks' and the rollback worker's), read once from the environment and
validated.

Every setting is an environment variable named as the field in upper case; the same names appear in
``template.yaml``, ``events/env.json`` and the README's configuration table.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any, Literal, TypeVar
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(RuntimeError):
    """The function's environment is incomplete or contradictory: fix the configuration."""


def embedded_aws(env: Mapping[str, str]) -> bool:
    """True when AWS is the local emulation: ``sam local`` or an ``AWS_ENDPOINT_URL`` on loopback."""
    if env.get("AWS_SAM_LOCAL", "").lower() == "true":
        return True
    endpoint = env.get("AWS_ENDPOINT_URL", "")
    return bool(endpoint) and urlparse(endpoint).hostname in LOOPBACK_HOSTS


class WebhookSettings(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    ledger_table_name: str = Field(min_length=3, max_length=255)
    # Secrets Manager secret (name or ARN) holding {"signing_secret": ..., "header_token": ...}.
    webhook_secret_id: str | None = None
    # Header that carries the shared token of a distribution webhook (custom header in the dashboard).
    webhook_token_header: str = Field(default="x-voucherify-token", min_length=1, max_length=100)
    # What authenticates a delivery on this function's URL: "signature" (x-voucherify-signature only: project-settings
    # webhooks are always signed), "token" (the token header only) or "either" (a signature, or on an unsigned
    # delivery the token). The template sets it per route.
    webhook_auth: Literal["signature", "token", "either"] = "signature"
    # Accept deliveries without any authentication. Refused unless AWS is the local emulation.
    allow_unauthenticated_webhooks: bool = False
    # At most 256 KiB: the compressed raw copy of any delivery then fits one DynamoDB item (400 KB) with its record.
    max_body_bytes: int = Field(default=262_144, ge=1_024, le=262_144)
    quarantine_retention_days: int = Field(default=30, ge=1, le=3_650)
    secret_max_age_seconds: int = Field(default=300, ge=0, le=86_400)
    # Callers allowed to deliver (comma-separated CIDRs or addresses, e.g. Voucherify's published sender IPs);
    # empty = any caller. Checked against API Gateway's requestContext.http.sourceIp before anything else.
    allowed_source_cidrs: tuple[IPNetwork, ...] = ()

    @field_validator("allowed_source_cidrs", mode="before")
    @classmethod
    def _cidrs(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        networks = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            try:
                networks.append(ipaddress.ip_network(part, strict=True))
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or a CIDR block such as 34.247.197.22/32") from None
        return tuple(networks)

    def source_allowed(self, source_ip: object) -> bool:
        """True when no allow-list is set, or ``source_ip`` is an address inside one of its networks."""
        if not self.allowed_source_cidrs:
            return True
        if not isinstance(source_ip, str):
            return False
        try:
            address = ipaddress.ip_address(source_ip.strip())
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allowed_source_cidrs)

    @model_validator(mode="after")
    def _some_authentication(self) -> WebhookSettings:
        if not self.webhook_secret_id and not self.allow_unauthenticated_webhooks:
            raise ValueError("WEBHOOK_SECRET_ID is required: the Secrets Manager secret that authenticates deliveries")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if env is None else env
        settings = _from_env(cls, env)
        if settings.allow_unauthenticated_webhooks and not embedded_aws(env):
            raise SettingsError(
                "ALLOW_UNAUTHENTICATED_WEBHOOKS=true is a local-only setting: it is honoured only with "
                "AWS_SAM_LOCAL=true or an AWS_ENDPOINT_URL on 127.0.0.1/localhost"
            )
        return settings


# --- Voucherify's API: the rollback worker and the reconciler -------------------------------------------
class VoucherifyApiSettings(BaseModel):
    """What a function that calls Voucherify's API needs: where, with which keys, within which budget."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ledger_table_name: str = Field(min_length=3, max_length=255)
    # Voucherify's API base URL, per cluster: https://api.voucherify.io (EU), https://us1.api.voucherify.io, …
    voucherify_api_url: str = "https://api.voucherify.io"
    # Secrets Manager secret (name or ARN) holding {"app_id": ..., "app_token": ...}.
    voucherify_api_secret_id: str = Field(min_length=1)
    secret_max_age_seconds: int = Field(default=300, ge=0, le=86_400)
    # The project's API budget (Business plan 100/min, Organization 2000/min), split in fixed shares: the
    # reconciler spends RECONCILE_REQUESTS_PER_MINUTE of it, the rollback worker the rest.
    voucherify_requests_per_minute: int = Field(default=100, ge=1, le=100_000)
    reconcile_requests_per_minute: int = Field(default=0, ge=0, le=100_000)
    voucherify_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    voucherify_read_timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    @model_validator(mode="after")
    def _api(self, info: ValidationInfo) -> VoucherifyApiSettings:
        url = urlparse(self.voucherify_api_url)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ValueError("VOUCHERIFY_API_URL must be an absolute URL such as https://api.voucherify.io")
        local = bool((info.context or {}).get("local"))  # sam local / the local stack: a fake Voucherify
        if url.scheme == "http" and url.hostname not in LOOPBACK_HOSTS and not local:
            raise ValueError(
                "VOUCHERIFY_API_URL must use https (plain http only for a fake on 127.0.0.1/localhost, or "
                "under sam local)"
            )
        if self.reconcile_requests_per_minute >= self.voucherify_requests_per_minute:
            raise ValueError(
                "RECONCILE_REQUESTS_PER_MINUTE must leave the rollback worker part of VOUCHERIFY_REQUESTS_PER_MINUTE"
            )
        return self

    @property
    def worker_requests_per_minute(self) -> int:
        """The rollback worker's share of the budget (all of it when the reconciler has none)."""
        return self.voucherify_requests_per_minute - self.reconcile_requests_per_minute


class WorkerSettings(VoucherifyApiSettings):
    """Settings of the rollback worker (``RollbackWorkerFunction``), same conventions as ``WebhookSettings``."""

    # The queue the worker reads: it fans order requests out onto it and delays retries on it.
    rollback_queue_url: str = Field(min_length=1)
    # The worker's share of the budget is spent by at most this many concurrent executions (the event source's
    # ScalingConfig.MaximumConcurrency).
    rollback_max_concurrency: int = Field(default=2, ge=1, le=1_000)
    # Records of one batch sent at the same time.
    rollback_batch_threads: int = Field(default=10, ge=1, le=10)
    # Quick retries inside the invocation (5xx, timeouts, connection errors) before handing back to SQS.
    rollback_in_process_retries: int = Field(default=2, ge=0, le=5)
    # Retries through SQS: the message is hidden for base × 2^(receive count − 1) seconds (jittered), capped.
    rollback_retry_base_seconds: float = Field(default=5.0, ge=0, le=900)
    rollback_retry_max_seconds: int = Field(default=120, ge=0, le=43_200)
    # The queue's RedrivePolicy.maxReceiveCount: the attempt that ends in the dead-letter queue is recorded as such.
    rollback_max_receive_count: int = Field(default=5, ge=1, le=1_000)

    @model_validator(mode="after")
    def _sane(self) -> WorkerSettings:
        if self.rollback_retry_max_seconds < self.rollback_retry_base_seconds:
            raise ValueError("ROLLBACK_RETRY_MAX_SECONDS must not be below ROLLBACK_RETRY_BASE_SECONDS")
        return self

    @property
    def requests_per_minute_per_execution(self) -> float:
        """Each concurrent execution paces itself to an equal part of the worker's share of the budget."""
        return self.worker_requests_per_minute / self.rollback_max_concurrency

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        return _from_env(cls, env, context={"local": embedded_aws(env)})


class ReconcilerSettings(VoucherifyApiSettings):
    """Settings of the reconciler (one execution at a time, on a schedule or for a backfill)."""

    reconcile_requests_per_minute: int = Field(default=10, ge=1, le=100_000)
    # Voucherify's list and its webhooks are eventually consistent: each run starts this long before the checkpoint.
    reconcile_overlap_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReconcilerSettings:
        env = os.environ if env is None else env
        return _from_env(cls, env, context={"local": embedded_aws(env)})


Settings = TypeVar("Settings", bound=BaseModel)


def _from_env(cls: type[Settings], env: Mapping[str, str], context: dict[str, Any] | None = None) -> Settings:
    """``cls`` from the variables named as its fields in upper case (an empty one counts as unset), or
    SettingsError naming each variable that is wrong and what was expected."""
    values = {name: env[name.upper()] for name in cls.model_fields if env.get(name.upper(), "") != ""}
    try:
        return cls.model_validate(values, context=context)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper() or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise SettingsError(f"invalid function configuration: {problems}") from None
