"""The DynamoDB ledger of redemptions and rollbacks: the only module that talks to DynamoDB.

One table, items keyed ``pk``/``sk``:

================================  ==================  ==============================================
pk                                sk                  item
================================  ==================  ==============================================
``REDEMPTION#<r_…>``              ``REDEMPTION``      the redemption: status, code, campaign, customer
                                                      id, order id, amounts, dates, rollback ids
``REDEMPTION#<r_…>``              ``ROLLBACK#<rr_…>`` one rollback of that redemption
``QUARANTINE#<q_…>``              ``QUARANTINE``      an authentic delivery that failed validation
================================  ==================  ==============================================

One query on ``pk`` returns a redemption with its rollbacks. Sparse GSIs on the redemption item answer
"redemptions of an order / a customer / a voucher code" (``ByOrder``, ``ByCustomer``,
``ByVoucherCode``, sorted by ``redeemed_at``); they key on Voucherify's ids and codes, never on names,
emails or other personal data, and project only non-personal summary attributes.

Writes are idempotent on Voucherify's ids, independent of arrival order, and atomic: a rollback writes
its own item and flips its redemption to ``ROLLED_BACK`` in one transaction; a redemption that arrives
after its rollback fills in the details but keeps the status.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
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
ROLLBACK_SK_PREFIX = "ROLLBACK#"
QUARANTINE_PREFIX = "QUARANTINE#"
QUARANTINE_SK = "QUARANTINE"

SUCCEEDED = "SUCCEEDED"
ROLLED_BACK = "ROLLED_BACK"

INDEXES = {"order": "ByOrder", "customer": "ByCustomer", "voucher_code": "ByVoucherCode"}
INDEX_KEYS = {"order": "order_id", "customer": "customer_id", "voucher_code": "voucher_code"}


class StorageError(RuntimeError):
    """The ledger could not be written or read; the caller should answer 5xx so the sender retries."""


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery as received, kept (compressed) for audit."""

    raw: bytes
    route: str
    received_at: datetime
    event_type: str | None = None
    delivery_id: str | None = None  # whs_… of the v2024 envelope
    event_id: str | None = None  # ev…_ of the v2024 envelope


@dataclass(frozen=True)
class WriteOutcome:
    status: Literal["recorded", "duplicate"]
    redemption_id: str
    ledger_status: str | None = None
    rollback_id: str | None = None


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
        return {"N": str(value)}
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


def _now() -> datetime:
    return datetime.now(UTC)


class _Update:
    """Builds an UpdateItem expression from named assignments."""

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.adds: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def _ref(self, name: str, value: Any) -> tuple[str, str]:
        index = len(self.names)
        self.names[f"#n{index}"] = name
        self.values[f":v{index}"] = _av(value)
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
        return {
            "UpdateExpression": expression,
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values,
        }


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def quarantine_id_for(raw: bytes) -> str:
    """Same bytes, same quarantine record: a poison delivery retried by Voucherify is stored once."""
    return "q_" + hashlib.sha256(raw).hexdigest()[:32]


