"""An order's failed redemption attempts (``rf_…``, status FAILED: nothing was given) are neither rolled back nor
counted as ids that cannot be sent: the order's succeeded redemptions are queued as ever, and an order holding only
failed attempts ends FAILED ``only_failed_attempts`` with no API call and no ``RollbackRedemptionIdsInvalid``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from support.documents import payload
from support.functions import emitted_metrics
from support.worker import Harness, redeemed
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.models.webhooks import EventRedemptionSucceededData

ORDER = "ord_failedattempts0001"
FAILED_ATTEMPT = "rf_failedattempt00001"
SUCCEEDED = "r_failedattemptok0001"


def record_failed_attempt(harness: Harness, order_id: str) -> None:
    data = payload("redemption_failed")
    data["redemption"]["id"] = FAILED_ATTEMPT
    data["order"] = {**(data.get("order") or {}), "id": order_id}
    data["redemption"]["order"] = {**(data["redemption"].get("order") or {}), "id": order_id}
    outcome = harness.ledger.redemptions.record(
        EventRedemptionSucceededData.model_validate(data),
        Delivery(b"{}", "redemption-succeeded", datetime.now(UTC)),
    )
    assert (outcome.status, outcome.ledger_status) == ("recorded", "FAILED")


def test_a_failed_attempt_of_the_order_is_left_alone(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    record_failed_attempt(harness, ORDER)
    redeemed(harness, SUCCEEDED, order_id=ORDER)
    harness.send(order_id=ORDER, reason="Refund", request_id="refund-1")

    harness.drain()

    (request,) = harness.ledger.requests.of_order(ORDER)
    assert (request["state"], request["redemption_ids"]) == ("FANNED_OUT", [SUCCEEDED])
    assert request["failed_attempt_ids"] == [FAILED_ATTEMPT] and "invalid_redemption_ids" not in request
    assert harness.ledger.redemptions.get(SUCCEEDED)["status"] == "ROLLED_BACK"
    assert harness.ledger.redemptions.get(FAILED_ATTEMPT)["status"] == "FAILED"
    assert (harness.fake.calls(SUCCEEDED), harness.fake.calls(FAILED_ATTEMPT)) == (1, 0)
    assert "RollbackRedemptionIdsInvalid" not in emitted_metrics(capsys.readouterr().out)


def test_an_order_of_failed_attempts_only_has_nothing_to_roll_back(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    record_failed_attempt(harness, ORDER)
    harness.send(order_id=ORDER, reason="Refund", request_id="refund-2")

    harness.drain()

    (request,) = harness.ledger.requests.of_order(ORDER)
    assert (request["state"], request["error"]["key"]) == ("FAILED", "only_failed_attempts")
    assert request["failed_attempt_ids"] == [FAILED_ATTEMPT]
    assert harness.fake.requests == []
    assert "RollbackRedemptionIdsInvalid" not in emitted_metrics(capsys.readouterr().out)
