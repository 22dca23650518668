"""Redemption payloads of each kind the ledger records, built from Voucherify's published example of
``redemption.succeeded`` (the seed page, ``EVENTS.REDEMPTION.SUCCEEDED``) with the fields the OpenAPI schemas give
each kind (``SimpleVoucher`` with ``Gift`` / ``SimpleLoyaltyCard``, ``SimpleRedemptionRewardResult``,
``SimplePromotionTier``, the ``Discount`` shapes, ``SimpleOrder`` and its items, the order's ``redemptions`` map of
``OrderRedemptions``), each with the figures a test asserts (``Kind.expected``: attribute → value, None absent)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger_dev.payloads.purchases import ORDER_DISCOUNT_FIELDS
from support.documents import seed_redemption, seed_rollback

JANE = "cust_1g637SqVZnkdPNdAIZ7Ra879"  # the seed's customer


@dataclass
class Kind:
    name: str
    data: dict[str, Any]
    expected: dict[str, Any]
    envelope_changes: dict[str, Any] = field(default_factory=dict)  # event.event_source etc. of an envelope

    def __post_init__(self) -> None:
        _sync(self.data)

    @property
    def redemption_id(self) -> str:
        return str(self.data["redemption"]["id"])


def _order(data: dict[str, Any], **discounts: Any) -> dict[str, Any]:
    """The event's order with exactly ``discounts`` as its discount fields (items' applied amounts cleared), copied
    into the redemption as Voucherify sends it."""
    order = data["order"]
    for name in ORDER_DISCOUNT_FIELDS:
        order.pop(name, None)
    for item in order.get("items") or []:
        item.pop("applied_discount_amount", None)
        item.pop("discount_amount", None)
    order.update(discounts)
    data["redemption"]["order"] = copy.deepcopy(order)
    return order


def _sync(data: dict[str, Any]) -> dict[str, Any]:
    """The redemption's own copies of the order and the voucher, as the event's (Voucherify sends both)."""
    for name in ("order", "voucher"):
        if data.get(name) is not None:
            data["redemption"][name] = copy.deepcopy(data[name])
        else:
            data["redemption"].pop(name, None)
    return data


def _base(redemption_id: str, code: str) -> dict[str, Any]:
    data = seed_redemption()
    data["redemption"]["id"] = redemption_id
    data["voucher"]["code"] = code
    data["voucher"]["id"] = "v_" + redemption_id.removeprefix("r_").upper()[:20]
    return data


def gift_card() -> Kind:
    data = _base("r_g1ftcard000000000001", "GIFT-7F3K")
    voucher = data["voucher"]
    voucher.pop("discount")
    voucher.update(type="GIFT_VOUCHER", gift={"amount": 10_000, "balance": 6_500, "effect": "APPLY_TO_ORDER"})
    data["campaign"]["voucher"] = {
        "type": "GIFT_VOUCHER",
        "gift": {"amount": 10_000, "balance": 0},
        "redemption": {"quantity": None, "redeemed_quantity": 1},
        "code_config": {"length": 4, "charset": "ABCDEFGHJK0123456789", "prefix": "GIFT-", "pattern": "####"},
    }
    data["redemption"]["amount"] = 3_500  # credits used
    _order(data, total_discount_amount=3_500, total_applied_discount_amount=3_500)
    data["order"]["total_amount"] = 3_500
    _sync(data)
    expected = {
        "amount": 3_500,
        "amount_unit": "gift_credits",
        "gift_balance": 6_500,
        "discount_amount": 3_500,
        "voucher_type": "GIFT_VOUCHER",
    }
    return Kind("gift card", data, expected)


def gift_card_rollback(kind: Kind) -> dict[str, Any]:
    """``customer.redemption.rollback.succeeded`` of the gift card redemption: the credits back on the card."""
    data = seed_rollback()
    for name in ("customer", "campaign", "holder", "promotion_tier"):
        data[name] = copy.deepcopy(kind.data.get(name))
    data["voucher"] = copy.deepcopy(kind.data["voucher"])
    data["voucher"]["gift"]["balance"] = 10_000
    data["redemption"] = copy.deepcopy(kind.data["redemption"])
    data["redemption_rollback"].update(id="rr_g1ftcard000000000001", redemption=kind.redemption_id, amount=-3_500)
    data["redemption_rollback"]["voucher"] = copy.deepcopy(data["voucher"])
    return data


def loyalty_card(redemption_id: str, points: int, reward: dict[str, Any]) -> dict[str, Any]:
    data = _base(redemption_id, "LOYAL-" + redemption_id[-4:])
    voucher = data["voucher"]
    voucher.pop("discount")
    voucher.update(type="LOYALTY_CARD", loyalty_card={"points": 5_000, "balance": 1_200})
    data["campaign"].update(campaign_type="LOYALTY_PROGRAM", voucher=None)
    data["redemption"].update(amount=points, reward=reward)
    return data


def pay_with_points() -> Kind:
    reward = {
        "id": "rew_INt3fGH3n7xIr3ZQcq4kkUZ1",
        "object": "reward",
        "name": "Pay with points",
        "type": "COIN",
        "parameters": {"coin": {"exchange_ratio": 1, "points_ratio": 1}},
        "created_at": "2024-01-02T10:00:00.000Z",
    }
    data = loyalty_card("r_p01nts00000000000001", 800, reward)
    _order(data, total_discount_amount=800, total_applied_discount_amount=800)
    expected = {
        "amount": 800,
        "amount_unit": "loyalty_points",
        "loyalty_points": 5_000,
        "loyalty_balance": 1_200,
        "reward_id": "rew_INt3fGH3n7xIr3ZQcq4kkUZ1",
        "reward_type": "COIN",
        "discount_amount": 800,
        "voucher_type": "LOYALTY_CARD",
    }
    return Kind("loyalty pay with points", data, expected)


def pay_with_points_rollback(kind: Kind) -> dict[str, Any]:
    data = seed_rollback()
    data["voucher"] = copy.deepcopy(kind.data["voucher"])
    data["voucher"]["loyalty_card"]["balance"] = 2_000
    data["redemption"] = copy.deepcopy(kind.data["redemption"])
    data["redemption_rollback"].update(id="rr_p01nts00000000000001", redemption=kind.redemption_id, amount=-800)
    data["redemption_rollback"]["voucher"] = copy.deepcopy(data["voucher"])
    return data


def material_reward() -> Kind:
    product = {"id": "prod_0b2c2ddf35150b83bb", "sku_id": None}
    reward = {
        "id": "rew_M4t3r14lR3w4rd00001",
        "object": "reward",
        "name": "Mug",
        "type": "MATERIAL",
        "product": {"id": "prod_0b2c2ddf35150b83bb", "name": None},
        "parameters": {"product": product},
    }
    data = loyalty_card("r_m4t3r14l000000000001", 300, reward)
    _order(data)  # a product handed over, not a discount on the order
    expected = {
        "amount": 300,
        "amount_unit": "loyalty_points",
        "reward_type": "MATERIAL",
        "reward_id": "rew_M4t3r14lR3w4rd00001",
        "discount_amount": None,
    }
    return Kind("loyalty material reward", data, expected)


def gift_credits_reward() -> Kind:
    credited = {"id": "camp_0dJG7cCAjquzcxWmZ634bA0C", "balance": 2_500, "type": "GIFT_VOUCHERS"}
    reward = {
        "id": "rew_G1ftCr3d1ts000000001",
        "object": "reward",
        "name": "25 in gift credits",
        "type": "CAMPAIGN",
        "parameters": {"campaign": credited},
        "voucher": {
            "id": "v_CR3D1TED",
            "code": "GIFT-CR3D",
            "type": "GIFT_VOUCHER",
            "gift": {"amount": 2_500, "balance": 2_500},
        },
    }
    data = loyalty_card("r_cr3d1ts000000000001", 1_000, reward)
    data["redemption"]["channel"] = {"channel_id": "rewa_YAIuU7AY6LNJVlUbRxSbNgiD", "channel_type": "AUTO_REDEEM"}
    data["order"] = None
    data["redemption"].pop("order", None)
    expected = {
        "amount": 1_000,
        "amount_unit": "loyalty_points",
        "reward_type": "CAMPAIGN",
        "channel_type": "AUTO_REDEEM",
        "gift_balance": None,  # the credited card's balance is no balance of the card redeemed
        "order_id": None,
        "discount_amount": None,
    }
    return Kind("loyalty gift-credit reward, AUTO_REDEEM", data, expected)


def promotion_tier() -> Kind:
    data = seed_redemption()
    data["redemption"]["id"] = "r_pr0m0t10n0000000001"
    data["voucher"] = None
    tier = {"id": "promo_aV3JbQcm7FxqS4sMn9ZQ", "name": "10% off orders over 100", "campaign": {"id": "camp_PR0M0"}}
    data["promotion_tier"] = tier
    data["redemption"]["promotion_tier"] = copy.deepcopy(tier)
    data["campaign"] = {"id": "camp_PR0M0", "name": "Promotions", "campaign_type": "PROMOTION", "type": "STATIC"}
    _order(data, applied_discount_amount=700, total_discount_amount=700)
    expected = {
        "promotion_tier_id": "promo_aV3JbQcm7FxqS4sMn9ZQ",
        "discount_amount": 700,
        "amount_unit": "currency",
        "voucher_code": None,
        "voucher_type": None,
    }
    return Kind("promotion tier", data, expected)


STACK_PARENT, VOUCHER_CHILD, TIER_CHILD = "r_st4ckp4r3nt00000001", "r_st4ckv0uch3r0000001", "r_st4ckt13r0000000001"
STACK_ORDER = "ord_St4ckOrd3r000000000001"


def stack() -> list[Kind]:
    """A stack: a voucher child (1,000 off, the order's running total then 1,000), a promotion-tier child (500
    off: 200 on the order and 300 on an item; the running total then 1,500) and the stack's own redemption."""
    voucher_child = _base(VOUCHER_CHILD, "STACK-10")
    voucher_child["voucher"]["discount"] = {"type": "PERCENT", "percent_off": 10, "effect": "APPLY_TO_ORDER"}
    voucher_child["redemption"]["redemption"] = STACK_PARENT
    voucher_child["order"]["id"] = STACK_ORDER
    _order(
        voucher_child, applied_discount_amount=1_000, total_discount_amount=1_000, total_applied_discount_amount=1_000
    )
    tier_child = promotion_tier().data
    tier_child["redemption"].update(id=TIER_CHILD, redemption=STACK_PARENT)
    tier_child["order"]["id"] = STACK_ORDER
    order = _order(tier_child, applied_discount_amount=200, total_discount_amount=1_500)
    order["items"][0]["applied_discount_amount"] = 300
    _sync(tier_child)
    parent = seed_redemption()
    parent["redemption"].update(id=STACK_PARENT, related_object_type="redemption", related_object_id=STACK_PARENT)
    parent["voucher"] = None
    parent["order"]["id"] = STACK_ORDER
    _order(parent, total_discount_amount=1_500, total_applied_discount_amount=1_500)
    parent["order"]["redemptions"] = {
        STACK_PARENT: {
            "date": parent["redemption"]["date"],
            "related_object_type": "redemption",
            "related_object_id": STACK_PARENT,
            "stacked": [VOUCHER_CHILD, TIER_CHILD],
        }
    }
    _sync(parent)
    child = {"stack_role": "child", "parent_redemption_id": STACK_PARENT, "order_id": STACK_ORDER}
    return [
        Kind("stack: voucher child", voucher_child, {**child, "discount_amount": 1_000}),
        Kind("stack: promotion-tier child", tier_child, {**child, "discount_amount": 500}),
        Kind(
            "stack: parent",
            parent,
            {
                "stack_role": "parent",
                "child_redemption_ids": [VOUCHER_CHILD, TIER_CHILD],
                "parent_redemption_id": None,
                "discount_amount": 1_500,
            },
        ),
    ]


