"""`make run` end to end, by the merchant's own order id: Voucherify's redemption.succeeded webhooks for order 1001 go
over HTTP to the stack's API, then `redemption-ledger rollback --order-source-id 1001 --local --wait 30` puts the
request on the queue, the worker fans it out (ByOrderSourceId) and the fake Voucherify, which knows the redemptions
from those webhooks alone, rolls back each succeeded redemption of the order once — a stack through its parent — and
`list --order-source-id 1001` lists them."""

from __future__ import annotations

from ledger_dev.local_stack import LocalStack
from redemption_ledger_cli import cli
from support.cli import cli_json
from support.local import deliver_redemption
from support.worker import redemption_document

SOURCE = "e2e-1001"
ORDER = "ord_e2esource00000001"
LONE = "r_e2esourcelone00001"
PARENT, CHILDREN = "r_e2esourcestack0001", ["r_e2esourcechild0001", "r_e2esourcechild0002"]
OTHER = "r_e2esourceother0001"  # another order: left alone


def test_rollback_by_order_source_id_rolls_back_every_redemption_of_the_order_once(stack: LocalStack) -> None:
    fake = stack.fake_voucherify
    assert fake is not None and stack.rollback_poller is not None
    # As Voucherify sends them: one webhook per redeemable of the stack, one for the stack, one for the lone voucher.
    for redemption_id, parent in ((LONE, None), (PARENT, None), *((child, PARENT) for child in CHILDREN)):
        document = redemption_document(redemption_id, order_id=ORDER, order_source_id=SOURCE, parent_id=parent)
        deliver_redemption(stack, document)
    deliver_redemption(stack, redemption_document(OTHER, order_id="ord_e2esource00000002", order_source_id="e2e-1002"))
    # the fake (strict) knows them from those webhooks alone, the stack by its children naming their parent
    assert all(fake.known(r) is not None for r in (LONE, *CHILDREN, OTHER))
    known_parent = fake.known(PARENT)
    assert known_parent is not None and sorted(known_parent.children) == sorted(CHILDREN)

    code, queued = cli_json(
        "rollback", "--order-source-id", SOURCE, "--reason", "Order cancelled", "--local", "--wait", "30"
    )

    assert code == cli.EXIT_OK, queued
    assert (queued["order_source_id"], queued["finished"]) == (SOURCE, True)
    order_request, *children = queued["requests"]
    assert (order_request["state"], order_request["source_order_source_id"]) == ("FANNED_OUT", SOURCE)
    assert order_request["order_ids"] == [ORDER]
    assert sorted(order_request["redemption_ids"]) == sorted([LONE, PARENT])  # the stack once, through its parent
    assert {c["redemption_id"]: c["state"] for c in children} == {LONE: "SUCCEEDED", PARENT: "SUCCEEDED"}
    successes = [(r.redemption_id, r.endpoint) for r in fake.requests if r.status == 200]
    assert sorted(successes) == [(LONE, "rollback"), (PARENT, "rollbacks")]  # each rolled back once
    assert {r: fake.calls(r) for r in (*CHILDREN, OTHER)} == dict.fromkeys((*CHILDREN, OTHER), 0)

    code, listed = cli_json("list", "--order-source-id", SOURCE, "--local")

    assert code == cli.EXIT_OK
    assert (listed["order_source_id"], listed["order_ids"], listed["redemption_count"]) == (SOURCE, [ORDER], 4)
    tree = {r["redemption_id"]: r for r in listed["redemptions"]}
    assert set(tree) == {LONE, PARENT}
    assert sorted(c["redemption_id"] for c in tree[PARENT]["children"]) == sorted(CHILDREN)
    statuses = [tree[LONE]["status"], tree[PARENT]["status"], *(c["status"] for c in tree[PARENT]["children"])]
    assert statuses == ["ROLLED_BACK"] * 4
    _, other = cli_json("show", OTHER, "--local")
    assert other["status"] == "SUCCEEDED"