class Ledger:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = client

    # --- writes ---------------------------------------------------------------------------------
    def record_redemption(self, data: EventRedemptionSucceededData, delivery: Delivery) -> WriteOutcome:
        redemption = data.redemption
        update = _Update()
        for name, value in redemption_summary(data, redemption).items():
            update.set(name, value)
        update.set("entity", "redemption")
        update.set_if_absent("status", SUCCEEDED)
        update.set("redemption_recorded_at", iso(delivery.received_at))
        update.set("updated_at", iso(delivery.received_at))
        update.set("redemption_delivery", self._delivery_audit(delivery))
        recorded = update.name_of("redemption_recorded_at")
        try:
            answer = self.client.update_item(
                TableName=self.table_name,
                Key=self._redemption_key(redemption.id),
                ConditionExpression=f"attribute_not_exists({recorded})",
                ReturnValues="UPDATED_NEW",
                **update.params(),
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return WriteOutcome("duplicate", redemption.id, self._status_of(redemption.id))
            raise StorageError(f"DynamoDB refused the redemption write: {_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB could not be reached: {type(exc).__name__}") from exc
        status = _plain(answer.get("Attributes", {}).get("status", {"S": SUCCEEDED}))
        return WriteOutcome("recorded", redemption.id, status)

    def record_rollback(
        self, data: EventRedemptionRollbackSucceededData, delivery: Delivery, *, source: str = "webhook"
    ) -> WriteOutcome:
        rollback = data.redemption_rollback
        redemption_id = data.redemption_id
        when = iso(delivery.received_at)
        rollback_item = {
            "pk": REDEMPTION_PREFIX + redemption_id,
            "sk": ROLLBACK_SK_PREFIX + rollback.id,
            "entity": "rollback",
            "source": source,
            "recorded_at": when,
            "delivery": self._delivery_audit(delivery),
            **rollback_summary(rollback, redemption_id),
        }
        update = _Update()
        if data.redemption is not None and data.redemption.id == redemption_id:
            for name, value in redemption_summary(data, data.redemption).items():
                update.set_if_absent(name, value)
        else:
            update.set_if_absent("redemption_id", redemption_id)
        update.set_if_absent("entity", "redemption")
        succeeded = rollback.result != "FAILURE" and rollback.status != "FAILED"
        if succeeded:
            update.set("status", ROLLED_BACK)
            update.set("rolled_back_at", iso(rollback.date))
            update.add("rollback_ids", {rollback.id})
        else:
            update.add("failed_rollback_ids", {rollback.id})
        update.set("updated_at", when)
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": {k: _av(v) for k, v in rollback_item.items()},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": self._redemption_key(redemption_id),
                            **update.params(),
                        }
                    },
                ]
            )
        except ClientError as exc:
            if _error_code(exc) == "TransactionCanceledException" and self._first_condition_failed(exc):
                return WriteOutcome("duplicate", redemption_id, self._status_of(redemption_id), rollback.id)
            raise StorageError(f"DynamoDB refused the rollback write: {_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"DynamoDB could not be reached: {type(exc).__name__}") from exc
        return WriteOutcome("recorded", redemption_id, ROLLED_BACK if succeeded else None, rollback.id)

    def quarantine(
        self, delivery: Delivery, errors: list[str], *, retention_days: int, reason: str
    ) -> QuarantineOutcome:
        quarantine_id = quarantine_id_for(delivery.raw)
        now = delivery.received_at
        update = _Update()
        update.set_if_absent("entity", "quarantine")
        update.set_if_absent("quarantine_id", quarantine_id)
        update.set_if_absent("first_received_at", iso(now))
        update.set_if_absent("raw_zlib", compress(delivery.raw))
        update.set("last_received_at", iso(now))
        update.set("route", delivery.route)
        update.set("reason", reason)
        update.set("errors", errors[:50])
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
            raise StorageError(f"DynamoDB refused the quarantine write: {_error_code(exc)}") from exc
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
        for item in items:
            if item["sk"] == REDEMPTION_SK:
                view.update(_public(item))
            elif item["sk"].startswith(ROLLBACK_SK_PREFIX):
                rollbacks.append(_public(item))
        view.setdefault("status", None)
        view["rollbacks"] = sorted(rollbacks, key=lambda r: r.get("rolled_back_at") or "")
        view["rollback_ids"] = sorted(view.get("rollback_ids") or [])
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
    def _delivery_audit(delivery: Delivery) -> dict[str, Any]:
        return _compact(
            {
                "raw_zlib": compress(delivery.raw),
                "route": delivery.route,
                "event_type": delivery.event_type,
                "delivery_id": delivery.delivery_id,
                "event_id": delivery.event_id,
                "received_at": iso(delivery.received_at),
            }
        )

    @staticmethod
    def _first_condition_failed(exc: ClientError) -> bool:
        reasons = exc.response.get("CancellationReasons") or []
        if reasons:
            return reasons[0].get("Code") == "ConditionalCheckFailed"
        return "ConditionalCheckFailed" in str(exc).split("[", 1)[-1].split(",")[0]


def _public(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item without keys and audit blobs, as the CLI and APIs show it."""
    hidden = {"pk", "sk", "entity", "redemption_delivery", "delivery", "raw_zlib"}
    return {k: v for k, v in item.items() if k not in hidden}
