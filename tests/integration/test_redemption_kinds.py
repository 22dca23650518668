"""Every kind of redemption event recorded as what it is, through the webhook functions (API Gateway events into the
handlers, moto's table): each kind's status, own discount, units, balances and rewards; failed redemptions FAILED
and never a rollback target; failed rollbacks noted without a change of status; both spellings of ROLLED BACK; an
envelope whose event type and content disagree kept in quarantine."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from support.documents import compact, envelope, openapi_examples, seed_redemption, seed_rollback
from support.functions import REDEMPTION_FN, ROLLBACK_FN, Aws, LambdaApp
from support.kinds import (
    STACK_ORDER,
    STACK_PARENT,
    Kind,
    every_kind,
    gift_card,
    gift_card_rollback,
    pay_with_points,
    pay_with_points_rollback,
    stack,
)
from voucherify_ledger.models import ids
from voucherify_ledger.models.rollback_request import is_rollback_target

KINDS = every_kind()


def post(app: LambdaApp, data: dict[str, Any], event_type: str | None = None, **event_source: Any) -> Any:
    """``data`` bare (``event_type`` None) or in a v2024 envelope of ``event_type``."""
    if event_type is None:
        return app.post(compact(data))
    body = envelope(data, event_type)
    body["event"]["event_source"].update(event_source)
    return app.post(compact(body))


def example(webhook: str) -> dict[str, Any]:
    ((_, found),) = openapi_examples(webhook)
    return copy.deepcopy(found)


# --- each kind ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("enveloped", [False, True], ids=["bare", "envelope"])
@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_each_kind_is_recorded_with_its_status_amounts_and_units(
    lambda_app: Callable[..., LambdaApp], aws: Aws, kind: Kind, enveloped: bool
) -> None:
    app = lambda_app(REDEMPTION_FN)
    answer = post(app, kind.data, "redemption.succeeded" if enveloped else None, **kind.envelope_changes)
    assert (answer.status, answer.body["status"], answer.body["ledger_status"]) == (200, "recorded", "SUCCEEDED")
    view = aws.ledger.redemptions.get(kind.redemption_id)
    assert view["status"] == "SUCCEEDED"
    assert {name: view.get(name) for name in kind.expected} == kind.expected
    for name in ("discount_amount", "amount", "gift_balance", "loyalty_points", "loyalty_balance"):
        assert name not in view or type(view[name]) is int, name  # integers in, integers out


def test_a_stack_is_marked_and_each_redeemable_counts_its_own_share(
    lambda_app: Callable[..., LambdaApp], aws: Aws
) -> None:
    """The children's webhooks carry the order's running total (1,000, then 1,500): each child keeps its own share,
    the parent the stack's total, so the children alone add up to what the order was given."""
    app = lambda_app(REDEMPTION_FN)
    members = stack()
    for member in reversed(members):  # the parent first: the order of arrival does not matter
        assert post(app, member.data, "redemption.succeeded").body["status"] == "recorded"
    views = {m.redemption_id: aws.ledger.redemptions.get(m.redemption_id) for m in members}
    assert {r: (v["stack_role"], v["discount_amount"]) for r, v in views.items()} == {
        m.redemption_id: (m.expected["stack_role"], m.expected["discount_amount"]) for m in members
    }
    counted = sum(v["discount_amount"] for v in views.values() if v.get("stack_role") != "parent")
    assert counted == views[STACK_PARENT]["discount_amount"] == 1_500
    assert {v["order_id"] for v in views.values()} == {STACK_ORDER}
    assert views[STACK_PARENT]["child_redemption_ids"] == [m.redemption_id for m in members[:2]]
    assert all(v.get("parent_redemption_id") == STACK_PARENT for v in list(views.values())[:2])


