"""What the fake Voucherify knows from the webhooks Voucherify sent (``learning``, ``FakeVoucherify.know_webhook``) and
how the local stack teaches it (``local_stack.known``): the sample payloads' redemptions, and each delivery a webhook
function answered 200 — never a quarantined or refused one. Without sockets: nothing is started."""

from __future__ import annotations

import base64
import json
from typing import Any

from ledger_dev.fake_voucherify import FakeVoucherify
from ledger_dev.fake_voucherify.learning import webhook_redemptions
from ledger_dev.local_stack.config import PAYLOADS_DIR
from ledger_dev.local_stack.known import know_samples, learning
from support.documents import payload
from support.worker import redemption_document

PARENT, CHILD_1, CHILD_2 = "r_learnparent0000001", "r_learnchild00000001", "r_learnchild00000002"


def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": "whs_1", "type": event_type, "data": data, "event": {"type": event_type}}


def stack_parent(children: list[str]) -> dict[str, Any]:
    """The stack's own redemption.succeeded, its order entry listing the children (``stacked``)."""
    data = redemption_document(PARENT, order_id="ord_learnstack000001")
    entry = {"related_object_type": "redemption", "related_object_id": PARENT, "stacked": children}
    data["order"]["redemptions"] = {PARENT: entry}
    return data


def test_a_redemption_webhook_names_its_redemption_with_what_it_says_bare_or_in_an_envelope() -> None:
    data = payload("redemption_succeeded")

    bare = webhook_redemptions(json.dumps(data).encode())
    wrapped = webhook_redemptions(envelope("redemption.succeeded", data))

    assert bare == wrapped
    (known,) = bare
    assert (known.id, known.order_id, known.customer_id) == (
        data["redemption"]["id"],
        data["order"]["id"],
        data["redemption"]["customer_id"],
    )
    assert (known.voucher_code, known.voucher_id, known.date) == (
        data["voucher"]["code"],
        data["voucher"]["id"],
        data["redemption"]["date"],
    )
    assert (known.parent_id, known.children, known.rollback_id) == (None, [], None)


def test_a_rollback_webhook_names_its_redemption_rolled_back_when_it_succeeded() -> None:
    succeeded = payload("customer_redemption_rollback_succeeded")
    failed = payload("redemption_rollback_failed")

    (rolled_back,) = webhook_redemptions(succeeded)
    (left,) = webhook_redemptions(envelope("redemption.rollback.failed", failed))

    rollback = succeeded["redemption_rollback"]
    assert (rolled_back.id, rolled_back.rollback_id) == (rollback["redemption"], rollback["id"])
    assert (left.id, left.rollback_id) == (failed["redemption_rollback"]["redemption"], None)


def test_a_failed_redemption_and_what_is_no_webhook_name_nothing() -> None:
    assert webhook_redemptions(payload("redemption_failed")) == []  # rf_…: never rolled back
    for body in (b"not json", b"[1]", b"{}", {"redemption": {"id": "r_x.dotted"}}, {"data": "x", "event": {}}):
        assert webhook_redemptions(body) == []


def test_a_stacks_webhooks_name_the_parent_with_its_children_either_way_round() -> None:
    parent, *children = webhook_redemptions(stack_parent([CHILD_1, CHILD_2]))
    child, named_parent = webhook_redemptions(redemption_document(CHILD_1, parent_id=PARENT))

    assert (parent.id, parent.children, parent.parent_id) == (PARENT, [CHILD_1, CHILD_2], None)
    assert [(c.id, c.parent_id, c.order_id) for c in children] == [
        (CHILD_1, PARENT, "ord_learnstack000001"),
        (CHILD_2, PARENT, "ord_learnstack000001"),
    ]
    assert (child.id, child.parent_id, named_parent.id, named_parent.children) == (CHILD_1, PARENT, PARENT, [CHILD_1])


