"""The webhook routes of the bundle (one per webhook URL and function), and which route a delivery belongs to by
what it is rather than by the URL it reached (``route_by_content``, used by the quarantine replay).

Each route takes its family's succeeded and failed events (the failed ones have the same data shape): a failed
redemption is recorded ``FAILED`` under its ``rf_…`` id, a failed rollback on its redemption without changing its
status. An envelope's ``event.type`` and its content must agree on which it is (``Route.disagreement``); a bare
body has no event type, so its content (``result`` / ``status``) says.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, create_model

from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.redemptions import WriteOutcome
from voucherify_ledger.models.webhooks import (
    EventRedemptionRollbackSucceededData,
    EventRedemptionSucceededData,
    SimpleRedemption,
    WebhookEnvelope,
    is_envelope,
)


@functools.cache
def envelope_of(model: type[BaseModel]) -> type[WebhookEnvelope]:
    """``WebhookEnvelope`` whose ``data`` is ``model``: a whole v2024 delivery validated in one pass."""
    return create_model(f"{model.__name__}Envelope", __base__=WebhookEnvelope, data=(model, ...))


@dataclass(frozen=True)
class Route:
    name: str
    schema: str  # the event whose data schema the route validates
    event_types: frozenset[str]
    model: type[BaseModel]
    failed_event_types: frozenset[str] = frozenset()  # the events of a failed attempt (a subset of event_types)

    @property
    def envelope_model(self) -> type[WebhookEnvelope]:
        return envelope_of(self.model)

    def record(self, ledger: Ledger, data: Any, delivery: Delivery) -> WriteOutcome:
        """The ledger write of a valid delivery of this route (``data``: an instance of its ``model``): a rollback,
        succeeded or failed, into its redemption's item; a redemption as what it is (SUCCEEDED or FAILED)."""
        if isinstance(data, EventRedemptionRollbackSucceededData):
            return ledger.redemptions.record_rollback(data, delivery)
        return ledger.redemptions.record(data, delivery)

    def disagreement(self, event_type: str | None, data: Any) -> str | None:
        """Why ``event_type`` (a known event name, None for a bare body) and ``data`` disagree on whether the attempt
        failed (a ``redemption.failed`` whose redemption succeeded, a rollback.succeeded whose rollback failed …),
        or None. Only known names and enum values are repeated."""
        if event_type is None or event_type not in self.event_types:
            return None
        subject: SimpleRedemption = (
            data.redemption_rollback if isinstance(data, EventRedemptionRollbackSucceededData) else data.redemption
        )
        if (event_type in self.failed_event_types) == subject.failed:
            return None
        what = "redemption_rollback" if isinstance(data, EventRedemptionRollbackSucceededData) else "redemption"
        says = "a failed attempt" if subject.failed else "no failure"
        return f"event.type: {event_type}, but {what} says {says} (result {subject.result}, status {subject.status})"


REDEMPTION_SUCCEEDED = Route(
    name="redemption-succeeded",
    schema="redemption.succeeded",
    # customer.redemption.succeeded is the distribution twin of redemption.succeeded, with the same data.
    # redemption.failed (same data) comes from the same Project settings webhook: recorded FAILED under its rf_ id.
    event_types=frozenset({"redemption.succeeded", "customer.redemption.succeeded", "redemption.failed"}),
    model=EventRedemptionSucceededData,
    failed_event_types=frozenset({"redemption.failed"}),
)

REDEMPTION_ROLLBACK_SUCCEEDED = Route(
    name="redemption-rollback-succeeded",
    schema="redemption.rollback.succeeded",
    # redemption.rollback.failed (same data): recorded on its redemption without changing the redemption's status.
    event_types=frozenset(
        {"customer.redemption.rollback.succeeded", "redemption.rollback.succeeded", "redemption.rollback.failed"}
    ),
    model=EventRedemptionRollbackSucceededData,
    failed_event_types=frozenset({"redemption.rollback.failed"}),
)

# Route.name → route: a quarantine record names the route that received it (``redemption-ledger quarantine replay``).
ROUTES: dict[str, Route] = {route.name: route for route in (REDEMPTION_SUCCEEDED, REDEMPTION_ROLLBACK_SUCCEEDED)}

# A bare body's top-level key → the name of the route it marks, checked in this order.
BARE_SHAPES: tuple[tuple[str, str], ...] = (
    ("redemption_rollback", REDEMPTION_ROLLBACK_SUCCEEDED.name),
    ("redemption", REDEMPTION_SUCCEEDED.name),
)


@dataclass(frozen=True)
class ContentRoute:
    """The route a delivery's content names, and what in the body says so."""

    route: str  # a key of ``ROUTES``
    evidence: str  # "event.type redemption.succeeded" or "a bare body with redemption_rollback"; only known names


def route_by_content(raw: bytes | bytearray | str, routes: Mapping[str, Route] | None = None) -> ContentRoute | None:
    """The route ``raw`` (a delivery's body as received) belongs to by what it is, or None when it cannot tell.

    A delivery sent to the wrong webhook URL is authentic but "the wrong event for the URL", so the receiver
    quarantines it and keeps the route that received it; replaying it there could only fail again. This names the
    route it belongs to instead:

    - a v2024-01-01 envelope (``is_envelope``: it carries ``event`` and ``data``) by its ``event.type``: the route
      whose ``event_types`` contain it — whatever its ``data`` looks like, as the receiver checks the type first;
    - a bare ("Raw payload") body by its shape (``BARE_SHAPES``): ``redemption_rollback`` present → the rollback
      route (a bare rollback also carries ``redemption``), else ``redemption`` present → the redemption route;
    - None when the body cannot say: not UTF-8 JSON, not an object, an envelope whose ``event`` is not an object or
      whose ``event.type`` is not a string naming exactly one route, a bare body with neither key.

    Only the route is decided here; whether the delivery is valid for it stays the route's business (the same checks
    as a live delivery). The body is parsed once by ``json.loads`` (linear in its size) and then looked at in a
    constant number of steps; no input makes it raise (too deep nesting, a 5,000-digit number, invalid UTF-8, an
    unhashable ``event.type`` … all give None). ``routes`` defaults to ``ROUTES`` as it is at the call."""
    try:
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        body = json.loads(text)
    except (ValueError, RecursionError, TypeError):
        # ValueError: not JSON, not UTF-8 (UnicodeDecodeError), a number beyond int's digit limit;
        # RecursionError: arrays or objects nested too deeply; TypeError: not bytes or text at all.
        return None
    return route_by_body(body, routes)


def route_by_body(body: Any, routes: Mapping[str, Route] | None = None) -> ContentRoute | None:
    """``route_by_content`` for a body already parsed (``json.loads``)."""
    if not isinstance(body, dict):
        return None
    known = ROUTES if routes is None else routes
    if is_envelope(body):
        event = body["event"]
        event_type = event.get("type") if isinstance(event, dict) else None
        if not isinstance(event_type, str):
            return None
        named = [name for name, route in known.items() if event_type in route.event_types]
        if len(named) != 1:
            return None
        return ContentRoute(named[0], f"event.type {event_type}")  # a known event name: safe to echo
    for key, name in BARE_SHAPES:
        if key in body:
            return ContentRoute(name, f"a bare body with {key}") if name in known else None
    return None
