"""The redemption store: redemptions with their rollbacks, the raw copies kept out of line (``RAW#``) and the
conflicting deliveries of a recorded redemption (``CONFLICT#``), all under ``REDEMPTION#<r_…>`` (a failed attempt
under ``REDEMPTION#<rf_…>``, status ``FAILED``).

A rollback is the map attribute ``rollback#<rr_…>`` of its redemption's item, recorded with the flip to
``ROLLED_BACK`` in one conditional write, whoever reports it first (the webhook or the worker); a failed rollback
(``rrf_…``, or result FAILURE) is recorded the same way, in ``failed_rollback_ids``, and leaves the status as it is.
What the summaries hold is decided in ``ledger.summaries``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from voucherify_ledger.ledger.claims import ANSWER, CLAIM, CLAIM_UNTIL, FINISHED_PREFIX
from voucherify_ledger.ledger.deliveries import Delivery, delivery_audit, read_raw, write_with_delivery
from voucherify_ledger.ledger.dynamo import StorageError, Table, Update, av, compress
from voucherify_ledger.ledger.keys import (
    BY_REDEEMED_DAY,
    CONFLICT_SK_PREFIX,
    INDEX_KEYS,
    INDEXES,
    REDEMPTION_PREFIX,
    REDEMPTION_SK,
    REQUEST_SK_PREFIX,
    ROLLBACK_IDS,
    ROLLBACK_PREFIX,
    ROLLED_BACK,
    iso,
    redeemed_day,
    redemption_item_key,
    redemption_key,
)
from voucherify_ledger.ledger.summaries import (
    REDEMPTION_FAILED,
    ledger_status,
    redemption_summary,
    rollback_succeeded,
    rollback_summary,
    summary_digest,
)
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData, EventRedemptionSucceededData

__all__ = [
    "REDEMPTION_FAILED",
    "RedemptionStore",
    "WriteOutcome",
    "public",
    "redemption_summary",
    "rollback_succeeded",
    "rollback_summary",
    "rollbacks_of",
    "summary_digest",
]

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# Shown to no one: keys, audit blobs and the digest (``public``); rollback attributes are shown as rollbacks.
# The rollback worker's claim and notes (``ledger.claims``) are its own business too.
HIDDEN = frozenset(
    {
        "pk",
        "sk",
        "entity",
        "redemption_delivery",
        "delivery",
        "raw_zlib",
        "redemption_digest",
        CLAIM,
        CLAIM_UNTIL,
        ANSWER,
    }
)
# ``redemption_recorded_at``: the redemption itself was recorded (an item a rollback made first has its id alone).
STATE_FIELDS = (
    "redemption_id",
    "status",
    "rollback_ids",
    "failed_rollback_ids",
    "parent_redemption_id",
    "stack_role",
    "redemption_recorded_at",
)


@dataclass(frozen=True)
class WriteOutcome:
    status: Literal["recorded", "duplicate"]
    redemption_id: str
    ledger_status: str | None = None
    rollback_id: str | None = None
    # A duplicate whose content differs from what the ledger holds: the conflicting delivery's record (CONFLICT#…).
    conflict_id: str | None = None
    conflicting_fields: tuple[str, ...] = ()


def public(found: Mapping[str, Any]) -> dict[str, Any]:
    """An item without keys, audit blobs and rollback attributes, as the CLI and APIs show it."""
    return {
        k: v
        for k, v in found.items()
        if k not in HIDDEN and not k.startswith(ROLLBACK_PREFIX) and not k.startswith(FINISHED_PREFIX)
    }


def rollbacks_of(found: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The rollbacks held by a redemption item, each as the CLI and APIs show a rollback (without its delivery)."""
    redemption_id = found["pk"].removeprefix(REDEMPTION_PREFIX)
    for name, entry in found.items():
        if name.startswith(ROLLBACK_PREFIX):
            shown = {k: v for k, v in entry.items() if k != "delivery"}
            yield {"rollback_id": name.removeprefix(ROLLBACK_PREFIX), "redemption_id": redemption_id, **shown}


