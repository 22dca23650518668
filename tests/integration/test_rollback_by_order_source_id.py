"""Rolling back an order by the merchant's own order id (``order_source_id``, Voucherify's ``order.source_id``) through
the worker: the redemptions the ``ByOrderSourceId`` index lists are queued as for an ``ord_…`` order request, once
each, and the request is kept under ``ORDER_SOURCE#<order source id>``, apart from every ``ORDER#<ord_…>`` one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from support.documents import payload
from support.worker import Harness, record_redemption, redeemed, redemption_data, set_stack_role
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.dynamo import StorageRefusedError
from voucherify_ledger.ledger.redemptions import RedemptionStore
from voucherify_ledger.models.rollback_request import RollbackRequest
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData

SOURCE = "1001"
ORDER = "ord_sourceorder0000001"
LONE = ["r_source000000000001", "r_source000000000002"]
DONE = "r_source000000000003"
PARENT, CHILD = "r_sourcestack0000001", "r_sourcestack0000002"
OTHER = "r_sourceother0000001"  # another order of the same customer


def record_order(harness: Harness) -> None:
    """Order 1001 in the ledger: two lone redemptions, one already rolled back, a stack; and another order."""
    for redemption_id in (*LONE, DONE):
        redeemed(harness, redemption_id, order_id=ORDER, order_source_id=SOURCE)
    record_redemption(harness.ledger, PARENT, order_id=ORDER, order_source_id=SOURCE)
    set_stack_role(harness.ledger, PARENT, "parent")
    record_redemption(harness.ledger, CHILD, order_id=ORDER, order_source_id=SOURCE, parent_id=PARENT)
    set_stack_role(harness.ledger, CHILD, "child")
    harness.fake.add_stack(PARENT, [CHILD], order_id=ORDER)
    redeemed(harness, OTHER, order_id="ord_sourceorder0000002", order_source_id="1002")
    rolled = payload("redemption_rollback_succeeded")
    rolled["redemption"]["id"] = rolled["redemption_rollback"]["redemption"] = DONE
    harness.ledger.redemptions.record_rollback(
        EventRedemptionRollbackSucceededData.model_validate(rolled),
        Delivery(b"{}", "redemption-rollback-succeeded", datetime.now(UTC)),
    )


def order_requests(harness: Harness, source: str = SOURCE) -> list[dict[str, Any]]:
    return harness.ledger.requests.of_order(source, by="order_source_id")


def test_an_order_source_id_rolls_back_every_succeeded_redemption_of_the_order_once(harness: Harness) -> None:
    record_order(harness)
    message_id = harness.send(order_source_id=SOURCE, reason="Order cancelled", request_id="cancel-1001")

    harness.drain()

    (request,) = order_requests(harness)
    assert {k: v for k, v in request.items() if k not in ("created_at", "updated_at")} == {
        "request_id": "cancel-1001",
        "source_order_source_id": SOURCE,
        "state": "FANNED_OUT",
        "attempts": 1,
        "message_id": message_id,
        "receive_count": 1,
        "reason": "Order cancelled",
        "order_ids": [ORDER],
        "redemption_ids": [*LONE, PARENT],
        "child_request_ids": [f"cancel-1001:{r}" for r in (*LONE, PARENT)],
        "already_rolled_back_ids": [DONE],
    }
    for redemption_id in (*LONE, PARENT):
        child = harness.request(redemption_id, f"cancel-1001:{redemption_id}")
        assert (child["state"], child["parent_request_id"]) == ("SUCCEEDED", "cancel-1001")
    for redemption_id in (*LONE, PARENT, CHILD, DONE):
        assert harness.ledger.redemptions.get(redemption_id)["status"] == "ROLLED_BACK"
    assert harness.ledger.redemptions.get(OTHER)["status"] == "SUCCEEDED"
    calls = {r: harness.fake.calls(r) for r in (*LONE, PARENT, CHILD, DONE, OTHER)}
    assert calls == {LONE[0]: 1, LONE[1]: 1, PARENT: 1, CHILD: 0, DONE: 0, OTHER: 0}
    assert all(r.query.get("reason") == "Order cancelled" for r in harness.fake.requests)
    assert harness.ledger.requests.of_order(ORDER) == []  # kept under its own key, not the ord_… one
    assert harness.queue_depth() == 0 and harness.queue_depth(harness.dlq_url) == 0


def test_the_same_order_source_request_delivered_twice_rolls_back_each_redemption_once(harness: Harness) -> None:
    record_order(harness)
    body = RollbackRequest(order_source_id=SOURCE, request_id="cancel-twice").to_message()
    harness.send_raw(body)
    harness.send_raw(body)

    harness.drain()

    (request,) = order_requests(harness)
    assert (request["state"], request["attempts"]) == ("FANNED_OUT", 2)
    for redemption_id in (*LONE, PARENT):
        (kept,) = harness.ledger.redemptions.get(redemption_id)["rollback_requests"]  # one request per redemption
        assert (kept["request_id"], kept["state"]) == (f"cancel-twice:{redemption_id}", "SUCCEEDED")
        assert harness.fake.calls(redemption_id) == 1


def test_an_order_source_id_that_looks_like_an_order_id_keeps_a_request_of_its_own(harness: Harness) -> None:
    lookalike = "ord_sourceorder0000001"  # the merchant chose Voucherify's shape for their own id
    redeemed(harness, LONE[0], order_id=ORDER, order_source_id=lookalike)
    harness.send(order_id=ORDER, request_id="same-id")
    harness.send(order_source_id=lookalike, request_id="same-id")

    harness.drain()

    (by_order,) = harness.ledger.requests.of_order(ORDER)
    (by_source,) = order_requests(harness, lookalike)
    assert (by_order["source_order_id"], by_order["state"]) == (ORDER, "FANNED_OUT")
    assert (by_source["source_order_source_id"], by_source["state"]) == (lookalike, "FANNED_OUT")
    assert "source_order_source_id" not in by_order and "source_order_id" not in by_source
    assert harness.fake.calls(LONE[0]) == 1  # both name the same child request: one rollback


def test_an_order_source_id_the_ledger_does_not_know_fails_without_calls(harness: Harness) -> None:
    record_order(harness)
    harness.send(order_source_id="9999", request_id="cancel-9999")

    harness.drain()

    (request,) = order_requests(harness, "9999")
    assert (request["state"], request["error"]) == (
        "FAILED",
        {"key": "order_not_in_ledger", "message": "the ledger holds no redemption of order source id 9999"},
    )
    assert "order_ids" not in request
    assert harness.fake.calls() == 0 and harness.queue_depth() == 0


def test_a_retried_order_source_request_is_recorded_under_its_own_key(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_order(harness)

    def broken(self: RedemptionStore, *args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(RedemptionStore, "states", broken)
    message_id = harness.send(order_source_id=SOURCE, request_id="cancel-retry")

    first = harness.poll()

    assert first.failed == [message_id]
    (request,) = order_requests(harness)
    assert (request["state"], request["error"]["key"], request["source_order_source_id"]) == (
        "RETRYING",
        "worker_error",
        SOURCE,
    )
    monkeypatch.undo()
    harness.drain()
    assert order_requests(harness)[0]["state"] == "FANNED_OUT"


def test_an_order_source_id_too_long_for_its_index_key_is_refused_before_any_write(harness: Harness) -> None:
    """ByOrderSourceId keys on order_source_id: DynamoDB refuses an index key over 2,048 bytes (moto does not), so the
    ledger refuses it first — the webhooks quarantine such a delivery with the reason."""
    data = redemption_data(LONE[0], order_id=ORDER, order_source_id="x" * 2049)

    with pytest.raises(StorageRefusedError, match="order_source_id is 2049 bytes"):
        harness.ledger.redemptions.record(data, Delivery(b"{}", "redemption-succeeded", datetime.now(UTC)))

    assert harness.ledger.redemptions.get(LONE[0]) is None
