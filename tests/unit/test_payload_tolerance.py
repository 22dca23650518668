"""Strict where the ledger depends on a value, tolerant elsewhere: enums the ledger only passes on keep a value no
schema lists, OpenAPI ``number`` fields take fractions, fields Voucherify leaves out or nulls pass; the ids, the
amounts the ledger stores and a redemption's result and status stay checked."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ledger_dev.payloads.schema_payloads import SchemaPayloads
from support.documents import openapi_examples, openapi_webhooks, seed_redemption, seed_rollback
from voucherify_ledger.models.objects import DiscountOfAnotherType, SimpleCampaignVoucher, SimpleVoucher
from voucherify_ledger.models.webhooks import (
    EventRedemptionRollbackFailedData,
    EventRedemptionSucceededData,
    WebhookEnvelope,
)


def redemption(data: dict[str, Any]) -> EventRedemptionSucceededData:
    return EventRedemptionSucceededData.model_validate(data)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("voucher.type", "PREPAID_CARD"),
        ("voucher.object", "voucher_v2"),
        ("voucher.discount.effect", "APPLY_TO_CHEAPEST_ITEM"),
        ("campaign.type", "DYNAMIC"),
        ("campaign.voucher.type", "PREPAID_CARD"),
        ("order.status", "PARTIALLY_REFUNDED"),
        ("order.items.0.related_object", "bundle"),
        ("customer.object", "person"),
        ("redemption.channel", {"channel_type": "KIOSK", "channel_id": "kiosk_1"}),
    ],
)
def test_an_unknown_enum_value_is_kept_as_received(path: str, value: Any) -> None:
    data = seed_redemption()
    target: Any = data
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    parsed = redemption(data)
    dumped = parsed.model_dump(exclude_unset=True)
    for part in path.split("."):
        dumped = dumped[int(part)] if part.isdigit() else dumped[part]
    assert dumped == value


def test_an_unknown_discount_type_is_kept_as_received() -> None:
    voucher = SimpleVoucher.model_validate({"code": "C", "discount": {"type": "FREE_SHIPPING", "zone": "EU"}})
    assert isinstance(voucher.discount, DiscountOfAnotherType)
    assert voucher.model_dump(exclude_unset=True)["discount"] == {"type": "FREE_SHIPPING", "zone": "EU"}


def test_an_unknown_event_source_channel_and_source_object_pass_in_an_envelope() -> None:
    body = SchemaPayloads(openapi_webhooks(), 3).envelope(seed_redemption(), "redemption.succeeded")
    body["event"]["event_source"]["channel"] = "WORKFLOW"
    body["source"]["object"] = "automation"
    parsed = WebhookEnvelope.model_validate(body)
    assert (parsed.event.event_source.channel, parsed.source.object) == ("WORKFLOW", "automation")


@pytest.mark.parametrize(
    ("discount", "field", "value"),
    [
        ({"type": "AMOUNT", "amount_off": 12.5}, "amount_off", 12.5),
        ({"type": "PERCENT", "percent_off": 10, "amount_limit": 99.99}, "amount_limit", 99.99),
        (
            {"type": "FIXED", "fixed_amount": 1499.5, "fixed_amount_formula": "ORDER_AMOUNT * 0.9"},
            "fixed_amount",
            1499.5,
        ),
    ],
)
def test_openapi_numbers_take_fractions(discount: dict[str, Any], field: str, value: float) -> None:
    voucher = SimpleVoucher.model_validate({"code": "C", "discount": discount})
    assert getattr(voucher.discount, field) == value


def test_a_gift_may_be_fractional_and_code_config_needs_no_postfix() -> None:
    campaign_voucher = SimpleCampaignVoucher.model_validate(
        {
            "type": "GIFT_VOUCHER",
            "gift": {"amount": 100.5, "balance": 20.25},
            "redemption": {"quantity": None, "redeemed_quantity": 0},
            "code_config": {"length": 8.0, "charset": "0123", "prefix": "G-", "pattern": "########"},
        }
    )
    assert campaign_voucher.gift is not None and campaign_voucher.gift.balance == 20.25
    assert campaign_voucher.code_config.postfix is None and campaign_voucher.code_config.length == 8.0


def test_a_product_or_sku_without_a_name_passes() -> None:
    discount = {
        "type": "UNIT",
        "effect": "ADD_MANY_ITEMS",
        "units": [
            {
                "unit_off": 1,
                "unit_type": "prod_1",
                "effect": "ADD_NEW_ITEMS",
                "product": {"id": "prod_1", "name": None},
            },
            {"unit_off": 1, "unit_type": "sku_1", "effect": "ADD_NEW_ITEMS", "sku": {"id": "sku_1"}},
        ],
    }
    voucher = SimpleVoucher.model_validate({"code": "C", "discount": discount})
    assert voucher.discount.units[0].product.name is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "balance",
    [10**38, -(10**38), 1e39, float("nan"), float("inf"), 1e-131],
    ids=["39-digits", "negative-39-digits", "float-1e39", "nan", "inf", "below-1e-130"],
)
def test_a_stored_number_beyond_dynamodbs_limits_is_refused(balance: Any) -> None:
    """The gift balance is stored (``gift_balance``): held to what DynamoDB keeps."""
    with pytest.raises(ValidationError, match=r"gift\.balance"):
        SimpleVoucher.model_validate({"code": "C", "gift": {"amount": 1, "balance": balance}})


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("voucher.loyalty_card", {"points": 10**38}),
        ("order.total_applied_discount_amount", 10**38),
        ("order.items_applied_discount_amount", 1.5),
        ("redemption.status", "ROLLED-BACK"),
        ("redemption.result", "PARTIAL"),
        ("redemption.id", "r_a5.dot"),
    ],
)
def test_what_the_ledger_depends_on_stays_checked(path: str, value: Any) -> None:
    data = seed_redemption()
    section, name = path.split(".")
    data[section][name] = value
    with pytest.raises(ValidationError, match=path.split(".")[0]):
        redemption(data)


@pytest.mark.parametrize("spelling", ["ROLLED_BACK", "ROLLED BACK"])
def test_both_spellings_of_rolled_back_are_accepted(spelling: str) -> None:
    data = seed_redemption()
    data["redemption"]["status"] = spelling
    assert redemption(data).redemption.status == spelling  # kept as received; the ledger stores one spelling
    ((_, failed_rollback),) = openapi_examples("EVENTS.REDEMPTION.ROLLBACK.FAILED")
    assert failed_rollback["redemption"]["status"] == "ROLLED_BACK"  # Voucherify's own example spells it so
    parsed = EventRedemptionRollbackFailedData.model_validate(failed_rollback)
    assert parsed.redemption is not None and parsed.redemption.status == "ROLLED_BACK"
    rollback = seed_rollback()
    rollback["redemption"]["status"] = spelling
    assert EventRedemptionRollbackFailedData.model_validate(rollback).redemption_id == "r_0e6ff48b91cfa02e97"


@pytest.mark.parametrize(
    ("changes", "failed"),
    [
        ({"id": "rf_1", "result": "FAILURE", "status": "FAILED"}, True),
        ({"id": "rf_1", "result": None, "status": None}, True),
        ({"id": "r_1", "result": "SUCCESS", "status": "SUCCEEDED"}, False),
        ({"id": "r_1", "status": None}, False),
    ],
)
def test_a_redemption_says_whether_it_failed_in_agreement(changes: dict[str, Any], failed: bool) -> None:
    data = seed_redemption()
    data["redemption"].update(changes)
    assert redemption(data).redemption.failed is failed


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "r_1", "result": "FAILURE", "status": "FAILED"},
        {"id": "rf_1", "result": "SUCCESS", "status": "FAILED"},
        {"id": "r_1", "result": "SUCCESS", "status": "FAILED"},
        {"id": "rf_1", "status": "ROLLED BACK", "result": None},
    ],
)
def test_a_redemption_whose_id_result_and_status_disagree_is_refused(changes: dict[str, Any]) -> None:
    data = seed_redemption()
    data["redemption"].update(changes)
    with pytest.raises(ValidationError, match="disagree on whether it failed"):
        redemption(data)


def test_a_stack_names_its_children_by_redemption_id_and_a_parent_has_no_parent() -> None:
    data = seed_redemption()
    data["redemption"].pop("order")
    data["order"]["redemptions"] = {"r_0e2500291ae016adea": {"stacked": ["r_child1", "ord_not_a_redemption"]}}
    with pytest.raises(ValidationError, match="stacked: expected redemption ids"):
        redemption(data)
    data["order"]["redemptions"] = {"r_0e2500291ae016adea": {"stacked": ["r_child1"]}}
    data["redemption"]["redemption"] = "r_itsparent"
    with pytest.raises(ValidationError, match="cannot have a parent redemption"):
        redemption(data)
    data["order"]["redemptions"] = {"r_someoneelse": {"stacked": ["not an id"]}}  # not this redemption's: not stored
    assert redemption(data).redemption.redemption == "r_itsparent"
