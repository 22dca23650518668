"""The webhooks the fake sends after each rollback, as Voucherify does a few moments later: scheduled (``delay``), held
until ``deliver()`` (no delay), or sent before the API answer (``before_response``), signed with the webhook secret;
and the webhooks of a history, sent at once (``send_history``) to the bundle's route of each.

``drop_share``: a seeded share of every webhook is never sent (counted in ``dropped``), as if lost on the way."""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from ledger_dev.fake_voucherify.documents import ROLLBACK_EVENT
from voucherify_ledger.webhooks.auth import SIGNATURE_HEADER, sign

log = logging.getLogger("ledger_dev.fake_voucherify")


@dataclass(frozen=True)
class WebhookDelivery:
    rollback_id: str | None  # None: a redemption's webhook (of the history)
    redemption_id: str
    status: int | None  # HTTP status of the receiver, None if it could not be reached
    error: str | None = None
    event: str = ROLLBACK_EVENT


class WebhookSender:
    """Sends ``redemption.rollback.succeeded`` bodies to ``url``; every delivery is kept in ``webhooks``."""

    def __init__(
        self,
        url: str | None,
        secret: str | None,
        *,
        delay: float | None,
        before_response: bool,
        lock: threading.RLock,
        stopping: threading.Event,
        drop_share: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= drop_share <= 1.0:
            raise ValueError("drop_share must be between 0 and 1")
        self.url = url
        self.drop_share = drop_share
        self.dropped = 0
        self._drops = random.Random(seed)
        self.secret = secret
        self.delay = delay
        self.before_response = before_response
        self._lock = lock
        self._stopping = stopping
        self._queue: list[tuple[float, int, bytes, str, str]] = []
        self._held: list[tuple[bytes, str, str]] = []
        self._seq = 0
        self._wakeup = threading.Condition(lock)
        self._busy = 0
        self._thread: threading.Thread | None = None
        self.webhooks: list[WebhookDelivery] = []

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + len(self._held)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fake-voucherify-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Wakes the loop (the owner has set ``stopping``) and waits for it."""
        with self._wakeup:
            self._wakeup.notify_all()
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._held.clear()
            self.webhooks.clear()
            self.dropped = 0

    def schedule(self, body: bytes, rollback_id: str, redemption_id: str) -> None:
        if self.before_response:
            self._post(body, rollback_id, redemption_id)
            return
        with self._wakeup:
            if self.delay is None:
                self._held.append((body, rollback_id, redemption_id))
                return
            self._seq += 1
            due = time.monotonic() + self.delay
            heapq.heappush(self._queue, (due, self._seq, body, rollback_id, redemption_id))
            self._wakeup.notify_all()

    def deliver(self) -> list[WebhookDelivery]:
        """Sends every held or scheduled webhook now, in order; returns those deliveries (not the dropped)."""
        with self._lock:
            pending = [(body, rr, r) for _, _, body, rr, r in sorted(self._queue)] + self._held
            self._queue.clear()
            self._held.clear()
        made = [self._post(body, rr, r) for body, rr, r in pending]
        return [d for d in made if d is not None]

    def wait(self, timeout: float = 10.0) -> bool:
        """Waits until no scheduled webhook is left (held ones do not count); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._wakeup:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wakeup.wait(min(left, 0.05))
        return True

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._wakeup:
                if not self._queue:
                    self._wakeup.wait(0.5)
                    continue
                due = self._queue[0][0]
                now = time.monotonic()
                if due > now:
                    self._wakeup.wait(min(due - now, 0.5))
                    continue
                _, _, body, rollback_id, redemption_id = heapq.heappop(self._queue)
                self._busy += 1
            try:
                self._post(body, rollback_id, redemption_id)
            finally:
                with self._wakeup:
                    self._busy -= 1
                    self._wakeup.notify_all()

    def _drop(self) -> bool:
        """Whether the next webhook is lost (seeded), counted."""
        with self._lock:
            if self.drop_share and self._drops.random() < self.drop_share:
                self.dropped += 1
                return True
        return False

    def url_for(self, route: str) -> str:
        """The bundle's ``route`` on the host of ``url`` (the rollback route's URL, ``…/webhooks/…``)."""
        assert self.url
        base = self.url.split("/webhooks/", 1)[0] if "/webhooks/" in self.url else self.url.rstrip("/")
        return base + route

    def send_history(self, webhooks: list[tuple[str, bytes, str, str | None, str]]) -> list[WebhookDelivery]:
        """Sends each (route, body, redemption id, rollback id, event) now, in order, less the drop share; returns
        the deliveries made (not kept in ``webhooks``: a history's can be many thousands)."""
        made = []
        for route, body, redemption_id, rollback_id, event in webhooks:
            if not self._drop():
                made.append(self._send(self.url_for(route), body, rollback_id, redemption_id, event))
        return made

    def _post(self, body: bytes, rollback_id: str, redemption_id: str) -> WebhookDelivery | None:
        if self._drop():
            log.info("webhook %s for %s: dropped", ROLLBACK_EVENT, rollback_id)
            return None
        assert self.url
        delivery = self._send(self.url, body, rollback_id, redemption_id, ROLLBACK_EVENT)
        with self._lock:
            self.webhooks.append(delivery)
        log.info("webhook %s for %s: %s", ROLLBACK_EVENT, rollback_id, delivery.status or delivery.error)
        return delivery

    def _send(self, url: str, body: bytes, rollback_id: str | None, redemption_id: str, event: str) -> WebhookDelivery:
        headers = {"content-type": "application/json", "user-agent": "Voucherify-Webhooks (fake)"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return WebhookDelivery(rollback_id, redemption_id, answer.status, event=event)
        except urllib.error.HTTPError as exc:
            return WebhookDelivery(rollback_id, redemption_id, exc.code, f"HTTP {exc.code}", event=event)
        except (OSError, urllib.error.URLError) as exc:
            return WebhookDelivery(rollback_id, redemption_id, None, type(exc).__name__, event=event)
