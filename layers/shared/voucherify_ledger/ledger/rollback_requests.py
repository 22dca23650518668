"""The rollback request store: what the rollback worker asked Voucherify and what came of it.

A request item (``REDEMPTION#<r_…> / REQUEST#<id>``; an order's ``ORDER#<ord_…> / REQUEST#<id>``, or by the
merchant's order id ``ORDER_SOURCE#<order source id> / REQUEST#<id>``; a malformed one's ``REQUEST#<id> / REQUEST``)
carries ``state`` (``REQUEST_STATES``), ``attempts``, ``error`` ({status, key, message, and from Voucherify's answer
details, request_id, resource_id, resource_type} of the last problem), ``next_attempt_at`` and ``rollback_id``. It
never carries ``order_id``/``order_source_id``/``customer_id``/``voucher_code``/``redeemed_at``, so the indexes never
list it, and holds no personal data (the rollback's customer, order and metadata are sent, not stored). Guards keep a
finished request finished: nothing overwrites SUCCEEDED; ALREADY_ROLLED_BACK gives way only to SUCCEEDED;
PENDING/RETRYING/FAILED never replace either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.dynamo import Table, Update, av, compact
from voucherify_ledger.ledger.keys import (
    ALREADY_ROLLED_BACK,
    FAILED,
    ORDER_REQUEST_FIELDS,
    ORDER_REQUEST_PREFIXES,
    PENDING,
    REQUEST_SK_PREFIX,
    REQUEST_STATES,
    RETRYING,
    ROLLED_BACK,
    SUCCEEDED,
    OrderField,
    iso,
    order_request_key,
    redemption_key,
    rejected_request_key,
    request_key,
)
from voucherify_ledger.ledger.redemptions import RedemptionStore, WriteOutcome, public, rollback_succeeded
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData, SimpleRedemption

COUNTED_REQUEST_FIELDS = frozenset({"api_calls"})  # added up over the attempts, not overwritten
MAX_ERRORS = 50  # error lines kept on a rejected request


@dataclass(frozen=True)
class RequestStart:
    """``begin``'s answer: go on (``proceed``), or the request is already finished."""

    proceed: bool
    item: dict[str, Any]


def request_update(
    state: str, now: datetime, fields: Mapping[str, Any] | None, *, guarded: bool = True
) -> tuple[Update, str | None]:
    """The update of a request to ``state`` (``fields``: None or "" removes the attribute), and (``guarded``) the
    condition that keeps a finished request as it is."""
    if state not in REQUEST_STATES:
        raise ValueError(f"unknown request state {state!r}")
    update = Update()
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
    update.values[":succeeded"] = av(SUCCEEDED)
    if state == ALREADY_ROLLED_BACK:
        return update, f"attribute_not_exists({placeholder}) OR {placeholder} <> :succeeded"
    update.values[":already"] = av(ALREADY_ROLLED_BACK)
    return update, f"attribute_not_exists({placeholder}) OR NOT {placeholder} IN (:succeeded, :already)"


def _identity(update: Update, redemption_id: str, request_id: str, now: datetime) -> None:
    """A request item written before its first attempt was recorded still says what it is."""
    update.set_if_absent("entity", "rollback_request")
    update.set_if_absent("request_id", request_id)
    update.set_if_absent("redemption_id", redemption_id)
    update.set_if_absent("created_at", iso(now))


