"""Pydantic models of the Voucherify objects the webhook payloads carry: customers, orders, products, discounts,
campaigns, vouchers, promotions and rewards (``Simple*`` in Voucherify's OpenAPI webhook schemas).

Conventions:
- every model keeps unknown fields (``extra="allow"``): Voucherify adds fields over time;
- amounts are integers in the smallest currency unit, timestamps are ``datetime``;
- a field is required only where the schema requires it *and* every published example sends it;
  the published examples send ``null`` for many fields the schema does not mark nullable, so optional
  fields accept ``null``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from voucherify_ledger.models import ids


class VoucherifyModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


Metadata = dict[str, Any]
# An amount the ledger stores (smallest currency unit): DynamoDB keeps at most 38 significant digits.
LedgerAmount = Annotated[int, Field(gt=-(10**38), lt=10**38)]


# --- customers, orders, products ----------------------------------------------------------------
class SimpleCustomer(VoucherifyModel):
    id: ids.CustomerId | None = None
    name: str | None = None
    email: str | None = None
    source_id: str | None = None
    metadata: Metadata | None = None
    object: Literal["customer"] | None = None


class SimpleOrderItem(VoucherifyModel):
    object: Literal["order_item"] | None = None
    source_id: str | None = None
    related_object: Literal["product", "sku"] | None = None
    product_id: str | None = None
    sku_id: str | None = None
    quantity: int | None = None
    discount_quantity: int | None = None
    amount: int | None = None
    discount_amount: int | None = None
    applied_discount_amount: int | None = None
    price: int | None = None
    subtotal_amount: int | None = None


class SimpleOrder(VoucherifyModel):
    id: ids.OrderId | None = None
    source_id: str | None = None
    status: Literal["CREATED", "PAID", "CANCELED", "FULFILLED"] | None = None
    customer_id: str | None = None
    referrer_id: str | None = None
    amount: LedgerAmount | None = None
    discount_amount: LedgerAmount | None = None
    applied_discount_amount: int | None = None
    items_discount_amount: int | None = None
    items_applied_discount_amount: int | None = None
    total_discount_amount: LedgerAmount | None = None
    total_applied_discount_amount: int | None = None
    total_amount: LedgerAmount | None = None
    items: list[SimpleOrderItem] | None = None
    metadata: Metadata | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    object: Literal["order"] = "order"


class SimpleProduct(VoucherifyModel):
    id: str | None = None
    source_id: str | None = None
    name: str | None = None


class SimpleSku(VoucherifyModel):
    id: str | None = None
    source_id: str | None = None
    sku: str | None = None


class SimpleProductDiscountUnit(VoucherifyModel):
    id: str
    source_id: str | None = None
    name: str


class SimpleSkuDiscountUnit(VoucherifyModel):
    id: str
    source_id: str | None = None
    name: str


# --- discounts ----------------------------------------------------------------------------------
class DiscountAmount(VoucherifyModel):
    type: Literal["AMOUNT"]
    amount_off: int
    amount_off_formula: str | None = None
    aggregated_amount_limit: int | None = None
    effect: (
        Literal[
            "APPLY_TO_ORDER",
            "APPLY_TO_ITEMS",
            "APPLY_TO_ITEMS_PROPORTIONALLY",
            "APPLY_TO_ITEMS_PROPORTIONALLY_BY_QUANTITY",
            "APPLY_TO_ITEMS_BY_QUANTITY",
        ]
        | None
    ) = None
    is_dynamic: bool | None = None


class DiscountPercent(VoucherifyModel):
    type: Literal["PERCENT"]
    percent_off: float
    percent_off_formula: str | None = None
    amount_limit: int | None = None
    aggregated_amount_limit: int | None = None
    effect: Literal["APPLY_TO_ORDER", "APPLY_TO_ITEMS"] | None = None
    is_dynamic: bool | None = None


class DiscountFixed(VoucherifyModel):
    type: Literal["FIXED"]
    fixed_amount: int
    fixed_amount_formula: str | None = None
    effect: Literal["APPLY_TO_ORDER", "APPLY_TO_ITEMS"] | None = None
    is_dynamic: bool | None = None


class DiscountUnit(VoucherifyModel):
    type: Literal["UNIT"]
    unit_off: int | None = None
    unit_off_formula: str | None = None
    effect: Literal["ADD_MISSING_ITEMS", "ADD_NEW_ITEMS", "ADD_MANY_ITEMS"] | None = None
    unit_type: str
    product: SimpleProductDiscountUnit | None = None
    sku: SimpleSkuDiscountUnit | None = None
    is_dynamic: bool | None = None


class DiscountUnitMultipleOneUnit(VoucherifyModel):
    unit_off: float | None = None
    unit_off_formula: str | None = None
    effect: Literal["ADD_NEW_ITEMS", "ADD_MISSING_ITEMS"]
    unit_type: str
    product: SimpleProductDiscountUnit | None = None
    sku: SimpleSkuDiscountUnit | None = None


class DiscountUnitMultiple(VoucherifyModel):
    type: Literal["UNIT"]
    effect: Literal["ADD_MANY_ITEMS"] = "ADD_MANY_ITEMS"
    units: list[DiscountUnitMultipleOneUnit]


def _discount_tag(value: Any) -> str | None:
    """Picks the discount shape: ``type``, and for UNIT whether it carries a list of ``units``.

    A single-unit discount may also have effect ADD_MANY_ITEMS (``DiscountUnitVouchersEffectTypes``), so
    the effect decides only when there is neither ``units`` nor ``unit_type``.
    """
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    many = value.get("effect") == "ADD_MANY_ITEMS" and value.get("unit_type") is None
    if kind == "UNIT" and (isinstance(value.get("units"), list) or many):
        return "UNIT_MULTIPLE"
    return kind if isinstance(kind, str) else None


Discount = Annotated[
    Annotated[DiscountAmount, Tag("AMOUNT")]
    | Annotated[DiscountPercent, Tag("PERCENT")]
    | Annotated[DiscountFixed, Tag("FIXED")]
    | Annotated[DiscountUnit, Tag("UNIT")]
    | Annotated[DiscountUnitMultiple, Tag("UNIT_MULTIPLE")],
    Discriminator(
        _discount_tag,
        custom_error_type="discount_type",
        custom_error_message="discount.type must be one of AMOUNT, PERCENT, FIXED, UNIT",
    ),
]


class Gift(VoucherifyModel):
    amount: int
    balance: int
    effect: Literal["APPLY_TO_ORDER", "APPLY_TO_ITEMS"] | None = None


class LoyaltyExpirationRules(VoucherifyModel):
    period_type: Literal["FIXED_DAY_OF_YEAR", "MONTH"]
    period_value: int | None = None
    rounding_type: (
        Literal["END_OF_MONTH", "END_OF_QUARTER", "END_OF_HALF_YEAR", "END_OF_YEAR", "PARTICULAR_MONTH"] | None
    ) = None
    rounding_value: int | None = None
    fixed_month: Annotated[int, Field(ge=1, le=12)] | None = None
    fixed_day: Annotated[int, Field(ge=1, le=31)] | None = None


class CampaignLoyaltyCard(VoucherifyModel):
    points: int
    expiration_rules: LoyaltyExpirationRules | None = None


class SimpleLoyaltyCard(VoucherifyModel):
    points: int
    balance: int | None = None
    next_expiration_date: str | None = None
    next_expiration_points: int | None = None
    pending_points: int | None = None
    expired_points: int | None = None
    subtracted_points: int | None = None


# --- campaigns and vouchers ---------------------------------------------------------------------
class CodeConfig(VoucherifyModel):
    length: int
    charset: str
    prefix: str
    postfix: str
    pattern: str
    initial_count: int | None = None


class RedemptionQuantity(VoucherifyModel):
    quantity: int | None
    redeemed_quantity: int


class SimpleCampaignVoucher(VoucherifyModel):
    type: Literal["DISCOUNT_VOUCHER", "LOYALTY_CARD", "GIFT_VOUCHER"]
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
    object: Literal["category"] = "category"
    stacking_rules_type: Literal["JOINT", "EXCLUSIVE"] | None = None


class ReferralCustomEvent(VoucherifyModel):
    id: str | None = None
    name: str | None = None


class ReferralRewardParent(VoucherifyModel):
    id: str | None = None
    name: str | None = None
    object: Literal["CAMPAIGN"] | None = None


class ReferralReward(VoucherifyModel):
    related_object_parent: ReferralRewardParent | None = None
    type: Literal["DISCOUNT_VOUCHER", "LOYALTY_CARD", "GIFT_VOUCHER"] | None = None
    # The schema says string; the published example sends a number.
    amount: int | str | None = None


class ReferralProgram(VoucherifyModel):
    conversion_event_type: Literal["redemption", "custom_event"] | None = None
    custom_event: ReferralCustomEvent | None = None
    referee_reward: ReferralReward | None = None


class SimpleCampaign(VoucherifyModel):
    id: str | None = None
    name: str | None = None
    campaign_type: str | None = None
    type: Literal["AUTO_UPDATE", "STATIC", "STANDALONE"] | None = None
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
    object: Literal["campaign"] | None = None


class SimpleVoucher(VoucherifyModel):
    id: ids.VoucherId | None = None
    # The schema also requires type, created_at and object; the vouchers nested in a redemption of the
    # published examples carry only id, code, campaign, campaign_id, active and object.
    code: str
    gift: Gift | None = None
    discount: Discount | None = None
    loyalty_card: SimpleLoyaltyCard | None = None
    type: Literal["DISCOUNT_VOUCHER", "LOYALTY_CARD", "GIFT_VOUCHER"] | None = None
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
    object: Literal["voucher"] | None = None


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
    hierarchy_mode: Literal["MANUAL"] | None = None


class SimplePromotionStack(VoucherifyModel):
    id: str | None = None
    name: str | None = None
    category_id: str | None = None
    campaign: PromotionStackCampaign | None = None
    tiers: PromotionStackTiers | None = None


# --- rewards ------------------------------------------------------------------------------------
class RewardCampaignParameter(VoucherifyModel):
    id: str
    type: Literal["DISCOUNT_COUPONS", "GIFT_VOUCHERS", "LOYALTY_PROGRAM"]
    balance: int | None = None

    @model_validator(mode="after")
    def _balance_for_credit_campaigns(self) -> RewardCampaignParameter:
        if self.type != "DISCOUNT_COUPONS" and self.balance is None:
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
    object: Literal["reward"] | None = None
    name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    parameters: RewardParameters | None = None
    metadata: Metadata | None = None
    type: Literal["CAMPAIGN", "COIN", "MATERIAL"] | None = None
