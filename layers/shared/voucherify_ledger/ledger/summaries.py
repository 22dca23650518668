"""What the ledger records of a redemption and of a rollback: the summaries ``RedemptionStore`` writes, read from the
payload models. Ids, codes, amounts, units and dates; never names, emails or addresses.

- ``status`` (the ledger's): ``SUCCEEDED``, ``FAILED`` for a failed attempt (``rf_…``: never a discount given,
  never rolled back), ``ROLLED_BACK`` once a rollback is recorded. ``voucherify_status`` is Voucherify's, with
  "ROLLED BACK" (the webhook schema's spelling) stored as ``ROLLED_BACK`` (the redemptions API's).
- ``discount_amount``: this redemption's own share of the order's discount — ``total_applied_discount_amount``,
  else the order-level ``applied_discount_amount`` plus the items' (``items_applied_discount_amount`` or the sum of
  each item's ``applied_discount_amount``), else (not for a stack child, whose order totals are the stack's running
  total) the order's ``total_discount_amount`` / ``discount_amount``. A stack's parent so holds the stack's total; a
  failed attempt holds none (nor an ``amount``).
- ``stack_role``: ``parent`` (with ``child_redemption_ids`` when the payload lists them) or ``child`` (with
  ``parent_redemption_id``); absent for a lone redemption.
- ``amount`` with ``amount_unit``: ``gift_credits`` for a gift card, ``loyalty_points`` for a loyalty card,
  ``currency`` for a discount voucher, a promotion tier or a stack; absent for a voucher type the ledger does not
  know (``voucher_type`` keeps it as received). A rollback's ``amount`` is negative; what it gave back is
  ``credits_restored`` / ``points_restored``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from voucherify_ledger.ledger.dynamo import compact
from voucherify_ledger.ledger.keys import REDEMPTION_FAILED as REDEMPTION_FAILED  # the status, for the stores
from voucherify_ledger.ledger.keys import SUCCEEDED, iso
from voucherify_ledger.models.objects import SimpleOrder, SimpleVoucher
from voucherify_ledger.models.webhooks import (
    ROLLED_BACK_SPELLINGS,
    STACK_CHILD,
    EventCustomerRedemption,
    SimpleRedemption,
)

CURRENCY, GIFT_CREDITS, LOYALTY_POINTS = "currency", "gift_credits", "loyalty_points"
UNIT_OF_VOUCHER_TYPE = {"DISCOUNT_VOUCHER": CURRENCY, "GIFT_VOUCHER": GIFT_CREDITS, "LOYALTY_CARD": LOYALTY_POINTS}
RESTORED = {GIFT_CREDITS: "credits_restored", LOYALTY_POINTS: "points_restored"}


def stored_number(value: int | float | None) -> int | Decimal | None:
    """A number as the ledger writes it: an integer as it is, a fraction as the decimal its JSON spelled."""
    if value is None or isinstance(value, int):
        return value
    return int(value) if value.is_integer() else Decimal(repr(value))


def voucherify_status(status: str | None) -> str | None:
    return "ROLLED_BACK" if status in ROLLED_BACK_SPELLINGS else status


def ledger_status(redemption: SimpleRedemption) -> str:
    """The status a redemption delivery records (unless a rollback came first): ``FAILED`` or ``SUCCEEDED``."""
    return REDEMPTION_FAILED if redemption.failed else SUCCEEDED


def rollback_succeeded(rollback: SimpleRedemption) -> bool:
    return not rollback.failed


def own_discount(order: SimpleOrder | None, stack_role: str | None) -> int | None:
    """The discount this redemption applied (see the module), or None when the order does not say."""
    if order is None:
        return None
    if order.total_applied_discount_amount is not None:
        return order.total_applied_discount_amount
    items = order.items_applied_discount_amount
    if items is None:
        applied = [i.applied_discount_amount for i in order.items or [] if i.applied_discount_amount is not None]
        items = sum(applied) if applied else None
    if order.applied_discount_amount is not None or items is not None:
        return (order.applied_discount_amount or 0) + (items or 0)
    if stack_role == STACK_CHILD:
        return None  # the order's totals are the stack's running total, not this redeemable's share
    return order.total_discount_amount if order.total_discount_amount is not None else order.discount_amount


def _vouchers(data: EventCustomerRedemption, redemption: SimpleRedemption) -> list[SimpleVoucher]:
    """The redeemed voucher as the redemption carries it, then as the event does (often the fuller copy)."""
    return [v for v in (redemption.voucher, data.voucher) if v is not None]


def voucher_type(data: EventCustomerRedemption, redemption: SimpleRedemption) -> str | None:
    """The voucher's ``type`` as sent, else its campaign's."""
    for voucher in _vouchers(data, redemption):
        if voucher.type is not None:
            return voucher.type
    campaign_voucher = data.campaign.voucher if data.campaign is not None else None
    return campaign_voucher.type if campaign_voucher is not None else None


def amount_unit(data: EventCustomerRedemption, redemption: SimpleRedemption) -> str | None:
    """What ``amount`` counts (see the module): by the voucher's type, else by what the voucher carries."""
    vouchers = _vouchers(data, redemption)
    if not vouchers:
        return CURRENCY  # a promotion tier or a stack's parent: a discount
    declared = voucher_type(data, redemption)
    if declared is not None:
        return UNIT_OF_VOUCHER_TYPE.get(declared)
    if any(v.gift is not None for v in vouchers):
        return GIFT_CREDITS
    if any(v.loyalty_card is not None for v in vouchers):
        return LOYALTY_POINTS
    return CURRENCY if any(v.discount is not None for v in vouchers) else None