def test_a_stack_id_that_is_no_redemption_id_is_quarantined(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    parent = stack()[-1].data
    for order in (parent["order"], parent["redemption"]["order"]):  # the event's order and the redemption's copy
        order["redemptions"][STACK_PARENT]["stacked"].append("r_not.an.id")
    answer = post(lambda_app(REDEMPTION_FN), parent)
    assert (answer.status, answer.body["status"]) == (202, "quarantined")
    assert any("stacked: expected redemption ids" in e for e in answer.body["errors"])
    assert aws.ledger.redemptions.get(STACK_PARENT) is None


@pytest.mark.parametrize(
    ("build", "roll_back", "restored"),
    [
        (gift_card, gift_card_rollback, {"credits_restored": 3_500, "gift_balance": 10_000, "amount": -3_500}),
        (pay_with_points, pay_with_points_rollback, {"points_restored": 800, "loyalty_balance": 2_000, "amount": -800}),
    ],
    ids=["gift card", "loyalty card"],
)
def test_a_rollback_gives_the_credits_or_points_back(
    lambda_app: Callable[..., LambdaApp], aws: Aws, build: Any, roll_back: Any, restored: dict[str, int]
) -> None:
    kind = build()
    post(lambda_app(REDEMPTION_FN), kind.data)
    answer = post(lambda_app(ROLLBACK_FN), roll_back(kind), "customer.redemption.rollback.succeeded")
    assert (answer.status, answer.body["ledger_status"]) == (200, "ROLLED_BACK")
    view = aws.ledger.redemptions.get(kind.redemption_id)
    (rollback,) = view["rollbacks"]
    assert {name: rollback.get(name) for name in restored} == restored
    assert rollback["amount_unit"] == kind.expected["amount_unit"]
    # what the redemption spent stays as it was recorded
    assert (view["amount"], view["amount_unit"]) == (kind.expected["amount"], kind.expected["amount_unit"])


# --- failed redemptions ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("event_type", [None, "redemption.failed"], ids=["bare", "envelope"])
def test_a_failed_redemption_is_recorded_failed_and_is_no_rollback_target(
    lambda_app: Callable[..., LambdaApp], aws: Aws, event_type: str | None
) -> None:
    data = example("EVENTS.REDEMPTION.FAILED")
    failed_id = data["redemption"]["id"]
    answer = post(lambda_app(REDEMPTION_FN), data, event_type)
    assert (answer.status, answer.body["status"], answer.body["ledger_status"]) == (200, "recorded", "FAILED")
    view = aws.ledger.redemptions.get(failed_id)
    assert (view["status"], view["result"], view["voucherify_status"]) == ("FAILED", "FAILURE", "FAILED")
    assert (view["failure_code"], view["failure_message"]) == ("no_applicable_redeemables", "No applicable redeemables")
    assert "discount_amount" not in view and "amount" not in view  # never counted as a discount given
    assert (view["customer_id"], view["redeemed_at"]) == ("cust_1g637SqVZnkdPNdAIZ7Ra879", "2024-02-02T12:12:12.918Z")
    assert aws.ledger.redemptions.state(failed_id)["status"] == "FAILED"  # what the worker reads
    assert not is_rollback_target(failed_id) and not ids.is_succeeded_redemption_id(failed_id)
    again = post(lambda_app(REDEMPTION_FN), data, event_type)
    assert (again.body["status"], again.body["ledger_status"]) == ("duplicate", "FAILED")


def test_a_bare_failure_of_a_discount_voucher_is_never_recorded_succeeded(
    lambda_app: Callable[..., LambdaApp], aws: Aws
) -> None:
    """A Raw-payload body has no event name: its result and status say it failed."""
    data = seed_redemption()
    data["redemption"].update(
        id="rf_0e25002f4a1ed016ad", result="FAILURE", status="FAILED", failure_code="voucher_expired"
    )
    answer = post(lambda_app(REDEMPTION_FN), data)
    assert (answer.status, answer.body["ledger_status"]) == (200, "FAILED")
    view = aws.ledger.redemptions.get("rf_0e25002f4a1ed016ad")
    assert (view["status"], view["failure_code"], view["voucher_code"]) == (
        "FAILED",
        "voucher_expired",
        "Always-add-prods-5",
    )
    assert "discount_amount" not in view  # the order says 1,000 off: not given by a failed attempt


def failed_example() -> dict[str, Any]:
    return example("EVENTS.REDEMPTION.FAILED")


@pytest.mark.parametrize(
    ("function", "event_type", "build", "problem"),
    [
        (REDEMPTION_FN, "redemption.failed", seed_redemption, "redemption says no failure"),
        (REDEMPTION_FN, "redemption.succeeded", failed_example, "redemption says a failed attempt"),
        (REDEMPTION_FN, "customer.redemption.succeeded", failed_example, "says a failed attempt"),
        (ROLLBACK_FN, "redemption.rollback.failed", seed_rollback, "redemption_rollback says no failure"),
        (
            ROLLBACK_FN,
            "redemption.rollback.succeeded",
            lambda: example("EVENTS.REDEMPTION.ROLLBACK.FAILED"),
            "redemption_rollback says a failed attempt",
        ),
    ],
    ids=["failed-event-succeeded", "succeeded-event-failed", "distribution-failed", "rollback-failed", "rollback-ok"],
)
def test_an_envelope_whose_event_type_and_content_disagree_is_quarantined(
    lambda_app: Callable[..., LambdaApp], aws: Aws, function: str, event_type: str, build: Any, problem: str
) -> None:
    answer = post(lambda_app(function), build(), event_type)
    assert (answer.status, answer.body["status"]) == (202, "quarantined")
    assert answer.body["reason"] == "the event type and the payload disagree"
    (error,) = answer.body["errors"]
    assert error.startswith(f"event.type: {event_type}, but") and problem in error
    assert not [i for i in aws.items() if i["pk"]["S"].startswith("REDEMPTION#")]


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"id": "r_0e25002f4a1ed016ad", "result": "FAILURE", "status": "FAILED"}, "a failed redemption has an rf_ id"),
        ({"id": "rf_0e25002f4a1ed016ad"}, "a failed redemption has an rf_ id"),  # result SUCCESS, status SUCCEEDED
        ({"result": "FAILURE"}, "a failed redemption has an rf_ id"),  # status SUCCEEDED
    ],
    ids=["r-id-failure", "rf-id-success", "result-and-status"],
)
def test_a_redemption_that_contradicts_itself_is_quarantined(
    lambda_app: Callable[..., LambdaApp], aws: Aws, changes: dict[str, str], location: str
) -> None:
    data = seed_redemption()
    data["redemption"].update(changes)
    answer = post(lambda_app(REDEMPTION_FN), data)
    assert (answer.status, answer.body["status"]) == (202, "quarantined")
    assert any(location in e for e in answer.body["errors"]), answer.body["errors"]
    assert not [i for i in aws.items() if i["pk"]["S"].startswith("REDEMPTION#")]


