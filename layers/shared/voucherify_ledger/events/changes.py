"""Which ledger changes are events: one DynamoDB stream record (its old and new image) to zero or more events.

- a redemption item (``REDEMPTION#<r_…>`` / ``REDEMPTION``) that gains ``redemption_recorded_at`` gives
  ``Redemption Recorded`` (``r_…``) or ``Redemption Failed`` (``rf_…``), and also ``Reconciled Missing`` when the
  reconciler wrote it (its ``redemption_delivery`` came by the route ``reconciler``);
- each id newly in its ``rollback_ids`` gives ``Redemption Rolled Back`` (read from the ``rollback#<rr_…>`` attribute);
- a rollback request item (``…/REQUEST#<id>``, ``REQUEST#<id>`` / ``REQUEST``) whose ``state`` becomes ``FAILED``
  gives ``Rollback Request Failed``;
- a quarantine record (``QUARANTINE#<q_…>``) that appears gives ``Delivery Quarantined``.

Nothing else does: a duplicate delivery writes nothing, raw copies, conflicts, idempotency records and the
reconciler's state are no ledger changes a consumer follows, a request moving between its other states is the
worker's business, a failed rollback (``rrf_…``) leaves the redemption as it was, and a REMOVE is TTL or an
operator's clean-up. Everything is read from the images; nothing here talks to AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from voucherify_ledger.events.details import (
    DeliveryQuarantined,
    Detail,
    ReconciledMissing,
    RedemptionFailed,
    RedemptionRecorded,
    RedemptionRolledBack,
    RollbackRequestFailed,
    event_id,
)
from voucherify_ledger.ledger.keys import (
    FAILED,
    QUARANTINE_PREFIX,
    QUARANTINE_SK,
    REDEMPTION_FAILED,
    REDEMPTION_PREFIX,
    REDEMPTION_SK,
    REJECTED_PREFIX,
    REJECTED_SK,
    REQUEST_SK_PREFIX,
    ROLLBACK_PREFIX,
    iso,
)

RECONCILER_ROUTE = "reconciler"  # the route of the raw copy the reconciler keeps (voucherify_ledger.reconcile.run)
# What a redemption's events say of it, by the attribute names of its item (ledger.summaries).
REDEMPTION_FIELDS = (
    "redemption_id",
    "voucherify_status",
    "result",
    "redeemed_at",
    "customer_id",
    "holder_id",
    "order_id",
    "order_source_id",
    "order_amount",
    "order_total_amount",
    "amount_unit",
    "voucher_code",
    "voucher_id",
    "voucher_type",
    "campaign_id",
    "promotion_tier_id",
    "promotion_stack_id",
    "stack_role",
    "parent_redemption_id",
    "child_redemption_ids",
    "channel_type",
)
GIVEN_FIELDS = ("discount_amount", "amount", "reward_id", "reward_type")  # what a succeeded redemption gave
# A rollback's event: what its redemption's item says of the redemption …
ROLLED_BACK_REDEMPTION_FIELDS = (
    "customer_id",
    "order_id",
    "order_source_id",
    "voucher_code",
    "campaign_id",
    "promotion_tier_id",
    "stack_role",
    "parent_redemption_id",
)
# … and what its ``rollback#<rr_…>`` attribute says of the rollback.
ROLLBACK_FIELDS = (
    "rolled_back_at",
    "recorded_at",
    "voucherify_status",
    "result",
    "amount",
    "amount_unit",
    "credits_restored",
    "points_restored",
    "order_status",
)
REQUEST_FIELDS = ("request_id", "redemption_id", "parent_request_id", "attempts", "rollback_id")
QUARANTINE_FIELDS = ("quarantine_id", "reason", "route", "event_type", "delivery_id")


@dataclass(frozen=True)
class LedgerEvent:
    """One event to put: its detail, and when the change happened (the stream record's time)."""

    detail: Detail
    time: datetime | None = None

    @property
    def detail_type(self) -> str:
        return self.detail.DETAIL_TYPE


def plain(value: Any) -> Any:
    """A deserialized image value as JSON has it: numbers as int (or float for a fraction), sets as sorted lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _pick(item: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: plain(item[name]) for name in names if item.get(name) is not None}


def change_time(record: DynamoDBRecord) -> datetime | None:
    """The record's ``ApproximateCreationDateTime`` (epoch seconds) as a UTC time, or None without one."""
    stream = record.get("dynamodb") or {}
    value = stream.get("ApproximateCreationDateTime")
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def events_of(record: DynamoDBRecord | Mapping[str, Any]) -> list[LedgerEvent]:
    """The events of one stream record (``Records[i]`` of a Lambda DynamoDB Streams event), in the order to put them."""
    if not isinstance(record, DynamoDBRecord):
        record = DynamoDBRecord(dict(record))
    stream = record.dynamodb
    if stream is None or record.event_name is None or record.event_name.name == "REMOVE":
        return []
    keys = stream.keys
    pk, sk = str(keys.get("pk", "")), str(keys.get("sk", ""))
    old, new = stream.old_image, stream.new_image
    if record.event_name.name == "MODIFY" and "OldImage" not in stream:
        # Every MODIFY would look new: the stream must carry both images.
        raise ValueError(f"a MODIFY without its old image (StreamViewType {stream.get('StreamViewType')})")
    time = change_time(record)
    if pk.startswith(REDEMPTION_PREFIX) and sk == REDEMPTION_SK:
        details = redemption_details(old, {"redemption_id": pk.removeprefix(REDEMPTION_PREFIX), **new})
    elif sk.startswith(REQUEST_SK_PREFIX) or (pk.startswith(REJECTED_PREFIX) and sk == REJECTED_SK):
        details = request_details(pk, sk, old, new)
    elif pk.startswith(QUARANTINE_PREFIX) and sk == QUARANTINE_SK:
        details = quarantine_details(old, new)
    else:
        details = []  # raw copies, conflicts, idempotency records, the reconciler's state
    return [LedgerEvent(detail, time) for detail in details]


# --- redemptions and their rollbacks -----------------------------------------------------------------------
def redemption_details(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Detail]:
    details: list[Detail] = []
    if new.get("redemption_recorded_at") and not old.get("redemption_recorded_at"):
        details.extend(_recorded(new))
    added = set(new.get("rollback_ids") or ()) - set(old.get("rollback_ids") or ())
    details.extend(_rolled_back(new, str(rollback_id)) for rollback_id in sorted(added))
    return details


def _failed(item: Mapping[str, Any]) -> bool:
    return (
        str(item.get("redemption_id", "")).startswith("rf_")
        or item.get("status") == REDEMPTION_FAILED
        or item.get("result") == "FAILURE"
    )


def _recorded(item: Mapping[str, Any]) -> list[Detail]:
    """``Redemption Recorded`` or ``Redemption Failed``, and ``Reconciled Missing`` for the reconciler's write."""
    audit = item.get("redemption_delivery") or {}
    by_reconciler = audit.get("route") == RECONCILER_ROUTE
    redemption_id = str(item["redemption_id"])
    common = {
        **_pick(item, REDEMPTION_FIELDS),
        "recorded_at": item["redemption_recorded_at"],
        "recorded_by": "reconciler" if by_reconciler else "webhook",
        "replayed_from": audit.get("replayed_from"),
    }
    details: list[Detail] = []
    status = str(item.get("status") or "")
    if _failed(item):
        status = "FAILED"
        details.append(
            RedemptionFailed(
                event_id=event_id(RedemptionFailed.DETAIL_TYPE, redemption_id),
                **common,
                status="FAILED",
                failure_code=item.get("failure_code"),
            )
        )
    else:
        status = status if status in ("SUCCEEDED", "ROLLED_BACK") else "SUCCEEDED"
        details.append(
            RedemptionRecorded(
                event_id=event_id(RedemptionRecorded.DETAIL_TYPE, redemption_id),
                **common,
                **_pick(item, GIVEN_FIELDS),
                status=status,
            )
        )
    if by_reconciler:
        details.append(
            ReconciledMissing(
                event_id=event_id(ReconciledMissing.DETAIL_TYPE, redemption_id),
                **_pick(item, ("redemption_id", "result", "redeemed_at", "order_id", "order_source_id", "customer_id")),
                status=status,
                recorded_at=item["redemption_recorded_at"],
                backfill_job_id=item.get("reconcile_job_id"),
            )
        )
    return details


def _rolled_back(item: Mapping[str, Any], rollback_id: str) -> Detail:
    entry = item.get(ROLLBACK_PREFIX + rollback_id) or {}
    audit = entry.get("delivery") or {}
    redemption_id = str(item["redemption_id"])
    source = entry.get("source")
    return RedemptionRolledBack(
        event_id=event_id(RedemptionRolledBack.DETAIL_TYPE, redemption_id, rollback_id),
        redemption_id=redemption_id,
        rollback_id=rollback_id,
        status=item.get("status") or "ROLLED_BACK",
        recorded_by=source if source in ("webhook", "worker", "reconciler") else "webhook",
        replayed_from=audit.get("replayed_from"),
        **_pick(entry, ROLLBACK_FIELDS),
        **_pick(item, ROLLED_BACK_REDEMPTION_FIELDS),
    )


# --- rollback requests --------------------------------------------------------------------------------------
def request_details(pk: str, sk: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Detail]:
    if new.get("state") != FAILED or old.get("state") == FAILED:
        return []
    error = new.get("error") or {}
    if not isinstance(error, Mapping):
        error = {}
    fields = _pick(new, REQUEST_FIELDS)
    request_id = str(fields.pop("request_id", None) or (sk if sk != REJECTED_SK else pk).removeprefix("REQUEST#"))
    status = plain(error.get("status"))
    return [
        RollbackRequestFailed(
            event_id=event_id(RollbackRequestFailed.DETAIL_TYPE, pk, sk, str(fields.get("attempts", ""))),
            request_id=request_id,
            **fields,
            order_id=new.get("source_order_id"),
            order_source_id=new.get("source_order_source_id"),
            state="FAILED",
            dead_lettered=bool(new.get("dead_lettered")),
            error_status=status if isinstance(status, int) else None,
            error_key=error.get("key"),
            voucherify_request_id=error.get("request_id"),
            resource_id=error.get("resource_id"),
            resource_type=error.get("resource_type"),
            failed_at=new.get("updated_at"),
        )
    ]


# --- quarantine records -------------------------------------------------------------------------------------
def quarantine_details(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Detail]:
    if not new.get("quarantine_id") or old.get("quarantine_id"):
        return []
    expires = plain(new.get("expires_at"))
    quarantine_id = str(new["quarantine_id"])
    received_at = new.get("first_received_at")
    return [
        DeliveryQuarantined(
            event_id=event_id(DeliveryQuarantined.DETAIL_TYPE, quarantine_id, str(received_at or "")),
            **_pick(new, QUARANTINE_FIELDS),
            received_at=received_at,
            expires_at=iso(datetime.fromtimestamp(expires, UTC)) if isinstance(expires, (int, float)) else None,
        )
    ]
