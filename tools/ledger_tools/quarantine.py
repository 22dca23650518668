"""Quarantined deliveries, replayed through today's receiver (``redemption-ledger quarantine replay``).

A delivery is quarantined when it was authentic but failed validation (or came to the wrong URL). Its record
(``QUARANTINE#q_…``) keeps the raw body as received (base64 already decoded) and the name of the route that
received it: all the receiver needs after authentication, which the delivery passed when it arrived. Replay
runs the body through ``WebhookReceiver.replay`` of that route — the same checks as a live delivery, with
today's models — and:

- **passes** → recorded through the same idempotent ledger write as a live delivery (``recorded``, or
  ``duplicate`` when the ledger already holds that ``r_…`` / ``rr_…``), then the quarantine record is deleted
  (conditionally: ``quarantine_removed`` is false when another replay or TTL removed it first);
- **still fails** → kept, with today's ``reason`` and ``errors``, ``replay_attempts`` + 1 and
  ``last_replayed_at`` (never re-created if it disappeared meanwhile: ``gone``).

Safe to repeat and to run beside live deliveries: the quarantine id is a hash of the bytes, so any concurrent
write to the same record carries the same delivery, and the ledger writes are idempotent on Voucherify's ids.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from voucherify_ledger.ledger import Ledger, decompress, iso
from voucherify_ledger.webhooks import ROUTES, WebhookReceiver

OUTCOMES = ("recorded", "duplicate", "still_invalid", "not_found", "gone", "error")


class _QuietLogger:
    """The receiver's logger in the CLI: stdout carries the JSON summary only."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class Replayer:
    """Replays quarantine records of one ledger; one receiver per route, built on first use."""

    def __init__(self, ledger: Ledger, *, now: datetime | None = None) -> None:
        self.ledger = ledger
        self.now = now
        self._receivers: dict[str, WebhookReceiver] = {}

    def _receiver(self, route_name: str) -> WebhookReceiver | None:
        route = ROUTES.get(route_name)
        if route is None:
            return None
        if route_name not in self._receivers:
            self._receivers[route_name] = WebhookReceiver.for_replay(route, self.ledger, logger=_QuietLogger())
        return self._receivers[route_name]

    def replay(self, quarantine_id: str) -> dict[str, Any]:
        """One record's outcome: ``status`` (one of OUTCOMES but ``error``) and what came of it. Raises
        StorageError when the ledger cannot be read or written (repeating the replay is safe)."""
        item = self.ledger.get_quarantined(quarantine_id)
        if item is None:
            return {"status": "not_found"}
        now = self.now or datetime.now(UTC)
        route_name = str(item.get("route") or "")
        receiver = self._receiver(route_name)
        if receiver is None:
            known = ", ".join(sorted(ROUTES))
            return self._kept(
                quarantine_id, "unknown route", [f"route: {route_name!r} is not a route of this bundle ({known})"], now
            )
        replayed = receiver.replay(decompress(item["raw_zlib"]), received_at=now, replayed_from=quarantine_id)
        if replayed.status == "still_invalid":
            return self._kept(quarantine_id, replayed.reason or "", list(replayed.errors), now)
        outcome = replayed.outcome
        assert outcome is not None
        result: dict[str, Any] = {
            "status": outcome.status,
            "route": route_name,
            "event_type": replayed.delivery.event_type,
            "redemption_id": outcome.redemption_id,
            "rollback_id": outcome.rollback_id,
            "ledger_status": outcome.ledger_status,
            "quarantine_removed": self.ledger.remove_quarantined(quarantine_id),
        }
        return {k: v for k, v in result.items() if v is not None}

    def _kept(self, quarantine_id: str, reason: str, errors: list[str], now: datetime) -> dict[str, Any]:
        noted = self.ledger.note_failed_replay(quarantine_id, reason=reason, errors=errors, now=now)
        if noted is None:
            return {"status": "gone"}
        return {
            "status": "still_invalid",
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
