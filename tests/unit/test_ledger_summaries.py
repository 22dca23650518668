"""What the ledger records of a redemption, decided without AWS (``ledger.summaries``): each redeemable's own share
of the order's discount whichever way the order says it, what ``amount`` counts, one spelling of ROLLED BACK, and
numbers as DynamoDB takes them."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from support.documents import seed_redemption
from voucherify_ledger.ledger.summaries import (
    amount_unit,
    ledger_status,
    own_discount,
    redemption_summary,
    stored_number,
    voucherify_status,
)
from voucherify_ledger.models.objects import SimpleOrder
from voucherify_ledger.models.webhooks import EventRedemptionSucceededData

ITEMS = [{"amount": 2000, "applied_discount_amount": 300}, {"amount": 5000, "applied_discount_amount": 200}]


@pytest.mark.parametrize(
    ("order", "role", "share"),
    [
        ({"total_applied_discount_amount": 900, "total_discount_amount": 2500}, "child", 900),
        (
            {"applied_discount_amount": 400, "items_applied_discount_amount": 500, "total_discount_amount": 2500},
            None,
            900,
        ),
        ({"applied_discount_amount": 400, "items": ITEMS, "total_discount_amount": 2500}, "child", 900),
        ({"items": ITEMS, "total_discount_amount": 2500}, "child", 500),
        ({"applied_discount_amount": 0, "total_discount_amount": 2500}, "child", 0),
        ({"total_discount_amount": 2500}, "child", None),  # a child's order totals are the stack's running total
        ({"total_discount_amount": 2500}, None, 2500),  # a lone redemption's order total is its own
        ({"total_discount_amount": 2500}, "parent", 2500),  # the stack's total
        ({"discount_amount": 700}, None, 700),
        ({}, None, None),
    ],
    ids=[
        "total-applied",
        "order-and-items-applied",
        "order-level-and-each-item",
        "each-item",
        "nothing-applied",
        "child-without-share",
        "lone-order-total",
        "parent-order-total",
        "order-level-total",
        "none",
    ],
)
def test_own_discount_is_what_this_redemption_applied(
    order: dict[str, Any], role: str | None, share: int | None
) -> None:
    assert own_discount(SimpleOrder.model_validate(order), role) == share


def summary(data: dict[str, Any]) -> dict[str, Any]:
    parsed = EventRedemptionSucceededData.model_validate(data)
    return redemption_summary(parsed, parsed.redemption)


@pytest.mark.parametrize(
    ("voucher", "unit"),
    [
        ({"type": "GIFT_VOUCHER"}, "gift_credits"),
        ({"type": "LOYALTY_CARD"}, "loyalty_points"),
        ({"type": "DISCOUNT_VOUCHER"}, "currency"),
        ({"type": "PREPAID_CARD"}, None),  # a type the ledger does not know: amount's unit unknown
        ({"gift": {"amount": 100, "balance": 50}}, "gift_credits"),  # no type sent: what the voucher carries
        ({"loyalty_card": {"points": 100}}, "loyalty_points"),
        ({"discount": {"type": "PERCENT", "percent_off": 5}}, "currency"),
        ({}, None),
    ],
)
def test_amount_unit_follows_the_voucher(voucher: dict[str, Any], unit: str | None) -> None:
    data = seed_redemption()
    data["campaign"] = None
    data["voucher"] = {"code": "C-1", **voucher}
    data["redemption"]["voucher"] = None
    parsed = EventRedemptionSucceededData.model_validate(data)
    assert amount_unit(parsed, parsed.redemption) == unit
    assert summary(data).get("amount_unit") == unit


def test_a_redemption_without_voucher_counts_in_currency() -> None:
    data = seed_redemption()
    data["voucher"] = data["redemption"]["voucher"] = None
    data["promotion_tier"] = {"id": "promo_1"}
    assert summary(data)["amount_unit"] == "currency"


@pytest.mark.parametrize(
    ("status", "stored"),
    [("ROLLED BACK", "ROLLED_BACK"), ("ROLLED_BACK", "ROLLED_BACK"), ("SUCCEEDED", "SUCCEEDED"), (None, None)],
)
def test_one_spelling_of_rolled_back_is_stored(status: str | None, stored: str | None) -> None:
    assert voucherify_status(status) == stored
    data = seed_redemption()
    data["redemption"]["status"] = status
    assert summary(data).get("voucherify_status") == stored
    assert ledger_status(EventRedemptionSucceededData.model_validate(data).redemption) == "SUCCEEDED"


@pytest.mark.parametrize(
    ("value", "stored"),
    [(12, 12), (12.0, 12), (12.5, Decimal("12.5")), (0.1, Decimal("0.1")), (1e20, 10**20), (None, None)],
)
def test_numbers_are_stored_as_their_json_spelt_them(value: Any, stored: Any) -> None:
    assert stored_number(value) == stored
    assert type(stored_number(value)) is type(stored)


def test_a_failed_attempt_records_no_discount_and_no_amount() -> None:
    data = seed_redemption()
    data["redemption"].update(id="rf_1", result="FAILURE", status="FAILED", amount=500, failure_code="x")
    recorded = summary(data)
    assert "discount_amount" not in recorded and "amount" not in recorded
    assert (recorded["failure_code"], recorded["order_amount"]) == ("x", 7000)
    assert ledger_status(EventRedemptionSucceededData.model_validate(data).redemption) == "FAILED"


def test_failure_details_of_a_succeeded_redemption_are_not_recorded() -> None:
    data = seed_redemption()
    data["redemption"]["failure_code"] = "left over"
    assert "failure_code" not in summary(data)


def test_the_stack_marks_come_from_the_redemption_or_its_order_entry() -> None:
    parent = seed_redemption()
    entry = {"related_object_type": "redemption", "stacked": ["r_c1", "r_c2", "r_c1"]}
    parent["order"]["redemptions"] = {"r_0e2500291ae016adea": entry}
    parent["redemption"].pop("order")
    assert (summary(parent)["stack_role"], summary(parent)["child_redemption_ids"]) == ("parent", ["r_c1", "r_c2"])
    by_type = seed_redemption()
    by_type["redemption"]["related_object_type"] = "redemption"
    assert (summary(by_type)["stack_role"], summary(by_type).get("child_redemption_ids")) == ("parent", None)
    child = copy.deepcopy(seed_redemption())
    child["redemption"]["redemption"] = "r_parent1"
    assert (summary(child)["stack_role"], summary(child)["parent_redemption_id"]) == ("child", "r_parent1")
    other = seed_redemption()
    other["order"]["redemptions"] = {"r_someoneelse": entry}  # another redemption's entry says nothing of this one
    other["redemption"].pop("order")
    assert "stack_role" not in summary(other)
