"""Raw deliveries kept for audit: the ``Delivery`` as received, its audit map, and the conditional write of an item
that keeps one, inline (compressed) or, past ``INLINE_RAW_BYTES``, in its own ``RAW#<sha256>`` item beside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from voucherify_ledger.ledger.dynamo import StorageRefusedError, Table, Update, compact, compress, decompress
from voucherify_ledger.ledger.keys import RAW_SK_PREFIX, iso, redemption_item_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# A raw delivery whose compressed copy is larger than this is kept in an item of its own (``RAW#<sha256>`` beside the
# redemption), so a redemption item holding its delivery and many rollbacks stays far below 400 KB. Voucherify's
# deliveries compress to 1–3 KB; only unusual ones (a large metadata object, say) go out of line.
INLINE_RAW_BYTES = 32 * 1024


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


def delivery_audit(delivery: Delivery, compressed: bytes | None) -> dict[str, Any]:
    """The audit map of a delivery: its compressed raw copy (``raw_zlib``), or with ``compressed`` None the key of
    the item that keeps it (``raw_item``, ``RAW#<sha256>``), with route, ids and arrival time."""
    return compact(
        {
            "raw_zlib": compressed,
            "raw_item": None if compressed is not None else RAW_SK_PREFIX + hashlib.sha256(delivery.raw).hexdigest(),
            "route": delivery.route,
            "event_type": delivery.event_type,
            "delivery_id": delivery.delivery_id,
            "event_id": delivery.event_id,
            "received_at": iso(delivery.received_at),
            "replayed_from": delivery.replayed_from,
        }
    )


# An item's update and its condition, built around the delivery's audit map.
BuildUpdate = Callable[[dict[str, Any]], tuple[Update, str]]


def write_with_delivery(
    table: Table,
    key: dict[str, Any],
    delivery: Delivery,
    build: BuildUpdate,
    *,
    what: str,
    also: Sequence[TransactWriteItemTypeDef] = (),
    return_status: bool = False,
) -> tuple[bool, dict[str, Any] | None]:
    """Applies ``build(audit)`` (an update and its condition) to ``key``: ``(True, None)``, or ``(False, the item the
    condition found)`` when it failed (None if DynamoDB did not send it).

    With ``return_status``, an applied write answers what says the item's ``status``: the item as it was before the
    write (``ALL_OLD``: None for a new item, so nothing is sent back and parsed on the usual write; the item when
    one was there, e.g. made by a rollback that came first), or, after a transaction, the item's ``status`` as read
    back. Either way ``found.get("status")``, when there is one, is the status after a write that sets ``status``
    only where it is absent.

    The raw delivery goes into the audit map when its compressed copy is small (``INLINE_RAW_BYTES``), else into
    its own item ``RAW#<sha256>`` under the same partition, written in the same transaction. When DynamoDB says
    the item would pass 400 KB (a redemption holding many rollbacks), the write is made once more with the raw
    delivery out of line; if that is refused too, StorageRefusedError says why. With ``also`` (extra
    ``TransactItems``) or a raw copy out of line, the write is a transaction whose first item it is."""
    compressed = compress(delivery.raw)
    inline = len(compressed) <= INLINE_RAW_BYTES
    while True:
        audit = delivery_audit(delivery, compressed if inline else None)
        update, condition = build(audit)
        extra = list(also) if inline else [_raw_copy(table, key, delivery, compressed, audit), *also]
        try:
            if not extra:
                returns = "ALL_OLD" if return_status else "NONE"
                written = table.update(
                    key, update, what=what, condition=condition, returns=returns, old_on_failure=True, refusable=True
                )
                return written.applied, written.item
            first = table.update_item(key, update, condition, old_on_failure=True)
            written = table.transact([first, *extra], what=what, refusable=True)
        except StorageRefusedError as refused:
            if not (inline and refused.item_too_large):
                raise
            inline = False
            continue
        if not written.applied:
            return False, written.item
        return True, table.get(key, projection=("status",)) if return_status else None


def _raw_copy(
    table: Table, key: Mapping[str, Any], delivery: Delivery, compressed: bytes, audit: Mapping[str, Any]
) -> TransactWriteItemTypeDef:
    """The transaction item that keeps a raw delivery beside its redemption: same bytes, same item. An Update
    (which creates the item) rather than a Put, so the functions need no PutItem permission."""
    update = Update()
    update.set("entity", "raw_delivery")
    update.set("raw_zlib", compressed)
    update.set("raw_bytes", len(delivery.raw))
    update.set("route", delivery.route)
    update.set("received_at", iso(delivery.received_at))
    return table.update_item({"pk": key["pk"], "sk": {"S": audit["raw_item"]}}, update)


def read_raw(table: Table, redemption_id: str, audit: Mapping[str, Any]) -> bytes | None:
    """The raw bytes of a delivery audit map (``redemption_delivery`` or a rollback's ``delivery``), inline or in
    its ``RAW#`` item; None when there is none."""
    if audit.get("raw_zlib") is not None:
        return decompress(bytes(audit["raw_zlib"]))
    if not audit.get("raw_item"):
        return None
    found = table.get(redemption_item_key(redemption_id, audit["raw_item"]))
    return decompress(bytes(found["raw_zlib"])) if found else None
