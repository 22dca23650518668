"""The loop of a background poller (the SQS and stream event sources of ``make run`` and the tests): poll until
stopped, after ``max_runtime_seconds``, or after ``max_consecutive_errors`` failed polls in a row (each failure
backs off, doubling up to 5 s); an idle poll waits ``interval`` before the next."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


def poll_until_stopped(
    name: str,
    stop: threading.Event,
    poll: Callable[[], bool],
    *,
    interval: float,
    max_runtime_seconds: float | None,
    max_consecutive_errors: int,
    on_error: Callable[[], None],
    log: logging.Logger,
) -> None:
    """Runs ``poll`` (True when it found work) until one of the stops above; ``on_error`` counts each failure."""
    started = time.monotonic()
    consecutive_errors = 0
    while not stop.is_set():
        if max_runtime_seconds is not None and time.monotonic() - started > max_runtime_seconds:
            log.info("%s: ran %.0f s, stopping", name, max_runtime_seconds)
            return
        try:
            busy = poll()
        except Exception:
            on_error()
            consecutive_errors += 1
            log.exception("%s: poll failed", name)
            if consecutive_errors >= max_consecutive_errors:
                log.error("%s: %d polls failed in a row, stopping", name, consecutive_errors)
                return
            stop.wait(min(5.0, interval * 2**consecutive_errors))
            continue
        consecutive_errors = 0
        if not busy:
            stop.wait(interval)
