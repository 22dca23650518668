"""Pydantic models of the Voucherify objects the webhook payloads carry: customers, orders, products, campaigns,
vouchers, gift cards, loyalty cards, promotions and rewards (``Simple*`` in Voucherify's OpenAPI webhook schemas;
the discounts are in ``models.discounts``, re-exported here).

Conventions:
- every model keeps unknown fields (``extra="allow"``): Voucherify adds fields over time;
- amounts are integers in the smallest currency unit, timestamps are ``datetime``; what the ledger stores is held
  to DynamoDB's number limits, the rest is taken as the schema types it (``models.values``);
- enums are open (``Literal[<known values>] | str``: an unknown value is kept as received) except where the ledger
  decides on the value (a redemption's ``result`` and ``status``, in ``models.webhooks``);
- a field is required only where the schema requires it *and* every published example sends it;
  the published examples send ``null`` for many fields the schema does not mark nullable, so optional
  fields accept ``null``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from voucherify_ledger.models import ids
from voucherify_ledger.models.base import Metadata, VoucherifyModel
from voucherify_ledger.models.discounts import (
    Discount,
    DiscountAmount,
    DiscountFixed,
    DiscountOfAnotherType,
    DiscountPercent,
    DiscountUnit,
    DiscountUnitMultiple,
    DiscountUnitMultipleOneUnit,
    SimpleProductDiscountUnit,
    SimpleSkuDiscountUnit,
)
from voucherify_ledger.models.values import LedgerAmount, LedgerNumber, Number

__all__ = [
    "Discount",
    "DiscountAmount",
    "DiscountFixed",
    "DiscountOfAnotherType",
    "DiscountPercent",
    "DiscountUnit",
    "DiscountUnitMultiple",
    "DiscountUnitMultipleOneUnit",
    "LedgerAmount",
    "LedgerNumber",
    "Metadata",
    "Number",
    "SimpleProductDiscountUnit",
    "SimpleSkuDiscountUnit",
    "VoucherifyModel",
]

VoucherType = Literal["DISCOUNT_VOUCHER", "LOYALTY_CARD", "GIFT_VOUCHER"]


# --- customers, orders, products ----------------------------------------------------------------
class SimpleCustomer(VoucherifyModel):
    id: ids.CustomerId | None = None
    name: str | None = None
    email: str | None = None
    source_id: str | None = None
    metadata: Metadata | None = None
    object: Literal["customer"] | str | None = None


class SimpleOrderItem(VoucherifyModel):
    object: Literal["order_item"] | str | None = None
    source_id: str | None = None
    related_object: Literal["product", "sku"] | str | None = None
    product_id: str | None = None
    sku_id: str | None = None
    quantity: int | None = None
    discount_quantity: int | None = None
    amount: int | None = None
    discount_amount: int | None = None
    applied_discount_amount: LedgerAmount | None = None  # this redemption's share of the item's discount
    price: int | None = None
    subtotal_amount: int | None = None


class OrderRedemptionsEntry(VoucherifyModel):
    """An entry of an order's ``redemptions`` map (``OrderRedemptions``): on a stack's parent, ``stacked`` lists the
    child redemptions. Checked as ids only where the ledger stores them (``models.webhooks``)."""

    date: datetime | None = None
    rollback_id: str | None = None
    rollback_date: datetime | None = None
    related_object_type: Literal["voucher", "promotion_tier", "redemption"] | str | None = None
    related_object_id: str | None = None
    related_object_parent_id: str | None = None
    stacked: list[str] | None = None
    rollback_stacked: list[str] | None = None


class SimpleOrder(VoucherifyModel):
    id: ids.OrderId | None = None
    source_id: str | None = None
    status: Literal["CREATED", "PAID", "CANCELED", "FULFILLED"] | str | None = None
    customer_id: str | None = None
    referrer_id: str | None = None
    amount: LedgerAmount | None = None
    discount_amount: LedgerAmount | None = None
    # the discounts applied by this redemption (in a stack: this redeemable's share); the others are the order's
    applied_discount_amount: LedgerAmount | None = None
    items_discount_amount: int | None = None
    items_applied_discount_amount: LedgerAmount | None = None
    total_discount_amount: LedgerAmount | None = None  # in a stack child's webhook: the order's running total
    total_applied_discount_amount: LedgerAmount | None = None
    total_amount: LedgerAmount | None = None
    items: list[SimpleOrderItem] | None = None
    metadata: Metadata | None = None
    # Not in the webhook schema (it is in the order API's): the order's redemptions by id; a stack's parent lists
    # its children in ``stacked``.
    redemptions: dict[str, OrderRedemptionsEntry] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    object: Literal["order"] | str = "order"


class SimpleProduct(VoucherifyModel):
    id: str | None = None
    source_id: str | None = None
    name: str | None = None


class SimpleSku(VoucherifyModel):
    id: str | None = None
    source_id: str | None = None
    sku: str | None = None


class Gift(VoucherifyModel):
    amount: Number  # the card's credits
    balance: LedgerNumber  # what is left on it (stored as gift_balance)
    effect: Literal["APPLY_TO_ORDER", "APPLY_TO_ITEMS"] | str | None = None


class LoyaltyExpirationRules(VoucherifyModel):
    period_type: Literal["FIXED_DAY_OF_YEAR", "MONTH"] | str
    period_value: int | None = None
    rounding_type: (
        Literal["END_OF_MONTH", "END_OF_QUARTER", "END_OF_HALF_YEAR", "END_OF_YEAR", "PARTICULAR_MONTH"] | str | None
    ) = None
    rounding_value: int | None = None
    fixed_month: Annotated[int, Field(ge=1, le=12)] | None = None
    fixed_day: Annotated[int, Field(ge=1, le=31)] | None = None


class CampaignLoyaltyCard(VoucherifyModel):
    points: int
    expiration_rules: LoyaltyExpirationRules | None = None


class SimpleLoyaltyCard(VoucherifyModel):
    points: LedgerAmount  # stored as loyalty_points
    balance: LedgerAmount | None = None  # stored as loyalty_balance
    next_expiration_date: str | None = None
    next_expiration_points: int | None = None
    pending_points: int | None = None
    expired_points: int | None = None
    subtracted_points: int | None = None


# --- campaigns and vouchers ---------------------------------------------------------------------
class CodeConfig(VoucherifyModel):
    length: Number  # the schema types it number
    charset: str
    prefix: str
    postfix: str | None = None  # required by the schema, missing in some deliveries
    pattern: str
    initial_count: int | None = None


class RedemptionQuantity(VoucherifyModel):
    quantity: int | None
    redeemed_quantity: int


class SimpleCampaignVoucher(VoucherifyModel):
    type: VoucherType | str
    discount: Discount | None = None
    gift: Gift | None = None
    loyalty_card: CampaignLoyaltyCard | None = None
    redemption: RedemptionQuantity
    code_config: CodeConfig


class Category(VoucherifyModel):
    id: str
    name: str
    hierarchy: int
    created_at: datetime
    updated_at: datetime | None = None
    object: Literal["category"] | str = "category"
    stacking_rules_type: Literal["JOINT", "EXCLUSIVE"] | str | None = None


class ReferralCustomEvent(VoucherifyModel):
    id: str | None = None
    name: str | None = None


class ReferralRewardParent(VoucherifyModel):
    id: str | None = None
    name: str | None = None
    object: Literal["CAMPAIGN"] | str | None = None


class ReferralReward(VoucherifyModel):
    related_object_parent: ReferralRewardParent | None = None
    type: VoucherType | str | None = None
    # The schema says string; the published example sends a number.
    amount: int | str | None = None


class ReferralProgram(VoucherifyModel):
    conversion_event_type: Literal["redemption", "custom_event"] | str | None = None
    custom_event: ReferralCustomEvent | None = None
    referee_reward: ReferralReward | None = None


class SimpleCampaign(VoucherifyModel):
    id: str | None = None
    name: str | None = None
    campaign_type: str | None = None
    type: Literal["AUTO_UPDATE", "STATIC", "STANDALONE"] | str | None = None
    is_referral_code: bool | None = None
    voucher: SimpleCampaignVoucher | None = None
    referral_program: ReferralProgram | None = None
    auto_join: bool | None = None
    join_once: bool | None = None
    active: bool | None = None
    category_id: str | None = None
    category: str | None = None
    categories: list[Category] | None = None
    metadata: Metadata | None = None
    start_date: datetime | None = None
    expiration_date: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    object: Literal["campaign"] | str | None = None


class SimpleVoucher(VoucherifyModel):
    id: ids.VoucherId | None = None
    # The schema also requires type, created_at and object; the vouchers nested in a redemption of the
    # published examples carry only id, code, campaign, campaign_id, active and object.
    code: str
    gift: Gift | None = None
    discount: Discount | None = None
    loyalty_card: SimpleLoyaltyCard | None = None
    type: VoucherType | str | None = None  # stored as voucher_type, as received
    campaign: str | None = None
    campaign_id: str | None = None
    is_referral_code: bool | None = None
    holder_id: str | None = None
    referrer_id: str | None = None
    category_id: str | None = None
    categories: list[Category] | None = None
    active: bool | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    redemption: RedemptionQuantity | None = None
    start_date: datetime | None = None
    expiration_date: datetime | None = None
    metadata: Metadata | None = None
    object: Literal["voucher"] | str | None = None


class SimplePromotionTierCampaign(VoucherifyModel):
    id: str | None = None


class SimplePromotionTier(VoucherifyModel):
    id: str | None = None
    name: str | None = None
    banner: str | None = None
    campaign: SimplePromotionTierCampaign | None = None
    metadata: Metadata | None = None


class PromotionStackCampaign(VoucherifyModel):
    id: str | None = None


class PromotionStackTiers(VoucherifyModel):
    ids: Annotated[list[str], Field(min_length=1)]
    hierarchy_mode: Literal["MANUAL"] | str | None = None


class SimplePromotionStack(VoucherifyModel):
    id: str | None = None
    name: str | None = None
    category_id: str | None = None
    campaign: PromotionStackCampaign | None = None
    tiers: PromotionStackTiers | None = None


# --- rewards ------------------------------------------------------------------------------------
CREDIT_REWARD_CAMPAIGNS = frozenset({"GIFT_VOUCHERS", "LOYALTY_PROGRAM"})  # the schema requires their balance


class RewardCampaignParameter(VoucherifyModel):
    id: str
    type: Literal["DISCOUNT_COUPONS", "GIFT_VOUCHERS", "LOYALTY_PROGRAM"] | str
    balance: int | None = None

    @model_validator(mode="after")
    def _balance_for_credit_campaigns(self) -> RewardCampaignParameter:
        if self.type in CREDIT_REWARD_CAMPAIGNS and self.balance is None:
            raise ValueError(f"a {self.type} reward campaign needs a balance")
        return self


class RewardCoin(VoucherifyModel):
    exchange_ratio: int | None = None
    points_ratio: int | None = None


class RewardMaterialProduct(VoucherifyModel):
    id: str | None = None
    sku_id: str | None = None


class RewardParameters(VoucherifyModel):
    campaign: RewardCampaignParameter | None = None
    coin: RewardCoin | None = None
    product: RewardMaterialProduct | None = None


class SimpleRedemptionRewardResult(VoucherifyModel):
    customer: SimpleCustomer | None = None
    assignment_id: str | None = None
    voucher: SimpleVoucher | None = None
    product: SimpleProduct | None = None
    sku: SimpleSku | None = None
    loyalty_tier_id: str | None = None
    id: str | None = None
    object: Literal["reward"] | str | None = None
    name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    parameters: RewardParameters | None = None
    metadata: Metadata | None = None
    type: Literal["CAMPAIGN", "COIN", "MATERIAL"] | str | None = None  # stored as reward_type, as received
