"""The rollback worker's settings: the API budget divided between concurrent executions, https except on
loopback, every variable the template sets is a setting, a missing one named."""

from __future__ import annotations

import pytest

from ledger_dev.harness.template import function_environment, load_template
from support.worker import WORKER_REQUIRED_ENV
from voucherify_ledger.settings import SettingsError, WorkerSettings
from voucherify_ledger.tracing import TRACING_ENV


def test_settings_divide_the_budget_between_concurrent_executions() -> None:
    settings = WorkerSettings.from_env(
        {**WORKER_REQUIRED_ENV, "VOUCHERIFY_REQUESTS_PER_MINUTE": "2000", "ROLLBACK_MAX_CONCURRENCY": "4"}
    )
    assert settings.requests_per_minute_per_execution == 500


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://api.voucherify.io", True),
        ("https://us1.api.voucherify.io", True),
        ("http://127.0.0.1:8787", True),
        ("http://api.voucherify.io", False),
        ("ftp://x", False),
    ],
)
def test_the_api_url_must_be_https_except_on_loopback(url: str, ok: bool) -> None:
    env = {**WORKER_REQUIRED_ENV, "VOUCHERIFY_API_URL": url}
    if ok:
        assert WorkerSettings.from_env(env).voucherify_api_url == url
    else:
        with pytest.raises(SettingsError, match="VOUCHERIFY_API_URL"):
            WorkerSettings.from_env(env)


def test_plain_http_to_another_host_only_under_sam_local() -> None:
    env = {**WORKER_REQUIRED_ENV, "VOUCHERIFY_API_URL": "http://host.docker.internal:8787"}
    with pytest.raises(SettingsError):
        WorkerSettings.from_env(env)
    assert WorkerSettings.from_env({**env, "AWS_SAM_LOCAL": "true"}).voucherify_api_url.startswith("http://")


def test_a_missing_setting_is_named() -> None:
    with pytest.raises(SettingsError, match="ROLLBACK_QUEUE_URL"):
        WorkerSettings.from_env({k: v for k, v in WORKER_REQUIRED_ENV.items() if k != "ROLLBACK_QUEUE_URL"})


def test_every_variable_the_template_sets_is_a_worker_setting() -> None:
    names = {
        name.lower()
        for name in function_environment("RollbackWorkerFunction", {"RollbackQueue": "q", "LedgerTable": "t"})
    }
    # AWS_ENDPOINT_URL is boto3's; LEDGER_TRACING is read by voucherify_ledger.tracing, before any settings
    own = {name for name in names if not name.startswith(("powertools_", "aws_"))} - {TRACING_ENV.lower()}
    assert own <= set(WorkerSettings.model_fields)
    defaults = {n: p.get("Default") for n, p in load_template()["Parameters"].items()}
    assert WorkerSettings.model_fields["voucherify_api_url"].default == defaults["VoucherifyApiUrl"]
    assert WorkerSettings.model_fields["rollback_max_receive_count"].default == defaults["RollbackMaxReceiveCount"]