def card_balances(data: EventCustomerRedemption, redemption: SimpleRedemption) -> dict[str, Any]:
    """The gift card's balance, the loyalty card's points and balance, as the voucher reports them."""
    vouchers = _vouchers(data, redemption)
    gift = next((v.gift for v in vouchers if v.gift is not None), None)
    loyalty = next((v.loyalty_card for v in vouchers if v.loyalty_card is not None), None)
    return {
        "gift_balance": stored_number(gift.balance) if gift else None,
        "loyalty_points": loyalty.points if loyalty else None,
        "loyalty_balance": loyalty.balance if loyalty else None,
    }


def _stack(data: EventCustomerRedemption, redemption: SimpleRedemption) -> dict[str, Any]:
    role = data.stack_role(redemption)
    return {
        "stack_role": role,
        "parent_redemption_id": redemption.redemption,
        "child_redemption_ids": data.child_redemption_ids(redemption) or None,
    }


def redemption_summary(data: EventCustomerRedemption, redemption: SimpleRedemption) -> dict[str, Any]:
    """The ledger's view of a redemption: ids, codes, amounts and dates; no names, emails or addresses."""
    order = redemption.order or data.order
    vouchers = _vouchers(data, redemption)
    voucher = vouchers[0] if vouchers else None
    tier = redemption.promotion_tier or data.promotion_tier
    customer_id = redemption.customer_id or (data.customer.id if data.customer else None)
    stack = _stack(data, redemption)
    given = not redemption.failed  # a failed attempt gave nothing: no discount, no amount
    reward = redemption.reward
    return compact(
        {
            "redemption_id": redemption.id,
            "redeemed_at": iso(redemption.date),
            "voucherify_status": voucherify_status(redemption.status),
            "result": redemption.result,
            "failure_code": redemption.failure_code if redemption.failed else None,
            "failure_message": redemption.failure_message if redemption.failed else None,
            "customer_id": customer_id,
            "holder_id": (data.holder.id if data.holder else None) or (voucher.holder_id if voucher else None),
            "order_id": order.id if order else None,
            "order_source_id": order.source_id if order else None,
            "order_amount": order.amount if order else None,
            "discount_amount": own_discount(order, stack["stack_role"]) if given else None,
            "order_total_amount": order.total_amount if order else None,
            "amount": redemption.amount if given else None,
            "amount_unit": amount_unit(data, redemption),
            "voucher_code": voucher.code if voucher else None,
            "voucher_id": next((v.id for v in vouchers if v.id), None),
            "voucher_type": voucher_type(data, redemption),
            **card_balances(data, redemption),
            "reward_id": reward.id if reward else None,
            "reward_type": reward.type if reward else None,
            "channel_type": redemption.channel.channel_type if redemption.channel else None,
            "campaign_id": (voucher.campaign_id if voucher else None) or (data.campaign.id if data.campaign else None),
            "campaign_name": (data.campaign.name if data.campaign else None) or (voucher.campaign if voucher else None),
            "promotion_tier_id": tier.id if tier else None,
            "promotion_stack_id": data.promotion_stack.id if data.promotion_stack else None,
            **stack,
        }
    )


def rollback_summary(
    rollback: SimpleRedemption, redemption_id: str, data: EventCustomerRedemption | None = None
) -> dict[str, Any]:
    """The ledger's view of a rollback (``data``: its event, for the voucher it gave credits or points back to)."""
    # model_construct: an empty event (every field None) needs no validation, nor the model's validator built.
    context = data if data is not None else EventCustomerRedemption.model_construct()
    unit = amount_unit(context, rollback)
    restored = RESTORED.get(unit or "")
    given_back = abs(rollback.amount) if restored and rollback.amount is not None and not rollback.failed else None
    return compact(
        {
            "rollback_id": rollback.id,
            "redemption_id": redemption_id,
            "rolled_back_at": iso(rollback.date),
            "voucherify_status": voucherify_status(rollback.status),
            "result": rollback.result,
            "reason": rollback.reason,
            "amount": rollback.amount,
            "amount_unit": unit,
            **({restored: given_back} if restored else {}),
            **(card_balances(context, rollback) if unit in RESTORED else {}),
            "failure_code": rollback.failure_code,
            "failure_message": rollback.failure_message,
            "order_status": rollback.order.status if rollback.order else None,
        }
    )


def summary_digest(summary: Mapping[str, Any]) -> str:
    """A fingerprint of what the ledger records of a redemption: a redelivery of the same event has the same one."""
    canonical = json.dumps(summary, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