class RollbackRequestStore:
    """Rollback requests, and the writes that finish one together with its redemption."""

    def __init__(self, table: Table, redemptions: RedemptionStore) -> None:
        self.table = table
        self.redemptions = redemptions

    def begin(
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
        update = Update()
        update.set("state", PENDING)
        _identity(update, redemption_id, request_id, now)
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
        state, dead = update.name_of("state"), update.name_of("dead_lettered")
        update.values.update({":pending": av(PENDING), ":retrying": av(RETRYING), ":failed": av(FAILED)})
        update.values[":true"] = av(True)
        condition = (
            f"attribute_not_exists({state}) OR {state} IN (:pending, :retrying) "
            f"OR ({state} = :failed AND {dead} = :true)"
        )
        key = request_key(redemption_id, request_id)
        written = self.table.update(key, update, what="request", condition=condition, returns="ALL_NEW")
        if not written.applied:
            return RequestStart(False, self.table.get(key) or {})
        return RequestStart(True, written.item or {})

    def update(
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
        update, condition = request_update(state, now, fields)
        _identity(update, redemption_id, request_id, now)
        return self.table.update(
            request_key(redemption_id, request_id), update, what="request", condition=condition
        ).applied

    def record_rejected(
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
        update = Update()
        update.set_if_absent("entity", "rollback_request")
        update.set_if_absent("request_id", request_id)
        update.set_if_absent("created_at", iso(now))
        update.set("updated_at", iso(now))
        update.set("state", state)
        update.set(
            "error", dict(error or {"key": "invalid_request", "message": "the message is not a valid RollbackRequest"})
        )
        update.set("errors", list(errors)[:MAX_ERRORS])
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
        self.table.update(rejected_request_key(request_id), update, what="request")

    def record_order(
        self,
        order: str,
        request_id: str,
        state: str,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
        by: OrderField = "order_id",
    ) -> None:
        """An order-level request (``ORDER#<ord_…>``, or ``by`` the merchant's order id ``ORDER_SOURCE#<order source
        id>``, / ``REQUEST#<request id>``): FANNED_OUT with the redemptions it queued, ALREADY_ROLLED_BACK, or FAILED
        (the ledger holds no redemption of the order). A guard that keeps a finished request as it is writes
        nothing."""
        update, condition = request_update(state, now, fields)
        update.set_if_absent("entity", "rollback_request")
        update.set_if_absent("request_id", request_id)
        update.set_if_absent(ORDER_REQUEST_FIELDS[by], order)
        update.set_if_absent("created_at", iso(now))
        update.add("attempts", 1)
        self.table.update(order_request_key(order, request_id, by), update, what="request", condition=condition)

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
        """A rollback object from the API's answer, through the same write as the webhook's (so the same ``rr_…``
        is recorded once, whichever arrives first), together with the request's final state in one transaction:
        SUCCEEDED, or FAILED with ``failure_code``/``failure_message`` for a rollback whose result is FAILURE."""
        if not rollback.redemption:
            rollback = rollback.model_copy(update={"redemption": redemption_id})
        data = EventRedemptionRollbackSucceededData(redemption_rollback=rollback)
        delivery = Delivery(raw=raw, route="rollback-worker", received_at=received_at, event_type="redemption_rollback")
        state, fields = SUCCEEDED, {"rollback_id": rollback.id, **(request_fields or {})}
        if not rollback_succeeded(rollback):
            state = FAILED
            fields["error"] = compact(
                {
                    "status": 200,
                    "key": rollback.failure_code or "rollback_failed",
                    "message": rollback.failure_message or "Voucherify answered the rollback with result FAILURE",
                }
            )
        also = []
        if request_id is not None:
            # Unguarded inside the transaction: the rollback is new, so this is the request's final word.
            update, _ = request_update(state, received_at, fields, guarded=False)
            _identity(update, redemption_id, request_id, received_at)
            also.append(self.table.update_item(request_key(redemption_id, request_id), update))
        outcome = self.redemptions.record_rollback(data, delivery, source="worker", also=also)
        if outcome.status == "duplicate" and request_id is not None:
            # The webhook recorded this rollback first: only the request is left to finish.
            self.update(redemption_id, request_id, state, now=received_at, fields={**fields, "recorded_by": "webhook"})
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
        the request ends ALREADY_ROLLED_BACK and the redemption is (kept) ROLLED_BACK, in one transaction. A request
        that already SUCCEEDED stays as it is."""
        request_fields = {"confirmed_by": confirmed_by, **(fields or {})}
        if confirmed_by == "ledger":
            self.update(redemption_id, request_id, ALREADY_ROLLED_BACK, now=now, fields=request_fields)
            return
        request, condition = request_update(ALREADY_ROLLED_BACK, now, request_fields)
        _identity(request, redemption_id, request_id, now)
        redemption = Update()
        redemption.set_if_absent("redemption_id", redemption_id)
        redemption.set_if_absent("entity", "redemption")
        redemption.set("status", ROLLED_BACK)
        redemption.set("updated_at", iso(now))
        self.table.transact(
            [
                self.table.update_item(request_key(redemption_id, request_id), request, condition),
                self.table.update_item(redemption_key(redemption_id), redemption),
            ],
            what="request",
        )

    def get(self, request_id: str, redemption_id: str | None = None) -> dict[str, Any] | None:
        """A request of a redemption, or (without ``redemption_id``) a rejected, malformed request."""
        key = request_key(redemption_id, request_id) if redemption_id else rejected_request_key(request_id)
        found = self.table.get(key)
        return public(found) if found else None

    def of_order(self, order: str, *, by: OrderField = "order_id") -> list[dict[str, Any]]:
        """The order-level rollback requests of an order (``by`` its ``ord_…`` id or the merchant's), oldest first."""
        found = self.table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
            ExpressionAttributeValues={":pk": av(ORDER_REQUEST_PREFIXES[by] + order), ":sk": av(REQUEST_SK_PREFIX)},
            ConsistentRead=True,
        )
        return sorted((public(i) for i in found), key=lambda r: (r.get("created_at") or "", r["request_id"]))
