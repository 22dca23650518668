"""ReconcilerFunction as Lambda runs it: loaded with the template's environment, its API keys read from Secrets
Manager (moto), calling the fake Voucherify over HTTP. A scheduled invocation records what the webhooks lost and
answers its counts, its metrics are the alarms' (ReconciledMissing, ReconcileLagSeconds), a run stops before the
invocation's deadline with its checkpoint saved, and refused keys end the run early with ReconcileErrors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from ledger_dev.fake_voucherify import FakeVoucherify, api_secret_value
from support.functions import API_SECRET_ID, Aws, LambdaApp
from support.worker import metrics_emitted
from voucherify_ledger.ledger.keys import redemption_key

RECONCILER = "ReconcilerFunction"


class Context(LambdaContext):
    def __init__(self, seconds: float) -> None:
        self._function_name = RECONCILER
        self._function_version = "$LATEST"
        self._invoked_function_arn = f"arn:aws:lambda:eu-west-1:123456789012:function:{RECONCILER}"
        self._memory_limit_in_mb = 512
        self._aws_request_id = "reconcile-test"
        self._log_group_name = self._log_stream_name = f"/aws/lambda/{RECONCILER}"
        self._deadline = datetime.now(UTC) + timedelta(seconds=seconds)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - datetime.now(UTC)).total_seconds() * 1000))


@pytest.fixture
def fake() -> Iterator[FakeVoucherify]:
    with FakeVoucherify(webhook_delay=None) as started:
        yield started


@pytest.fixture
def reconciler(aws: Aws, fake: FakeVoucherify, lambda_app: Callable[..., LambdaApp]) -> Callable[..., LambdaApp]:
    aws.secrets.create_secret(Name=API_SECRET_ID, SecretString=api_secret_value())

    def load(**env: str) -> LambdaApp:
        return lambda_app(
            RECONCILER,
            VOUCHERIFY_API_URL=fake.url,
            RECONCILE_REQUESTS_PER_MINUTE="600",
            VOUCHERIFY_REQUESTS_PER_MINUTE="1000",
            **env,
        )

    return load


def test_a_scheduled_invocation_records_what_the_webhooks_lost_and_says_so_in_its_metrics(
    aws: Aws, fake: FakeVoucherify, reconciler: Callable[..., LambdaApp], capsys: pytest.CaptureFixture[str]
) -> None:
    fake.seed_history(150, days=0.02, seed=41)  # the last half hour: inside a first run's overlap
    app = reconciler()

    answer: dict[str, Any] = app.module.lambda_handler({}, Context(60))

    assert answer["ran"] and answer["done"] and answer["error"] is None
    assert answer["listed"] == 150 and answer["recorded"] + answer["corrected"] > 0
    assert answer["job_id"] is None  # a scheduled run: from the checkpoint (none yet: the overlap before now)
    metrics = metrics_emitted(capsys)
    assert metrics["ReconciledMissing"] == answer["recorded"] + answer["corrected"]
    assert "ReconcileLagSeconds" in metrics and metrics["VoucherifyApiCalls"] == answer["api_calls"]
    status = aws.ledger.reconciliation.state() or {}
    assert status["checkpoint"] and status["last_run"]["listed"] == 150
    assert "lease_owner" not in status  # released
    redemption = next(o for o in fake.history() if o["object"] == "redemption" and o["result"] == "SUCCESS")
    item = aws.ledger.redemptions.table.get(redemption_key(redemption["id"])) or {}
    audit = item["redemption_delivery"]
    assert audit["route"] == "reconciler"  # the object's own JSON kept as its raw copy, for audit
    raw = aws.ledger.redemptions.raw_delivery(redemption["id"], audit)
    assert raw is not None and json.loads(raw) == redemption


def test_a_run_without_time_left_makes_no_call_and_refused_keys_end_it_with_an_error(
    aws: Aws, fake: FakeVoucherify, reconciler: Callable[..., LambdaApp], capsys: pytest.CaptureFixture[str]
) -> None:
    fake.seed_history(50, days=0.02, seed=42)
    app = reconciler()

    short = app.module.lambda_handler({}, Context(app.module.SAVE_SECONDS))  # nothing left once it has saved
    assert short["ran"] and not short["done"] and short["error"] is None and short["api_calls"] == 0
    assert fake.requests == []

    fake.app_token = "rotated"
    refused = app.module.lambda_handler({}, Context(60))
    assert refused["ran"] and not refused["done"] and "401" in (refused["error"] or "")
    metrics = metrics_emitted(capsys)
    assert metrics["ReconcileErrors"] == 1 and metrics["VoucherifyAuthFailures"] >= 1
    assert "rotated" not in capsys.readouterr().out  # no key in the logs
