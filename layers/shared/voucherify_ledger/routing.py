"""Which route a delivery belongs to, told by what it is rather than by the URL it reached.

A delivery sent to the wrong webhook URL is authentic but "the wrong event for the URL", so the receiver quarantines
it (202) and keeps the route that received it. Replaying it there can only fail again; ``route_by_content`` names
the route it belongs to instead (``redemption-ledger quarantine replay`` uses it):

- a v2024-01-01 envelope (``is_envelope``: it carries ``event`` and ``data``) by its ``event.type``: the route whose
  ``event_types`` contain it — whatever its ``data`` looks like, as the receiver checks the type first;
- a bare ("Raw payload") body by its shape: ``redemption_rollback`` present → the rollback route (a bare rollback
  also carries ``redemption``), else ``redemption`` present → the redemption route;
- None when the body cannot say: not UTF-8 JSON, not an object, an envelope whose ``event`` is not an object or whose
  ``event.type`` is not a string naming exactly one route, a bare body with neither key.

Only the route is decided here; whether the delivery is valid for it stays the route's receiver's business (today's
models, the same checks as a live delivery). The body is parsed once by ``json.loads`` (linear in its size) and then
looked at in a constant number of steps; no input makes it raise (too deep nesting, a 5,000-digit number, invalid
UTF-8, an unhashable ``event.type`` … all give None).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voucherify_ledger import webhooks
from voucherify_ledger.models.webhooks import is_envelope

# A bare body's top-level key → the name of the route it marks, checked in this order.
BARE_SHAPES: tuple[tuple[str, str], ...] = (
    ("redemption_rollback", webhooks.REDEMPTION_ROLLBACK_SUCCEEDED.name),
    ("redemption", webhooks.REDEMPTION_SUCCEEDED.name),
)


@dataclass(frozen=True)
class ContentRoute:
    """The route a delivery's content names, and what in the body says so."""

    route: str  # a key of ``webhooks.ROUTES``
    evidence: str  # "event.type redemption.succeeded" or "a bare body with redemption_rollback"; only known names


def route_by_content(
    raw: bytes | bytearray | str, routes: Mapping[str, webhooks.Route] | None = None
) -> ContentRoute | None:
    """The route ``raw`` (a delivery's body as received) belongs to by what it is, or None when it cannot tell.
    ``routes`` defaults to ``webhooks.ROUTES`` as it is at the call."""
    try:
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        body = json.loads(text)
    except (ValueError, RecursionError, TypeError):
        # ValueError: not JSON, not UTF-8 (UnicodeDecodeError), a number beyond int's digit limit;
        # RecursionError: arrays or objects nested too deeply; TypeError: not bytes or text at all.
        return None
    return route_by_body(body, routes)


def route_by_body(body: Any, routes: Mapping[str, webhooks.Route] | None = None) -> ContentRoute | None:
    """``route_by_content`` for a body already parsed (``json.loads``)."""
    if not isinstance(body, dict):
        return None
    known = webhooks.ROUTES if routes is None else routes
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
