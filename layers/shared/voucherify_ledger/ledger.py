"""The DynamoDB ledger of redemptions and rollbacks: the only module that talks to DynamoDB.

One table, items keyed ``pk``/``sk``:

================================  ==================  ==============================================
pk                                sk                  item
================================  ==================  ==============================================
``REDEMPTION#<r_…>``              ``REDEMPTION``      the redemption: status, code, campaign, customer
                                                      id, order id, amounts, dates, rollback ids, its
                                                      raw delivery, and one attribute
                                                      ``rollback#<rr_…>`` per rollback (see below)
``QUARANTINE#<q_…>``              ``QUARANTINE``      an authentic delivery that failed validation
``REDEMPTION#<r_…>``              ``REQUEST#<id>``    a rollback request of the rollback worker: state,
                                                      attempts, error, rollback id
``ORDER#<ord_…>``                 ``REQUEST#<id>``    an order-level rollback request (fanned out)
``REQUEST#<id>``                  ``REQUEST``         a malformed rollback request, with its errors
``IDEMPOTENCY#rollback-worker``   ``rollback-call#…`` Powertools Idempotency record of one API call
                                                      (TTL ``expires_at``)
``REDEMPTION#<r_…>``              ``ROLLBACK#<rr_…>`` a rollback as written before rollbacks moved into
                                                      the redemption item (read, never written)
================================  ==================  ==============================================

One query on ``pk`` returns a redemption with its rollbacks. Sparse GSIs on the redemption item answer
"redemptions of an order / a customer / a voucher code" (``ByOrder``, ``ByCustomer``,
``ByVoucherCode``, sorted by ``redeemed_at``); they key on Voucherify's ids and codes, never on names,
emails or other personal data, and project only non-personal summary attributes. The sparse ``Quarantine``
GSI (keyed on ``quarantine_id``) holds the quarantine records alone, without their raw deliveries.

A rollback is the map attribute ``rollback#<rr_…>`` of its redemption's item: ``source`` (webhook or worker),
``recorded_at``, the rollback's summary (``rolled_back_at``, ``result``, ``reason``, ``amount`` …) and its
``delivery`` (the raw delivery, zlib, with route and arrival time). Recording it is one UpdateItem of that
one item: the attribute, ``rollback_ids`` (or ``failed_rollback_ids``) and the status ``ROLLED_BACK``, under
the condition that the ``rr_…`` is in neither set. A single-item write is atomic without a transaction, and
DynamoDB bills it once (a transaction bills every item twice): a rollback costs 1 write unit per started KB
of the redemption item, instead of twice the rollback item's KBs plus twice the redemption item's. The
rollback worker adds its request item to the same write, which then is a transaction of those two items.

Writes are idempotent on Voucherify's ids, independent of arrival order, and atomic: a rollback writes
itself into its redemption and flips it to ``ROLLED_BACK`` in one write; a redemption that arrives after its
rollback fills in the details but keeps the status. The webhook and the rollback worker record a rollback
through the same write, so the same ``rr_…`` is recorded once whichever reports it first.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from voucherify_ledger.models import (
    EventCustomerRedemption,
    EventRedemptionRollbackSucceededData,
    EventRedemptionSucceededData,
    SimpleRedemption,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any

REDEMPTION_PREFIX = "REDEMPTION#"
REDEMPTION_SK = "REDEMPTION"
ROLLBACK_PREFIX = "rollback#"  # rollback#<rr_…>: the attribute of the redemption item that holds one rollback
ROLLBACK_SK_PREFIX = "ROLLBACK#"  # REDEMPTION#<r_…> / ROLLBACK#<rr_…>: a rollback item of the earlier layout
ROLLBACK_IDS = frozenset({"rollback_id", "redemption_id"})  # of a rollback's summary, not stored in its attribute
QUARANTINE_PREFIX = "QUARANTINE#"
QUARANTINE_SK = "QUARANTINE"
# Sparse GSI keyed on ``quarantine_id``, an attribute only quarantine records carry: listing them reads nothing else.
QUARANTINE_INDEX = "Quarantine"

SUCCEEDED = "SUCCEEDED"
ROLLED_BACK = "ROLLED_BACK"

INDEXES = {"order": "ByOrder", "customer": "ByCustomer", "voucher_code": "ByVoucherCode"}
INDEX_KEYS = {"order": "order_id", "customer": "customer_id", "voucher_code": "voucher_code"}

# --- rollback requests (the rollback worker; see the section at the end of Ledger) ---------------
REQUEST_SK_PREFIX = "REQUEST#"  # REDEMPTION#<r_…> / REQUEST#<request id>: a rollback request of a redemption
ORDER_PREFIX = "ORDER#"  # ORDER#<ord_…> / REQUEST#<request id>: an order-level request, fanned out
REJECTED_PREFIX = "REQUEST#"  # REQUEST#<request id> / REQUEST: a malformed request (it names no redemption)
REJECTED_SK = "REQUEST"
PENDING = "PENDING"  # being processed
RETRYING = "RETRYING"  # a transient problem; SQS delivers the message again at next_attempt_at
ALREADY_ROLLED_BACK = "ALREADY_ROLLED_BACK"  # the goal was reached before this request: no rollback made by it
FAILED = "FAILED"  # permanent: error.key / error.message say why (or dead_lettered after the last attempt)
FANNED_OUT = "FANNED_OUT"  # an order request: one message per redemption was queued
REQUEST_STATES = (PENDING, RETRYING, SUCCEEDED, ALREADY_ROLLED_BACK, FAILED, FANNED_OUT)
COUNTED_REQUEST_FIELDS = frozenset({"api_calls"})  # added up over the attempts, not overwritten


class StorageError(RuntimeError):
    """The ledger could not be written or read; the caller should answer 5xx so the sender retries."""


class StorageRefusedError(Exception):
    """DynamoDB refuses this write as it is, or would: a retry cannot help. ``reason`` says what a person can act on
    (an item over 400 KB, a number beyond 38 significant digits, a key over its length limit …), never a value.

    Not a ``StorageError``: the webhooks keep such a delivery in quarantine and answer 2xx instead of a 503 that
    Voucherify would retry until it disables the webhook."""

    def __init__(self, reason: str, *, item_too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.item_too_large = item_too_large


# DynamoDB's limits (moto enforces the item size and the table's key lengths, not the rest): checked before writing.
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024
MAX_NUMBER_DIGITS = 38
MAX_NUMBER_EXPONENT, MIN_NUMBER_EXPONENT = 125, -130
# The key attributes of the table and of its indexes, by their byte limit.
KEY_ATTRIBUTE_BYTES = {
    "pk": MAX_PARTITION_KEY_BYTES,
    "sk": MAX_SORT_KEY_BYTES,
    "order_id": MAX_PARTITION_KEY_BYTES,
    "customer_id": MAX_PARTITION_KEY_BYTES,
    "voucher_code": MAX_PARTITION_KEY_BYTES,
    "quarantine_id": MAX_PARTITION_KEY_BYTES,
    "redeemed_at": MAX_SORT_KEY_BYTES,
}
# A raw delivery whose compressed copy is larger than this is kept in an item of its own (``RAW#<sha256>`` beside the
# redemption), so a redemption item holding its delivery and many rollbacks stays far below 400 KB. Voucherify's
# deliveries compress to 1–3 KB; only unusual ones (a large metadata object, say) go out of line.
INLINE_RAW_BYTES = 32 * 1024
MAX_ERROR_CHARS = 500  # of one error line kept with a quarantined delivery
RAW_SK_PREFIX = "RAW#"  # REDEMPTION#<r_…> / RAW#<sha256>: a raw delivery too large to keep inline
CONFLICT_SK_PREFIX = "CONFLICT#"  # REDEMPTION#<r_…> / CONFLICT#<sha256>: a delivery of a known id with other content


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery as received, kept (compressed) for audit."""

    raw: bytes
    route: str
    received_at: datetime
    event_type: str | None = None
    delivery_id: str | None = None  # whs_… of the v2024 envelope
    event_id: str | None = None  # ev…_ of the v2024 envelope
    replayed_from: str | None = None  # q_… when an operator replayed a quarantined delivery


