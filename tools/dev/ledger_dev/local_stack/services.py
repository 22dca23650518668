"""Background services: what the local stack runs beside its API (the SQS poller, the fake Voucherify, a test's own).

A service has a ``name``, ``start(stack)`` and ``stop()``; ``PollingService`` is the shape of a queue worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ledger_dev.local_stack.stack import LocalStack

log = logging.getLogger("ledger_dev.local_stack")

SHUTDOWN_TIMEOUT_SECONDS = 5.0


@runtime_checkable
class BackgroundService(Protocol):
    """Something the local stack runs next to the API: started in the order added, after the AWS
    resources exist (``stack.refs``, ``stack.queues``, ``stack.aws_client()``, ``stack.function()`` are
    usable, and ``stack.api_url`` is bound), stopped in reverse order. ``stop()`` must return within a
    few seconds. An optional ``describe() -> list[str]`` adds lines to the banner."""

    name: str

    def start(self, stack: LocalStack) -> None: ...

    def stop(self) -> None: ...


class PollingService:
    """A daemon thread calling ``poll(stack)`` every ``interval`` seconds until stopped (an SQS worker's
    shape). A failing poll is logged and the loop goes on; ``poll`` itself must be bounded (e.g. a
    ``ReceiveMessage`` with a short ``WaitTimeSeconds``)."""

    def __init__(self, name: str, poll: Callable[[LocalStack], None] | None = None, *, interval: float = 0.2) -> None:
        self.name = name
        self.interval = interval
        self._poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0
        self.failures = 0

    def poll(self, stack: LocalStack) -> None:
        if self._poll is None:
            raise NotImplementedError("pass poll= or override poll()")
        self._poll(stack)

    def start(self, stack: LocalStack) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(stack,), name=f"local-{self.name}", daemon=True)
        self._thread.start()

    def _run(self, stack: LocalStack) -> None:
        while not self._stop.is_set():
            try:
                self.poll(stack)
            except Exception:
                self.failures += 1
                log.exception("%s: poll failed", self.name)
            self.polls += 1
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(SHUTDOWN_TIMEOUT_SECONDS)
            if self._thread.is_alive():
                log.warning("%s did not stop within %.0f s", self.name, SHUTDOWN_TIMEOUT_SECONDS)
            self._thread = None
