"""`make run`'s stack over HTTP: the new kinds of redemption events — a failed redemption, a stack, a gift card and
its rollback, a failed rollback — each delivered to its URL, signed, then read back with `redemption-ledger show`."""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from typing import Any

from ledger_dev import local_stack
from ledger_dev.local_stack import LocalStack
from support.cli import cli_json
from support.documents import compact, envelope, openapi_examples, seed_redemption
from support.kinds import STACK_PARENT, gift_card, gift_card_rollback
from support.kinds import stack as stacked_redemptions
from voucherify_ledger.webhooks.auth import sign

REDEMPTION_PATH = "/webhooks/redemption-succeeded"
ROLLBACK_PATH = "/webhooks/redemption-rollback-succeeded"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def deliver(stack: LocalStack, path: str, document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    raw = compact(document)
    headers = {
        "content-type": "application/json",
        "user-agent": "Voucherify-Webhooks",
        "x-voucherify-signature": sign(local_stack.DEFAULT_SIGNING_SECRET, raw),
    }
    request = urllib.request.Request(stack.api_url + path, data=raw, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def show(redemption_id: str) -> dict[str, Any]:
    code, shown = cli_json("show", redemption_id, "--local")
    assert code == 0, shown
    return dict(shown)


def example(webhook: str) -> dict[str, Any]:
    ((_, found),) = openapi_examples(webhook)
    return copy.deepcopy(found)


def test_new_kinds_of_redemption_events_are_recorded_as_what_they_are(stack: LocalStack) -> None:
    failed = example("EVENTS.REDEMPTION.FAILED")
    gift = gift_card()
    members = stacked_redemptions()  # two children, then their parent
    redemption_of_failed_rollback = example("EVENTS.REDEMPTION.ROLLBACK.FAILED")
    redemption_of_failed_rollback.pop("redemption_rollback")
    redemption_of_failed_rollback["redemption"]["status"] = "SUCCEEDED"
    deliveries = [
        (REDEMPTION_PATH, envelope(failed, "redemption.failed"), "FAILED"),
        (REDEMPTION_PATH, gift.data, "SUCCEEDED"),
        *[(REDEMPTION_PATH, envelope(m.data, "redemption.succeeded"), "SUCCEEDED") for m in members],
        (REDEMPTION_PATH, redemption_of_failed_rollback, "SUCCEEDED"),
        (ROLLBACK_PATH, envelope(gift_card_rollback(gift), "customer.redemption.rollback.succeeded"), "ROLLED_BACK"),
        (ROLLBACK_PATH, envelope(example("EVENTS.REDEMPTION.ROLLBACK.FAILED"), "redemption.rollback.failed"), None),
    ]
    for path, document, ledger_status in deliveries:
        status, answer = deliver(stack, path, document)
        assert (status, answer["status"], answer.get("ledger_status")) == (200, "recorded", ledger_status), answer

    shown = show(failed["redemption"]["id"])
    assert (shown["status"], shown["failure_code"]) == ("FAILED", "no_applicable_redeemables")
    assert "discount_amount" not in shown
    parent = show(STACK_PARENT)
    assert (parent["stack_role"], parent["discount_amount"], parent["child_redemption_ids"]) == (
        "parent",
        1_500,
        [m.redemption_id for m in members[:2]],
    )
    children = [show(m.redemption_id) for m in members[:2]]
    assert [(c["stack_role"], c["parent_redemption_id"], c["discount_amount"]) for c in children] == [
        ("child", STACK_PARENT, 1_000),
        ("child", STACK_PARENT, 500),
    ]
    card = show(gift.redemption_id)
    assert (card["status"], card["amount"], card["amount_unit"], card["gift_balance"]) == (
        "ROLLED_BACK",
        3_500,
        "gift_credits",
        6_500,
    )
    (rollback,) = card["rollbacks"]
    assert (rollback["credits_restored"], rollback["gift_balance"]) == (3_500, 10_000)
    kept = show(redemption_of_failed_rollback["redemption"]["id"])
    assert (kept["status"], kept["failed_rollback_ids"], kept["rollbacks"][0]["failure_code"]) == (
        "SUCCEEDED",
        ["rrf_0e3ac8beeea431c302"],
        "already_rolled_back",
    )


def test_a_contradicting_failed_event_is_quarantined_over_http(stack: LocalStack) -> None:
    status, answer = deliver(stack, REDEMPTION_PATH, envelope(seed_redemption(), "redemption.failed"))
    assert (status, answer["status"], answer["reason"]) == (
        202,
        "quarantined",
        "the event type and the payload disagree",
    )
    code, listed = cli_json("quarantine", "list", "--local")
    assert code == 0 and [q["reason"] for q in listed] == ["the event type and the payload disagree"]