@dataclass(frozen=True)
class WriteOutcome:
    status: Literal["recorded", "duplicate"]
    redemption_id: str
    ledger_status: str | None = None
    rollback_id: str | None = None
    # A duplicate whose content differs from what the ledger holds: the conflicting delivery's record (CONFLICT#…).
    conflict_id: str | None = None
    conflicting_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestStart:
    """``begin_rollback_request``'s answer: go on (``proceed``), or the request is already finished."""

    proceed: bool
    item: dict[str, Any]


@dataclass(frozen=True)
class QuarantineOutcome:
    quarantine_id: str
    deliveries: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def compress(raw: bytes) -> bytes:
    return zlib.compress(raw, 6)


def decompress(blob: bytes) -> bytes:
    return zlib.decompress(blob)


def _av(value: Any) -> dict[str, Any]:
    """Python value → DynamoDB attribute value (the few types the ledger writes)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, Decimal)):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    if isinstance(value, (set, frozenset)):
        return {"SS": sorted(value)}
    if isinstance(value, (list, tuple)):
        return {"L": [_av(v) for v in value]}
    if isinstance(value, Mapping):
        return {"M": {k: _av(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__}")


def _number(value: int | Decimal) -> str:
    """A number as DynamoDB stores it, or StorageRefusedError where DynamoDB would refuse it (more than 38 significant
    digits, a magnitude beyond 1E+125 or below 1E-130, NaN or infinity)."""
    number = Decimal(value)
    if not number.is_finite():
        raise StorageRefusedError("a number that is not finite")
    if number:
        # normalize() would round to the context's 28 digits: count the digits themselves, less trailing zeros
        digits = len("".join(map(str, number.as_tuple().digits)).strip("0"))
        if digits > MAX_NUMBER_DIGITS:
            raise StorageRefusedError(f"a number of {digits} significant digits, beyond DynamoDB's {MAX_NUMBER_DIGITS}")
        if not MIN_NUMBER_EXPONENT <= number.adjusted() <= MAX_NUMBER_EXPONENT:
            raise StorageRefusedError("a number beyond DynamoDB's range (1E-130 to 9.99E+125)")
    return str(value)


def _key_value(name: str, value: Any) -> dict[str, Any]:
    """``_av`` of a key attribute (table or index key), refused when over DynamoDB's byte limit for it."""
    limit = KEY_ATTRIBUTE_BYTES.get(name)
    if limit is not None and isinstance(value, str) and len(value.encode("utf-8")) > limit:
        raise StorageRefusedError(f"{name} is {len(value.encode('utf-8'))} bytes, beyond DynamoDB's {limit} for a key")
    return _av(value)


def _plain(av: Mapping[str, Any]) -> Any:
    """DynamoDB attribute value → plain JSON-friendly Python value."""
    ((kind, value),) = av.items()
    if kind == "S" or kind == "BOOL":
        return value
    if kind == "N":
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "B":
        return bytes(value)
    if kind in ("SS", "NS", "BS"):
        return sorted(value)
    if kind == "L":
        return [_plain(v) for v in value]
    if kind == "M":
        return {k: _plain(v) for k, v in value.items()}
    return None


def _item(av_item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in av_item.items()}


def _compact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != ""}


def redemption_summary(data: EventCustomerRedemption, redemption: SimpleRedemption) -> dict[str, Any]:
    """The ledger's view of a redemption: ids, codes, amounts and dates; no names, emails or addresses."""
    order = redemption.order or data.order
    voucher = redemption.voucher or data.voucher
    tier = redemption.promotion_tier or data.promotion_tier
    customer_id = redemption.customer_id or (data.customer.id if data.customer else None)
    return _compact(
        {
            "redemption_id": redemption.id,
            "redeemed_at": iso(redemption.date),
            "voucherify_status": redemption.status,
            "result": redemption.result,
            "customer_id": customer_id,
            "order_id": order.id if order else None,
            "order_source_id": order.source_id if order else None,
            "order_amount": order.amount if order else None,
            "discount_amount": (
                (order.total_discount_amount if order.total_discount_amount is not None else order.discount_amount)
                if order
                else None
            ),
            "order_total_amount": order.total_amount if order else None,
            "amount": redemption.amount,
            "voucher_code": voucher.code if voucher else None,
            "voucher_id": voucher.id if voucher else None,
            "campaign_id": (voucher.campaign_id if voucher else None) or (data.campaign.id if data.campaign else None),
            "campaign_name": (data.campaign.name if data.campaign else None) or (voucher.campaign if voucher else None),
            "promotion_tier_id": tier.id if tier else None,
            "promotion_stack_id": data.promotion_stack.id if data.promotion_stack else None,
            "parent_redemption_id": redemption.redemption,
        }
    )


