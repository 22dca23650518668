"""A background poller of ``make run`` and the tests (the SQS and stream event sources): a daemon thread that polls
until stopped, after ``max_runtime_seconds``, or after ``max_consecutive_errors`` failed polls in a row (each failure
backs off, doubling up to 5 s); an idle poll waits ``idle_interval()`` before the next."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Self

SHUTDOWN_TIMEOUT_SECONDS = 5.0
log = logging.getLogger(__name__)


class BackgroundPoller:
    """What a poller adds: ``name``, ``max_runtime_seconds``, ``max_consecutive_errors``, ``poll_busy()`` (one poll:
    True when it found work) and ``idle_interval()``; ``errors`` counts the polls that raised."""

    name: str
    max_runtime_seconds: float | None
    max_consecutive_errors: int

    def __init__(self) -> None:
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_busy(self) -> bool:
        raise NotImplementedError

    def idle_interval(self) -> float:
        raise NotImplementedError

    def before_start(self) -> None:
        """Called by ``start`` before the thread runs (a restart's reset)."""

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, stack: Any = None) -> Self:
        """Polls on a daemon thread (``stack`` is accepted so the local stack can run it as a background service)."""
        if self.running:
            return self
        self.before_start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT_SECONDS) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s did not stop within %.0f s (a handler still running)", self.name, timeout)
            self._thread = None

    def _run(self) -> None:
        started = time.monotonic()
        consecutive_errors = 0
        while not self._stop.is_set():
            if self.max_runtime_seconds is not None and time.monotonic() - started > self.max_runtime_seconds:
                log.info("%s: ran %.0f s, stopping", self.name, self.max_runtime_seconds)
                return
            try:
                busy = self.poll_busy()
            except Exception:
                self.errors += 1
                consecutive_errors += 1
                log.exception("%s: poll failed", self.name)
                if consecutive_errors >= self.max_consecutive_errors:
                    log.error("%s: %d polls failed in a row, stopping", self.name, consecutive_errors)
                    return
                self._stop.wait(min(5.0, self.idle_interval() * 2**consecutive_errors))
                continue
            consecutive_errors = 0
            if not busy:
                self._stop.wait(self.idle_interval())