def test_the_fake_knows_a_stack_whatever_order_its_webhooks_come_in_and_lists_none_of_it() -> None:
    fake = FakeVoucherify()

    first = fake.know_webhook(redemption_document(CHILD_2, parent_id=PARENT, order_id="ord_learnstack000001"))
    second = fake.know_webhook(stack_parent([CHILD_1, CHILD_2]))
    again = fake.know_webhook(stack_parent([CHILD_1, CHILD_2]))

    assert (first, second, again) == ([CHILD_2, PARENT], [CHILD_1], [])
    parent = fake.known(PARENT)
    assert parent is not None and sorted(parent.children) == [CHILD_1, CHILD_2]
    assert parent.order_id == "ord_learnstack000001" and parent.customer_id  # the parent's own webhook filled them in
    assert [getattr(fake.known(c), "parent_id", None) for c in (CHILD_1, CHILD_2)] == [PARENT, PARENT]
    assert fake.history() == [] and fake.rollback_id(PARENT) is None


def test_a_known_redemption_keeps_what_it_holds_and_takes_a_rollback_it_lacked() -> None:
    fake = FakeVoucherify()
    fake.add_redemption(CHILD_1, order_id="ord_given", voucher_code="GIVEN")
    rolled = payload("redemption_rollback_succeeded")
    rolled["redemption"]["id"] = rolled["redemption_rollback"]["redemption"] = CHILD_1

    assert fake.know_webhook(rolled) == []

    known = fake.known(CHILD_1)
    assert known is not None
    assert (known.order_id, known.voucher_code) == ("ord_given", "GIVEN")
    assert known.rollback_id == rolled["redemption_rollback"]["id"]  # Voucherify rolled it back: already_rolled_back


def test_the_local_stacks_fake_knows_every_sample_payloads_redemption() -> None:
    fake = FakeVoucherify()

    known = know_samples(fake, PAYLOADS_DIR)

    documents = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(PAYLOADS_DIR.glob("*.json"))]
    named = {d.get("redemption_rollback", {}).get("redemption") or d["redemption"]["id"] for d in documents}
    assert sorted(known) == sorted(r for r in named if r.startswith("r_"))
    assert fake.known("r_0e2500291ae016adea") is not None  # the banner's example rollback
    rolled_back = payload("customer_redemption_rollback_succeeded")["redemption_rollback"]
    assert fake.rollback_id(rolled_back["redemption"]) == rolled_back["id"]


def answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def test_a_webhook_function_teaches_the_fake_only_what_it_answered_200_for() -> None:
    fake = FakeVoucherify()
    answers = iter(
        [
            answer(200, {"status": "recorded", "redemption_id": "r_learnlone0000000001"}),
            answer(200, {"status": "duplicate"}),
            answer(202, {"status": "quarantined", "errors": ["…"]}),
            answer(401, {"message": "x-voucherify-signature does not match"}),
            answer(503, {"message": "the ledger is unavailable"}),
        ]
    )
    handler = learning(lambda event, context: next(answers), lambda: fake)
    ids = ["r_learnlone0000000001", "r_learnlone0000000002", "r_learnlone0000000003", "r_learnlone0000000004"]
    events = [
        {"body": json.dumps(redemption_document(ids[0])), "isBase64Encoded": False},
        {"body": base64.b64encode(json.dumps(redemption_document(ids[1])).encode()).decode(), "isBase64Encoded": True},
        *({"body": json.dumps(redemption_document(rid)), "isBase64Encoded": False} for rid in ids[2:]),
        {"body": json.dumps(redemption_document("r_learnlone0000000005")), "isBase64Encoded": False},
    ]

    answered = [handler(event, None)["statusCode"] for event in events]

    assert answered == [200, 200, 202, 401, 503]  # the answers as the function gave them
    assert [r for r in [*ids, "r_learnlone0000000005"] if fake.known(r)] == ids[:2]


def test_learning_never_fails_a_delivery() -> None:
    class Broken(FakeVoucherify):
        def know_webhook(self, body: Any) -> list[str]:
            raise RuntimeError("the fake's bookkeeping broke")

    recorded = answer(200, {"status": "recorded"})
    handler = learning(lambda event, context: recorded, lambda: Broken())

    assert handler({"body": json.dumps(redemption_document(CHILD_1))}, None) is recorded
    assert learning(lambda event, context: recorded, lambda: None)({"body": "{}"}, None) is recorded
