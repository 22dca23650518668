"""DynamoDB as the ledger's stores use it: the attribute codec, DynamoDB's limits checked before writing, update
expressions, compression, and ``Table``, through which every call goes, its failures mapped once
(``storage_failure``) to ``StorageError`` (retry) or ``StorageRefusedError`` (never storable as it is).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef, UpdateTypeDef
else:
    DynamoDBClient = Any


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
_SMALL_INT = 10**MAX_NUMBER_DIGITS
# The key attributes of the table and of its indexes, by their byte limit.
KEY_ATTRIBUTE_BYTES = {
    "pk": MAX_PARTITION_KEY_BYTES,
    "sk": MAX_SORT_KEY_BYTES,
    "order_id": MAX_PARTITION_KEY_BYTES,
    "order_source_id": MAX_PARTITION_KEY_BYTES,  # ByOrderSourceId's key
    "customer_id": MAX_PARTITION_KEY_BYTES,
    "voucher_code": MAX_PARTITION_KEY_BYTES,
    "quarantine_id": MAX_PARTITION_KEY_BYTES,
    "redeemed_at": MAX_SORT_KEY_BYTES,
    "redeemed_day": MAX_PARTITION_KEY_BYTES,  # ByRedeemedDay's key: always ten characters
}


# --- compression (raw deliveries, kept answers) ---------------------------------------------------------------
def compress(raw: bytes) -> bytes:
    return zlib.compress(raw, 6)


def decompress(blob: bytes) -> bytes:
    return zlib.decompress(blob)


# --- the attribute codec --------------------------------------------------------------------------------------
def av(value: Any) -> dict[str, Any]:
    """Python value → DynamoDB attribute value (the few types the ledger writes)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, Decimal)):
        return {"N": number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    if isinstance(value, (set, frozenset)):
        return {"SS": sorted(value)}
    if isinstance(value, (list, tuple)):
        return {"L": [av(v) for v in value]}
    if isinstance(value, Mapping):
        return {"M": {k: av(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__}")


def number(value: int | Decimal) -> str:
    """A number as DynamoDB stores it, or StorageRefusedError where DynamoDB would refuse it (more than 38 significant
    digits, a magnitude beyond 1E+125 or below 1E-130, NaN or infinity)."""
    if type(value) is int and -_SMALL_INT < value < _SMALL_INT:  # at most 38 digits: always storable as it is
        return str(value)
    decimal = Decimal(value)
    if not decimal.is_finite():
        raise StorageRefusedError("a number that is not finite")
    if decimal:
        # normalize() would round to the context's 28 digits: count the digits themselves, less trailing zeros
        digits = len("".join(map(str, decimal.as_tuple().digits)).strip("0"))
        if digits > MAX_NUMBER_DIGITS:
            raise StorageRefusedError(f"a number of {digits} significant digits, beyond DynamoDB's {MAX_NUMBER_DIGITS}")
        if not MIN_NUMBER_EXPONENT <= decimal.adjusted() <= MAX_NUMBER_EXPONENT:
            raise StorageRefusedError("a number beyond DynamoDB's range (1E-130 to 9.99E+125)")
    return str(value)


def key_value(name: str, value: Any) -> dict[str, Any]:
    """``av`` of a key attribute (table or index key), refused when over DynamoDB's byte limit for it."""
    limit = KEY_ATTRIBUTE_BYTES.get(name)
    if limit is not None and isinstance(value, str) and len(value.encode("utf-8")) > limit:
        raise StorageRefusedError(f"{name} is {len(value.encode('utf-8'))} bytes, beyond DynamoDB's {limit} for a key")
    return av(value)


def plain(value: Mapping[str, Any]) -> Any:
    """DynamoDB attribute value → plain JSON-friendly Python value."""
    ((kind, inner),) = value.items()
    if kind == "S" or kind == "BOOL":
        return inner
    if kind == "N":
        decimal = Decimal(inner)
        return int(decimal) if decimal == decimal.to_integral_value() else float(decimal)
    if kind == "B":
        return bytes(inner)
    if kind in ("SS", "NS", "BS"):
        return sorted(inner)
    if kind == "L":
        return [plain(v) for v in inner]
    if kind == "M":
        return {k: plain(v) for k, v in inner.items()}
    return None


def item(av_item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python values."""
    return {k: plain(v) for k, v in av_item.items()}


def compact(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without its None and empty-string entries."""
    return {k: v for k, v in values.items() if v is not None and v != ""}


# --- update expressions ---------------------------------------------------------------------------------------
class UpdateParams(TypedDict):
    """``Update.params()``: the expression parameters of an UpdateItem or of a transaction's Update
    (``ExpressionAttributeNames`` only when a name needs a placeholder: DynamoDB refuses an empty map)."""

    UpdateExpression: str
    ExpressionAttributeNames: NotRequired[dict[str, str]]
    ExpressionAttributeValues: dict[str, Any]


@functools.lru_cache(maxsize=1024)  # the ledger's attribute names are few; each is asked about on every write
def _plain_name(name: str) -> bool:
    """A name an expression may hold as it is: ASCII letters, digits and underscores, a letter first, and at least
    one underscore, which no DynamoDB reserved word has (``status``, ``result``, ``source`` … are reserved)."""
    return "_" in name and name.isascii() and name[0].isalpha() and name.replace("_", "").isalnum()


class Update:
    """Builds an UpdateItem expression from named assignments; every value is checked as ``key_value`` checks it.

    A name with an underscore (``redemption_id``) is written as it is; any other (a reserved word such as
    ``status``, ``rollback#rr_…``) through a placeholder ``#n…``. Fewer placeholders are fewer strings for botocore
    to serialize on every write; the item written is the same."""

    __slots__ = ("_count", "adds", "names", "removes", "sets", "values")

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.adds: list[str] = []
        self.removes: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._count = 0

    def _ref(self, name: str, value: Any) -> tuple[str, str]:
        if type(value) is str and name not in KEY_ATTRIBUTE_BYTES:
            encoded: dict[str, Any] = {"S": value}
        else:
            try:
                encoded = key_value(name, value)
            except StorageRefusedError as refused:
                raise StorageRefusedError(
                    refused.reason if refused.reason.startswith(name) else f"{name}: {refused}"
                ) from None
        placeholder = f":v{self._count}"
        self._count += 1
        self.values[placeholder] = encoded
        return self.name_of(name), placeholder

    def set(self, name: str, value: Any) -> Update:
        n, v = self._ref(name, value)
        self.sets.append(f"{n} = {v}")
        return self

    def set_if_absent(self, name: str, value: Any) -> Update:
        n, v = self._ref(name, value)
        self.sets.append(f"{n} = if_not_exists({n}, {v})")
        return self

    def add(self, name: str, value: Any) -> Update:
        n, v = self._ref(name, value)
        self.adds.append(f"{n} {v}")
        return self

    def remove(self, name: str) -> Update:
        self.removes.append(self.name_of(name))
        return self

    def name_of(self, attribute: str) -> str:
        """How ``attribute`` is written in this update's expressions (and its condition): as it is, or the
        placeholder that stands for it."""
        if _plain_name(attribute):
            return attribute
        for placeholder, name in self.names.items():
            if name == attribute:
                return placeholder
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def params(self) -> UpdateParams:
        clauses = (("SET", self.sets), ("ADD", self.adds), ("REMOVE", self.removes))
        expression = " ".join(f"{word} {', '.join(actions)}" for word, actions in clauses if actions)
        params: UpdateParams = {"UpdateExpression": expression, "ExpressionAttributeValues": self.values}
        if self.names:
            params["ExpressionAttributeNames"] = self.names
        return params


# --- failures -------------------------------------------------------------------------------------------------
READS = frozenset({"read", "query", "scan"})


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def storage_failure(
    exc: ClientError | BotoCoreError, what: str = "", *, action: str = "write", refusable: bool = False
) -> StorageError | StorageRefusedError:
    """The one mapping of a failed DynamoDB call (``action`` on ``what``) to what the ledger's callers act on.

    A read (``READS``) that failed is a StorageError. A write DynamoDB judges invalid (ValidationException, or a
    transaction cancelled for a ValidationError) will be judged so again: with ``refusable`` (the writes of
    deliveries, which the webhooks quarantine instead), a StorageRefusedError. Anything else (throttling, conflicts,
    5xx, no answer, a missing table or permission the operator can fix) may pass on a retry: a StorageError."""
    if action in READS:
        return StorageError(f"DynamoDB {action} failed: {type(exc).__name__}")
    if not isinstance(exc, ClientError):
        return StorageError(f"DynamoDB could not be reached: {type(exc).__name__}")
    code = error_code(exc)
    reasons = exc.response.get("CancellationReasons") or []
    invalid = code == "ValidationException" or (
        code == "TransactionCanceledException" and any(r.get("Code") == "ValidationError" for r in reasons)
    )
    if not (refusable and invalid):
        return StorageError(f"DynamoDB refused the {what} {action}: {code}")
    message = str(exc.response.get("Error", {}).get("Message", ""))
    for reason in reasons:
        if reason.get("Code") == "ValidationError":
            message = str(reason.get("Message") or message)
    too_large = "size" in message.lower() and "exceed" in message.lower()
    # DynamoDB's messages name limits, not values; only known ones are repeated, the rest summarised.
    detail = "the item would exceed DynamoDB's 400 KB item size" if too_large else "DynamoDB refused it as invalid"
    return StorageRefusedError(f"the {what} cannot be stored as it is: {detail} ({code})", item_too_large=too_large)


def _condition_failed(exc: ClientError) -> bool:
    """A single write's condition, or the first item's of a transaction, was not met."""
    code = error_code(exc)
    if code == "ConditionalCheckFailedException":
        return True
    if code != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons") or []
    if reasons:
        return reasons[0].get("Code") == "ConditionalCheckFailed"
    return "ConditionalCheckFailed" in str(exc).split("[", 1)[-1].split(",")[0]


def _old_item(exc: ClientError) -> dict[str, Any] | None:
    """The item a failed condition found (``ReturnValuesOnConditionCheckFailure: ALL_OLD``), if DynamoDB sent it."""
    # The answer as the plain mapping it is: botocore's stubs know no top-level "Item" and type a cancellation
    # reason's "Item" as {"key", "value"}, not as DynamoDB's attribute map.
    response: Mapping[str, Any] = exc.response
    found = response.get("Item")
    if not found:
        for reason in response.get("CancellationReasons") or []:
            found = reason.get("Item")
            break
    return item(found) if found else None


# --- the table ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Written:
    """A conditional write's result: ``applied``, with the item DynamoDB returned (``ReturnValues``), or not
    (its condition failed), with the item the condition found when it was asked for and sent."""

    applied: bool
    item: dict[str, Any] | None = None


class Table:
    """The ledger's table: every DynamoDB call of the stores, each failure mapped by ``storage_failure``."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = client

    def get(self, key: Mapping[str, Any], projection: Sequence[str] = ()) -> dict[str, Any] | None:
        """The item (strongly consistent), or None."""
        params: dict[str, Any] = {"TableName": self.table_name, "Key": key, "ConsistentRead": True}
        if projection:
            names = {f"#p{i}": name for i, name in enumerate(projection)}
            params["ProjectionExpression"] = ", ".join(names)
            params["ExpressionAttributeNames"] = names
        try:
            answer = self.client.get_item(**params)
        except (ClientError, BotoCoreError) as exc:
            raise storage_failure(exc, action="read") from exc
        found = answer.get("Item")
        return item(found) if found else None

    def query(self, **params: Any) -> Iterator[dict[str, Any]]:
        return self._pages("query", params)

    def scan(self, **params: Any) -> Iterator[dict[str, Any]]:
        return self._pages("scan", params)

    def _pages(self, action: Literal["query", "scan"], params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a Query or Scan, page after page."""
        try:
            for page in self.client.get_paginator(action).paginate(TableName=self.table_name, **params):
                for found in page.get("Items", []):
                    yield item(found)
        except (ClientError, BotoCoreError) as exc:
            raise storage_failure(exc, action=action) from exc

    def batch_get(self, keys: Sequence[Mapping[str, Any]], projection: Sequence[str]) -> Iterator[dict[str, Any]]:
        """The items of ``keys`` that exist (BatchGetItem, strongly consistent, 100 keys a request)."""
        names = {f"#p{i}": name for i, name in enumerate(projection)}
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": list(keys[start : start + 100]),
                    "ConsistentRead": True,
                    "ProjectionExpression": ", ".join(names),
                    "ExpressionAttributeNames": names,
                }
            }
            for _ in range(5):
                try:
                    answer = self.client.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise storage_failure(exc, action="read") from exc
                for found in answer.get("Responses", {}).get(self.table_name, []):
                    yield item(found)
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise StorageError("DynamoDB left keys unprocessed after 5 attempts")

    def update(
        self,
        key: Mapping[str, Any],
        update: Update,
        *,
        what: str,
        condition: str | None = None,
        returns: str | None = None,
        old_on_failure: bool = False,
        refusable: bool = False,
    ) -> Written:
        """One UpdateItem; ``Written(False, …)`` when its ``condition`` fails (``old_on_failure``: with that item)."""
        params: dict[str, Any] = {"TableName": self.table_name, "Key": key}
        if condition:
            params["ConditionExpression"] = condition
        if old_on_failure:
            params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if returns is not None:
            params["ReturnValues"] = returns
        try:
            answer = self.client.update_item(**params, **update.params())
        except ClientError as exc:
            if condition and _condition_failed(exc):
                return Written(False, _old_item(exc))
            raise storage_failure(exc, what, refusable=refusable) from exc
        except BotoCoreError as exc:
            raise storage_failure(exc, what) from exc
        attributes = answer.get("Attributes")
        return Written(True, item(attributes) if attributes else None)

    def transact(self, items: Sequence[TransactWriteItemTypeDef], *, what: str, refusable: bool = False) -> Written:
        """One TransactWriteItems; ``Written(False, the item its condition found)`` when the first item's condition
        fails (the first item is the one the write is about; the others go with it)."""
        try:
            self.client.transact_write_items(TransactItems=list(items))
        except ClientError as exc:
            if _condition_failed(exc):
                return Written(False, _old_item(exc))
            raise storage_failure(exc, what, refusable=refusable) from exc
        except BotoCoreError as exc:
            raise storage_failure(exc, what) from exc
        return Written(True)

    def delete(self, key: Mapping[str, Any], *, what: str, condition: str) -> bool:
        """One conditional DeleteItem; False when the condition fails."""
        try:
            self.client.delete_item(TableName=self.table_name, Key=key, ConditionExpression=condition)
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise storage_failure(exc, what, action="delete") from exc
        except BotoCoreError as exc:
            raise storage_failure(exc, what, action="delete") from exc
        return True

    def update_item(
        self, key: Mapping[str, Any], update: Update, condition: str | None = None, *, old_on_failure: bool = False
    ) -> TransactWriteItemTypeDef:
        """The ``TransactItems`` entry of an update."""
        params = update.params()
        write: UpdateTypeDef = {
            "TableName": self.table_name,
            "Key": key,
            "UpdateExpression": params["UpdateExpression"],
            "ExpressionAttributeValues": params["ExpressionAttributeValues"],
        }
        if "ExpressionAttributeNames" in params:
            write["ExpressionAttributeNames"] = params["ExpressionAttributeNames"]
        if condition:
            write["ConditionExpression"] = condition
        if old_on_failure:
            write["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return {"Update": write}
