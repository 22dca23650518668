"""The ledger's rollback-request section: request items, their guards, and the write path shared with the webhook."""

from __future__ import annotations

from datetime import UTC, datetime

from support.documents import payload
from support.functions import Aws
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.keys import ALREADY_ROLLED_BACK, FAILED, PENDING, RETRYING, SUCCEEDED
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData, EventRedemptionSucceededData

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def delivery(route: str = "redemption-rollback-succeeded") -> Delivery:
    return Delivery(raw=b'{"raw":"delivery"}', route=route, received_at=NOW)


def rollback_data() -> EventRedemptionRollbackSucceededData:
    return EventRedemptionRollbackSucceededData.model_validate(payload("redemption_rollback_succeeded"))


def test_a_redemption_without_requests_keeps_its_view(aws: Aws) -> None:
    data = EventRedemptionSucceededData.model_validate(payload("redemption_succeeded"))
    aws.ledger.redemptions.record(data, delivery("redemption-succeeded"))

    view = aws.ledger.redemptions.get(data.redemption.id)

    assert "rollback_requests" not in view
    assert set(view) >= {"id", "status", "rollbacks", "rollback_ids"}


def test_request_states_only_move_forward(aws: Aws) -> None:
    ledger, rid = aws.ledger, "r_guard0000000000001"
    start = ledger.requests.begin(rid, "req-1", now=NOW, message_id="m-1", receive_count=1, reason="x")
    assert start.proceed and start.item["state"] == PENDING and start.item["attempts"] == 1

    assert ledger.requests.update(rid, "req-1", RETRYING, now=NOW, fields={"error": {"key": "server_error"}})
    assert ledger.requests.update(rid, "req-1", SUCCEEDED, now=NOW, fields={"rollback_id": "rr_1"})
    # A slow concurrent attempt cannot undo the success.
    assert not ledger.requests.update(rid, "req-1", RETRYING, now=NOW)
    assert not ledger.requests.update(rid, "req-1", FAILED, now=NOW)
    assert not ledger.requests.update(rid, "req-1", ALREADY_ROLLED_BACK, now=NOW)
    again = ledger.requests.begin(rid, "req-1", now=NOW)
    assert not again.proceed and again.item["state"] == SUCCEEDED

    (request,) = ledger.redemptions.get(rid)["rollback_requests"]
    assert (request["state"], request["rollback_id"], request["attempts"]) == (SUCCEEDED, "rr_1", 1)
    assert "error" not in request and "next_attempt_at" not in request


def test_already_rolled_back_gives_way_only_to_succeeded(aws: Aws) -> None:
    ledger, rid = aws.ledger, "r_guard0000000000002"
    ledger.requests.begin(rid, "req-2", now=NOW)
    ledger.requests.record_already_rolled_back(rid, "req-2", now=NOW, confirmed_by="api")

    assert not ledger.requests.update(rid, "req-2", FAILED, now=NOW)
    assert ledger.redemptions.get(rid)["status"] == "ROLLED_BACK"
    assert ledger.requests.update(rid, "req-2", SUCCEEDED, now=NOW)


def test_a_dead_lettered_request_may_be_redriven(aws: Aws) -> None:
    ledger, rid = aws.ledger, "r_guard0000000000003"
    ledger.requests.begin(rid, "req-3", now=NOW)
    ledger.requests.update(rid, "req-3", FAILED, now=NOW, fields={"dead_lettered": True})
    ledger.requests.begin(rid, "req-4", now=NOW)
    ledger.requests.update(rid, "req-4", FAILED, now=NOW, fields={"error": {"key": "not_found"}})

    redriven = ledger.requests.begin(rid, "req-3", now=NOW)
    permanent = ledger.requests.begin(rid, "req-4", now=NOW)

    assert redriven.proceed and redriven.item["attempts"] == 2 and "dead_lettered" not in redriven.item
    assert not permanent.proceed and permanent.item["error"] == {"key": "not_found"}


def test_worker_then_webhook_records_the_rollback_once(aws: Aws) -> None:
    data = rollback_data()
    rollback, rid = data.redemption_rollback, data.redemption_id
    aws.ledger.requests.begin(rid, "req-w", now=NOW)

    first = aws.ledger.requests.record_worker_rollback(rid, rollback, raw=b"{}", received_at=NOW, request_id="req-w")
    second = aws.ledger.redemptions.record_rollback(data, delivery())

    assert (first.status, second.status) == ("recorded", "duplicate")
    view = aws.ledger.redemptions.get(rid)
    assert [r["source"] for r in view["rollbacks"]] == ["worker"]
    assert view["rollback_ids"] == [rollback.id]
    assert view["rollback_requests"][0]["state"] == SUCCEEDED


def test_webhook_then_worker_records_the_rollback_once_and_finishes_the_request(aws: Aws) -> None:
    data = rollback_data()
    rollback, rid = data.redemption_rollback, data.redemption_id
    aws.ledger.requests.begin(rid, "req-h", now=NOW)

    first = aws.ledger.redemptions.record_rollback(data, delivery())
    second = aws.ledger.requests.record_worker_rollback(rid, rollback, raw=b"{}", received_at=NOW, request_id="req-h")

    assert (first.status, second.status) == ("recorded", "duplicate")
    view = aws.ledger.redemptions.get(rid)
    assert [r["source"] for r in view["rollbacks"]] == ["webhook"]
    (request,) = view["rollback_requests"]
    assert (request["state"], request["rollback_id"], request["recorded_by"]) == (SUCCEEDED, rollback.id, "webhook")


def test_request_items_stay_out_of_the_indexes(aws: Aws) -> None:
    data = EventRedemptionSucceededData.model_validate(payload("redemption_succeeded"))
    aws.ledger.redemptions.record(data, delivery("redemption-succeeded"))
    order_id = data.redemption.order.id
    aws.ledger.requests.begin(data.redemption.id, "req-i", now=NOW, reason="r")
    aws.ledger.requests.record_order(order_id, "req-o", "FANNED_OUT", now=NOW, fields={"redemption_ids": ["x"]})

    assert [r["redemption_id"] for r in aws.ledger.redemptions.list_by("order", order_id)] == [data.redemption.id]
    assert [r["request_id"] for r in aws.ledger.requests.of_order(order_id)] == ["req-o"]


def test_redemption_states_reads_many_consistently(aws: Aws) -> None:
    data = EventRedemptionSucceededData.model_validate(payload("redemption_succeeded"))
    aws.ledger.redemptions.record(data, delivery("redemption-succeeded"))

    states = aws.ledger.redemptions.states([data.redemption.id, "r_absent0000000000001"])

    (state,) = states.values()
    assert set(states) == {data.redemption.id}
    assert (state["redemption_id"], state["status"]) == (data.redemption.id, "SUCCEEDED")
    assert state["redemption_recorded_at"]  # the redemption itself, not an item a rollback made first
    assert set(state) == {"redemption_id", "status", "redemption_recorded_at"}  # the state's fields, no more
