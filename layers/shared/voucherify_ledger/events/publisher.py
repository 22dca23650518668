"""PutEvents: the ledger's events onto the bus, in order, in requests of at most 10 entries and 256 KB.

Entries the answer reports failed (``FailedEntryCount``, an ``ErrorCode`` per entry), or a whole request that fails,
are sent again a bounded number of times after a short, jittered backoff, while the invocation has time for it. A
request whose entries still fail stops the publishing: the entries after it are not sent (their records are retried
from the stream, in order), and the result says which entries were put.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from voucherify_ledger.events.changes import LedgerEvent
from voucherify_ledger.events.details import SOURCE

MAX_ENTRIES = 10  # per PutEvents request
MAX_REQUEST_BYTES = 256 * 1024  # the entries' total size (``entry_size``)
TIME_BYTES = 14  # what an entry's Time counts, whatever its value
# No request is started with less of the invocation left than this: a request and its client's own retries (two
# attempts of at most 1 s to connect and 3 s to read) fit in it, with room to answer the batch.
RESERVE_SECONDS = 10.0


def events_client() -> Any:
    """The EventBridge client, made once during init: short timeouts, and botocore's own retries of a throttled or
    failed request (PutEvents' per-entry failures are the publisher's); ``AWS_ENDPOINT_URL`` as for every client."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "events",
        config=Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"}),
    )


def entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge counts it: Time (14 bytes), Source, DetailType, Detail and Resources (UTF-8)."""
    size = TIME_BYTES if entry.get("Time") is not None else 0
    for name in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(name, "")).encode("utf-8"))
    return size + sum(len(r.encode("utf-8")) for r in entry.get("Resources", ()))


def chunks(entries: Sequence[dict[str, Any]]) -> list[list[int]]:
    """The positions of ``entries`` in consecutive requests of at most MAX_ENTRIES and MAX_REQUEST_BYTES."""
    found: list[list[int]] = []
    current: list[int] = []
    size = 0
    for position, entry in enumerate(entries):
        grown = size + entry_size(entry)
        if current and (len(current) == MAX_ENTRIES or grown > MAX_REQUEST_BYTES):
            found.append(current)
            current, grown = [], entry_size(entry)
        current.append(position)
        size = grown
    if current:
        found.append(current)
    return found


@dataclass
class PutResult:
    """What became of each event handed over: its EventBridge id (put), or its last error code (given up on), or
    neither (not sent: an earlier request failed)."""

    event_ids: list[str | None]
    errors: list[str | None]
    requests: int = 0
    retried: int = 0  # entries sent again
    error_codes: dict[str, int] = field(default_factory=dict)  # every failure seen, by code

    @property
    def published(self) -> int:
        return sum(1 for event_id in self.event_ids if event_id is not None)

    def first_failed(self) -> int | None:
        """The position of the first event not put, or None when all were."""
        return next((i for i, event_id in enumerate(self.event_ids) if event_id is None), None)


class EventPublisher:
    """Puts ledger events onto ``bus_name``: each at most ``attempts`` times."""

    def __init__(
        self,
        client: Any,
        bus_name: str,
        *,
        attempts: int = 4,
        backoff_seconds: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.client, self.bus_name = client, bus_name
        self.attempts, self.backoff_seconds = attempts, backoff_seconds
        self._sleep, self._rng = sleep, rng or random.Random()

    def entry(self, event: LedgerEvent) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Source": SOURCE,
            "DetailType": event.detail_type,
            "Detail": event.detail.as_json(),
            "EventBusName": self.bus_name,
            "Resources": [],
        }
        if event.time is not None:
            entry["Time"] = event.time
        return entry

    def put(self, events: Sequence[LedgerEvent], time_left: Callable[[], float] | None = None) -> PutResult:
        """Puts ``events`` in order; stops at the first request whose entries still fail after every attempt, or when
        ``time_left()`` (the invocation's seconds) is below RESERVE_SECONDS before a request."""
        entries = [self.entry(event) for event in events]
        result = PutResult([None] * len(entries), [None] * len(entries))
        oversized = next((i for i, entry in enumerate(entries) if entry_size(entry) > MAX_REQUEST_BYTES), None)
        if oversized is not None:  # never accepted: it and what follows stay unsent
            result.errors[oversized] = "EntryTooLarge"
            entries = entries[:oversized]
        for positions in chunks(entries):
            pending = positions
            for attempt in range(self.attempts):
                if time_left is not None and time_left() < RESERVE_SECONDS:
                    for p in pending:
                        result.errors[p] = result.errors[p] or "OutOfTime"
                    break
                if attempt:
                    result.retried += len(pending)
                    self._sleep(self.backoff_seconds * 2 ** (attempt - 1) * (0.5 + self._rng.random()))
                pending = self._send(entries, pending, result)
                if not pending:
                    break
            if pending:
                return result
        return result

    def _send(self, entries: Sequence[dict[str, Any]], positions: list[int], result: PutResult) -> list[int]:
        """One PutEvents request of ``positions``; the positions whose entries failed."""
        result.requests += 1
        try:
            answer = self.client.put_events(Entries=[entries[p] for p in positions])
        except Exception as exc:  # botocore's ClientError / BotoCoreError after its own retries: all of them failed
            code = _error_code(exc)
            for p in positions:
                result.errors[p] = code
            result.error_codes[code] = result.error_codes.get(code, 0) + len(positions)
            return list(positions)
        answered = answer.get("Entries") or []
        failed: list[int] = []
        for index, p in enumerate(positions):
            outcome = answered[index] if index < len(answered) else {}
            if outcome.get("EventId") and not outcome.get("ErrorCode"):
                result.event_ids[p], result.errors[p] = str(outcome["EventId"]), None
                continue
            code = str(outcome.get("ErrorCode") or "NoEventId")
            result.errors[p] = code
            result.error_codes[code] = result.error_codes.get(code, 0) + 1
            failed.append(p)
        return failed


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__
