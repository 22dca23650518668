"""The ledger's rollback-request section: request items, their guards, and the write path shared with the webhook."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from support.documents import payload
from support.functions import Aws
from voucherify_ledger.ledger.claims import Claim, finished_note
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.keys import ALREADY_ROLLED_BACK, FAILED, RETRYING, SUCCEEDED
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


def claim(aws: Aws, rid: str, request_id: str, *, at: float = 1_000.0, hold: float = 30.0) -> Claim:
    return aws.ledger.claims.claim(rid, request_id, now=at, until=at + hold)


def test_request_states_only_move_forward(aws: Aws) -> None:
    ledger, rid = aws.ledger, "r_guard0000000000001"
    assert claim(aws, rid, "req-1").outcome == "claimed"
    assert ledger.requests.update(rid, "req-1", RETRYING, now=NOW, fields={"error": {"key": "server_error"}})
    assert ledger.requests.update(rid, "req-1", SUCCEEDED, now=NOW, fields={"rollback_id": "rr_1", "attempts": 1})
    ledger.claims.release(rid, "req-1", finished=finished_note(SUCCEEDED, "rr_1"))
    # A slow concurrent attempt cannot undo the success.
    assert not ledger.requests.update(rid, "req-1", RETRYING, now=NOW)
    assert not ledger.requests.update(rid, "req-1", FAILED, now=NOW)
    assert not ledger.requests.update(rid, "req-1", ALREADY_ROLLED_BACK, now=NOW)
    again = claim(aws, rid, "req-1", at=2_000.0)  # delivered again: answered by the failed claim alone
    assert (again.outcome, again.finished) == ("finished", {"state": SUCCEEDED, "rollback_id": "rr_1"})

    (request,) = ledger.redemptions.get(rid)["rollback_requests"]
    assert (request["state"], request["rollback_id"], request["attempts"]) == (SUCCEEDED, "rr_1", 1)
    assert "error" not in request and "next_attempt_at" not in request


def test_already_rolled_back_gives_way_only_to_succeeded(aws: Aws) -> None:
    ledger, rid = aws.ledger, "r_guard0000000000002"
    claim(aws, rid, "req-2")
    ledger.requests.record_already_rolled_back(rid, "req-2", now=NOW, confirmed_by="api")

    assert not ledger.requests.update(rid, "req-2", FAILED, now=NOW)
    assert ledger.redemptions.get(rid)["status"] == "ROLLED_BACK"
    assert ledger.requests.update(rid, "req-2", SUCCEEDED, now=NOW)
    assert claim(aws, rid, "req-2", at=2_000.0).finished == {"state": ALREADY_ROLLED_BACK}
    assert claim(aws, rid, "req-other", at=2_000.0).outcome == "rolled_back"


def test_a_dead_lettered_request_may_be_redriven(aws: Aws) -> None:
    ledger, rid = aws.ledger, "r_guard0000000000003"
    claim(aws, rid, "req-3")
    ledger.requests.update(rid, "req-3", FAILED, now=NOW, fields={"dead_lettered": True})
    ledger.claims.release(rid, "req-3")  # dead-lettered: not finished
    claim(aws, rid, "req-4")
    ledger.requests.update(rid, "req-4", FAILED, now=NOW, fields={"error": {"key": "not_found"}})
    ledger.claims.release(rid, "req-4", finished=finished_note(FAILED, error_key="not_found"))

    redriven = claim(aws, rid, "req-3", at=2_000.0)
    ledger.claims.release(rid, "req-3")
    permanent = claim(aws, rid, "req-4", at=2_000.0)

    assert redriven.outcome == "claimed"
    assert (permanent.outcome, permanent.finished) == ("finished", {"state": FAILED, "error_key": "not_found"})


def test_a_live_claim_holds_off_every_other_attempt_until_it_lapses_or_is_released(aws: Aws) -> None:
    rid = "r_claim0000000000001"
    assert claim(aws, rid, "req-a", at=1_000.0, hold=30.0).outcome == "claimed"

    assert claim(aws, rid, "req-b", at=1_010.0).outcome == "held"
    assert claim(aws, rid, "req-a", at=1_010.0).outcome == "held"  # the same request delivered twice at once
    assert claim(aws, rid, "req-b", at=1_031.0).outcome == "claimed"  # req-a's invocation is over: it lapsed
    aws.ledger.claims.release(rid, "req-a")  # no longer req-a's: nothing changes
    assert claim(aws, rid, "req-c", at=1_040.0).outcome == "held"
    aws.ledger.claims.release(rid, "req-b")
    assert claim(aws, rid, "req-c", at=1_040.0).outcome == "claimed"
    assert aws.ledger.redemptions.get(rid) == {"id": rid, "status": None, "rollbacks": [], "rollback_ids": []}


def test_a_kept_answer_goes_to_the_next_claim_and_its_record_removes_it(aws: Aws) -> None:
    data = rollback_data()
    rollback, rid = data.redemption_rollback, data.redemption_id
    claim(aws, rid, "req-k")
    aws.ledger.claims.keep_answer(rid, "req-k", {"endpoint": "rollback", "status": 200, "raw_zlib_b64": "eJwDAAAAAAE="})

    retried = claim(aws, rid, "req-k", at=1_001.0)  # released with the answer: no need to wait for the lapse
    assert retried.outcome == "claimed" and retried.kept_answer == {
        "endpoint": "rollback",
        "status": 200,
        "raw_zlib_b64": "eJwDAAAAAAE=",
    }
    aws.ledger.requests.record_worker_rollback(rid, rollback, raw=b"{}", received_at=NOW, request_id="req-k")
    (item,) = [i for i in aws.items() if i["pk"]["S"] == f"REDEMPTION#{rid}" and i["sk"]["S"] == "REDEMPTION"]
    assert not {"worker_claim", "worker_claim_until", "worker_answer"} & item.keys()
    assert claim(aws, rid, "req-k", at=1_002.0).finished == {"state": SUCCEEDED, "rollback_id": rollback.id}


def test_worker_then_webhook_records_the_rollback_once(aws: Aws) -> None:
    data = rollback_data()
    rollback, rid = data.redemption_rollback, data.redemption_id
    claim(aws, rid, "req-w")

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
    claim(aws, rid, "req-h")

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
    claim(aws, data.redemption.id, "req-i")
    aws.ledger.requests.update(data.redemption.id, "req-i", RETRYING, now=NOW, fields={"reason": "r"})
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


def test_a_worker_rollback_keeps_the_models_checks_of_a_rollback(aws: Aws) -> None:
    # The worker's data is put together around a validated rollback (model_construct): the event model's own checks
    # still hold, before anything is written.
    rollback = rollback_data().redemption_rollback.model_copy(update={"id": "r_0e6ff48b91cfa02e97"})
    with pytest.raises(ValueError, match="expected a rollback id"):
        aws.ledger.requests.record_worker_rollback(
            "r_0e2500291ae016adea", rollback, raw=b"{}", received_at=NOW, request_id="req-x"
        )
    assert aws.items() == []