def discount_voucher(name: str, redemption_id: str, discount: dict[str, Any], **order: Any) -> Kind:
    data = _base(redemption_id, name.upper().replace(" ", "-")[:12])
    data["voucher"]["discount"] = discount
    data["campaign"]["voucher"]["discount"] = copy.deepcopy(discount)
    _order(data, **order)
    return Kind(name, data, {"amount_unit": "currency", "voucher_type": "DISCOUNT_VOUCHER"})


def unit_many() -> Kind:
    discount = {
        "type": "UNIT",
        "effect": "ADD_MANY_ITEMS",
        "units": [
            {
                "unit_off": 1,
                "unit_type": "prod_0b0a3bb2b2e5c9fa2a",
                "effect": "ADD_NEW_ITEMS",
                "product": {"id": "prod_0b0a3bb2b2e5c9fa2a", "name": None},
            },
            {
                "unit_off": 2,
                "unit_type": "sku_0b7d7dfb090be5c619",
                "effect": "ADD_MISSING_ITEMS",
                "sku": {"id": "sku_0b7d7dfb090be5c619", "name": None},
            },
        ],
    }
    kind = discount_voucher("unit several units", "r_un1tm4ny00000000001", discount, total_discount_amount=3_500)
    items = kind.data["order"]["items"]
    items[0]["applied_discount_amount"], items[1]["applied_discount_amount"] = 1_000, 2_500  # one mug, one bottle
    _sync(kind.data)
    kind.expected["discount_amount"] = 3_500
    return kind


