"""Quarantined deliveries, replayed through today's receiver (``redemption-ledger quarantine replay``).

A delivery is quarantined when it was authentic but failed validation (or came to the wrong URL). Its record
(``QUARANTINE#q_…``) keeps the raw body as received (base64 already decoded) and the name of the route that
received it: all the receiver needs after authentication, which the delivery passed when it arrived. Replay
runs the body through ``RouteReplay.replay`` of the route it belongs to — the same checks as a live
delivery, with today's models. Which route, in this order (the result's ``routed_by``, with ``route_evidence``):

- ``operator``: the route the operator named (``quarantine replay ID --route NAME``);
- ``content``: the route the body names by what it is (``voucherify_ledger.webhooks.routes``: an envelope's
  ``event.type``, a bare body's shape), so a delivery that reached the wrong URL is recorded where it belongs;
- ``received_route``: the route that received it, when the body does not say.

Then:

- **passes** → recorded through the same idempotent ledger write as a live delivery (``recorded``, or
  ``duplicate`` when the ledger already holds that ``r_…`` / ``rr_…``), then the quarantine record is deleted
  (conditionally: ``quarantine_removed`` is false when another replay or TTL removed it first);
- **still fails** → kept, with today's ``reason`` and ``errors``, ``replay_attempts`` + 1 and
  ``last_replayed_at`` (never re-created if it disappeared meanwhile: ``gone``).

Safe to repeat and to run beside live deliveries: the quarantine id is a hash of the bytes, so any concurrent
write to the same record carries the same delivery, and the ledger writes are idempotent on Voucherify's ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.dynamo import decompress
from voucherify_ledger.ledger.keys import iso
from voucherify_ledger.webhooks.replay import RouteReplay
from voucherify_ledger.webhooks.routes import ROUTES, route_by_content

OUTCOMES = ("recorded", "duplicate", "still_invalid", "not_found", "gone", "error")
ROUTED_BY = ("operator", "content", "received_route")


def unknown_route(name: str) -> str:
    """Why ``name`` is refused as a route: the message names every route of the bundle."""
    return f"{name!r} is not a route of this bundle: one of {', '.join(sorted(ROUTES))}"


@dataclass(frozen=True)
class Routing:
    """The route a replay runs a delivery through, and why (``routed_by`` is one of ROUTED_BY)."""

    route: str
    routed_by: str
    evidence: str
    received_route: str

    def fields(self) -> dict[str, str]:
        return {
            "route": self.route,
            "routed_by": self.routed_by,
            "route_evidence": self.evidence,
            "received_route": self.received_route,
        }


def choose_route(raw: bytes, received_route: str, operator_route: str | None = None) -> Routing:
    """The operator's route, else the one the content names, else the one that received the delivery."""
    if operator_route is not None:
        return Routing(operator_route, "operator", f"--route {operator_route}", received_route)
    by_content = route_by_content(raw)
    if by_content is not None:
        return Routing(by_content.route, "content", by_content.evidence, received_route)
    return Routing(
        received_route,
        "received_route",
        "the body does not say which route it belongs to: replayed on the route that received it",
        received_route,
    )


class Replayer:
    """Replays quarantine records of one ledger; one receiver per route, built on first use."""

    def __init__(self, ledger: Ledger, *, now: datetime | None = None) -> None:
        self.ledger = ledger
        self.now = now
        self._receivers: dict[str, RouteReplay] = {}

    def _receiver(self, route_name: str) -> RouteReplay | None:
        route = ROUTES.get(route_name)
        if route is None:
            return None
        if route_name not in self._receivers:
            self._receivers[route_name] = RouteReplay(route, self.ledger)
        return self._receivers[route_name]

    def replay(self, quarantine_id: str, *, route: str | None = None) -> dict[str, Any]:
        """One record's outcome: ``status`` (one of OUTCOMES but ``error``), the route it was replayed on and why
        (``route``, ``routed_by``, ``route_evidence``, ``received_route``) and what came of it. ``route`` (a name of
        ROUTES, else ValueError) is the operator's word on where it belongs, over what its content says. Raises
        StorageError when the ledger cannot be read or written (repeating the replay is safe)."""
        if route is not None and route not in ROUTES:
            raise ValueError(unknown_route(route))
        item = self.ledger.quarantine.get(quarantine_id)
        if item is None:
            return {"status": "not_found"}
        now = self.now or datetime.now(UTC)
        if item.get("raw_zlib") is None:  # kept without its raw copy (DynamoDB refused even the record with it)
            routing = choose_route(b"", str(item.get("route") or ""), route)
            kept = f"raw_bytes {item.get('raw_bytes')}, sha256 {item.get('raw_sha256')}"
            errors = [f"raw_zlib: the record holds no raw copy ({kept})"]
            return self._kept(quarantine_id, routing, "nothing to replay", errors, now)
        raw = decompress(item["raw_zlib"])
        routing = choose_route(raw, str(item.get("route") or ""), route)
        receiver = self._receiver(routing.route)
        if receiver is None:  # only a received route can be unknown (a record of a route since retired)
            known = ", ".join(sorted(ROUTES))
            return self._kept(
                quarantine_id,
                routing,
                "unknown route",
                [f"route: {routing.route!r} is not a route of this bundle ({known})"],
                now,
            )
        replayed = receiver.replay(raw, received_at=now, replayed_from=quarantine_id)
        if replayed.status == "still_invalid":
            return self._kept(quarantine_id, routing, replayed.reason or "", list(replayed.errors), now)
        outcome = replayed.outcome
        assert outcome is not None
        result: dict[str, Any] = {
            "status": outcome.status,
            **routing.fields(),
            "event_type": replayed.delivery.event_type,
            "redemption_id": outcome.redemption_id,
            "rollback_id": outcome.rollback_id,
            "ledger_status": outcome.ledger_status,
            "conflict_id": outcome.conflict_id,
            "quarantine_removed": self.ledger.quarantine.remove(quarantine_id),
        }
        return {k: v for k, v in result.items() if v is not None}

    def _kept(
        self, quarantine_id: str, routing: Routing, reason: str, errors: list[str], now: datetime
    ) -> dict[str, Any]:
        noted = self.ledger.quarantine.note_failed_replay(quarantine_id, reason=reason, errors=errors, now=now)
        if noted is None:
            return {"status": "gone"}
        return {
            "status": "still_invalid",
            **routing.fields(),
            "reason": reason,
            "errors": errors,
            "replay_attempts": noted.get("replay_attempts"),
            "last_replayed_at": iso(now),
        }


def summarize(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The summary of a replay: how many were replayed, how many per outcome, and each id's result."""
    summary: dict[str, Any] = {"replayed": len(results)}
    for outcome in OUTCOMES:
        count = sum(1 for r in results.values() if r["status"] == outcome)
        if count or outcome in ("recorded", "duplicate", "still_invalid"):
            summary[outcome] = count
    summary["results"] = results
    return summary