def rollback_summary(rollback: SimpleRedemption, redemption_id: str) -> dict[str, Any]:
    return _compact(
        {
            "rollback_id": rollback.id,
            "redemption_id": redemption_id,
            "rolled_back_at": iso(rollback.date),
            "voucherify_status": rollback.status,
            "result": rollback.result,
            "reason": rollback.reason,
            "amount": rollback.amount,
            "failure_code": rollback.failure_code,
            "failure_message": rollback.failure_message,
            "order_status": rollback.order.status if rollback.order else None,
        }
    )


def rollback_succeeded(rollback: SimpleRedemption) -> bool:
    return rollback.result != "FAILURE" and rollback.status != "FAILED"


def _now() -> datetime:
    return datetime.now(UTC)


class _Update:
    """Builds an UpdateItem expression from named assignments."""

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.adds: list[str] = []
        self.removes: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def _ref(self, name: str, value: Any) -> tuple[str, str]:
        index = len(self.names)
        try:
            encoded = _key_value(name, value)
        except StorageRefusedError as refused:
            raise StorageRefusedError(
                refused.reason if refused.reason.startswith(name) else f"{name}: {refused}"
            ) from None
        self.names[f"#n{index}"] = name
        self.values[f":v{index}"] = encoded
        return f"#n{index}", f":v{index}"

    def set(self, name: str, value: Any) -> _Update:
        n, v = self._ref(name, value)
        self.sets.append(f"{n} = {v}")
        return self

    def set_if_absent(self, name: str, value: Any) -> _Update:
        n, v = self._ref(name, value)
        self.sets.append(f"{n} = if_not_exists({n}, {v})")
        return self

    def add(self, name: str, value: Any) -> _Update:
        n, v = self._ref(name, value)
        self.adds.append(f"{n} {v}")
        return self

    def remove(self, name: str) -> _Update:
        self.removes.append(self.name_of(name))
        return self

    def name_of(self, attribute: str) -> str:
        for placeholder, name in self.names.items():
            if name == attribute:
                return placeholder
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def params(self) -> dict[str, Any]:
        expression = "SET " + ", ".join(self.sets)
        if self.adds:
            expression += " ADD " + ", ".join(self.adds)
        if self.removes:
            expression += " REMOVE " + ", ".join(self.removes)
        return {
            "UpdateExpression": expression,
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values,
        }


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _failure(exc: ClientError, what: str) -> StorageError | StorageRefusedError:
    """A refused write, told apart: DynamoDB judging the request invalid (ValidationException, or a transaction
    cancelled for a ValidationError) will judge it so again — a StorageRefusedError; anything else (throttling,
    conflicts, 5xx, a missing table or permission the operator can fix) may pass on a retry — a StorageError."""
    code = _error_code(exc)
    reasons = [str(r.get("Code") or "") for r in exc.response.get("CancellationReasons") or []]
    if code == "ValidationException" or (code == "TransactionCanceledException" and "ValidationError" in reasons):
        message = str(exc.response.get("Error", {}).get("Message", ""))
        for reason in exc.response.get("CancellationReasons") or []:
            if reason.get("Code") == "ValidationError":
                message = str(reason.get("Message") or message)
        too_large = "size" in message.lower() and "exceed" in message.lower()
        # DynamoDB's messages name limits, not values; only known ones are repeated, the rest summarised.
        detail = "the item would exceed DynamoDB's 400 KB item size" if too_large else "DynamoDB refused it as invalid"
        return StorageRefusedError(f"the {what} cannot be stored as it is: {detail} ({code})", item_too_large=too_large)
    return StorageError(f"DynamoDB refused the {what} write: {code}")


def _old_item(exc: ClientError) -> dict[str, Any] | None:
    """The item a failed condition found (``ReturnValuesOnConditionCheckFailure: ALL_OLD``), if DynamoDB sent it."""
    item = exc.response.get("Item")
    if not item:
        for reason in exc.response.get("CancellationReasons") or []:
            item = reason.get("Item")
            break
    return _item(item) if item else None