def fixed_formula() -> Kind:
    discount = {
        "type": "FIXED",
        "fixed_amount": 5_000,
        "fixed_amount_formula": "IF(ORDER_AMOUNT > 6000;5000;5500)",
        "effect": "APPLY_TO_ORDER",
    }
    kind = discount_voucher(
        "fixed formula", "r_f1x3df0rmul400000001", discount, applied_discount_amount=2_000, total_discount_amount=2_000
    )
    kind.expected["discount_amount"] = 2_000
    return kind


def amount_proportional() -> Kind:
    discount = {"type": "AMOUNT", "amount_off": 2_000, "effect": "APPLY_TO_ITEMS_PROPORTIONALLY"}
    kind = discount_voucher(
        "amount proportional",
        "r_pr0p0rt10n4l0000001",
        discount,
        items_applied_discount_amount=2_000,
        total_discount_amount=2_000,
    )
    items = kind.data["order"]["items"]
    items[0]["applied_discount_amount"], items[1]["applied_discount_amount"] = 571, 1_429  # 2,000 by 2,000 : 5,000
    _sync(kind.data)
    kind.expected["discount_amount"] = 2_000
    return kind


def fractional_amount_off() -> Kind:
    discount = {"type": "AMOUNT", "amount_off": 12.5, "effect": "APPLY_TO_ORDER"}
    kind = discount_voucher(
        "fractional", "r_fr4ct10n4l00000001", discount, total_discount_amount=13, total_applied_discount_amount=13
    )
    kind.data["campaign"]["voucher"]["code_config"].update(length=8.0)
    del kind.data["campaign"]["voucher"]["code_config"]["postfix"]
    kind.expected["discount_amount"] = 13
    return kind


