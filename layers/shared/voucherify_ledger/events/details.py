"""The ledger's EventBridge events: one model per detail type, the ``detail`` of an event with ``source``
``voucherify.ledger`` (their JSON Schemas and example events, ``docs/events/``, are written by
``voucherify_ledger.events.documents``).

A detail holds ids, codes, amounts, units, statuses and times, never names, emails, phone numbers, addresses,
metadata or a raw delivery. ``event_id`` is derived from what the event is about (its detail type and the ids
involved), so the same change published twice carries the same ``event_id``: consumers deduplicate on it.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from voucherify_ledger.models import ids

SOURCE = "voucherify.ledger"
EVENT_ID_PATTERN = r"^le_[0-9a-f]{32}$"
QUARANTINE_ID_PATTERN = r"^q_[0-9a-f]{32}$"

EventId = Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]
QuarantineId = Annotated[str, StringConstraints(pattern=QUARANTINE_ID_PATTERN)]
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Amount = int | float
LedgerStatus = Literal["SUCCEEDED", "FAILED", "ROLLED_BACK"]
AmountUnit = Literal["currency", "gift_credits", "loyalty_points"]
StackRole = Literal["parent", "child"]


def event_id(detail_type: str, *parts: str) -> str:
    """The stable id of an event: the same detail type about the same ids is the same event."""
    text = "\x1f".join((detail_type, *parts))
    return "le_" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class Detail(BaseModel):
    """What every detail carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    DETAIL_TYPE: ClassVar[str]
    SLUG: ClassVar[str]  # the schema's and the example's file name
    SUMMARY: ClassVar[str]  # when it is sent, one sentence

    event_id: EventId = Field(
        description="Stable id of this event, derived from its detail type and the ids it is about: the same "
        "change delivered again carries the same id. Deduplicate on it."
    )

    def as_json(self) -> str:
        """The detail as PutEvents sends it: compact JSON, absent values left out."""
        return self.model_dump_json(exclude_none=True)


class RedemptionDetail(Detail):
    """A redemption as the ledger recorded it."""

    redemption_id: ids.RedemptionId = Field(description="Voucherify's redemption id: r_…, or rf_… for a failed one.")
    status: LedgerStatus = Field(
        description="The ledger's status of the redemption now: SUCCEEDED, FAILED (a failed attempt) or ROLLED_BACK "
        "(a rollback was recorded before the redemption itself)."
    )
    voucherify_status: str | None = Field(default=None, description="Voucherify's status of the redemption.")
    result: str | None = Field(default=None, description="Voucherify's result: SUCCESS or FAILURE.")
    redeemed_at: Timestamp | None = Field(default=None, description="When Voucherify made the redemption.")
    recorded_at: Timestamp | None = Field(default=None, description="When the ledger recorded it.")
    recorded_by: Literal["webhook", "reconciler"] = Field(
        description="webhook: from its delivery; reconciler: from Voucherify's list of redemptions, because the "
        "webhook never came (see Reconciled Missing)."
    )
    replayed_from: QuarantineId | None = Field(
        default=None, description="The quarantine record (q_…) an operator replayed it from."
    )
    customer_id: str | None = Field(default=None, description="Voucherify's customer id (cust_…).")
    holder_id: str | None = Field(default=None, description="Voucherify's id of the voucher's holder (cust_…).")
    order_id: str | None = Field(default=None, description="Voucherify's order id (ord_…).")
    order_source_id: str | None = Field(default=None, description="The merchant's order id (order.source_id).")
    order_amount: Amount | None = Field(default=None, description="The order's amount, in the smallest unit.")
    order_total_amount: Amount | None = Field(default=None, description="The order's amount after discounts.")
    amount_unit: AmountUnit | None = Field(
        default=None,
        description="What amount counts: currency (a discount), gift_credits (a gift card) or loyalty_points.",
    )
    voucher_code: str | None = Field(default=None, description="The code of the voucher redeemed.")
    voucher_id: str | None = Field(default=None, description="Voucherify's voucher id (v_…).")
    voucher_type: str | None = Field(
        default=None, description="DISCOUNT_VOUCHER, GIFT_VOUCHER, LOYALTY_CARD, as Voucherify sent it."
    )
    campaign_id: str | None = Field(default=None, description="Voucherify's campaign id (camp_…).")
    promotion_tier_id: str | None = Field(default=None, description="The promotion tier redeemed (promo_…).")
    promotion_stack_id: str | None = Field(default=None, description="The promotion stack redeemed.")
    stack_role: StackRole | None = Field(
        default=None, description="parent (a stacked redemption) or child (one redeemable of a stack)."
    )
    parent_redemption_id: ids.RedemptionId | None = Field(default=None, description="A child's stack (r_…).")
    child_redemption_ids: list[ids.RedemptionId] | None = Field(
        default=None, description="A parent's redemptions, one per redeemable."
    )
    channel_type: str | None = Field(default=None, description="How it was redeemed: API, USER, …")