# --- failed rollbacks ----------------------------------------------------------------------------------------------
FAILED_ROLLBACK_OF = "r_0e3ab1f3fb99fee4b9"  # the redemption of Voucherify's redemption.rollback.failed example
FAILED_ROLLBACK = "rrf_0e3ac8beeea431c302"


def redemption_of_the_failed_rollback() -> dict[str, Any]:
    """The redemption.succeeded of the redemption whose rollback failed, from the example's own copy of it."""
    data = example("EVENTS.REDEMPTION.ROLLBACK.FAILED")
    data.pop("redemption_rollback")
    data["redemption"]["status"] = "SUCCEEDED"
    return data


def succeeded_rollback_of_it() -> dict[str, Any]:
    data = seed_rollback()
    data["redemption"] = None
    data["redemption_rollback"]["redemption"] = FAILED_ROLLBACK_OF
    return data


def test_a_failed_rollback_is_noted_on_its_redemption_without_changing_its_status(
    lambda_app: Callable[..., LambdaApp], aws: Aws
) -> None:
    redemptions, rollbacks = lambda_app(REDEMPTION_FN), lambda_app(ROLLBACK_FN)
    post(redemptions, redemption_of_the_failed_rollback())
    failed = post(rollbacks, example("EVENTS.REDEMPTION.ROLLBACK.FAILED"), "redemption.rollback.failed")
    assert (failed.status, failed.body["status"], failed.body["rollback_id"]) == (200, "recorded", FAILED_ROLLBACK)
    assert "ledger_status" not in failed.body  # it changed no status
    view = aws.ledger.redemptions.get(FAILED_ROLLBACK_OF)
    assert (view["status"], view["rollback_ids"], view["failed_rollback_ids"]) == ("SUCCEEDED", [], [FAILED_ROLLBACK])
    (entry,) = view["rollbacks"]
    assert (entry["result"], entry["voucherify_status"], entry["failure_code"]) == (
        "FAILURE",
        "FAILED",
        "already_rolled_back",
    )
    assert "rolled_back_at" not in view
    # a rollback that succeeds later rolls it back; the failed one stays noted, and a redelivery changes nothing
    assert post(rollbacks, succeeded_rollback_of_it()).body["ledger_status"] == "ROLLED_BACK"
    again = post(rollbacks, example("EVENTS.REDEMPTION.ROLLBACK.FAILED"), "redemption.rollback.failed")
    assert (again.body["status"], again.body["ledger_status"]) == ("duplicate", "ROLLED_BACK")
    view = aws.ledger.redemptions.get(FAILED_ROLLBACK_OF)
    assert (view["status"], view["failed_rollback_ids"]) == ("ROLLED_BACK", [FAILED_ROLLBACK])
    assert len(view["rollback_ids"]) == 1 and len(view["rollbacks"]) == 2


