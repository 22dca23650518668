"""The functions' settings, read from their environment: defaults, a clear error naming the variable, the
unauthenticated mode allowed only on local emulation, the worker's budget and API URL rules."""

from __future__ import annotations

import pytest

from voucherify_ledger.settings import SettingsError, WebhookSettings, embedded_aws

# --- settings ------------------------------------------------------------------------------------------
BASE_ENV = {"LEDGER_TABLE_NAME": "ledger", "WEBHOOK_SECRET_ID": "voucherify-ledger/webhook"}


def test_settings_defaults() -> None:
    settings = WebhookSettings.from_env(BASE_ENV)
    assert settings.webhook_token_header == "x-voucherify-token"
    assert settings.allow_unauthenticated_webhooks is False
    assert settings.max_body_bytes == 262_144
    assert settings.quarantine_retention_days == 30
    assert settings.webhook_auth == "signature"  # without the template's per-route value: the strict one


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"WEBHOOK_SECRET_ID": "s"}, "LEDGER_TABLE_NAME"),
        ({"LEDGER_TABLE_NAME": "ledger"}, "WEBHOOK_SECRET_ID is required"),
        ({**BASE_ENV, "WEBHOOK_SECRET_ID": ""}, "WEBHOOK_SECRET_ID is required"),
        ({**BASE_ENV, "MAX_BODY_BYTES": "10"}, "MAX_BODY_BYTES"),
        ({**BASE_ENV, "MAX_BODY_BYTES": "lots"}, "MAX_BODY_BYTES"),
        ({**BASE_ENV, "MAX_BODY_BYTES": "262145"}, "MAX_BODY_BYTES"),
        ({**BASE_ENV, "QUARANTINE_RETENTION_DAYS": "0"}, "QUARANTINE_RETENTION_DAYS"),
        ({**BASE_ENV, "ALLOW_UNAUTHENTICATED_WEBHOOKS": "perhaps"}, "ALLOW_UNAUTHENTICATED_WEBHOOKS"),
        ({**BASE_ENV, "WEBHOOK_AUTH": "any"}, "WEBHOOK_AUTH"),
        ({**BASE_ENV, "WEBHOOK_AUTH": "Signature"}, "WEBHOOK_AUTH"),
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        WebhookSettings.from_env(env)


@pytest.mark.parametrize(
    "local",
    [
        {"AWS_SAM_LOCAL": "true"},
        {"AWS_SAM_LOCAL": "TRUE"},
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"},
        {"AWS_ENDPOINT_URL": "http://localhost:4566"},
        {"AWS_ENDPOINT_URL": "http://[::1]:4566"},
    ],
)
def test_unauthenticated_mode_is_allowed_on_local_emulation(local: dict[str, str]) -> None:
    env = {"LEDGER_TABLE_NAME": "ledger", "ALLOW_UNAUTHENTICATED_WEBHOOKS": "true", **local}
    assert embedded_aws(env)
    assert WebhookSettings.from_env(env).allow_unauthenticated_webhooks is True


@pytest.mark.parametrize(
    "remote",
    [
        {},
        {"AWS_SAM_LOCAL": "false"},
        {"AWS_SAM_LOCAL": "1"},
        {"AWS_ENDPOINT_URL": "https://dynamodb.eu-west-1.amazonaws.com"},
        {"AWS_ENDPOINT_URL": "http://localhost.example.com:4566"},
        {"AWS_ENDPOINT_URL": "http://127.0.0.1.nip.io:4566"},
        {"AWS_ENDPOINT_URL": "http://127.0.0.1@evil.example.com"},
        {"AWS_ENDPOINT_URL": "http://evil.example.com/127.0.0.1"},
        {"AWS_ENDPOINT_URL": "127.0.0.1:4566"},
    ],
)
@pytest.mark.parametrize("secret_id", ["", "voucherify-ledger/webhook"])
def test_unauthenticated_mode_is_refused_elsewhere(remote: dict[str, str], secret_id: str) -> None:
    env = {"LEDGER_TABLE_NAME": "ledger", "ALLOW_UNAUTHENTICATED_WEBHOOKS": "true", "WEBHOOK_SECRET_ID": secret_id}
    assert not embedded_aws(remote)
    with pytest.raises(SettingsError, match="ALLOW_UNAUTHENTICATED_WEBHOOKS=true is a local-only setting"):
        WebhookSettings.from_env({**env, **remote})