def no_customer_no_items() -> Kind:
    data = _base("r_n0cust0m3r000000001", "ANON-5")
    data["customer"] = None
    data["holder"] = None
    data["redemption"]["customer_id"] = None
    data["redemption"].pop("customer", None)
    order = _order(data, total_discount_amount=1_000, total_applied_discount_amount=1_000)
    order.pop("items")
    order["customer_id"] = None
    _sync(data)
    return Kind(
        "no customer, no items", data, {"customer_id": None, "discount_amount": 1_000, "amount_unit": "currency"}
    )


REFERRER = "cust_R3f3rr3rH0ld3r0000001"
REFERRER_NAME, REFERRER_EMAIL = "Rita Referrer", "rita@referrer.io"


def referral_code() -> Kind:
    """Jane redeems Rita's referral code: the customer is Jane, the holder (and the order's referrer) Rita."""
    data = _base("r_r3f3rr4l00000000001", "REF-RITA-90")
    data["voucher"].update(is_referral_code=True, holder_id=REFERRER)
    data["campaign"].update(campaign_type="REFERRAL_PROGRAM", is_referral_code=True)
    data["holder"] = {"id": REFERRER, "name": REFERRER_NAME, "email": REFERRER_EMAIL, "object": "customer"}
    data["order"]["referrer_id"] = REFERRER
    _sync(data)
    return Kind("referral code, separate holder", data, {"customer_id": JANE, "holder_id": REFERRER})


def unknown_enums() -> Kind:
    """Values no schema lists, in fields the ledger only passes on (and the envelope's event source)."""
    data = _base("r_unkn0wn3num5000001", "NEW-ENUMS")
    data["voucher"].update(type="PREPAID_CARD")
    data["voucher"]["discount"] = {"type": "AMOUNT", "amount_off": 500, "effect": "APPLY_TO_CHEAPEST_ITEM"}
    data["campaign"].update(type="DYNAMIC")
    data["campaign"]["voucher"]["discount"] = {"type": "FREE_SHIPPING", "shipping_zone": "EU"}
    data["redemption"]["channel"] = {"channel_id": "kiosk_12", "channel_type": "KIOSK"}
    data["order"]["status"] = "PARTIALLY_REFUNDED"
    data["order"]["items"][0]["related_object"] = "bundle"
    _sync(data)
    expected = {"voucher_type": "PREPAID_CARD", "amount_unit": None, "channel_type": "KIOSK", "discount_amount": 1_000}
    return Kind("unknown enum values", data, expected, {"channel": "WORKFLOW"})


def offset_timestamps() -> Kind:
    data = _base("r_t1m3st4mp500000001", "TIME-ZONES")
    data["redemption"]["date"] = "2024-05-01T14:30:15.123456+02:00"
    data["created_at"] = "2024-05-01T07:30:15.999999-05:00"
    data["order"]["created_at"] = "2024-05-01T14:30:14.5+02:00"
    data["voucher"]["created_at"] = "2024-04-30T23:59:59.999999+00:00"
    _sync(data)
    return Kind("timestamps with offsets and microseconds", data, {"redeemed_at": "2024-05-01T12:30:15.123Z"})


KINDS: tuple[Callable[[], Kind | list[Kind]], ...] = (
    gift_card,
    pay_with_points,
    material_reward,
    gift_credits_reward,
    promotion_tier,
    stack,
    unit_many,
    fixed_formula,
    amount_proportional,
    fractional_amount_off,
    no_customer_no_items,
    referral_code,
    unknown_enums,
    offset_timestamps,
)


def every_kind() -> list[Kind]:
    found: list[Kind] = []
    for build in KINDS:
        built = build()
        found.extend(built if isinstance(built, list) else [built])
    return found
