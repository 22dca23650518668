"""The quarantine store: authentic deliveries the ledger cannot record (invalid, the wrong URL, refused by
DynamoDB), kept whole with their errors under ``QUARANTINE#<q_…>`` until their retention passes, and listed,
replayed and removed by the operator (``redemption-ledger quarantine``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.dynamo import StorageRefusedError, Table, Update, compress
from voucherify_ledger.ledger.keys import QUARANTINE_INDEX, iso, quarantine_key
from voucherify_ledger.ledger.redemptions import public

MAX_ERRORS = 50  # error lines kept with a quarantined delivery …
MAX_ERROR_CHARS = 500  # … each at most this long


@dataclass(frozen=True)
class QuarantineOutcome:
    quarantine_id: str
    deliveries: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def quarantine_id_for(raw: bytes) -> str:
    """Same bytes, same quarantine record: a poison delivery retried by Voucherify is stored once."""
    return "q_" + hashlib.sha256(raw).hexdigest()[:32]


class QuarantineStore:
    """Quarantine records: one per distinct body, counted on every delivery of it."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def keep(self, delivery: Delivery, errors: list[str], *, retention_days: int, reason: str) -> QuarantineOutcome:
        """Keeps an authentic delivery the ledger cannot record with its errors, once per distinct body, until
        ``retention_days`` have passed. A body is at most MAX_BODY_BYTES (256 KiB), so its compressed copy fits the
        item; should DynamoDB still refuse the record, it is kept without the raw copy (its size and SHA-256 say
        what it was) rather than not at all."""
        try:
            return self._keep(delivery, errors, retention_days=retention_days, reason=reason, keep_raw=True)
        except StorageRefusedError as refused:
            errors = [*errors[: MAX_ERRORS - 1], f"raw copy not kept: {refused.reason}"]
            return self._keep(delivery, errors, retention_days=retention_days, reason=reason, keep_raw=False)

    def _keep(
        self, delivery: Delivery, errors: list[str], *, retention_days: int, reason: str, keep_raw: bool
    ) -> QuarantineOutcome:
        quarantine_id = quarantine_id_for(delivery.raw)
        now = delivery.received_at
        update = Update()
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
        update.set("errors", [error[:MAX_ERROR_CHARS] for error in errors[:MAX_ERRORS]])
        if delivery.event_type:
            update.set("event_type", delivery.event_type)
        if delivery.delivery_id:
            update.set("delivery_id", delivery.delivery_id)
        update.set("expires_at", int((now + timedelta(days=retention_days)).timestamp()))
        update.add("deliveries", 1)
        written = self.table.update(
            quarantine_key(quarantine_id), update, what="quarantine record", returns="UPDATED_NEW", refusable=True
        )
        return QuarantineOutcome(quarantine_id, (written.item or {}).get("deliveries", 1))

    def get(self, quarantine_id: str) -> dict[str, Any] | None:
        """The whole record, its raw copy included, or None."""
        return self.table.get(quarantine_key(quarantine_id))

    def records(self) -> list[dict[str, Any]]:
        """Every quarantine record, oldest first, as the sparse ``Quarantine`` index projects it: ids, route, reason,
        errors, dates and counts, never the raw delivery. A Scan of the index reads only quarantine records (they
        alone carry ``quarantine_id``), not the ledger; the index is eventually consistent."""
        found = [public(record) for record in self.table.scan(IndexName=QUARANTINE_INDEX)]
        return sorted(found, key=lambda q: (q.get("first_received_at") or "", q.get("quarantine_id") or ""))

    def remove(self, quarantine_id: str) -> bool:
        """Deletes the record of a quarantined delivery that is now in the ledger. False when it was already gone
        (another replay removed it, or TTL). A live retry of the same bytes can only write the same delivery."""
        return self.table.delete(quarantine_key(quarantine_id), what="quarantine", condition="attribute_exists(pk)")

    def note_failed_replay(
        self, quarantine_id: str, *, reason: str, errors: Sequence[str], now: datetime
    ) -> dict[str, Any] | None:
        """A replay that still fails: today's reason and errors, ``replay_attempts`` + 1 and ``last_replayed_at``.
        The expiry is kept. None (nothing written) when the record is gone: it is never re-created without its
        delivery."""
        update = Update()
        update.set("reason", reason)
        update.set("errors", list(errors)[:MAX_ERRORS])
        update.set("last_replayed_at", iso(now))
        update.add("replay_attempts", 1)
        written = self.table.update(
            quarantine_key(quarantine_id),
            update,
            what="quarantine",
            condition="attribute_exists(pk)",
            returns="ALL_NEW",
        )
        return public(written.item or {}) if written.applied else None