def summary_digest(summary: Mapping[str, Any]) -> str:
    """A fingerprint of what the ledger records of a redemption: a redelivery of the same event has the same one."""
    canonical = json.dumps(summary, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def quarantine_id_for(raw: bytes) -> str:
    """Same bytes, same quarantine record: a poison delivery retried by Voucherify is stored once."""
    return "q_" + hashlib.sha256(raw).hexdigest()[:32]


class Ledger:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = client

    # --- writes ---------------------------------------------------------------------------------
    def record_redemption(self, data: EventRedemptionSucceededData, delivery: Delivery) -> WriteOutcome:
        """One conditional UpdateItem of the redemption item, unless the redemption is recorded already: then nothing
        is written and the outcome is ``duplicate`` (from the item the condition found: no second read), with the
        delivery kept as a conflict (``CONFLICT#…``) when what it says of the redemption differs."""
        redemption = data.redemption
        summary = redemption_summary(data, redemption)
        digest = summary_digest(summary)
        key = self._redemption_key(redemption.id)

        def update(audit: dict[str, Any]) -> tuple[_Update, str]:
            update = _Update()
            for name, value in summary.items():
                update.set(name, value)
            update.set("entity", "redemption")
            update.set_if_absent("status", SUCCEEDED)
            update.set("redemption_recorded_at", iso(delivery.received_at))
            update.set("updated_at", iso(delivery.received_at))
            update.set("redemption_digest", digest)
            update.set("redemption_delivery", audit)
            return update, f"attribute_not_exists({update.name_of('redemption_recorded_at')})"

        # ALL_NEW: the status a rollback that came first left in place. Returned values cost no capacity.
        applied, item = self._write_with_delivery(key, delivery, update, what="redemption", return_new=True)
        if applied:
            return WriteOutcome("recorded", redemption.id, (item or {}).get("status") or SUCCEEDED)
        old = item if item is not None else self._get(key, projection=("status", "redemption_digest")) or {}
        outcome = WriteOutcome("duplicate", redemption.id, old.get("status"))
        if old.get("redemption_digest") not in (None, digest):
            differing = tuple(sorted(k for k in summary if old.get(k) != summary[k] and k in old)) or ("content",)
            conflict_id = self._keep_conflict(redemption.id, delivery, summary, differing)
            outcome = replace(outcome, conflict_id=conflict_id, conflicting_fields=differing)
        return outcome

    def record_rollback(
        self, data: EventRedemptionRollbackSucceededData, delivery: Delivery, *, source: str = "webhook"
    ) -> WriteOutcome:
        return self._write_rollback(data, delivery, source=source)

    def _write_rollback(
        self,
        data: EventRedemptionRollbackSucceededData,
        delivery: Delivery,
        *,
        source: str,
        also: Sequence[Mapping[str, Any]] = (),
    ) -> WriteOutcome:
        """The one write path of a rollback (``rr_…``), whoever reports it first — the webhook or the worker.

        One write of the redemption item: the rollback's attribute ``rollback#<rr_…>``, the redemption flipped to
        ``ROLLED_BACK`` (or the failed rollback noted), under the condition that the ``rr_…`` is not recorded yet
        (in neither ``rollback_ids`` nor ``failed_rollback_ids``). An UpdateItem, or with ``also`` (extra
        ``TransactItems``, e.g. the worker's request item) or a raw delivery kept out of line, a transaction whose
        first item it is. When the rollback is already recorded nothing is written and the outcome is ``duplicate``.
        """
        rollback = data.redemption_rollback
        redemption_id = data.redemption_id
        when = iso(delivery.received_at)
        # the attribute's name says the rollback's id, the item the redemption's
        summary = {k: v for k, v in rollback_summary(rollback, redemption_id).items() if k not in ROLLBACK_IDS}
        succeeded = rollback_succeeded(rollback)

        def update(audit: dict[str, Any]) -> tuple[_Update, str]:
            update = _Update()
            if data.redemption is not None and data.redemption.id == redemption_id:
                for name, value in redemption_summary(data, data.redemption).items():
                    update.set_if_absent(name, value)
            else:
                update.set_if_absent("redemption_id", redemption_id)
            update.set_if_absent("entity", "redemption")
            update.set(
                ROLLBACK_PREFIX + rollback.id, {"source": source, "recorded_at": when, **summary, "delivery": audit}
            )
            if succeeded:
                update.set("status", ROLLED_BACK)
                update.set("rolled_back_at", iso(rollback.date))
                update.add("rollback_ids", {rollback.id})
            else:
                update.add("failed_rollback_ids", {rollback.id})
            update.set("updated_at", when)
            recorded, failed = update.name_of("rollback_ids"), update.name_of("failed_rollback_ids")
            update.values[":rollback_id"] = _av(rollback.id)
            return update, (
                f"(attribute_not_exists({recorded}) OR NOT contains({recorded}, :rollback_id)) AND "
                f"(attribute_not_exists({failed}) OR NOT contains({failed}, :rollback_id))"
            )

        key = self._redemption_key(redemption_id)
        applied, old = self._write_with_delivery(key, delivery, update, what="rollback", also=also)
        if not applied:
            status = (old or {}).get("status") if old is not None else self._status_of(redemption_id)
            return WriteOutcome("duplicate", redemption_id, status, rollback.id)
        return WriteOutcome("recorded", redemption_id, ROLLED_BACK if succeeded else None, rollback.id)

    # --- the conditional write of an item that keeps a raw delivery ------------------------------------
    def _write_with_delivery(
        self,
        key: dict[str, Any],
        delivery: Delivery,
        build: Callable[[dict[str, Any]], tuple[_Update, str]],
        *,
        what: str,
        also: Sequence[Mapping[str, Any]] = (),
        return_new: bool = False,
    ) -> tuple[bool, dict[str, Any] | None]:
        """Applies ``build(audit)`` (an update and its condition) to ``key``: ``(True, the new item if asked)``, or
        ``(False, the item the condition found)`` when it failed (None if DynamoDB did not send it).

        The raw delivery goes into the audit map when its compressed copy is small (``INLINE_RAW_BYTES``), else into
        its own item ``RAW#<sha256>`` under the same partition, written in the same transaction. When DynamoDB says
        the item would pass 400 KB (a redemption holding many rollbacks), the write is made once more with the raw
        delivery out of line; if that is refused too, StorageRefusedError says why."""
        compressed = compress(delivery.raw)
        inline = len(compressed) <= INLINE_RAW_BYTES
        while True:
            audit = self._delivery_audit(delivery, compressed if inline else None)
            update, condition = build(audit)
            extra = list(also) if inline else [self._raw_put(key, delivery, compressed, audit), *also]
            try:
                return self._conditional_update(key, update, condition, extra, what=what, return_new=return_new)
            except StorageRefusedError as refused:
                if not (inline and refused.item_too_large):
                    raise
                inline = False

    def _conditional_update(
        self,
        key: dict[str, Any],
        update: _Update,
        condition: str,
        extra: Sequence[Mapping[str, Any]],
        *,
        what: str,
        return_new: bool,
    ) -> tuple[bool, dict[str, Any] | None]:
        write: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": key,
            "ConditionExpression": condition,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            **update.params(),
        }
        try:
            if extra:
                self.client.transact_write_items(TransactItems=[{"Update": write}, *extra])
                return True, self._get(key, projection=("status",)) if return_new else None
            answer = self.client.update_item(**write, ReturnValues="ALL_NEW" if return_new else "NONE")
        except ClientError as exc:
            code = _error_code(exc)
            if code == "ConditionalCheckFailedException" or (
                code == "TransactionCanceledException" and self._first_condition_failed(exc)
            ):
                return False, _old_item(exc)
            raise _failure(exc, what) from exc
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB could not be reached: {type(exc).__name__}") from exc
        return True, _item(answer["Attributes"]) if return_new and answer.get("Attributes") else None

    def _raw_put(
        self, key: Mapping[str, Any], delivery: Delivery, compressed: bytes, audit: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The transaction item that keeps a raw delivery beside its redemption: same bytes, same item. An Update
        (which creates the item) rather than a Put, so the functions need no PutItem permission."""
        update = _Update()
        update.set("entity", "raw_delivery")
        update.set("raw_zlib", compressed)
        update.set("raw_bytes", len(delivery.raw))
        update.set("route", delivery.route)
        update.set("received_at", iso(delivery.received_at))
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": key["pk"], "sk": _av(audit["raw_item"])},
                **update.params(),
            }
        }

    def raw_delivery(self, redemption_id: str, audit: Mapping[str, Any]) -> bytes | None:
        """The raw bytes of a delivery audit map (``redemption_delivery`` or a rollback's ``delivery``), inline or in
        its ``RAW#`` item; None when there is none."""
        if audit.get("raw_zlib") is not None:
            return decompress(bytes(audit["raw_zlib"]))
        if not audit.get("raw_item"):
            return None
        item = self._get({"pk": _av(REDEMPTION_PREFIX + redemption_id), "sk": _av(audit["raw_item"])})
        return decompress(bytes(item["raw_zlib"])) if item else None

    def _keep_conflict(
        self, redemption_id: str, delivery: Delivery, summary: Mapping[str, Any], differing: Sequence[str]
    ) -> str:
        """Keeps a delivery of a recorded redemption that says something else (``REDEMPTION#<r_…> /
        CONFLICT#<sha256>``: what it says, which fields differ, its raw copy), once per distinct delivery. Its
        summary sits in a map, so the indexes never list it as a redemption."""
        digest = hashlib.sha256(delivery.raw).hexdigest()[:32]
        update = _Update()
        update.set_if_absent("entity", "conflicting_delivery")
        update.set_if_absent("conflict_id", "c_" + digest)
        update.set_if_absent("first_received_at", iso(delivery.received_at))
        update.set("last_received_at", iso(delivery.received_at))
        update.set("conflicting_fields", list(differing))
        update.set("summary", dict(summary))
        update.set("delivery", self._delivery_audit(delivery, compress(delivery.raw)))
        update.add("deliveries", 1)
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": _av(REDEMPTION_PREFIX + redemption_id), "sk": _av(CONFLICT_SK_PREFIX + digest)},
                **update.params(),
            )
        except ClientError as exc:
            raise _failure(exc, "conflicting delivery") from exc
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB could not be reached: {type(exc).__name__}") from exc
        return "c_" + digest

    def quarantine(
        self, delivery: Delivery, errors: list[str], *, retention_days: int, reason: str
    ) -> QuarantineOutcome:
        """Keeps an authentic delivery the ledger cannot record (invalid, the wrong URL, refused by DynamoDB) with
        its errors, once per distinct body, until ``retention_days`` have passed. A body is at most MAX_BODY_BYTES
        (256 KiB), so its compressed copy fits the item; should DynamoDB still refuse the record, it is kept without
        the raw copy (its size and SHA-256 say what it was) rather than not at all."""
        try:
            return self._quarantine(delivery, errors, retention_days=retention_days, reason=reason, keep_raw=True)
        except StorageRefusedError as refused:
            errors = [*errors[:49], f"raw copy not kept: {refused.reason}"]
            return self._quarantine(delivery, errors, retention_days=retention_days, reason=reason, keep_raw=False)

    def _quarantine(
        self, delivery: Delivery, errors: list[str], *, retention_days: int, reason: str, keep_raw: bool
    ) -> QuarantineOutcome:
        quarantine_id = quarantine_id_for(delivery.raw)
        now = delivery.received_at
        update = _Update()
        update.set_if_absent("entity", "quarantine")
        update.set_if_absent("quarantine_id", quarantine_id)
        update.set_if_absent("first_received_at", iso(now))
        if keep_raw:
            update.set_if_absent("raw_zlib", compress(delivery.raw))
        else:
            update.set_if_absent("raw_sha256", hashlib.sha256(delivery.raw).hexdigest())
            update.set_if_absent("raw_bytes", len(delivery.raw))
        update.set("last_received_at", iso(now))
        update.set("route", delivery.route)
        update.set("reason", reason)
        update.set("errors", [error[:MAX_ERROR_CHARS] for error in errors[:50]])
        if delivery.event_type:
            update.set("event_type", delivery.event_type)
        if delivery.delivery_id:
            update.set("delivery_id", delivery.delivery_id)
        update.set("expires_at", int((now + timedelta(days=retention_days)).timestamp()))
        update.add("deliveries", 1)
        try:
            answer = self.client.update_item(
                TableName=self.table_name,
                Key={"pk": _av(QUARANTINE_PREFIX + quarantine_id), "sk": _av(QUARANTINE_SK)},
                ReturnValues="UPDATED_NEW",
                **update.params(),
            )
        except ClientError as exc:
            raise _failure(exc, "quarantine record") from exc
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB could not be reached: {type(exc).__name__}") from exc
        deliveries = _plain(answer.get("Attributes", {}).get("deliveries", {"N": "1"}))
        return QuarantineOutcome(quarantine_id, deliveries)

    # --- reads ----------------------------------------------------------------------------------
    def get_redemption(self, redemption_id: str) -> dict[str, Any] | None:
        """The redemption with its rollbacks, or None when the ledger has never heard of it."""
        items = list(
            self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": _av(REDEMPTION_PREFIX + redemption_id)},
                ConsistentRead=True,
            )
        )
        if not items:
            return None
        view: dict[str, Any] = {"id": redemption_id}
        rollbacks: list[dict[str, Any]] = []
        requests: list[dict[str, Any]] = []
        conflicts: list[dict[str, Any]] = []
        for item in items:
            if item["sk"] == REDEMPTION_SK:
                view.update(_public(item))
                rollbacks.extend(_rollbacks_of(item))
            elif item["sk"].startswith(ROLLBACK_SK_PREFIX):  # a rollback item of the earlier layout
                rollbacks.append(_public(item))
            elif item["sk"].startswith(REQUEST_SK_PREFIX):
                requests.append(_public(item))
            elif item["sk"].startswith(CONFLICT_SK_PREFIX):
                conflicts.append(_public(item))
        view.setdefault("status", None)
        view["rollbacks"] = sorted(rollbacks, key=lambda r: r.get("rolled_back_at") or "")
        view["rollback_ids"] = sorted(view.get("rollback_ids") or [])
        if requests:  # rollback requests of the rollback worker (absent when there were none)
            requests.sort(key=lambda r: (r.get("created_at") or "", r.get("request_id", "")))
            view["rollback_requests"] = requests
        if conflicts:  # deliveries of this id that said something else (the first record stands)
            view["conflicting_deliveries"] = sorted(conflicts, key=lambda c: c.get("first_received_at") or "")
        return view

    def redemptions_by(self, key: Literal["order", "customer", "voucher_code"], value: str) -> list[dict[str, Any]]:
        """Redemptions of an order (``ord_…``), a customer (``cust_…``) or a voucher code, oldest first."""
        attribute = INDEX_KEYS[key]
        return [
            _public(item)
            for item in self._query(
                IndexName=INDEXES[key],
                KeyConditionExpression="#k = :v",
                ExpressionAttributeNames={"#k": attribute},
                ExpressionAttributeValues={":v": _av(value)},
            )
        ]

    def get_quarantined(self, quarantine_id: str) -> dict[str, Any] | None:
        try:
            answer = self.client.get_item(
                TableName=self.table_name,
                Key={"pk": _av(QUARANTINE_PREFIX + quarantine_id), "sk": _av(QUARANTINE_SK)},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"DynamoDB read failed: {type(exc).__name__}") from exc
        item = answer.get("Item")
        return _item(item) if item else None

    # --- quarantine: listing and replay (the operator's ``redemption-ledger quarantine``) ---------------
    def quarantined(self) -> list[dict[str, Any]]:
        """Every quarantine record, oldest first, as the sparse ``Quarantine`` index projects it: ids, route, reason,
        errors, dates and counts, never the raw delivery. A Scan of the index reads only quarantine records (they
        alone carry ``quarantine_id``), not the ledger; the index is eventually consistent."""
        found: list[dict[str, Any]] = []
        try:
            for page in self.client.get_paginator("scan").paginate(
                TableName=self.table_name, IndexName=QUARANTINE_INDEX
            ):
                found.extend(_public(_item(item)) for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"DynamoDB scan failed: {type(exc).__name__}") from exc
        return sorted(found, key=lambda q: (q.get("first_received_at") or "", q.get("quarantine_id") or ""))

    def remove_quarantined(self, quarantine_id: str) -> bool:
        """Deletes the record of a quarantined delivery that is now in the ledger. False when it was already gone
        (another replay removed it, or TTL). A live retry of the same bytes can only write the same delivery."""
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key={"pk": _av(QUARANTINE_PREFIX + quarantine_id), "sk": _av(QUARANTINE_SK)},
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise StorageError(f"DynamoDB refused the quarantine delete: {_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB could not be reached: {type(exc).__name__}") from exc
        return True

    def note_failed_replay(
        self, quarantine_id: str, *, reason: str, errors: Sequence[str], now: datetime
    ) -> dict[str, Any] | None:
        """A replay that still fails: today's reason and errors, ``replay_attempts`` + 1 and ``last_replayed_at``.
        The expiry is kept. None (nothing written) when the record is gone: it is never re-created without its
        delivery."""
        update = _Update()
        update.set("reason", reason)
        update.set("errors", list(errors)[:50])
        update.set("last_replayed_at", iso(now))
        update.add("replay_attempts", 1)
        try:
            answer = self.client.update_item(
                TableName=self.table_name,
                Key={"pk": _av(QUARANTINE_PREFIX + quarantine_id), "sk": _av(QUARANTINE_SK)},
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="ALL_NEW",
                **update.params(),
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise StorageError(f"DynamoDB refused the quarantine write: {_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB could not be reached: {type(exc).__name__}") from exc
        return _public(_item(answer.get("Attributes", {})))

    # =============================================================================================
    # Rollback requests: what the rollback worker asked Voucherify and what came of it.
    #
    # A request item carries ``state`` (REQUEST_STATES), ``attempts``, ``error`` ({status, key,
    # message} of the last problem), ``next_attempt_at``, ``rollback_id``. Request items never carry
    # ``order_id``/``customer_id``/``voucher_code``/``redeemed_at``, so the indexes never list them, and they
    # hold no personal data (the rollback's customer, order and metadata are sent, not stored).
    #
    # Guards keep a finished request finished: nothing overwrites SUCCEEDED; ALREADY_ROLLED_BACK gives way
    # only to SUCCEEDED; PENDING/RETRYING/FAILED never replace either.
    # =============================================================================================
    def begin_rollback_request(
        self,
        redemption_id: str,
        request_id: str,
        *,
        now: datetime,
        message_id: str | None = None,
        receive_count: int | None = None,
        reason: str | None = None,
        source_order_id: str | None = None,
        parent_request_id: str | None = None,
    ) -> RequestStart:
        """Marks the request PENDING and counts the attempt — unless it is already finished (SUCCEEDED,
        ALREADY_ROLLED_BACK, or FAILED other than by running out of attempts): then ``proceed`` is False and
        ``item`` is the finished request (a redelivered message is answered from the ledger)."""
        update = _Update()
        update.set("state", PENDING)
        update.set_if_absent("entity", "rollback_request")
        update.set_if_absent("request_id", request_id)
        update.set_if_absent("redemption_id", redemption_id)
        update.set_if_absent("created_at", iso(now))
        update.set("updated_at", iso(now))
        for name, value in (
            ("message_id", message_id),
            ("receive_count", receive_count),
            ("reason", reason),
            ("source_order_id", source_order_id),
            ("parent_request_id", parent_request_id),
        ):
            if value is not None:
                update.set(name, value)
        update.add("attempts", 1)
        update.remove("dead_lettered")
        state = update.name_of("state")
        dead = update.name_of("dead_lettered")
        update.values.update({":pending": _av(PENDING), ":retrying": _av(RETRYING), ":failed": _av(FAILED)})
        update.values[":true"] = _av(True)
        key = self._request_key(redemption_id, request_id)
        try:
            answer = self.client.update_item(
                TableName=self.table_name,
                Key=key,
                ConditionExpression=(
                    f"attribute_not_exists({state}) OR {state} IN (:pending, :retrying) "
                    f"OR ({state} = :failed AND {dead} = :true)"
                ),
                ReturnValues="ALL_NEW",
                **update.params(),
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return RequestStart(False, self._get(key) or {})
            raise StorageError(f"DynamoDB refused the request write: {_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB could not be reached: {type(exc).__name__}") from exc
        return RequestStart(True, _item(answer.get("Attributes", {})))

    def update_rollback_request(
        self,
        redemption_id: str,
        request_id: str,
        state: str,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
    ) -> bool:
        """Sets the request's state (and ``fields``; ``None`` values remove the attribute). False when a guard
        kept a finished request as it was."""
        update, condition = self._request_update(state, now, fields)
        self._request_identity(update, redemption_id, request_id, now)
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._request_key(redemption_id, request_id),
                **({"ConditionExpression": condition} if condition else {}),
                **update.params(),
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise StorageError(f"DynamoDB refused the request write: {_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB could not be reached: {type(exc).__name__}") from exc
        return True

    def record_worker_rollback(
        self,
        redemption_id: str,
        rollback: SimpleRedemption,
        *,
        raw: bytes,
        received_at: datetime,
        request_id: str | None = None,
        request_fields: Mapping[str, Any] | None = None,
    ) -> WriteOutcome:
        """A rollback object from the API's answer, through the same transaction as the webhook's (so the same
        ``rr_…`` is recorded once, whichever arrives first), together with the request's final state: SUCCEEDED,
        or FAILED with ``failure_code``/``failure_message`` for a rollback whose result is FAILURE."""
        if not rollback.redemption:
            rollback = rollback.model_copy(update={"redemption": redemption_id})
        data = EventRedemptionRollbackSucceededData(redemption_rollback=rollback)
        delivery = Delivery(raw=raw, route="rollback-worker", received_at=received_at, event_type="redemption_rollback")
        state, fields = SUCCEEDED, {"rollback_id": rollback.id, **(request_fields or {})}
        if not rollback_succeeded(rollback):
            state = FAILED
            fields["error"] = _compact(
                {
                    "status": 200,
                    "key": rollback.failure_code or "rollback_failed",
                    "message": rollback.failure_message or "Voucherify answered the rollback with result FAILURE",
                }
            )
        also = []
        if request_id is not None:
            # Unguarded inside the transaction: the rollback is new, so this is the request's final word.
            update, _ = self._request_update(state, received_at, fields, guarded=False)
            self._request_identity(update, redemption_id, request_id, received_at)
            also.append(
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": self._request_key(redemption_id, request_id),
                        **update.params(),
                    }
                }
            )
        outcome = self._write_rollback(data, delivery, source="worker", also=also)
        if outcome.status == "duplicate" and request_id is not None:
            # The webhook recorded this rollback first: only the request is left to finish.
            self.update_rollback_request(
                redemption_id, request_id, state, now=received_at, fields={**fields, "recorded_by": "webhook"}
            )
        return outcome

    def record_already_rolled_back(
        self,
        redemption_id: str,
        request_id: str,
        *,
        now: datetime,
        confirmed_by: Literal["ledger", "api"],
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Voucherify (``400 already_rolled_back``) or the ledger says the redemption is already rolled back:
        the request ends ALREADY_ROLLED_BACK and the redemption is (kept) ROLLED_BACK, in one transaction."""
        request_fields = {"confirmed_by": confirmed_by, **(fields or {})}
        if confirmed_by == "ledger":
            self.update_rollback_request(redemption_id, request_id, ALREADY_ROLLED_BACK, now=now, fields=request_fields)
            return
        request_update, condition = self._request_update(ALREADY_ROLLED_BACK, now, request_fields)
        self._request_identity(request_update, redemption_id, request_id, now)
        redemption = _Update()
        redemption.set_if_absent("redemption_id", redemption_id)
        redemption.set_if_absent("entity", "redemption")
        redemption.set("status", ROLLED_BACK)
        redemption.set("updated_at", iso(now))
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": self._request_key(redemption_id, request_id),
                            **({"ConditionExpression": condition} if condition else {}),
                            **request_update.params(),
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": self._redemption_key(redemption_id),
                            **redemption.params(),
                        }
                    },
                ]
            )
        except ClientError as exc:
            if _error_code(exc) == "TransactionCanceledException" and self._first_condition_failed(exc):
                return  # the request already SUCCEEDED: nothing to change
            raise StorageError(f"DynamoDB refused the request write: {_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB could not be reached: {type(exc).__name__}") from exc

    def record_rejected_rollback_request(
        self,
        request_id: str,
        *,
        errors: Sequence[str],
        now: datetime,
        message_id: str | None = None,
        receive_count: int | None = None,
        state: str = FAILED,
        error: Mapping[str, Any] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """A message that names no request the ledger can key on, under its own key ``REQUEST#<request id>``: by
        default FAILED as not a valid ``RollbackRequest`` with the validation errors (field paths and what was
        expected, never the values); or ``state`` / ``error`` / ``fields`` as the worker's retry says (RETRYING
        with ``next_attempt_at``, FAILED with ``dead_lettered``)."""
        update = _Update()
        update.set_if_absent("entity", "rollback_request")
        update.set_if_absent("request_id", request_id)
        update.set_if_absent("created_at", iso(now))
        update.set("updated_at", iso(now))
        update.set("state", state)
        update.set(
            "error", dict(error or {"key": "invalid_request", "message": "the message is not a valid RollbackRequest"})
        )
        update.set("errors", list(errors)[:50])
        for name, value in (fields or {}).items():
            if value is None:
                update.remove(name)
            else:
                update.set(name, value)
        if message_id is not None:
            update.set("message_id", message_id)
        if receive_count is not None:
            update.set("receive_count", receive_count)
        update.add("attempts", 1)
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": _av(REJECTED_PREFIX + request_id), "sk": _av(REJECTED_SK)},
                **update.params(),
            )
        except ClientError as exc:
            raise StorageError(f"DynamoDB refused the request write: {_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB could not be reached: {type(exc).__name__}") from exc

    def record_order_rollback_request(
        self,
        order_id: str,
        request_id: str,
        state: str,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """An order-level request (``ORDER#<ord_…>`` / ``REQUEST#<request id>``): FANNED_OUT with the redemptions
        it queued, ALREADY_ROLLED_BACK, or FAILED (the ledger holds no redemption of the order)."""
        update, condition = self._request_update(state, now, fields)
        update.set_if_absent("entity", "rollback_request")
        update.set_if_absent("request_id", request_id)
        update.set_if_absent("source_order_id", order_id)
        update.set_if_absent("created_at", iso(now))
        update.add("attempts", 1)
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": _av(ORDER_PREFIX + order_id), "sk": _av(REQUEST_SK_PREFIX + request_id)},
                **({"ConditionExpression": condition} if condition else {}),
                **update.params(),
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return
            raise StorageError(f"DynamoDB refused the request write: {_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB could not be reached: {type(exc).__name__}") from exc

    def redemption_state(self, redemption_id: str) -> dict[str, Any] | None:
        """``status``, ``rollback_ids`` and ``parent_redemption_id`` of a redemption (strongly consistent), or
        None when the ledger does not know it. Unlike the webhook's lookups, a failed read raises StorageError."""
        return self._get(
            self._redemption_key(redemption_id),
            projection=("redemption_id", "status", "rollback_ids", "parent_redemption_id"),
        )

    def redemption_states(self, redemption_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``redemption_state`` of several redemptions (BatchGetItem, strongly consistent), by id."""
        ids = list(dict.fromkeys(redemption_ids))
        found: dict[str, dict[str, Any]] = {}
        names = {"#i": "redemption_id", "#s": "status", "#r": "rollback_ids", "#p": "parent_redemption_id"}
        for start in range(0, len(ids), 100):
            keys = [self._redemption_key(r) for r in ids[start : start + 100]]
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    "ProjectionExpression": "#i, #s, #r, #p",
                    "ExpressionAttributeNames": names,
                }
            }
            for _ in range(5):
                try:
                    answer = self.client.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise StorageError(f"DynamoDB read failed: {type(exc).__name__}") from exc
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    plain = _item(item)
                    found[plain["redemption_id"]] = plain
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise StorageError("DynamoDB left keys unprocessed after 5 attempts")
        return found

    def get_rollback_request(self, request_id: str, redemption_id: str | None = None) -> dict[str, Any] | None:
        """A request of a redemption, or (without ``redemption_id``) a rejected, malformed request."""
        key = (
            self._request_key(redemption_id, request_id)
            if redemption_id
            else {"pk": _av(REJECTED_PREFIX + request_id), "sk": _av(REJECTED_SK)}
        )
        item = self._get(key)
        return _public(item) if item else None

    def order_rollback_requests(self, order_id: str) -> list[dict[str, Any]]:
        """The order-level rollback requests of an order, oldest first."""
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
            ExpressionAttributeValues={":pk": _av(ORDER_PREFIX + order_id), ":sk": _av(REQUEST_SK_PREFIX)},
            ConsistentRead=True,
        )
        return sorted((_public(i) for i in items), key=lambda r: (r.get("created_at") or "", r["request_id"]))

    # --- helpers of the section
    @staticmethod
    def _request_key(redemption_id: str, request_id: str) -> dict[str, Any]:
        return {"pk": _av(REDEMPTION_PREFIX + redemption_id), "sk": _av(REQUEST_SK_PREFIX + request_id)}

    @staticmethod
    def _request_identity(update: _Update, redemption_id: str, request_id: str, now: datetime) -> None:
        """A request item written before its first attempt was recorded still says what it is."""
        update.set_if_absent("entity", "rollback_request")
        update.set_if_absent("request_id", request_id)
        update.set_if_absent("redemption_id", redemption_id)
        update.set_if_absent("created_at", iso(now))

    @staticmethod
    def _request_update(
        state: str, now: datetime, fields: Mapping[str, Any] | None, *, guarded: bool = True
    ) -> tuple[_Update, str | None]:
        """The update of a request to ``state``, and (``guarded``) the condition that keeps a finished request."""
        if state not in REQUEST_STATES:
            raise ValueError(f"unknown request state {state!r}")
        update = _Update()
        update.set("state", state)
        update.set("updated_at", iso(now))
        values = dict(fields or {})
        if state != RETRYING:
            values.setdefault("next_attempt_at", None)
        if state in (SUCCEEDED, ALREADY_ROLLED_BACK):
            values.setdefault("error", None)
        for name, value in values.items():
            if value is None or value == "":
                update.remove(name)
            elif name in COUNTED_REQUEST_FIELDS:
                update.add(name, value)
            else:
                update.set(name, value)
        placeholder = update.name_of("state")
        if state == SUCCEEDED or not guarded:
            return update, None
        update.values[":succeeded"] = _av(SUCCEEDED)
        if state == ALREADY_ROLLED_BACK:
            return update, f"attribute_not_exists({placeholder}) OR {placeholder} <> :succeeded"
        update.values[":already"] = _av(ALREADY_ROLLED_BACK)
        return update, f"attribute_not_exists({placeholder}) OR NOT {placeholder} IN (:succeeded, :already)"

    def _get(self, key: Mapping[str, Any], projection: Sequence[str] = ()) -> dict[str, Any] | None:
        params: dict[str, Any] = {"TableName": self.table_name, "Key": key, "ConsistentRead": True}
        if projection:
            names = {f"#p{i}": name for i, name in enumerate(projection)}
            params["ProjectionExpression"] = ", ".join(names)
            params["ExpressionAttributeNames"] = names
        try:
            answer = self.client.get_item(**params)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"DynamoDB read failed: {type(exc).__name__}") from exc
        item = answer.get("Item")
        return _item(item) if item else None

    # --- helpers --------------------------------------------------------------------------------
    def _query(self, **params: Any) -> Iterator[dict[str, Any]]:
        try:
            paginator = self.client.get_paginator("query")
            for page in paginator.paginate(TableName=self.table_name, **params):
                for item in page.get("Items", []):
                    yield _item(item)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"DynamoDB query failed: {type(exc).__name__}") from exc

    def _status_of(self, redemption_id: str) -> str | None:
        try:
            answer = self.client.get_item(
                TableName=self.table_name,
                Key=self._redemption_key(redemption_id),
                ProjectionExpression="#s",
                ExpressionAttributeNames={"#s": "status"},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError):
            return None
        status = answer.get("Item", {}).get("status")
        return _plain(status) if status else None

    @staticmethod
    def _redemption_key(redemption_id: str) -> dict[str, Any]:
        return {"pk": _av(REDEMPTION_PREFIX + redemption_id), "sk": _av(REDEMPTION_SK)}

    @staticmethod
    def _delivery_audit(delivery: Delivery, compressed: bytes | None) -> dict[str, Any]:
        """The audit map of a delivery: its compressed raw copy (``raw_zlib``), or with ``compressed`` None the key of
        the item that keeps it (``raw_item``, ``RAW#<sha256>``), with route, ids and arrival time."""
        return _compact(
            {
                "raw_zlib": compressed,
                "raw_item": None
                if compressed is not None
                else RAW_SK_PREFIX + hashlib.sha256(delivery.raw).hexdigest(),
                "route": delivery.route,
                "event_type": delivery.event_type,
                "delivery_id": delivery.delivery_id,
                "event_id": delivery.event_id,
                "received_at": iso(delivery.received_at),
                "replayed_from": delivery.replayed_from,
            }
        )

    @staticmethod
    def _first_condition_failed(exc: ClientError) -> bool:
        reasons = exc.response.get("CancellationReasons") or []
        if reasons:
            return reasons[0].get("Code") == "ConditionalCheckFailed"
        return "ConditionalCheckFailed" in str(exc).split("[", 1)[-1].split(",")[0]


def _public(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item without keys, audit blobs and rollback attributes, as the CLI and APIs show it."""
    hidden = {"pk", "sk", "entity", "redemption_delivery", "delivery", "raw_zlib", "redemption_digest"}
    return {k: v for k, v in item.items() if k not in hidden and not k.startswith(ROLLBACK_PREFIX)}


def _rollbacks_of(item: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The rollbacks held by a redemption item, each as the CLI and APIs show a rollback (without its delivery)."""
    redemption_id = item["pk"].removeprefix(REDEMPTION_PREFIX)
    for name, entry in item.items():
        if name.startswith(ROLLBACK_PREFIX):
            shown = {k: v for k, v in entry.items() if k != "delivery"}
            yield {"rollback_id": name.removeprefix(ROLLBACK_PREFIX), "redemption_id": redemption_id, **shown}