class RedemptionRecorded(RedemptionDetail):
    """A succeeded redemption, newly in the ledger."""

    DETAIL_TYPE = "Redemption Recorded"
    SLUG = "redemption-recorded"
    SUMMARY = (
        "A succeeded redemption (r_…) is recorded in the ledger for the first time: from its redemption.succeeded "
        "webhook, or by the reconciler when the webhook never came."
    )

    redemption_id: ids.SucceededRedemptionId = Field(description="Voucherify's redemption id (r_…).")
    status: Literal["SUCCEEDED", "ROLLED_BACK"] = Field(
        description="The ledger's status of the redemption now: SUCCEEDED, or ROLLED_BACK when its rollback was "
        "recorded first."
    )
    discount_amount: Amount | None = Field(
        default=None, description="The discount this redemption gave (a stack's parent: the stack's total)."
    )
    amount: Amount | None = Field(
        default=None, description="What the redemption took: a discount, gift credits or loyalty points (amount_unit)."
    )
    reward_id: str | None = Field(default=None, description="The loyalty reward redeemed (rew_…).")
    reward_type: str | None = Field(default=None, description="The reward's type.")


class RedemptionFailed(RedemptionDetail):
    """A failed redemption attempt, newly in the ledger."""

    DETAIL_TYPE = "Redemption Failed"
    SLUG = "redemption-failed"
    SUMMARY = (
        "A failed redemption attempt (rf_…) is recorded in the ledger for the first time: nothing was given, and "
        "there is nothing to roll back."
    )

    status: Literal["FAILED"] = Field(description="Always FAILED.")
    failure_code: str | None = Field(default=None, description="Voucherify's failure code, e.g. voucher_expired.")


class RedemptionRolledBack(Detail):
    """A rollback newly added to a redemption."""

    DETAIL_TYPE = "Redemption Rolled Back"
    SLUG = "redemption-rolled-back"
    SUMMARY = (
        "A rollback (rr_…) is recorded on a redemption, one event per rollback id: reported by its webhook, made "
        "by the rollback worker, or found by the reconciler."
    )

    redemption_id: ids.SucceededRedemptionId = Field(description="The redemption rolled back (r_…).")
    rollback_id: Annotated[str, StringConstraints(pattern=rf"^rr_[0-9A-Za-z]{{1,{ids.MAX_ID_TAIL}}}$")] = Field(
        description="Voucherify's rollback id (rr_…)."
    )
    status: LedgerStatus = Field(description="The ledger's status of the redemption now: ROLLED_BACK.")
    rolled_back_at: Timestamp | None = Field(default=None, description="When Voucherify made the rollback.")
    recorded_at: Timestamp | None = Field(default=None, description="When the ledger recorded it.")
    recorded_by: Literal["webhook", "worker", "reconciler"] = Field(
        description="webhook: from its delivery; worker: the rollback worker's call to Voucherify; reconciler: "
        "from Voucherify's list, because the webhook never came."
    )
    replayed_from: QuarantineId | None = Field(
        default=None, description="The quarantine record (q_…) an operator replayed it from."
    )
    voucherify_status: str | None = Field(default=None, description="Voucherify's status of the rollback.")
    result: str | None = Field(default=None, description="Voucherify's result of the rollback: SUCCESS.")
    amount: Amount | None = Field(default=None, description="The rollback's amount (negative: what it gave back).")
    amount_unit: AmountUnit | None = Field(default=None, description="What amount counts (see Redemption Recorded).")
    credits_restored: Amount | None = Field(default=None, description="Gift credits given back to the card.")
    points_restored: Amount | None = Field(default=None, description="Loyalty points given back to the card.")
    order_status: str | None = Field(default=None, description="The order's status after the rollback.")
    customer_id: str | None = Field(default=None, description="Voucherify's customer id (cust_…).")
    order_id: str | None = Field(default=None, description="Voucherify's order id (ord_…).")
    order_source_id: str | None = Field(default=None, description="The merchant's order id (order.source_id).")
    voucher_code: str | None = Field(default=None, description="The code of the voucher redeemed.")
    campaign_id: str | None = Field(default=None, description="Voucherify's campaign id (camp_…).")
    promotion_tier_id: str | None = Field(default=None, description="The promotion tier redeemed (promo_…).")
    stack_role: StackRole | None = Field(default=None, description="parent or child, for a stacked redemption.")
    parent_redemption_id: ids.RedemptionId | None = Field(default=None, description="A child's stack (r_…).")


