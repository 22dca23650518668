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
from datetime import datetime
from typing import Any, Literal

from voucherify_ledger.ledger.claims import RedemptionClaims, finished_note, release_update
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.dynamo import Table, Update, av, compact
from voucherify_ledger.ledger.keys import (
    ALREADY_ROLLED_BACK,
    FAILED,
    ORDER_REQUEST_FIELDS,
    ORDER_REQUEST_PREFIXES,
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

COUNTED_REQUEST_FIELDS = frozenset({"api_calls", "attempts"})  # added up over the attempts, not overwritten
MAX_ERRORS = 50  # error lines kept on a rejected request


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

    def __init__(self, table: Table, redemptions: RedemptionStore, claims: RedemptionClaims | None = None) -> None:
        self.table = table
        self.redemptions = redemptions
        self.claims = claims or RedemptionClaims(table)

    def update(
        self,
        redemption_id: str,
        request_id: str,
        state: str,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
        guarded: bool = True,
    ) -> bool:
        """Sets the request's state (and ``fields``; ``None`` values remove the attribute). False when a guard
        kept a finished request as it was (without ``guarded``, none does)."""
        update, condition = request_update(state, now, fields, guarded=guarded)
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
        is recorded once, whichever arrives first), and the request's final state: SUCCEEDED, or FAILED with
        ``failure_code``/``failure_message`` for a rollback whose result is FAILURE.

        With ``request_id`` (the request that holds the redemption's claim), the request item is written first and
        the redemption's write, which releases the claim and notes the request finished, second: if either fails,
        the claim is still the request's, and the answer can be kept for its retry (``ledger.claims``)."""
        if not rollback.redemption:
            rollback = rollback.model_copy(update={"redemption": redemption_id})
        # The rollback is validated already (``SimpleRedemption``): the event's data is put together around it with
        # the model's own checks, without building a validator for the whole event.
        data = EventRedemptionRollbackSucceededData.model_construct(redemption_rollback=rollback)
        data.check()
        delivery = Delivery(raw=raw, route="rollback-worker", received_at=received_at, event_type="redemption_rollback")
        if request_id is None:  # a stack's child, rolled back with its parent: no request of its own
            return self.redemptions.record_rollback(data, delivery, source="worker")
        state, fields = SUCCEEDED, {"rollback_id": rollback.id, **(request_fields or {})}
        error_key = None
        if not rollback_succeeded(rollback):
            state = FAILED
            error_key = rollback.failure_code or "rollback_failed"
            fields["error"] = compact(
                {
                    "status": 200,
                    "key": error_key,
                    "message": rollback.failure_message or "Voucherify answered the rollback with result FAILURE",
                }
            )
        self.update(redemption_id, request_id, state, now=received_at, fields=fields)
        note = finished_note(state, rollback.id, error_key)
        outcome = self.redemptions.record_rollback(
            data, delivery, source="worker", amend=lambda update: release_update(update, request_id, note)
        )
        if outcome.status == "duplicate":
            # The webhook recorded this rollback first: the claim is left to release, the request to say so.
            self.claims.release(redemption_id, request_id, finished=note)
            self.update(redemption_id, request_id, state, now=received_at, fields={"recorded_by": "webhook"})
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
        the request ends ALREADY_ROLLED_BACK (a request that already SUCCEEDED stays as it is). Confirmed by the
        API, the request holds the redemption's claim: the redemption is then (kept) ROLLED_BACK, the claim
        released and the request noted finished, in the redemption's one write after the request's."""
        request_fields = {"confirmed_by": confirmed_by, **(fields or {})}
        self.update(redemption_id, request_id, ALREADY_ROLLED_BACK, now=now, fields=request_fields)
        if confirmed_by == "ledger":
            return
        redemption = Update()
        redemption.set_if_absent("redemption_id", redemption_id)
        redemption.set_if_absent("entity", "redemption")
        redemption.set("status", ROLLED_BACK)
        redemption.set("updated_at", iso(now))
        release_update(redemption, request_id, finished_note(ALREADY_ROLLED_BACK))
        self.table.update(redemption_key(redemption_id), redemption, what="redemption")

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