def test_a_failed_rollback_after_a_rollback_leaves_it_rolled_back(
    lambda_app: Callable[..., LambdaApp], aws: Aws
) -> None:
    rollbacks = lambda_app(ROLLBACK_FN)
    post(rollbacks, succeeded_rollback_of_it(), "redemption.rollback.succeeded")
    post(rollbacks, example("EVENTS.REDEMPTION.ROLLBACK.FAILED"))  # bare: its result says it failed
    post(lambda_app(REDEMPTION_FN), redemption_of_the_failed_rollback())  # the redemption, last
    view = aws.ledger.redemptions.get(FAILED_ROLLBACK_OF)
    assert (view["status"], view["failed_rollback_ids"], view["voucherify_status"]) == (
        "ROLLED_BACK",
        [FAILED_ROLLBACK],
        "SUCCEEDED",  # the redemption's own delivery says it
    )


# --- ROLLED_BACK / ROLLED BACK ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["ROLLED_BACK", "ROLLED BACK"])
def test_a_rollback_whose_redemption_says_rolled_back_is_recorded(
    lambda_app: Callable[..., LambdaApp], aws: Aws, spelling: str
) -> None:
    data = seed_rollback()
    data["redemption"]["status"] = spelling  # the redemptions API's spelling, or the webhook schema's
    answer = post(lambda_app(ROLLBACK_FN), data, "customer.redemption.rollback.succeeded")
    assert (answer.status, answer.body["status"], answer.body["ledger_status"]) == (200, "recorded", "ROLLED_BACK")
    view = aws.ledger.redemptions.get(data["redemption"]["id"])
    assert (view["status"], view["voucherify_status"]) == ("ROLLED_BACK", "ROLLED_BACK")  # one spelling stored


def test_voucherifys_own_failed_rollback_example_is_recorded(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    """Its redemption says ROLLED_BACK (refused before both spellings were accepted); alone, it records the
    redemption's details from its copy, and no status: the ledger has not seen the redemption succeed or roll back."""
    answer = post(lambda_app(ROLLBACK_FN), example("EVENTS.REDEMPTION.ROLLBACK.FAILED"), "redemption.rollback.failed")
    assert (answer.status, answer.body["status"]) == (200, "recorded")
    view = aws.ledger.redemptions.get(FAILED_ROLLBACK_OF)
    assert (view["status"], view["voucherify_status"], view["voucher_code"]) == (
        None,
        "ROLLED_BACK",
        "Refer-gift-90873378",
    )
    assert view["failed_rollback_ids"] == [FAILED_ROLLBACK]


def test_a_late_redemption_delivery_that_says_rolled_back_is_a_succeeded_redemption(
    lambda_app: Callable[..., LambdaApp], aws: Aws
) -> None:
    data = seed_redemption()
    data["redemption"]["status"] = "ROLLED BACK"
    answer = post(lambda_app(REDEMPTION_FN), data)
    assert (answer.status, answer.body["ledger_status"]) == (200, "SUCCEEDED")  # no rollback is known to the ledger
    view = aws.ledger.redemptions.get(data["redemption"]["id"])
    assert (view["voucherify_status"], view["discount_amount"]) == ("ROLLED_BACK", 1_000)


# --- the shared attribute contract, as stored ------------------------------------------------------------------------
def test_a_lone_redemption_carries_no_stack_attributes(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    data = seed_redemption()
    post(lambda_app(REDEMPTION_FN), data)
    (item,) = [i for i in aws.items() if i["sk"]["S"] == "REDEMPTION"]
    assert not {"stack_role", "child_redemption_ids", "parent_redemption_id"} & set(item)
    assert (item["status"], item["discount_amount"], item["amount_unit"]) == (
        {"S": "SUCCEEDED"},
        {"N": "1000"},
        {"S": "currency"},
    )
