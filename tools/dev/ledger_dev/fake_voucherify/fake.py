"""A fake Voucherify for development and tests (never deployed): the two rollback endpoints, over real HTTP.

``FakeVoucherify`` is a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (an ephemeral port unless told otherwise):

- ``POST /v1/redemptions/{redemptionId}/rollback`` and ``POST /v1/redemptions/{parentRedemptionId}/rollbacks``
  answer as Voucherify documents (``reference/voucherify/redemptions.json``): a ``redemption_rollback`` object
  (``rr_…``) shaped like the OpenAPI example; ``400 already_rolled_back`` the second time; ``400
  invalid_redemption`` for a stacked parent on ``/rollback`` (``/rollbacks`` rolls the whole stack back);
  ``400 invalid_redemption_parent`` for a stack child; ``404 not_found`` for an unknown redemption unless
  ``accept_unknown`` (then any ``r_…`` id is a single redemption);
- ``X-App-Id`` / ``X-App-Token`` must match (``401`` otherwise);
- a rate limit (requests per minute, fixed window) answers ``429`` with ``X-Rate-Limit-*`` and ``Retry-After``;
- faults on demand, from Python (``fail()``) or over HTTP (``POST /_fake/faults``): latency, 5xx, 429, a
  hang past the client's timeout, a dropped connection, any documented error key, a 200 with result FAILURE —
  each for ``times`` requests, optionally one redemption, optionally a share of requests (seeded);
- every call is counted per redemption (``calls()``), every request kept (``requests``, tokens left out);
- after each successful rollback, like Voucherify a few moments later, it POSTs the signed webhook
  ``redemption.rollback.succeeded`` (v2024-01-01 envelope, ``x-voucherify-signature`` made with
  ``voucherify_ledger.webhooks.auth.sign``) to ``webhook_url`` — the bundle's
  ``/webhooks/redemption-rollback-succeeded``.

Control endpoint (no authentication; loopback only): ``GET /_fake/state``, ``POST|DELETE /_fake/faults``,
``POST /_fake/redemptions``, ``POST /_fake/webhooks/deliver``, ``POST /_fake/reset``.

Run it alone: ``python -m ledger_dev.fake_voucherify --port 8787``. Its parts: ``faults``, ``documents`` (what it
answers with), ``webhooks`` (what it sends back), ``server`` (HTTP).
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ledger_dev.fake_voucherify.documents import (
    FakeRedemption,
    _hex_id,
    error_body,
    rollback_document,
    webhook_body,
)
from ledger_dev.fake_voucherify.faults import ERRORS, Fault, FaultKind
from ledger_dev.fake_voucherify.server import _Handler, _Server
from ledger_dev.fake_voucherify.webhooks import WebhookDelivery, WebhookSender

log = logging.getLogger("ledger_dev.fake_voucherify")

HOST = "127.0.0.1"
DEFAULT_APP_ID = "local-app-id"
DEFAULT_APP_TOKEN = "local-app-token"
DEFAULT_PROJECT_ID = "proj_fAkEv0uCheR1fy"
CONTROL_PREFIX = "/_fake"


_ROLLBACK_PATH = re.compile(r"^/v1/redemptions/(?P<id>[^/]+)/(?P<endpoint>rollback|rollbacks)$")


def api_secret_value(app_id: str = DEFAULT_APP_ID, app_token: str = DEFAULT_APP_TOKEN) -> str:
    """The Secrets Manager value the worker reads (``VOUCHERIFY_API_SECRET_ID``) for these keys."""
    return json.dumps({"app_id": app_id, "app_token": app_token})


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    endpoint: str | None
    redemption_id: str | None
    query: dict[str, str]
    body: Any
    user_agent: str | None
    app_id: str | None
    status: int | None  # None: no answer (timeout, dropped)
    arrived: float = 0.0  # time.monotonic() when the request came in (requests are kept in the order answered)
    answer_request_id: str | None = None  # the request_id of an error answer, as Voucherify's errors carry one


class FakeVoucherify:
    """See the module's docstring. Also a local-stack background service (``name``, ``start``, ``stop``)."""

    name = "fake-voucherify"

    def __init__(
        self,
        *,
        host: str = HOST,
        port: int = 0,
        app_id: str = DEFAULT_APP_ID,
        app_token: str = DEFAULT_APP_TOKEN,
        accept_unknown: bool = True,
        rate_limit_per_minute: int | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_delay: float | None = 2.0,
        webhook_before_response: bool = False,
        project_id: str = DEFAULT_PROJECT_ID,
        seed: int = 0,
    ) -> None:
        """``webhook_delay``: seconds after a rollback before its webhook goes out (None: held until
        ``deliver_webhooks()``); ``webhook_before_response``: send it (synchronously) before answering the
        API call, as if the worker's own write came second."""
        self.host = host
        self.port = port
        self.app_id = app_id
        self.app_token = app_token
        self.accept_unknown = accept_unknown
        self.rate_limit_per_minute = rate_limit_per_minute
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.webhook_delay = webhook_delay
        self.webhook_before_response = webhook_before_response
        self.project_id = project_id
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._redemptions: dict[str, FakeRedemption] = {}
        self._faults: list[Fault] = []
        self._calls: Counter[str] = Counter()
        self._requests: list[RecordedRequest] = []
        self._window_start = 0.0
        self._window_count = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._webhooks = WebhookSender(
            webhook_url,
            webhook_secret,
            delay=webhook_delay,
            before_response=webhook_before_response,
            lock=self._lock,
            stopping=self._stopping,
        )

    # --- lifecycle ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake is not started")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # a wildcard bind is reached on loopback
        return f"http://{host}:{self._server.server_address[1]}"

    def start(self, stack: Any = None) -> FakeVoucherify:
        """Starts serving (``stack`` is accepted so the local stack can run it as a background service)."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-voucherify", daemon=True
        )
        self._thread.start()
        self._webhooks.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._webhooks.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> FakeVoucherify:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> list[str]:
        return [
            f"fake Voucherify {self.url}  (X-App-Id {self.app_id}; state: {self.url}{CONTROL_PREFIX}/state)",
        ]

    # --- scenario ---------------------------------------------------------------------------------
    def add_redemption(
        self,
        redemption_id: str,
        *,
        order_id: str | None = None,
        customer_id: str | None = None,
        voucher_code: str | None = None,
        amount: int | None = None,
        order_source_id: str | None = None,
    ) -> FakeRedemption:
        with self._lock:
            redemption = FakeRedemption(
                redemption_id, order_id, customer_id, voucher_code, amount, order_source_id=order_source_id
            )
            self._redemptions[redemption_id] = redemption
            return redemption

    def add_stack(
        self,
        parent_id: str,
        child_ids: Iterable[str],
        *,
        order_id: str | None = None,
        customer_id: str | None = None,
        order_source_id: str | None = None,
    ) -> FakeRedemption:
        """A stacked redemption: ``parent_id`` and its children (one per redeemable). As Voucherify answers:
        ``/rollback`` on a child is ``400 invalid_redemption_parent``, on the parent ``400 invalid_redemption``;
        ``/rollbacks`` on the parent rolls back the parent and every child not rolled back yet."""
        with self._lock:
            children = list(child_ids)
            parent = FakeRedemption(
                parent_id, order_id, customer_id, children=children, order_source_id=order_source_id
            )
            self._redemptions[parent_id] = parent
            for child in children:
                self._redemptions[child] = FakeRedemption(
                    child,
                    order_id,
                    customer_id,
                    voucher_code=f"STACK-{child[-6:].upper()}",
                    parent_id=parent_id,
                    order_source_id=order_source_id,
                )
            return parent

    def fail(self, kind: FaultKind, **options: Any) -> Fault:
        """Adds a fault (see ``Fault``), e.g. ``fail("status", status=503, times=2)``,
        ``fail("error", key="not_found", redemption_id="r_…")``, ``fail("rate_limit", retry_after=2)``,
        ``fail("status", status=500, times=None, probability=0.3)``."""
        fault = Fault(kind=kind, **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        with self._lock:
            self._redemptions.clear()
            self._faults.clear()
            self._calls.clear()
            self._requests.clear()
            self._webhooks.reset()
            self._window_start, self._window_count = 0.0, 0

    # --- observation ------------------------------------------------------------------------------
    def calls(self, redemption_id: str | None = None) -> int:
        """API calls (both rollback endpoints, any answer) for one redemption, or in all."""
        with self._lock:
            return self._calls[redemption_id] if redemption_id else sum(self._calls.values())

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def rollback_id(self, redemption_id: str) -> str | None:
        with self._lock:
            redemption = self._redemptions.get(redemption_id)
            return redemption.rollback_id if redemption else None

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self._calls),
                "rolled_back": {r.id: r.rollback_id for r in self._redemptions.values() if r.rollback_id},
                "redemptions": sorted(self._redemptions),
                "faults": [f.as_dict() for f in self._faults],
                "webhooks": [asdict(w) for w in self.webhooks],
                "webhooks_pending": self._webhooks.pending,
            }

    # --- webhooks ---------------------------------------------------------------------------------
    @property
    def webhooks(self) -> list[WebhookDelivery]:
        """Every webhook sent, in order (the bundle's answer in ``status``)."""
        return self._webhooks.webhooks

    def deliver_webhooks(self) -> list[WebhookDelivery]:
        """Sends every held or scheduled webhook now, in order; returns those deliveries."""
        return self._webhooks.deliver()

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Waits until no scheduled webhook is left (held ones do not count); False on timeout."""
        return self._webhooks.wait(timeout)

    def _schedule_webhook(self, rollback: dict[str, Any], redemption: FakeRedemption) -> None:
        if not self.webhook_url:
            return
        body = webhook_body(
            rollback, redemption, project_id=self.project_id, app_id=self.app_id, target_url=self.webhook_url
        )
        self._webhooks.schedule(body, rollback["id"], redemption.id)

    # --- HTTP -------------------------------------------------------------------------------------
    def _dispatch(self, handler: _Handler) -> None:
        arrived = time.monotonic()
        url = urlsplit(handler.path)
        raw = handler.read_body() if handler.command in ("POST", "DELETE") else b""
        if url.path.startswith(CONTROL_PREFIX):
            self._control(handler, handler.command, url.path[len(CONTROL_PREFIX) :], raw)
            return
        match = _ROLLBACK_PATH.match(url.path)
        if handler.command != "POST" or not match:
            handler.answer(404, {"code": 404, "key": "not_found", "message": "Resource not found"})
            return
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        redemption_id = match.group("id")
        endpoint = match.group("endpoint")
        with self._lock:
            self._calls[redemption_id] += 1
        status, payload, headers = self._api(handler, endpoint, redemption_id, query, body)
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    "POST",
                    url.path,
                    endpoint,
                    redemption_id,
                    query,
                    body,
                    handler.headers.get("user-agent"),
                    handler.headers.get("x-app-id"),
                    status,
                    arrived,
                    payload.get("request_id") if isinstance(payload, dict) and status != 200 else None,
                )
            )
        if status is None:
            return
        handler.answer(status, payload, headers)

    def _api(
        self, handler: _Handler, endpoint: str, redemption_id: str, query: dict[str, str], body: Any
    ) -> tuple[int | None, Any, dict[str, str]]:
        """The answer to one API request: (status, or None when no answer is sent; body; headers)."""
        fault = self._pick_fault(redemption_id)
        if fault is not None and fault.kind in ("timeout", "drop"):
            if fault.apply:
                self._roll_back(endpoint, redemption_id, query, body)
            if fault.kind == "timeout":
                self._stopping.wait(fault.seconds)
            handler.drop()
            return None, None, {}
        if not self._authorized(handler):
            return self._error("unauthorized", redemption_id)
        limited = self._rate_limited()
        if limited is not None:
            return 429, error_body(429, "too_many_requests", "Too many requests"), limited
        headers = self._rate_headers()
        if fault is not None:
            if fault.kind == "status":
                key, message = ("server_error", "Internal server error") if fault.status >= 500 else ("error", "Error")
                return fault.status, error_body(fault.status, key, message), headers
            if fault.kind == "error":
                named = {"resource_id": fault.resource_id, "resource_type": fault.resource_type}
                status, error, _ = self._error(
                    fault.key or "not_found", redemption_id, **{k: v for k, v in named.items() if v}
                )
                return status, error, headers
            if fault.kind == "rate_limit":
                return (
                    429,
                    error_body(429, "too_many_requests", "Too many requests"),
                    {**self._retry_headers(fault.retry_after), "X-Rate-Limit-Remaining": "0"},
                )
            if fault.kind == "failure":
                return 200, self._failed_rollback(redemption_id, query, body, fault), headers
        status, payload = self._roll_back(endpoint, redemption_id, query, body)
        return status, payload, headers

    def _pick_fault(self, redemption_id: str) -> Fault | None:
        chosen: Fault | None = None
        latencies: list[Fault] = []
        with self._lock:
            for fault in self._faults:
                if not fault.matches(redemption_id):
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                if fault.kind == "latency":
                    fault.hits += 1
                    latencies.append(fault)
                    continue
                if chosen is None:
                    fault.hits += 1
                    chosen = fault
        for latency in latencies:
            self._delay(latency)
        return chosen

    def _delay(self, latency: Fault) -> None:
        """A latency fault's wait: ``seconds``, or until its ``until`` is set (at most ``seconds``)."""
        if latency.until is None:
            self._stopping.wait(latency.seconds)
            return
        deadline = time.monotonic() + latency.seconds
        while not latency.until.is_set() and not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            latency.until.wait(min(left, 0.05))

    def _authorized(self, handler: _Handler) -> bool:
        app_id = (handler.headers.get("x-app-id") or "").encode("utf-8", "replace")
        token = (handler.headers.get("x-app-token") or "").encode("utf-8", "replace")
        same_id = secrets.compare_digest(app_id, self.app_id.encode("utf-8"))
        return secrets.compare_digest(token, self.app_token.encode("utf-8")) and same_id

    def _rate_limited(self) -> dict[str, str] | None:
        if not self.rate_limit_per_minute:
            return None
        with self._lock:
            now = time.time()
            if now - self._window_start >= 60:
                self._window_start, self._window_count = now, 0
            if self._window_count >= self.rate_limit_per_minute:
                return {**self._retry_headers(self._window_start + 60 - now), "X-Rate-Limit-Remaining": "0"}
            self._window_count += 1
        return None

    def _rate_headers(self) -> dict[str, str]:
        if not self.rate_limit_per_minute:
            return {}
        with self._lock:
            remaining = max(0, self.rate_limit_per_minute - self._window_count)
        return {"X-Rate-Limit-Limit": str(self.rate_limit_per_minute), "X-Rate-Limit-Remaining": str(remaining)}

    def _retry_headers(self, seconds: float) -> dict[str, str]:
        seconds = max(0.0, seconds)
        return {
            "Retry-After": str(math.ceil(seconds)),
            "X-Rate-Limit-Retry": str(math.ceil(time.time() + seconds)),
            "X-Rate-Limit-Limit": str(self.rate_limit_per_minute or 0),
            "X-Rate-Limit-Type": "requests_per_minute",
        }

    def _error(self, key: str, redemption_id: str, **extra: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        """A documented error answer (redemptions.json's examples): ``code``, ``key``, ``message``, ``details`` and a
        ``request_id``; ``not_found`` and ``already_rolled_back`` also name their resource (``extra`` may name
        another, e.g. a customer that was not found)."""
        status, message, details = ERRORS[key]
        if key == "not_found":
            extra = {"resource_id": redemption_id, "resource_type": "redemption", **extra}
        if key == "already_rolled_back":
            extra = {"resource_id": _hex_id("rrf_"), "resource_type": "redemption_rollback", **extra}
        named = details.format(id=extra.get("resource_id", redemption_id), type=extra.get("resource_type"))
        return status, error_body(status, key, message, named, **extra), {}

    # --- the rollback itself ----------------------------------------------------------------------
    def _known(self, redemption_id: str) -> FakeRedemption | None:
        redemption = self._redemptions.get(redemption_id)
        if redemption is None and self.accept_unknown and redemption_id.startswith("r_"):
            redemption = self._redemptions[redemption_id] = FakeRedemption(redemption_id)
        return redemption

    def _roll_back(self, endpoint: str, redemption_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        to_send: list[tuple[dict[str, Any], FakeRedemption]] = []
        with self._lock:
            redemption = self._known(redemption_id)
            if redemption is None:
                status, error, _ = self._error("not_found", redemption_id)
                return status, error
            if redemption.parent_id is not None:
                status, error, _ = self._error("invalid_redemption_parent", redemption_id)
                return status, error
            if redemption.rollback_id is not None:
                status, error, _ = self._error("already_rolled_back", redemption_id)
                return status, error
            if endpoint == "rollback" and redemption.children:
                status, error, _ = self._error("invalid_redemption", redemption_id)
                return status, error
            if endpoint == "rollback":
                rollback = self._rollback_object(redemption, query, body)
                to_send.append((rollback, redemption))
                answer: Any = rollback
            else:
                children = []
                for child_id in redemption.children:
                    child = self._redemptions[child_id]
                    if child.rollback_id is None:
                        children.append(self._rollback_object(child, query, body))
                        to_send.append((children[-1], child))
                parent = self._rollback_object(redemption, query, body, related="redemption")
                to_send.append((parent, redemption))
                answer = {"rollbacks": children, "parent_rollback": parent, "order": parent.get("order")}
        for rollback, owner in to_send:
            self._schedule_webhook(rollback, owner)
        return 200, answer

    def _rollback_object(
        self, redemption: FakeRedemption, query: dict[str, str], body: Any, *, related: str = "voucher"
    ) -> dict[str, Any]:
        """A ``redemption_rollback`` like the OpenAPI example; marks the redemption rolled back."""
        rollback_id = _hex_id("rr_")
        redemption.rollback_id = rollback_id
        return rollback_document(rollback_id, redemption, query, body, app_id=self.app_id, related=related)

    def _failed_rollback(self, redemption_id: str, query: dict[str, str], body: Any, fault: Fault) -> dict[str, Any]:
        with self._lock:
            redemption = self._known(redemption_id) or FakeRedemption(redemption_id)
        document = rollback_document(_hex_id("rr_"), redemption, query, body, app_id=self.app_id)
        document.update(
            result="FAILURE",
            status="FAILED",
            failure_code=fault.failure_code,
            failure_message=fault.failure_message,
        )
        return document

    # --- the control endpoint ---------------------------------------------------------------------
    def _control(self, handler: _Handler, method: str, path: str, raw: bytes) -> None:
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            handler.answer(400, {"error": "body must be JSON"})
            return
        try:
            if method == "GET" and path == "/state":
                handler.answer(200, self.state())
            elif method == "POST" and path == "/faults":
                fault = self.fail(**payload)
                handler.answer(201, fault.as_dict())
            elif method == "DELETE" and path == "/faults":
                self.clear_faults()
                handler.answer(200, {"faults": []})
            elif method == "POST" and path == "/redemptions":
                children = payload.pop("children", None)
                if children:
                    self.add_stack(payload.pop("id"), children, **payload)
                else:
                    self.add_redemption(payload.pop("id"), **payload)
                handler.answer(201, {"redemptions": self.state()["redemptions"]})
            elif method == "POST" and path == "/webhooks/deliver":
                handler.answer(200, {"delivered": [asdict(d) for d in self.deliver_webhooks()]})
            elif method == "POST" and path == "/reset":
                self.reset()
                handler.answer(200, {"reset": True})
            else:
                handler.answer(404, {"error": f"no control {method} {CONTROL_PREFIX}{path}"})
        except (TypeError, ValueError, KeyError) as exc:
            handler.answer(400, {"error": f"{type(exc).__name__}: {exc}"})
