"""Stacked redemptions through the worker (SQS on moto → the real handler → the fake Voucherify → the ledger): a child
the ledger knows is refused without an API call, naming its parent and the command that rolls the stack back; a
parent it knows goes straight to the stack endpoint, one call; an order rolls its stack back once, through the parent.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from support.documents import payload
from support.worker import Harness, metrics_emitted, record_redemption, set_stack_role
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData

PARENT = "r_stackparent00000001"
CHILDREN = ["r_stackchild000000001", "r_stackchild000000002"]
ORDER = "ord_stackorder00000001"


def record_stack(harness: Harness, *, roles: bool = True, parent_in_ledger: bool = True) -> None:
    """The stack in Voucherify (the fake) and in the ledger: its children (``parent_redemption_id``), the parent
    unless told otherwise, and (``roles``) ``stack_role`` as the webhook path writes it."""
    harness.fake.add_stack(PARENT, CHILDREN, order_id=ORDER)
    if parent_in_ledger:
        record_redemption(harness.ledger, PARENT, order_id=ORDER)
        if roles:
            set_stack_role(harness.ledger, PARENT, "parent")
    for child in CHILDREN:
        record_redemption(harness.ledger, child, order_id=ORDER, parent_id=PARENT)
        if roles:
            set_stack_role(harness.ledger, child, "child")


@pytest.mark.parametrize("roles", [True, False], ids=["stack_role", "parent_redemption_id_only"])
def test_a_child_the_ledger_knows_is_refused_naming_its_parent_without_an_api_call(
    harness: Harness, capsys: pytest.CaptureFixture[str], roles: bool
) -> None:
    record_stack(harness, roles=roles)
    child = CHILDREN[0]
    message_id = harness.send(redemption_id=child, reason="Order cancelled", request_id="req-child")

    (result,) = harness.drain()

    assert result.deleted == [message_id] and not result.failed  # permanent: not retried
    assert harness.fake.requests == [] and harness.fake.calls() == 0
    request = harness.request(child, "req-child")
    assert (request["state"], request["attempts"], request.get("api_calls", 0)) == ("FAILED", 1, 0)
    error = request["error"]
    assert (error["key"], error["parent_redemption_id"]) == ("stack_child", PARENT)
    assert f"child of the stacked redemption {PARENT}" in error["message"]
    assert f"`redemption-ledger rollback {PARENT} " in error["message"]
    assert harness.ledger.redemptions.get(child)["status"] == "SUCCEEDED"
    metrics = metrics_emitted(capsys)
    assert (metrics.get("RollbackStackChildrenRefused"), metrics.get("RollbacksFailed")) == (1, 1)
    assert harness.queue_depth() == 0 and harness.queue_depth(harness.dlq_url) == 0

    harness.send(redemption_id=PARENT, reason="Order cancelled", request_id="req-parent")  # what the error says to do
    harness.drain()

    assert harness.request(PARENT, "req-parent")["state"] == "SUCCEEDED"
    assert {r: harness.ledger.redemptions.get(r)["status"] for r in (PARENT, *CHILDREN)} == dict.fromkeys(
        (PARENT, *CHILDREN), "ROLLED_BACK"
    )


def test_a_child_whose_parent_the_ledger_holds_rolled_back_went_with_its_stack(harness: Harness) -> None:
    record_stack(harness)
    rolled = payload("redemption_rollback_succeeded")  # the parent's rollback, reported by its webhook alone
    rolled["redemption"]["id"] = rolled["redemption_rollback"]["redemption"] = PARENT
    harness.ledger.redemptions.record_rollback(
        EventRedemptionRollbackSucceededData.model_validate(rolled),
        Delivery(b"{}", "redemption-rollback-succeeded", datetime.now(UTC)),
    )
    harness.send(redemption_id=CHILDREN[1], request_id="req-gone")

    harness.drain()

    request = harness.request(CHILDREN[1], "req-gone")
    assert (request["state"], request["confirmed_by"], request["rolled_back_with"]) == (
        "ALREADY_ROLLED_BACK",
        "ledger",
        PARENT,
    )
    assert "error" not in request and harness.fake.calls() == 0


def test_a_parent_the_ledger_knows_goes_straight_to_the_stack_endpoint(harness: Harness) -> None:
    record_stack(harness)
    harness.send(redemption_id=PARENT, reason="Refund", request_id="req-stack")

    (result,) = harness.drain()

    assert result.deleted and not result.failed
    ((call),) = harness.fake.requests
    assert (call.endpoint, call.path, call.status) == ("rollbacks", f"/v1/redemptions/{PARENT}/rollbacks", 200)
    assert call.query == {"reason": "Refund"}
    request = harness.request(PARENT, "req-stack")
    assert (request["state"], request["api_calls"], request["stacked"]) == ("SUCCEEDED", 1, True)
    assert sorted(request["child_rollback_ids"]) == sorted(harness.fake.rollback_id(c) for c in CHILDREN)
    for redemption_id in (PARENT, *CHILDREN):
        view = harness.ledger.redemptions.get(redemption_id)
        assert (view["status"], view["rollback_ids"]) == ("ROLLED_BACK", [harness.fake.rollback_id(redemption_id)])


def test_a_parent_the_ledger_does_not_know_as_one_still_falls_back_to_the_stack_endpoint(harness: Harness) -> None:
    record_stack(harness, roles=False)  # the parent's item says nothing of its stack
    harness.send(redemption_id=PARENT, request_id="req-unknown-parent")

    harness.drain()

    assert [(r.endpoint, r.status) for r in harness.fake.requests] == [("rollback", 400), ("rollbacks", 200)]
    request = harness.request(PARENT, "req-unknown-parent")
    assert (request["state"], request["api_calls"]) == ("SUCCEEDED", 2)


@pytest.mark.parametrize("parent_in_ledger", [True, False])
def test_an_order_rolls_its_stack_back_once_through_the_parent(harness: Harness, parent_in_ledger: bool) -> None:
    lone = "r_stacklone0000000001"
    record_redemption(harness.ledger, lone, order_id=ORDER)
    record_stack(harness, parent_in_ledger=parent_in_ledger)
    harness.send(order_id=ORDER, reason="Order cancelled", request_id="cancel-stack")

    harness.drain()

    (order_request,) = harness.ledger.requests.of_order(ORDER)
    assert order_request["state"] == "FANNED_OUT"
    assert sorted(order_request["redemption_ids"]) == sorted([lone, PARENT])
    assert harness.request(PARENT, f"cancel-stack:{PARENT}")["state"] == "SUCCEEDED"
    for child in CHILDREN:  # no request of their own: they went with the parent
        view = harness.ledger.redemptions.get(child)
        assert view["status"] == "ROLLED_BACK" and "rollback_requests" not in view
    # a parent the ledger knows as one: one call to the stack endpoint; one it does not hold: /rollback first
    expected = ["rollbacks"] if parent_in_ledger else ["rollback", "rollbacks"]
    assert [r.endpoint for r in harness.fake.requests if r.redemption_id == PARENT] == expected
    assert {r: harness.fake.calls(r) for r in (lone, *CHILDREN)} == {lone: 1, CHILDREN[0]: 0, CHILDREN[1]: 0}
    assert harness.queue_depth() == 0
