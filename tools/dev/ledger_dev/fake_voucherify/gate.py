"""What every API request of the fake passes first, as Voucherify's API does: the ``X-App-Id`` / ``X-App-Token`` keys
(``401`` otherwise) and one rate limit for all endpoints (requests per minute, fixed window: ``429`` with
``X-Rate-Limit-*`` and ``Retry-After``)."""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Mapping


class ApiGate:
    """The keys and the rate limit; ``rate_limit_per_minute`` None (or 0) means no limit."""

    def __init__(self, app_id: str, app_token: str, rate_limit_per_minute: int | None, lock: threading.RLock) -> None:
        self.app_id = app_id
        self.app_token = app_token
        self.rate_limit_per_minute = rate_limit_per_minute
        self._lock = lock
        self._window_start = 0.0
        self._window_count = 0

    def reset(self) -> None:
        with self._lock:
            self._window_start, self._window_count = 0.0, 0

    def authorized(self, headers: Mapping[str, str]) -> bool:
        app_id = (headers.get("x-app-id") or "").encode("utf-8", "replace")
        token = (headers.get("x-app-token") or "").encode("utf-8", "replace")
        same_id = secrets.compare_digest(app_id, self.app_id.encode("utf-8"))
        return secrets.compare_digest(token, self.app_token.encode("utf-8")) and same_id

    def limited(self) -> dict[str, str] | None:
        """Counts the request in the window; the 429's headers when the window is full, else None."""
        if not self.rate_limit_per_minute:
            return None
        with self._lock:
            now = time.time()
            if now - self._window_start >= 60:
                self._window_start, self._window_count = now, 0
            if self._window_count >= self.rate_limit_per_minute:
                return {**self.retry_headers(self._window_start + 60 - now), "X-Rate-Limit-Remaining": "0"}
            self._window_count += 1
        return None

    def headers(self) -> dict[str, str]:
        """The ``X-Rate-Limit-*`` headers of an answer within the limit."""
        if not self.rate_limit_per_minute:
            return {}
        with self._lock:
            remaining = max(0, self.rate_limit_per_minute - self._window_count)
        return {"X-Rate-Limit-Limit": str(self.rate_limit_per_minute), "X-Rate-Limit-Remaining": str(remaining)}

    def retry_headers(self, seconds: float) -> dict[str, str]:
        seconds = max(0.0, seconds)
        return {
            "Retry-After": str(math.ceil(seconds)),
            "X-Rate-Limit-Retry": str(math.ceil(time.time() + seconds)),
            "X-Rate-Limit-Limit": str(self.rate_limit_per_minute or 0),
            "X-Rate-Limit-Type": "requests_per_minute",
        }
