"""The ledger table's layout: key prefixes and key builders, item states, indexes and the timestamp format.

One table keyed ``pk``/``sk``; the item families and their keys are listed in ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, overload

# --- redemptions and their rollbacks --------------------------------------------------------------
REDEMPTION_PREFIX = "REDEMPTION#"  # REDEMPTION#<r_…> / REDEMPTION: a redemption and its rollbacks
REDEMPTION_SK = "REDEMPTION"
ROLLBACK_PREFIX = "rollback#"  # rollback#<rr_…>: the attribute of the redemption item that holds one rollback
ROLLBACK_IDS = frozenset({"rollback_id", "redemption_id"})  # of a rollback's summary, not stored in its attribute
RAW_SK_PREFIX = "RAW#"  # REDEMPTION#<r_…> / RAW#<sha256>: a raw delivery too large to keep inline
CONFLICT_SK_PREFIX = "CONFLICT#"  # REDEMPTION#<r_…> / CONFLICT#<sha256>: a delivery of a known id with other content
SUCCEEDED = "SUCCEEDED"
REDEMPTION_FAILED = "FAILED"  # the ledger status of a failed redemption attempt (rf_…)
ROLLED_BACK = "ROLLED_BACK"
# The redemption items' GSIs, each sorted by ``redeemed_at`` (``list_by``): key → index name, key → its attribute.
INDEXES = {
    "order": "ByOrder",
    "order_source_id": "ByOrderSourceId",  # the merchant's order id (Voucherify's order.source_id)
    "customer": "ByCustomer",
    "voucher_code": "ByVoucherCode",
}
INDEX_KEYS = {
    "order": "order_id",
    "order_source_id": "order_source_id",
    "customer": "customer_id",
    "voucher_code": "voucher_code",
}

# Sparse GSI of the recorded redemptions by the UTC day Voucherify created them (``redeemed_day``, written with the
# redemption itself, never by a rollback that came first), sorted by ``redeemed_at``: what the ledger holds of a time
# range, for the reconciler to compare with what Voucherify lists. Keys only.
BY_REDEEMED_DAY = "ByRedeemedDay"


def redeemed_day(redeemed_at: str) -> str:
    """``redeemed_day`` of an ISO ``redeemed_at`` (``YYYY-MM-DD``, UTC as the ledger writes times)."""
    return redeemed_at[:10]


# --- quarantine records ---------------------------------------------------------------------------
QUARANTINE_PREFIX = "QUARANTINE#"  # QUARANTINE#<q_…> / QUARANTINE: an authentic delivery that failed validation
QUARANTINE_SK = "QUARANTINE"
# Sparse GSI keyed on ``quarantine_id``, an attribute only quarantine records carry: listing them reads nothing else.
QUARANTINE_INDEX = "Quarantine"

# --- rollback requests (the rollback worker) --------------------------------------------------------
REQUEST_SK_PREFIX = "REQUEST#"  # REDEMPTION#<r_…> / REQUEST#<request id>: a rollback request of a redemption
ORDER_PREFIX = "ORDER#"  # ORDER#<ord_…> / REQUEST#<request id>: an order-level request, fanned out
# ORDER_SOURCE#<order source id> / REQUEST#<request id>: the same, naming the merchant's order id. Never the same key
# as an ORDER# one (the prefixes differ at their 6th character); 13 + 4 × 500 bytes at most, within 2,048.
ORDER_SOURCE_PREFIX = "ORDER_SOURCE#"
OrderField = Literal["order_id", "order_source_id"]  # what an order-level request names its order by
ORDER_REQUEST_PREFIXES: dict[OrderField, str] = {"order_id": ORDER_PREFIX, "order_source_id": ORDER_SOURCE_PREFIX}
# The attribute of an order-level request that names its order (never the indexes' own attribute: no index lists it).
ORDER_REQUEST_FIELDS: dict[OrderField, str] = {
    "order_id": "source_order_id",
    "order_source_id": "source_order_source_id",
}
REJECTED_PREFIX = "REQUEST#"  # REQUEST#<request id> / REQUEST: a malformed request (it names no redemption)
REJECTED_SK = "REQUEST"
PENDING = "PENDING"  # being processed
RETRYING = "RETRYING"  # a transient problem; SQS delivers the message again at next_attempt_at
ALREADY_ROLLED_BACK = "ALREADY_ROLLED_BACK"  # the goal was reached before this request: no rollback made by it
FAILED = "FAILED"  # permanent: error.key / error.message say why (or dead_lettered after the last attempt)
FANNED_OUT = "FANNED_OUT"  # an order request: one message per redemption was queued
REQUEST_STATES = (PENDING, RETRYING, SUCCEEDED, ALREADY_ROLLED_BACK, FAILED, FANNED_OUT)

# --- the reconciler's state -------------------------------------------------------------------------------------
RECONCILE_PK = "RECONCILE"  # RECONCILE / STATE: the checkpoint, the lease of the run in progress, the last run
RECONCILE_STATE_SK = "STATE"
RECONCILE_JOB_SK_PREFIX = "JOB#"  # RECONCILE / JOB#<job id>: a backfill, continued run after run until done
JOB_RUNNING = "RUNNING"
JOB_DONE = "DONE"

# --- Powertools idempotency records that earlier versions of the worker kept (TTL expires_at ends them) -----
IDEMPOTENCY_PK = "IDEMPOTENCY#rollback-worker"  # the events function's filter leaves them out


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def redemption_key(redemption_id: str) -> dict[str, Any]:
    return _key(REDEMPTION_PREFIX + redemption_id, REDEMPTION_SK)


def redemption_item_key(redemption_id: str, sk: str) -> dict[str, Any]:
    """An item beside a redemption (``RAW#…``, ``CONFLICT#…``, ``REQUEST#…``)."""
    return _key(REDEMPTION_PREFIX + redemption_id, sk)


def quarantine_key(quarantine_id: str) -> dict[str, Any]:
    return _key(QUARANTINE_PREFIX + quarantine_id, QUARANTINE_SK)


def request_key(redemption_id: str, request_id: str) -> dict[str, Any]:
    return redemption_item_key(redemption_id, REQUEST_SK_PREFIX + request_id)


def order_request_key(order: str, request_id: str, by: OrderField = "order_id") -> dict[str, Any]:
    """An order-level request's key: ``ORDER#<ord_…>``, or ``ORDER_SOURCE#<order source id>`` (``by``)."""
    return _key(ORDER_REQUEST_PREFIXES[by] + order, REQUEST_SK_PREFIX + request_id)


def rejected_request_key(request_id: str) -> dict[str, Any]:
    return _key(REJECTED_PREFIX + request_id, REJECTED_SK)


def reconcile_state_key() -> dict[str, Any]:
    return _key(RECONCILE_PK, RECONCILE_STATE_SK)


def reconcile_job_key(job_id: str) -> dict[str, Any]:
    return _key(RECONCILE_PK, RECONCILE_JOB_SK_PREFIX + job_id)


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    """A time as the ledger writes it: UTC, milliseconds, ``Z``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: object) -> datetime | None:
    """A time as the ledger and Voucherify write it (ISO 8601, ``Z`` or an offset), or None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
