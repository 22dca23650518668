"""The ledger's EventBridge events: one model per detail type, the ``detail`` of an event with ``source``
``voucherify.ledger``; their JSON Schemas and example events (``docs/events/``, written by this module:
``python -m voucherify_ledger.events.details docs/events``).

A detail holds ids, codes, amounts, units, statuses and times, never names, emails, phone numbers, addresses,
metadata or a raw delivery. ``event_id`` is derived from what the event is about (its detail type and the ids
involved), so the same change published twice carries the same ``event_id``: consumers deduplicate on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from voucherify_ledger.models import ids

SOURCE = "voucherify.ledger"
EVENT_ID_PATTERN = r"^le_[0-9a-f]{32}$"
QUARANTINE_ID_PATTERN = r"^q_[0-9a-f]{32}$"
SCHEMA_SUFFIX = ".schema.json"
EXAMPLES_DIR = "examples"

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


# --- the published documents: a JSON Schema and an example event per detail type ---------------------------------
def json_schema(model: type[Detail]) -> dict[str, Any]:
    """The JSON Schema of ``model``'s ``detail`` (draft 2020-12)."""
    schema = model.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": model.SLUG + SCHEMA_SUFFIX,
        "title": model.DETAIL_TYPE,
        "description": f"The detail of a {SOURCE} event of detail-type {model.DETAIL_TYPE}. {model.SUMMARY}",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


_R = "r_0e2500291ae016adea"  # the seed redemption of events/payloads/redemption_succeeded.json, its ids below
_ORDER = "ord_3VYCHwdV0YOOch2nm1RsTKNI"
_CUSTOMER = "cust_1g637SqVZnkdPNdAIZ7Ra879"
_RECORDED_AT = "2024-01-15T12:20:41.102Z"


def examples() -> list[Detail]:
    """One detail of each type, as the ledger's sample deliveries give them."""
    return [
        RedemptionRecorded(
            event_id=event_id(RedemptionRecorded.DETAIL_TYPE, _R),
            redemption_id=_R,
            status="SUCCEEDED",
            voucherify_status="SUCCEEDED",
            result="SUCCESS",
            redeemed_at="2024-01-15T12:20:38.635Z",
            recorded_at=_RECORDED_AT,
            recorded_by="webhook",
            customer_id=_CUSTOMER,
            order_id=_ORDER,
            order_amount=7000,
            order_total_amount=6000,
            discount_amount=1000,
            amount_unit="currency",
            voucher_code="Always-add-prods-5",
            voucher_id="v_VZgTRbJvauZR7Ub7exOtAg0MqxXljPpA",
            voucher_type="DISCOUNT_VOUCHER",
            campaign_id="camp_kwMyXFKquedx8FzXNpVPN7QU",
        ),
        RedemptionFailed(
            event_id=event_id(RedemptionFailed.DETAIL_TYPE, "rf_0e3ac5685ba431c104"),
            redemption_id="rf_0e3ac5685ba431c104",
            status="FAILED",
            voucherify_status="FAILED",
            result="FAILURE",
            failure_code="no_applicable_redeemables",
            redeemed_at="2024-02-02T12:12:12.918Z",
            recorded_at="2024-02-02T12:12:15.240Z",
            recorded_by="webhook",
            customer_id=_CUSTOMER,
            amount_unit="currency",
        ),
        RedemptionRolledBack(
            event_id=event_id(RedemptionRolledBack.DETAIL_TYPE, _R, "rr_0e3ac8762299fef1e3"),
            redemption_id=_R,
            rollback_id="rr_0e3ac8762299fef1e3",
            status="ROLLED_BACK",
            rolled_back_at="2024-01-16T09:02:11.520Z",
            recorded_at="2024-01-16T09:02:13.004Z",
            recorded_by="worker",
            voucherify_status="SUCCEEDED",
            result="SUCCESS",
            amount=-1000,
            amount_unit="currency",
            order_status="CANCELED",
            customer_id=_CUSTOMER,
            order_id=_ORDER,
            voucher_code="Always-add-prods-5",
            campaign_id="camp_kwMyXFKquedx8FzXNpVPN7QU",
        ),
        RollbackRequestFailed(
            event_id=event_id(RollbackRequestFailed.DETAIL_TYPE, "REDEMPTION#" + _R, "REQUEST#cancel-1001", "1"),
            request_id="cancel-1001",
            redemption_id=_R,
            state="FAILED",
            attempts=1,
            rollback_id="rrf_0e3ac8762299fef1e4",
            error_status=200,
            error_key="customer_rules_violated",
            failed_at="2024-01-16T09:02:13.004Z",
        ),
        DeliveryQuarantined(
            event_id=event_id(
                DeliveryQuarantined.DETAIL_TYPE, "q_78efad7307421debd3e0e08df1f2147c", "2024-01-15T12:20:41.102Z"
            ),
            quarantine_id="q_78efad7307421debd3e0e08df1f2147c",
            reason="the payload does not match the redemption.succeeded schema",
            route="redemption-succeeded",
            event_type="redemption.succeeded",
            delivery_id="whs_0e16e42bc6e0c65b57",
            received_at="2024-01-15T12:20:41.102Z",
            expires_at="2024-02-14T12:20:41.000Z",
        ),
        ReconciledMissing(
            event_id=event_id(ReconciledMissing.DETAIL_TYPE, "r_0e6ff48b91cfa02e97"),
            redemption_id="r_0e6ff48b91cfa02e97",
            status="SUCCEEDED",
            result="SUCCESS",
            redeemed_at="2024-03-01T10:00:02.310Z",
            recorded_at="2024-03-01T11:00:14.871Z",
            order_id="ord_p6B1A0y805yUQQaCw4bC6Fbk",
            customer_id=_CUSTOMER,
        ),
    ]


def example_event(detail: Detail) -> dict[str, Any]:
    """The whole event a rule's target receives for ``detail``, as EventBridge delivers it."""
    time = str(getattr(detail, "recorded_at", None) or getattr(detail, "failed_at", None) or _RECORDED_AT)
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, detail.event_id)),
        "detail-type": detail.DETAIL_TYPE,
        "source": SOURCE,
        "account": "123456789012",
        "time": time[:19] + "Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": json.loads(detail.as_json()),
    }


def _text(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def documents() -> dict[str, str]:
    """File (relative to docs/events) → the text it holds: every schema, then every example."""
    found = {model.SLUG + SCHEMA_SUFFIX: _text(json_schema(model)) for model in DETAILS}
    for detail in examples():
        found[f"{EXAMPLES_DIR}/{detail.SLUG}.json"] = _text(example_event(detail))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voucherify_ledger.events.details",
        description="Writes the ledger events' JSON Schemas and example events.",
    )
    parser.add_argument("directory", nargs="?", default="docs/events", type=Path)
    parser.add_argument("--check", action="store_true", help="only report the files that differ")
    args = parser.parse_args(argv)
    stale = []
    for name, text in documents().items():
        path = args.directory / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for name in stale:
        print(f"{args.directory / name} is out of date", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":  # make schema (docs/events/)
    sys.exit(main())