def _rollback_update(
    data: EventRedemptionRollbackSucceededData,
    audit: dict[str, Any],
    *,
    source: str,
    when: str | None,
    amend: Callable[[Update], None] | None = None,
) -> tuple[Update, str]:
    """The write of a rollback into its redemption's item, under the condition that its ``rr_…`` is new."""
    rollback = data.redemption_rollback
    redemption_id = data.redemption_id
    # the attribute's name says the rollback's id, the item the redemption's
    summary = {k: v for k, v in rollback_summary(rollback, redemption_id, data).items() if k not in ROLLBACK_IDS}
    update = Update()
    if data.redemption is not None and data.redemption.id == redemption_id:
        for name, value in redemption_summary(data, data.redemption).items():
            update.set_if_absent(name, value)
    else:
        update.set_if_absent("redemption_id", redemption_id)
    update.set_if_absent("entity", "redemption")
    update.set(ROLLBACK_PREFIX + rollback.id, {"source": source, "recorded_at": when, **summary, "delivery": audit})
    if rollback_succeeded(rollback):
        update.set("status", ROLLED_BACK)
        update.set("rolled_back_at", iso(rollback.date))
        update.add("rollback_ids", {rollback.id})
    else:
        update.add("failed_rollback_ids", {rollback.id})
    update.set("updated_at", when)
    if amend is not None:
        amend(update)
    recorded, failed = update.name_of("rollback_ids"), update.name_of("failed_rollback_ids")
    update.values[":rollback_id"] = av(rollback.id)
    return update, (
        f"(attribute_not_exists({recorded}) OR NOT contains({recorded}, :rollback_id)) AND "
        f"(attribute_not_exists({failed}) OR NOT contains({failed}, :rollback_id))"
    )


