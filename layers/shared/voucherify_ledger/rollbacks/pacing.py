"""Pacing the rollback worker's calls to Voucherify's API budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Keeps one execution environment under ``per_minute`` API calls in any 60-second window.

    ``burst`` calls may go at once (a batch sent concurrently); the rest of the minute's allowance refills
    evenly, so burst + refill × 60 s ≤ per_minute. A 429 pauses every call until the time Voucherify gave.
    Lives at module scope in the entry point, so it persists across warm invocations. Thread-safe.
    """

    def __init__(
        self, per_minute: float, *, burst: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.capacity = float(burst if burst is not None else max(1, min(10, int(per_minute // 6))))
        self.rate = max(per_minute - self.capacity, per_minute / 2) / 60.0  # tokens per second
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()
        self._paused_until = float("-inf")
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def _wait(self, now: float) -> float:
        wait_token = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
        return max(wait_token, self._paused_until - now, 0.0)

    def reserve(self, max_wait: float) -> float | None:
        """Reserves one call: the seconds to wait before making it, or None (nothing reserved) when that
        would be longer than ``max_wait``."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            wait = self._wait(now)
            if wait > max_wait:
                return None
            self._tokens -= 1
            return wait

    def estimated_wait(self) -> float:
        with self._lock:
            now = self._clock()
            self._refill(now)
            return self._wait(now)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))
