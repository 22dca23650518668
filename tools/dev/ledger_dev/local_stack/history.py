"""The fake Voucherify's history as ``make run`` holds it: objects seeded over the last 90 days, of which only a share
of webhooks ever reached the ledger (``HistoryWebhooks``), so that a backfill has holes to fill.

``seed(fake, config)`` seeds the history (deterministic for ``history_seed``); ``HistoryWebhooks`` is a background
service that sends a seeded share of its webhooks, signed, to the stack's own webhook routes (the fake's
``send_history_webhooks``) on a thread of its own, so start-up does not wait for them. The rest are never sent: the
reconciler finds them (a scheduled run: the last hour and its overlap only; a backfill: any range).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ledger_dev.local_stack.config import HISTORY_DAYS, HISTORY_ENV, HISTORY_WEBHOOKS_ENV, LocalConfig
from ledger_dev.local_stack.services import SHUTDOWN_TIMEOUT_SECONDS

if TYPE_CHECKING:
    from ledger_dev.fake_voucherify import FakeVoucherify, WebhookDelivery
    from ledger_dev.local_stack.stack import LocalStack

log = logging.getLogger("ledger_dev.local_stack")


def seed(fake: FakeVoucherify, config: LocalConfig, *, end: datetime | None = None) -> dict[str, int]:
    """``config.history`` objects over the last ``HISTORY_DAYS`` up to ``end`` (now) in ``fake``: its counts."""
    return fake.seed_history(config.history, days=HISTORY_DAYS, end=end, seed=config.history_seed)


def backfill_since(now: datetime | None = None) -> str:
    """The ``--since`` of a backfill that covers the whole history: a day before it begins (UTC, to the second)."""
    start = (now or datetime.now(UTC)) - timedelta(days=HISTORY_DAYS + 1)
    return start.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class HistoryWebhooks:
    """Sends a seeded ``share`` of the fake's history webhooks to the stack's webhook routes, once, in the
    background; ``deliveries`` holds what was sent (with the bundle's answer) once ``wait()`` says it is done."""

    name = "history-webhooks"

    def __init__(self, fake: FakeVoucherify, *, objects: int, share: float, seed: int = 0) -> None:
        self.fake, self.objects, self.share, self.seed = fake, objects, share, seed
        self.deliveries: list[WebhookDelivery] = []
        self.error: str | None = None
        self.seconds: float | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, stack: LocalStack | None = None) -> None:
        self._done.clear()
        self._thread = threading.Thread(target=self._send, name="local-history-webhooks", daemon=True)
        self._thread.start()

    def _send(self) -> None:
        started = time.monotonic()
        try:
            self.deliveries = self.fake.send_history_webhooks(self.share, self.seed)
            self.seconds = time.monotonic() - started
            accepted = sum(1 for d in self.deliveries if d.status is not None and 200 <= d.status < 300)
            log.info(
                "history: %d webhooks of its %d objects sent in %.1f s (%d accepted); the others' never come",
                len(self.deliveries),
                self.objects,
                self.seconds,
                accepted,
            )
        except Exception as exc:  # a background thread: say so, never raise
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("the history's webhooks could not be sent")
        finally:
            self._done.set()

    def wait(self, timeout: float) -> bool:
        """True once every webhook of the share was sent (or sending failed); False on timeout."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def stop(self) -> None:
        # The API stops first, so what is left of the share fails at once (connection refused).
        if self._thread is not None:
            self._thread.join(SHUTDOWN_TIMEOUT_SECONDS)
            if self._thread.is_alive():
                log.warning("%s did not stop within %.0f s", self.name, SHUTDOWN_TIMEOUT_SECONDS)
            self._thread = None

    def describe(self) -> list[str]:
        return [
            f"history       {self.objects} objects over {HISTORY_DAYS:g} days in the fake Voucherify ({HISTORY_ENV}); "
            f"{self.share:.0%} of their webhooks sent at start-up ({HISTORY_WEBHOOKS_ENV}), the rest never"
        ]