class RedemptionStore:
    """Redemptions and their rollbacks: idempotent on Voucherify's ids, whatever the arrival order."""

    def __init__(self, table: Table) -> None:
        self.table = table

    # --- writes ---------------------------------------------------------------------------------
    def record(
        self, data: EventRedemptionSucceededData, delivery: Delivery, *, reconcile_job_id: str | None = None
    ) -> WriteOutcome:
        """One conditional UpdateItem of the redemption item, unless the redemption is recorded already: then nothing
        is written and the outcome is ``duplicate`` (from the item the condition found: no second read), with the
        delivery kept as a conflict (``CONFLICT#…``) when what it says of the redemption differs.

        The redemption is recorded as what it is: ``SUCCEEDED``, or ``FAILED`` for a failed attempt
        (``ledger_status``), unless a rollback that came first has left ``ROLLED_BACK``. ``reconcile_job_id``: the
        backfill job (``bf_…``) that recorded it from Voucherify's list, kept as ``reconcile_job_id``."""
        redemption = data.redemption
        status = ledger_status(redemption)
        summary = redemption_summary(data, redemption)
        digest = summary_digest(summary)
        key = redemption_key(redemption.id)

        def update(audit: dict[str, Any]) -> tuple[Update, str]:
            update = Update()
            for name, value in summary.items():
                update.set(name, value)
            update.set("entity", "redemption")
            update.set_if_absent("status", status)
            if isinstance(summary.get("redeemed_at"), str):  # ByRedeemedDay: the redemption is recorded
                update.set("redeemed_day", redeemed_day(summary["redeemed_at"]))
            update.set("redemption_recorded_at", iso(delivery.received_at))
            update.set("updated_at", iso(delivery.received_at))
            update.set("redemption_digest", digest)
            update.set("redemption_delivery", audit)
            if reconcile_job_id is not None:
                update.set("reconcile_job_id", reconcile_job_id)
            return update, f"attribute_not_exists({update.name_of('redemption_recorded_at')})"

        # The status a rollback that came first left in place (set_if_absent keeps it), from the item as it was: a new
        # redemption's item did not exist, so nothing comes back to parse. Returned values cost no capacity.
        applied, found = write_with_delivery(self.table, key, delivery, update, what="redemption", return_status=True)
        if applied:
            return WriteOutcome("recorded", redemption.id, (found or {}).get("status") or status)
        old = found if found is not None else self.table.get(key, projection=("status", "redemption_digest")) or {}
        outcome = WriteOutcome("duplicate", redemption.id, old.get("status"))
        if old.get("redemption_digest") not in (None, digest):
            differing = tuple(sorted(k for k in summary if old.get(k) != summary[k] and k in old)) or ("content",)
            conflict_id = self._keep_conflict(redemption.id, delivery, summary, differing)
            outcome = replace(outcome, conflict_id=conflict_id, conflicting_fields=differing)
        return outcome

    def record_rollback(
        self,
        data: EventRedemptionRollbackSucceededData,
        delivery: Delivery,
        *,
        source: str = "webhook",
        also: Sequence[TransactWriteItemTypeDef] = (),
        amend: Callable[[Update], None] | None = None,
    ) -> WriteOutcome:
        """The one write path of a rollback (``rr_…``), whoever reports it first — the webhook or the worker.

        One write of the redemption item: the rollback's attribute ``rollback#<rr_…>``, the redemption flipped to
        ``ROLLED_BACK`` (or the failed rollback noted), under the condition that the ``rr_…`` is not recorded yet
        (in neither ``rollback_ids`` nor ``failed_rollback_ids``). An UpdateItem, or with ``also`` (extra
        ``TransactItems``, e.g. the worker's request item) or a raw delivery kept out of line, a transaction whose
        first item it is. When the rollback is already recorded nothing is written and the outcome is ``duplicate``.
        ``amend`` adds to the same write (the worker releases its claim with it).
        """
        rollback = data.redemption_rollback
        redemption_id = data.redemption_id
        when = iso(delivery.received_at)
        applied, old = write_with_delivery(
            self.table,
            redemption_key(redemption_id),
            delivery,
            lambda audit: _rollback_update(data, audit, source=source, when=when, amend=amend),
            what="rollback",
            also=also,
        )
        if not applied:
            status = (old or {}).get("status") if old is not None else self._status_of(redemption_id)
            return WriteOutcome("duplicate", redemption_id, status, rollback.id)
        return WriteOutcome(
            "recorded", redemption_id, ROLLED_BACK if rollback_succeeded(rollback) else None, rollback.id
        )

    def _keep_conflict(
        self, redemption_id: str, delivery: Delivery, summary: Mapping[str, Any], differing: Sequence[str]
    ) -> str:
        """Keeps a delivery of a recorded redemption that says something else (``REDEMPTION#<r_…> /
        CONFLICT#<sha256>``: what it says, which fields differ, its raw copy), once per distinct delivery. Its
        summary sits in a map, so the indexes never list it as a redemption."""
        digest = hashlib.sha256(delivery.raw).hexdigest()[:32]
        update = Update()
        update.set_if_absent("entity", "conflicting_delivery")
        update.set_if_absent("conflict_id", "c_" + digest)
        update.set_if_absent("first_received_at", iso(delivery.received_at))
        update.set("last_received_at", iso(delivery.received_at))
        update.set("conflicting_fields", list(differing))
        update.set("summary", dict(summary))
        update.set("delivery", delivery_audit(delivery, compress(delivery.raw)))
        update.add("deliveries", 1)
        key = redemption_item_key(redemption_id, CONFLICT_SK_PREFIX + digest)
        self.table.update(key, update, what="conflicting delivery", refusable=True)
        return "c_" + digest

    # --- reads ----------------------------------------------------------------------------------
    def get(self, redemption_id: str) -> dict[str, Any] | None:
        """The redemption with its rollbacks, its rollback requests and its conflicting deliveries, or None when the
        ledger has never heard of it."""
        items = list(
            self.table.query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": av(REDEMPTION_PREFIX + redemption_id)},
                ConsistentRead=True,
            )
        )
        if not items:
            return None
        view: dict[str, Any] = {"id": redemption_id}
        rollbacks: list[dict[str, Any]] = []
        requests: list[dict[str, Any]] = []
        conflicts: list[dict[str, Any]] = []
        for found in items:
            if found["sk"] == REDEMPTION_SK:
                view.update(public(found))
                rollbacks.extend(rollbacks_of(found))
            elif found["sk"].startswith(REQUEST_SK_PREFIX):
                requests.append(public(found))
            elif found["sk"].startswith(CONFLICT_SK_PREFIX):
                conflicts.append(public(found))
        view.setdefault("status", None)
        view["rollbacks"] = sorted(rollbacks, key=lambda r: r.get("rolled_back_at") or "")
        view["rollback_ids"] = sorted(view.get("rollback_ids") or [])
        if requests:  # rollback requests of the rollback worker (absent when there were none)
            requests.sort(key=lambda r: (r.get("created_at") or "", r.get("request_id", "")))
            view["rollback_requests"] = requests
        if conflicts:  # deliveries of this id that said something else (the first record stands)
            view["conflicting_deliveries"] = sorted(conflicts, key=lambda c: c.get("first_received_at") or "")
        return view

    def recorded_between(self, after: datetime, before: datetime) -> list[str]:
        """The redemptions recorded (not only rolled back) whose ``redeemed_at`` is in ``[after, before)``, by
        ``ByRedeemedDay``: one Query per UTC day of the range."""
        last = before - timedelta(milliseconds=1)
        found: list[str] = []
        day = after.astimezone(UTC).date()
        while day <= last.astimezone(UTC).date():
            found.extend(
                str(item["pk"]).removeprefix(REDEMPTION_PREFIX)
                for item in self.table.query(
                    IndexName=BY_REDEEMED_DAY,
                    KeyConditionExpression="#d = :d AND #t BETWEEN :after AND :last",
                    ExpressionAttributeNames={"#d": "redeemed_day", "#t": "redeemed_at"},
                    ExpressionAttributeValues={
                        ":d": av(day.isoformat()),
                        ":after": av(iso(after)),
                        ":last": av(iso(last)),
                    },
                )
            )
            day += timedelta(days=1)
        return found

    def list_by(
        self, key: Literal["order", "order_source_id", "customer", "voucher_code"], value: str
    ) -> list[dict[str, Any]]:
        """Redemptions of an order (``ord_…``, or the merchant's order id: ``order_source_id``), a customer
        (``cust_…``) or a voucher code, oldest first; each with what its index projects."""
        return [
            public(found)
            for found in self.table.query(
                IndexName=INDEXES[key],
                KeyConditionExpression="#k = :v",
                ExpressionAttributeNames={"#k": INDEX_KEYS[key]},
                ExpressionAttributeValues={":v": av(value)},
            )
        ]

    def raw_delivery(self, redemption_id: str, audit: Mapping[str, Any]) -> bytes | None:
        """The raw bytes of a delivery audit map (``redemption_delivery`` or a rollback's ``delivery``); None when
        there is none."""
        return read_raw(self.table, redemption_id, audit)

    def state(self, redemption_id: str) -> dict[str, Any] | None:
        """``status``, ``rollback_ids``, ``parent_redemption_id`` and ``stack_role`` of a redemption (strongly
        consistent), or None when the ledger does not know it. Unlike the webhook's lookups, a failed read raises
        StorageError."""
        return self.table.get(redemption_key(redemption_id), projection=STATE_FIELDS)

    def states(self, redemption_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``state`` of several redemptions (BatchGetItem, strongly consistent), by id."""
        keys = [redemption_key(r) for r in dict.fromkeys(redemption_ids)]
        return {found["redemption_id"]: found for found in self.table.batch_get(keys, STATE_FIELDS)}

    def _status_of(self, redemption_id: str) -> str | None:
        try:
            found = self.table.get(redemption_key(redemption_id), projection=("status",))
        except StorageError:
            return None
        return (found or {}).get("status")
