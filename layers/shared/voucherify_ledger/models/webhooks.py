"""Pydantic models of the Voucherify webhook payloads this bundle records: the redemption, the events' ``data``
(``EventRedemptionSucceededData`` — ``redemption.failed`` has the same shape, ``EventRedemptionFailedData`` —,
``EventCustomerRedemptionRollbackSucceededData``, ``EventRedemptionRollbackSucceededData`` — and
``redemption.rollback.failed``'s, ``EventRedemptionRollbackFailedData``) and the v2024-01-01 envelope, checked
against the payloads of the documentation pages. The objects they reference are in ``models.objects``, with the
conventions both follow.

What a redemption *is* is read here, once: failed or not (``SimpleRedemption.failed``), and its place in a stack
(``stack_role``, ``child_redemption_ids``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from voucherify_ledger.models import ids
from voucherify_ledger.models.objects import (
    LedgerAmount,
    Metadata,
    OrderRedemptionsEntry,
    SimpleCampaign,
    SimpleCustomer,
    SimpleOrder,
    SimplePromotionStack,
    SimplePromotionTier,
    SimpleRedemptionRewardResult,
    SimpleVoucher,
    VoucherifyModel,
)


# --- redemptions --------------------------------------------------------------------------------
class RedemptionChannel(VoucherifyModel):
    channel_id: str | None = None
    channel_type: Literal["API", "AUTO_REDEEM", "USER"] | str | None = None


# The webhook schema spells it "ROLLED BACK", the redemptions API (and Voucherify's own redemption.rollback.failed
# example) "ROLLED_BACK": both are accepted, and the ledger stores ROLLED_BACK (``ledger.summaries``).
RedemptionStatus = Literal["SUCCEEDED", "FAILED", "ROLLED BACK", "ROLLED_BACK"]
ROLLED_BACK_SPELLINGS = frozenset({"ROLLED BACK", "ROLLED_BACK"})
FAILED_ID_PREFIXES = ("rf_", "rrf_")  # a failed redemption, a failed rollback
STACK_PARENT, STACK_CHILD = "parent", "child"


class SimpleRedemption(VoucherifyModel):
    """``SimpleRedemption``: a redemption (``r_…``) or, as ``redemption_rollback``, a rollback (``rr_…``)."""

    id: Annotated[str, Field(pattern=ids.REDEMPTION_FAMILY_ID_PATTERN)]  # r_, rf_, rr_ or rrf_
    customer_id: ids.CustomerId | None = None
    tracking_id: str | None = None
    date: datetime
    amount: LedgerAmount | None = None
    order: SimpleOrder | None = None
    reward: SimpleRedemptionRewardResult | None = None
    customer: SimpleCustomer | None = None
    result: Literal["SUCCESS", "FAILURE"] | None = None
    status: RedemptionStatus | None
    voucher: SimpleVoucher | None = None
    promotion_tier: SimplePromotionTier | None = None
    # For a rollback: the redemption it undoes. For a stacked redemption: its parent redemption.
    redemption: ids.RedemptionId | None = None
    metadata: Metadata | None
    failure_code: str | None = None
    failure_message: str | None = None
    reason: str | None = None
    channel: RedemptionChannel | None = None
    # Not in the webhook schema (in the redemptions API's): what was redeemed; "redemption" on a stack's parent.
    related_object_type: Literal["voucher", "promotion_tier", "redemption"] | str | None = None
    related_object_id: str | None = None
    object: str = "redemption"

    @property
    def failed(self) -> bool:
        """A failed attempt (result FAILURE, status FAILED, or an ``rf_`` / ``rrf_`` id): never a discount given,
        never rolled back, and a failed rollback never rolls its redemption back."""
        return self.result == "FAILURE" or self.status == "FAILED" or self.id.startswith(FAILED_ID_PREFIXES)


class EventCustomerRedemption(VoucherifyModel):
    customer: SimpleCustomer | None = None
    order: SimpleOrder | None = None
    campaign: SimpleCampaign | None = None
    voucher: SimpleVoucher | None = None
    holder: SimpleCustomer | None = None
    promotion_tier: SimplePromotionTier | None = None
    promotion_stack: SimplePromotionStack | None = None
    redemption: SimpleRedemption | None = None

    def order_entry(self, redemption: SimpleRedemption) -> OrderRedemptionsEntry | None:
        """``redemption``'s entry in its order's ``redemptions`` map (the redemption's own order first)."""
        for order in (redemption.order, self.order):
            entry = (order.redemptions or {}).get(redemption.id) if order is not None else None
            if entry is not None:
                return entry
        return None

    def stack_role(self, redemption: SimpleRedemption) -> str | None:
        """``child`` for a redemption with a parent, ``parent`` for the stack's own redemption (``related_object_type``
        ``redemption``, on it or on its order entry, or an entry listing ``stacked`` children), None for a lone one."""
        if redemption.redemption:
            return STACK_CHILD
        entry = self.order_entry(redemption)
        if redemption.related_object_type == "redemption" or (
            entry is not None and (entry.related_object_type == "redemption" or entry.stacked)
        ):
            return STACK_PARENT
        return None

    def child_redemption_ids(self, redemption: SimpleRedemption) -> list[str]:
        """The children a stack's parent lists (its order entry's ``stacked``), in order, each once."""
        entry = self.order_entry(redemption)
        return list(dict.fromkeys(entry.stacked or [])) if entry is not None else []

    def _check_stack(self, redemption: SimpleRedemption) -> None:
        children = self.child_redemption_ids(redemption)
        if not all(ids.is_redemption_id(child) for child in children):
            raise ValueError(
                f"order.redemptions[redemption.id].stacked: expected redemption ids ({ids.REDEMPTION_ID_SHAPE})"
            )
        if redemption.redemption and (children or redemption.related_object_type == "redemption"):
            raise ValueError("redemption: a stack's parent (it lists children) cannot have a parent redemption")


def _failure_signals(redemption: SimpleRedemption) -> dict[str, bool]:
    """What the id, ``result`` and ``status`` each say of whether the redemption failed (those that are sent)."""
    signals = {"id": redemption.id.startswith(FAILED_ID_PREFIXES)}
    if redemption.result is not None:
        signals["result"] = redemption.result == "FAILURE"
    if redemption.status is not None:
        signals["status"] = redemption.status == "FAILED"
    return signals


class EventRedemptionSucceededData(EventCustomerRedemption):
    """``data`` of ``redemption.succeeded`` and, the same shape, of ``redemption.failed``
    (``EventRedemptionFailedData``). The ledger needs the redemption, so it is required here; whether it failed and
    where it sits in a stack decide how it is recorded, so its id, ``result`` and ``status`` must agree on the first,
    and the stack ids it names must be ids."""

    redemption: SimpleRedemption
    created_at: datetime | None = None

    @model_validator(mode="after")
    def _is_a_redemption(self) -> EventRedemptionSucceededData:
        if not ids.is_redemption_id(self.redemption.id):
            raise ValueError(f"redemption.id: expected a redemption id ({ids.REDEMPTION_ID_SHAPE})")
        if len(set(_failure_signals(self.redemption).values())) > 1:
            raise ValueError(
                "redemption: its id, result and status disagree on whether it failed "
                "(a failed redemption has an rf_ id, result FAILURE and status FAILED)"
            )
        self._check_stack(self.redemption)
        return self


# redemption.failed carries the same data (OpenAPIWebhooks.json: EventRedemptionFailedData).
EventRedemptionFailedData = EventRedemptionSucceededData


class EventRedemptionRollbackSucceededData(EventCustomerRedemption):
    """``data`` of ``customer.redemption.rollback.succeeded`` and ``redemption.rollback.succeeded``."""

    redemption_rollback: SimpleRedemption

    @model_validator(mode="after")
    def _knows_its_redemption(self) -> EventRedemptionRollbackSucceededData:
        return self.check()

    def check(self) -> EventRedemptionRollbackSucceededData:
        """The checks of a validated rollback's data (ValueError), for data put together with ``model_construct``
        around a rollback validated already."""
        if not ids.is_rollback_id(self.redemption_rollback.id):
            raise ValueError(f"redemption_rollback.id: expected a rollback id ({ids.ROLLBACK_ID_SHAPE})")
        if self.redemption is not None and not ids.is_redemption_id(self.redemption.id):
            raise ValueError(f"redemption.id: expected a redemption id ({ids.REDEMPTION_ID_SHAPE})")
        if not (self.redemption_rollback.redemption or self.redemption):
            raise ValueError("a rollback must name its redemption (redemption_rollback.redemption or redemption.id)")
        if (
            self.redemption is not None
            and self.redemption_rollback.redemption
            and self.redemption.id != self.redemption_rollback.redemption
        ):
            raise ValueError("redemption.id and redemption_rollback.redemption name different redemptions")
        return self

    @property
    def redemption_id(self) -> str:
        if self.redemption_rollback.redemption:
            return self.redemption_rollback.redemption
        assert self.redemption is not None  # the model's validator requires one of the two
        return self.redemption.id


# The project-settings event and the distribution event share one data shape, and so does redemption.rollback.failed
# (EventRedemptionRollbackFailedData): a failed rollback (result FAILURE) is recorded without rolling back.
EventCustomerRedemptionRollbackSucceededData = EventRedemptionRollbackSucceededData
EventRedemptionRollbackFailedData = EventRedemptionRollbackSucceededData


# --- the v2024-01-01 envelope -------------------------------------------------------------------
# Every event name Voucherify publishes a webhook for (OpenAPIWebhooks.json, ``webhooks``): an answer, log line or
# record repeats ``event.type`` only when it is one of these, never a string a sender chose.
VOUCHERIFY_EVENT_TYPES = frozenset(
    {
        "bus_val_rule.assignment.created",
        "bus_val_rule.assignment.deleted",
        "bus_val_rule.created",
        "bus_val_rule.deleted",
        "bus_val_rule.updated",
        "campaign.created",
        "campaign.deleted",
        "campaign.disabled",
        "campaign.enabled",
        "campaign.loyalty_tier.created",
        "campaign.loyalty_tier.deleted",
        "campaign.loyalty_tier.updated",
        "campaign.promotion_tier.created",
        "campaign.promotion_tier.deleted",
        "campaign.promotion_tier.disabled",
        "campaign.promotion_tier.enabled",
        "campaign.promotion_tier.updated",
        "campaign.updated",
        "campaign.vouchers.generation.completed",
        "customer.created",
        "customer.custom_event",
        "customer.deleted",
        "customer.holder.assignment.created",
        "customer.holder.assignment.deleted",
        "customer.loyalty.tier.downgraded",
        "customer.loyalty.tier.joined",
        "customer.loyalty.tier.left",
        "customer.loyalty.tier.prolonged",
        "customer.loyalty.tier.upgraded",
        "customer.order.canceled",
        "customer.order.created",
        "customer.order.paid",
        "customer.order.updated",
        "customer.publication.succeeded",
        "customer.redemption.rollback.succeeded",
        "customer.redemption.succeeded",
        "customer.reward_redemptions.completed",
        "customer.reward_redemptions.created",
        "customer.reward_redemptions.pending",
        "customer.rewarded",
        "customer.rewarded.loyalty_points",
        "customer.segment.entered",
        "customer.segment.left",
        "customer.updated",
        "customer.voucher.gift.balance_added",
        "customer.voucher.loyalty_card.pending_points.activated",
        "customer.voucher.loyalty_card.pending_points.added",
        "customer.voucher.loyalty_card.pending_points.canceled",
        "customer.voucher.loyalty_card.pending_points.updated",
        "customer.voucher.loyalty_card.points_added",
        "customer.voucher.loyalty_card.points_expired",
        "distribution.manual_distribution_schedule",
        "publication.succeeded",
        "redemption.failed",
        "redemption.rollback.failed",
        "redemption.rollback.succeeded",
        "redemption.succeeded",
        "voucher.created",
        "voucher.deleted",
        "voucher.disabled",
        "voucher.enabled",
        "voucher.gift.balance_added",
        "voucher.gift.transaction.created",
        "voucher.loyalty_card.pending_points.activated",
        "voucher.loyalty_card.pending_points.added",
        "voucher.loyalty_card.pending_points.canceled",
        "voucher.loyalty_card.pending_points.updated",
        "voucher.loyalty_card.points_added",
        "voucher.loyalty_card.points_expired",
        "voucher.loyalty_card.transaction.created",
        "voucher.published",
        "voucher.updated",
    }
)


class EventSourceUser(VoucherifyModel):
    id: str


class EventSourceApiKey(VoucherifyModel):
    name: str
    app_id: str


class EventSource(VoucherifyModel):
    channel: Literal["USER_PORTAL", "API", "CLIENT_API", "INTERNAL"] | str
    user: EventSourceUser | None = None
    api_key: EventSourceApiKey | None = None


class WebhookEvent(VoucherifyModel):
    id: str
    type: str
    created_at: datetime
    entity_id: str | None = None
    group_id: str
    event_source: EventSource


class WebhookSource(VoucherifyModel):
    id: str | None = None
    object: Literal["webhook", "distribution"] | str | None = None
    target_url: str | None = None


class WebhookEnvelope(VoucherifyModel):
    """``WebhookProjectSettingPayload`` / ``WebhookDistributionPayload`` (v2024-01-01).

    ``type`` is the event name for project-settings webhooks but a user-chosen name for distributions;
    the event name is always ``event.type``.
    """

    id: str
    project_id: str
    created_at: datetime
    type: str
    data: dict[str, Any]
    source: WebhookSource
    event: WebhookEvent


def is_envelope(body: dict[str, Any]) -> bool:
    """A v2024 envelope carries ``data`` and ``event``; a bare ("Raw payload") body carries neither."""
    return "event" in body and "data" in body