class RollbackRequestFailed(Detail):
    """A rollback request of the worker that has failed for good."""

    DETAIL_TYPE = "Rollback Request Failed"
    SLUG = "rollback-request-failed"
    SUMMARY = (
        "A rollback request sent to the rollback queue reaches state FAILED: Voucherify refused the rollback, the "
        "ledger holds no redemption of the order, the message is not a valid request, or its attempts ran out "
        "(dead_lettered). Each time a request reaches FAILED (a redriven request may fail again)."
    )

    request_id: str = Field(description="The request's id (request_id of the message, or one derived from it).")
    redemption_id: ids.RedemptionId | None = Field(default=None, description="The redemption it was to roll back.")
    order_id: str | None = Field(default=None, description="The order it was to roll back (ord_…).")
    order_source_id: str | None = Field(default=None, description="The merchant's order id it was to roll back.")
    parent_request_id: str | None = Field(default=None, description="The order request that queued it.")
    state: Literal["FAILED"] = Field(description="Always FAILED.")
    attempts: int | None = Field(default=None, description="Attempts made, this one included.")
    dead_lettered: bool = Field(
        default=False, description="True when the attempts ran out and the message went to the dead-letter queue."
    )
    rollback_id: str | None = Field(default=None, description="The failed rollback Voucherify made (rrf_…), if any.")
    error_status: int | None = Field(default=None, description="The HTTP status of Voucherify's answer, if any.")
    error_key: str | None = Field(
        default=None, description="Why: Voucherify's error key (not_found, …) or the worker's (invalid_request, …)."
    )
    voucherify_request_id: str | None = Field(
        default=None, description="Voucherify's id of the refused API request, for its support."
    )
    resource_id: str | None = Field(default=None, description="The Voucherify resource the error names.")
    resource_type: str | None = Field(default=None, description="Its type.")
    failed_at: Timestamp | None = Field(default=None, description="When the request was recorded FAILED.")


class DeliveryQuarantined(Detail):
    """An authentic delivery the ledger could not record, kept in quarantine."""

    DETAIL_TYPE = "Delivery Quarantined"
    SLUG = "delivery-quarantined"
    SUMMARY = (
        "An authentic webhook delivery the ledger cannot record (it fails the schema, came to the wrong URL, or "
        "DynamoDB would refuse it) is quarantined for the first time; its redeliveries add none."
    )

    quarantine_id: QuarantineId = Field(description="The quarantine record (q_…), one per distinct body.")
    reason: str | None = Field(default=None, description="Why the ledger could not record it.")
    route: str | None = Field(default=None, description="The webhook URL it came to (redemption-succeeded, …).")
    event_type: str | None = Field(default=None, description="Its Voucherify event type, when it said one.")
    delivery_id: str | None = Field(default=None, description="Voucherify's delivery id (whs_…), when it had one.")
    received_at: Timestamp | None = Field(default=None, description="When it was first received.")
    expires_at: Timestamp | None = Field(default=None, description="When the quarantine record expires.")


class ReconciledMissing(Detail):
    """A redemption the reconciler recorded because its webhook never came."""

    DETAIL_TYPE = "Reconciled Missing"
    SLUG = "reconciled-missing"
    SUMMARY = (
        "The reconciler recorded a redemption (r_… or rf_…) from Voucherify's list because its webhook never came; "
        "sent with the Redemption Recorded or Redemption Failed of the same redemption. backfill_job_id names the "
        "backfill that found it (history from before the webhooks were set up) and is absent for a scheduled run "
        "(a lost delivery)."
    )

    redemption_id: ids.RedemptionId = Field(description="Voucherify's redemption id (r_…, rf_…).")
    status: LedgerStatus = Field(description="The ledger's status of the redemption now.")
    result: str | None = Field(default=None, description="Voucherify's result: SUCCESS or FAILURE.")
    redeemed_at: Timestamp | None = Field(default=None, description="When Voucherify made the redemption.")
    recorded_at: Timestamp | None = Field(default=None, description="When the reconciler recorded it.")
    backfill_job_id: str | None = Field(default=None, description="The backfill job (bf_…) that recorded it.")
    order_id: str | None = Field(default=None, description="Voucherify's order id (ord_…).")
    order_source_id: str | None = Field(default=None, description="The merchant's order id (order.source_id).")
    customer_id: str | None = Field(default=None, description="Voucherify's customer id (cust_…).")


DETAILS: tuple[type[Detail], ...] = (
    RedemptionRecorded,
    RedemptionFailed,
    RedemptionRolledBack,
    RollbackRequestFailed,
    DeliveryQuarantined,
    ReconciledMissing,
)
DETAIL_TYPES: dict[str, type[Detail]] = {model.DETAIL_TYPE: model for model in DETAILS}
