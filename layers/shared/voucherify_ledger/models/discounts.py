"""The discounts a voucher or a campaign carries (``Discount`` in Voucherify's OpenAPI webhook schemas): AMOUNT,
PERCENT, FIXED, UNIT with one unit or several, and a discount of a type Voucherify adds later, kept as received.

The ledger stores none of a discount's values: its numbers are ``Number`` (any JSON number, as the schema types
``amount_off``, ``amount_limit`` and ``fixed_amount`` ``number``) and its effects are open enums (``models.values``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Tag

from voucherify_ledger.models.base import VoucherifyModel
from voucherify_ledger.models.values import Number

KNOWN_DISCOUNT_TYPES = frozenset({"AMOUNT", "PERCENT", "FIXED", "UNIT"})

AmountEffect = Literal[
    "APPLY_TO_ORDER",
    "APPLY_TO_ITEMS",
    "APPLY_TO_ITEMS_PROPORTIONALLY",
    "APPLY_TO_ITEMS_PROPORTIONALLY_BY_QUANTITY",
    "APPLY_TO_ITEMS_BY_QUANTITY",
]
OrderOrItemsEffect = Literal["APPLY_TO_ORDER", "APPLY_TO_ITEMS"]
UnitEffect = Literal["ADD_MISSING_ITEMS", "ADD_NEW_ITEMS", "ADD_MANY_ITEMS"]


class SimpleProductDiscountUnit(VoucherifyModel):
    id: str
    source_id: str | None = None
    name: str | None = None  # the schema requires it; Voucherify sends null for a product without a name


class SimpleSkuDiscountUnit(VoucherifyModel):
    id: str
    source_id: str | None = None
    name: str | None = None


class DiscountAmount(VoucherifyModel):
    type: Literal["AMOUNT"]
    amount_off: Number
    amount_off_formula: str | None = None
    aggregated_amount_limit: int | None = None
    effect: AmountEffect | str | None = None
    is_dynamic: bool | None = None


class DiscountPercent(VoucherifyModel):
    type: Literal["PERCENT"]
    percent_off: float
    percent_off_formula: str | None = None
    amount_limit: Number | None = None
    aggregated_amount_limit: int | None = None
    effect: OrderOrItemsEffect | str | None = None
    is_dynamic: bool | None = None


class DiscountFixed(VoucherifyModel):
    type: Literal["FIXED"]
    fixed_amount: Number
    fixed_amount_formula: str | None = None
    effect: OrderOrItemsEffect | str | None = None
    is_dynamic: bool | None = None


class DiscountUnit(VoucherifyModel):
    type: Literal["UNIT"]
    unit_off: int | None = None
    unit_off_formula: str | None = None
    effect: UnitEffect | str | None = None
    unit_type: str
    product: SimpleProductDiscountUnit | None = None
    sku: SimpleSkuDiscountUnit | None = None
    is_dynamic: bool | None = None


class DiscountUnitMultipleOneUnit(VoucherifyModel):
    unit_off: float | None = None
    unit_off_formula: str | None = None
    effect: Literal["ADD_NEW_ITEMS", "ADD_MISSING_ITEMS"] | str
    unit_type: str
    product: SimpleProductDiscountUnit | None = None
    sku: SimpleSkuDiscountUnit | None = None


class DiscountUnitMultiple(VoucherifyModel):
    type: Literal["UNIT"]
    effect: Literal["ADD_MANY_ITEMS"] | str = "ADD_MANY_ITEMS"
    units: list[DiscountUnitMultipleOneUnit]


class DiscountOfAnotherType(VoucherifyModel):
    """A discount whose ``type`` is none the schema lists (one Voucherify adds later): kept as received."""

    type: str


def _discount_tag(value: Any) -> str | None:
    """Picks the discount shape: ``type``, and for UNIT whether it carries a list of ``units``; a ``type`` the schema
    does not list is ``OTHER`` (kept as received), a ``type`` that is no string (or none) no shape at all.

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
    if not isinstance(kind, str):
        return None
    return kind if kind in KNOWN_DISCOUNT_TYPES else "OTHER"


Discount = Annotated[
    Annotated[DiscountAmount, Tag("AMOUNT")]
    | Annotated[DiscountPercent, Tag("PERCENT")]
    | Annotated[DiscountFixed, Tag("FIXED")]
    | Annotated[DiscountUnit, Tag("UNIT")]
    | Annotated[DiscountUnitMultiple, Tag("UNIT_MULTIPLE")]
    | Annotated[DiscountOfAnotherType, Tag("OTHER")],
    Discriminator(
        _discount_tag,
        custom_error_type="discount_type",
        custom_error_message="discount.type must be a string (AMOUNT, PERCENT, FIXED, UNIT or another type)",
    ),
]
