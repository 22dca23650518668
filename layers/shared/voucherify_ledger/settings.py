"""Settings of the webhook functions, read once from the environment and validated.

Every setting is an environment variable named as the field in upper case; the same names appear in
``template.yaml``, ``events/env.json`` and the README's configuration table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class SettingsError(RuntimeError):
    """The function's environment is incomplete or contradictory: fix the configuration."""


def embedded_aws(env: Mapping[str, str]) -> bool:
    """True when AWS is the local emulation: ``sam local`` or an ``AWS_ENDPOINT_URL`` on loopback."""
    if env.get("AWS_SAM_LOCAL", "").lower() == "true":
        return True
    endpoint = env.get("AWS_ENDPOINT_URL", "")
    return bool(endpoint) and urlparse(endpoint).hostname in LOOPBACK_HOSTS


class WebhookSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    ledger_table_name: str = Field(min_length=3, max_length=255)
    # Secrets Manager secret (name or ARN) holding {"signing_secret": ..., "header_token": ...}.
    webhook_secret_id: str | None = None
    # Header that carries the shared token of a distribution webhook (custom header in the dashboard).
    webhook_token_header: str = Field(default="x-voucherify-token", min_length=1, max_length=100)
    # Accept deliveries without any authentication. Refused unless AWS is the local emulation.
    allow_unauthenticated_webhooks: bool = False
    max_body_bytes: int = Field(default=262_144, ge=1_024, le=6_000_000)
    quarantine_retention_days: int = Field(default=30, ge=1, le=3_650)
    secret_max_age_seconds: int = Field(default=300, ge=0, le=86_400)

    @model_validator(mode="after")
    def _some_authentication(self) -> WebhookSettings:
        if not self.webhook_secret_id and not self.allow_unauthenticated_webhooks:
            raise ValueError("WEBHOOK_SECRET_ID is required: the Secrets Manager secret that authenticates deliveries")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if env is None else env
        values = {name: env[name.upper()] for name in cls.model_fields if env.get(name.upper(), "") != ""}
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']).upper() or 'settings'}: {e['msg']}" for e in exc.errors()
            )
            raise SettingsError(f"invalid function configuration: {problems}") from None
        if settings.allow_unauthenticated_webhooks and not embedded_aws(env):
            raise SettingsError(
                "ALLOW_UNAUTHENTICATED_WEBHOOKS=true is a local-only setting: it is honoured only with "
                "AWS_SAM_LOCAL=true or an AWS_ENDPOINT_URL on 127.0.0.1/localhost"
            )
        return settings
