"""A fake Voucherify for development and tests (never deployed): the two rollback endpoints and the two redemptions
read endpoints, over real HTTP, with a history of redemptions and rollbacks to list.

``FakeVoucherify`` is a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (an ephemeral port unless told otherwise):

- ``POST /v1/redemptions/{redemptionId}/rollback`` and ``POST /v1/redemptions/{parentRedemptionId}/rollbacks``
  answer as Voucherify documents (``reference/voucherify/redemptions.json``): a ``redemption_rollback`` object
  (``rr_…``) shaped like the OpenAPI example; ``400 already_rolled_back`` the second time; ``400
  invalid_redemption`` for a stacked parent on ``/rollback`` (``/rollbacks`` rolls the whole stack back);
  ``400 invalid_redemption_parent`` for a stack child; ``404 not_found`` (Voucherify's error body, naming the
  redemption) for a redemption it does not know, unless ``lenient`` (then any ``r_…`` id is a single redemption);
- ``GET /v1/redemptions`` lists the history (``history``: redemptions ``r_…``/``rf_…`` and rollbacks
  ``rr_…``/``rrf_…``, shaped like the GET examples — ``objects``) as ``{object: "list", data_ref: "redemptions",
  redemptions, total}``, ``total`` counting every object the query matches; the query (``limit``, ``page`` 1–99,
  ``created_at[after]`` / ``[before]`` — exclusive —, ``order``, ``result``, ``filters[…]``) is read in ``listing``;
  ``GET /v1/redemptions/{id}`` answers one object or ``404 not_found``;
- the redemptions it knows: what ``add_redemption`` / ``add_stack`` add, what ``seed_history`` seeds and what
  ``know_webhook`` reads from webhooks Voucherify sent (``learning``: known to the rollback endpoints only, not
  listed);
- the history holds what ``add_redemption`` / ``add_stack`` add, every rollback the rollback endpoints make, and
  what ``seed_history`` seeds (``seeding``: thousands of objects over months, deterministic for a seed, each
  seeded redemption known to the rollback endpoints); ``history_webhooks()`` is the webhook Voucherify sent for
  each object (``redemption.succeeded`` / ``.failed``, ``redemption.rollback.succeeded`` / ``.failed``) with the
  bundle's route it goes to, and ``send_history_webhooks()`` sends them, signed, to ``webhook_url``'s host;
- ``X-App-Id`` / ``X-App-Token`` must match (``401`` otherwise) and a rate limit (requests per minute, fixed window)
  answers ``429`` with ``X-Rate-Limit-*`` and ``Retry-After``, for all four endpoints (``gate``);
- faults on demand, from Python (``fail()``) or over HTTP (``POST /_fake/faults``): latency, 5xx, 429, a
  hang past the client's timeout, a dropped connection, any documented error key, a 200 with result FAILURE (a
  rollback only) — each for ``times`` requests, optionally one redemption (a fault without one hits every request,
  the list's included), optionally a share of requests (seeded);
- every rollback call is counted per redemption (``calls()``), every API request kept (``requests``, tokens left
  out);
- after each successful rollback, like Voucherify a few moments later, it POSTs the signed webhook
  ``redemption.rollback.succeeded`` (v2024-01-01 envelope, ``x-voucherify-signature`` made with
  ``voucherify_ledger.webhooks.auth.sign``) to ``webhook_url`` — the bundle's
  ``/webhooks/redemption-rollback-succeeded``; ``drop_share`` loses a seeded share of all webhooks (counted).

Control endpoint (no authentication; loopback only): see ``control``.

Run it alone: ``python -m ledger_dev.fake_voucherify --port 8787 [--history 5000] [--drop-share 0.1]``. Its parts:
``faults``, ``gate`` (keys, rate limit), ``documents`` (what it answers with), ``objects`` (the history's objects and
their webhooks), ``history`` (the sorted history), ``listing`` (the list's query), ``seeding``, ``learning`` (the
redemptions a webhook names), ``webhooks`` (what it sends), ``control``, ``server`` (HTTP).
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ledger_dev.fake_voucherify.control import CONTROL_PREFIX, control
from ledger_dev.fake_voucherify.documents import (
    FakeRedemption,
    _hex_id,
    error_body,
    webhook_body,
)
from ledger_dev.fake_voucherify.faults import ERRORS, Fault, FaultKind
from ledger_dev.fake_voucherify.gate import ApiGate
from ledger_dev.fake_voucherify.history import History
from ledger_dev.fake_voucherify.learning import webhook_redemptions
from ledger_dev.fake_voucherify.listing import INVALID_QUERY, InvalidQuery, parse_query
from ledger_dev.fake_voucherify.objects import redemption_of
from ledger_dev.fake_voucherify.rollbacks import RollbackEndpoints
from ledger_dev.fake_voucherify.seeding import seed_history
from ledger_dev.fake_voucherify.server import _Handler, _Server
from ledger_dev.fake_voucherify.webhooks import WebhookDelivery, WebhookSender

log = logging.getLogger("ledger_dev.fake_voucherify")

HOST = "127.0.0.1"
DEFAULT_APP_ID = "local-app-id"
DEFAULT_APP_TOKEN = "local-app-token"
DEFAULT_PROJECT_ID = "proj_fAkEv0uCheR1fy"

_ROLLBACK_PATH = re.compile(r"^/v1/redemptions/(?P<id>[^/]+)/(?P<endpoint>rollback|rollbacks)$")
_GET_PATH = re.compile(r"^/v1/redemptions/(?P<id>[^/]+)$")
LIST_PATH = "/v1/redemptions"


def api_secret_value(app_id: str = DEFAULT_APP_ID, app_token: str = DEFAULT_APP_TOKEN) -> str:
    """The Secrets Manager value the worker reads (``VOUCHERIFY_API_SECRET_ID``) for these keys."""
    return json.dumps({"app_id": app_id, "app_token": app_token})


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    endpoint: str | None  # rollback, rollbacks, list or get
    redemption_id: str | None  # the path's id (None for the list)
    query: dict[str, str]
    body: Any
    user_agent: str | None
    app_id: str | None
    status: int | None  # None: no answer (timeout, dropped)
    arrived: float = 0.0  # time.monotonic() when the request came in (requests are kept in the order answered)
    answer_request_id: str | None = None  # the request_id of an error answer, as Voucherify's errors carry one


class FakeVoucherify(RollbackEndpoints):
    """See the module's docstring. Also a local-stack background service (``name``, ``start``, ``stop``)."""

    name = "fake-voucherify"

    def __init__(
        self,
        *,
        host: str = HOST,
        port: int = 0,
        app_id: str = DEFAULT_APP_ID,
        app_token: str = DEFAULT_APP_TOKEN,
        lenient: bool = False,
        rate_limit_per_minute: int | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_delay: float | None = 2.0,
        webhook_before_response: bool = False,
        project_id: str = DEFAULT_PROJECT_ID,
        seed: int = 0,
        drop_share: float = 0.0,
    ) -> None:
        """``lenient``: roll back any ``r_…`` id, known or not (as a single redemption), instead of answering ``404
        not_found`` as Voucherify does — for load tools that roll back ids no webhook ever named;
        ``webhook_delay``: seconds after a rollback before its webhook goes out (None: held until
        ``deliver_webhooks()``); ``webhook_before_response``: send it (synchronously) before answering the
        API call, as if the worker's own write came second; ``drop_share``: the share of webhooks lost (seeded by
        ``seed``), rollback and history webhooks alike."""
        self.host = host
        self.port = port
        self.lenient = lenient
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.webhook_delay = webhook_delay
        self.webhook_before_response = webhook_before_response
        self.project_id = project_id
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._gate = ApiGate(app_id, app_token, rate_limit_per_minute, self._lock)
        self._history = History()
        self._rolled_back: dict[str, str] = {}  # rollbacks the endpoints made: redemption → rr_…
        self._redemptions: dict[str, FakeRedemption] = {}
        self._faults: list[Fault] = []
        self._calls: Counter[str] = Counter()
        self._requests: list[RecordedRequest] = []
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
            drop_share=drop_share,
            seed=seed,
        )

    # the keys and the rate limit live in the gate; a test may change them on a running fake
    @property
    def app_id(self) -> str:
        return self._gate.app_id

    @app_id.setter
    def app_id(self, value: str) -> None:
        self._gate.app_id = value

    @property
    def app_token(self) -> str:
        return self._gate.app_token

    @app_token.setter
    def app_token(self, value: str) -> None:
        self._gate.app_token = value

    @property
    def rate_limit_per_minute(self) -> int | None:
        return self._gate.rate_limit_per_minute

    @rate_limit_per_minute.setter
    def rate_limit_per_minute(self, value: int | None) -> None:
        self._gate.rate_limit_per_minute = value

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
            self._history.add(redemption_of(redemption, channel_id=self.app_id))
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
            self._history.add(redemption_of(parent, channel_id=self.app_id))
            for child in children:
                self._redemptions[child] = FakeRedemption(
                    child,
                    order_id,
                    customer_id,
                    voucher_code=f"STACK-{child[-6:].upper()}",
                    parent_id=parent_id,
                    order_source_id=order_source_id,
                    date=parent.date,
                )
                self._history.add(redemption_of(self._redemptions[child], channel_id=self.app_id))
            return parent

    def know_webhook(self, body: bytes | str | Mapping[str, Any]) -> list[str]:
        """Knows the redemptions a webhook Voucherify sent names (``body`` as sent: an envelope or a Raw payload;
        ``learning``), as Voucherify knows every redemption it sent a webhook of: the rollback endpoints roll them
        back from now on. A redemption known already keeps what it holds and takes only what it lacked (a stack's
        members, a rollback the webhook says succeeded). They are not added to the history. Answers the ids newly
        known."""
        added = []
        with self._lock:
            for named in webhook_redemptions(body):
                known = self._redemptions.get(named.id)
                if known is None:
                    self._redemptions[named.id] = named
                    added.append(named.id)
                    continue
                for name in ("order_id", "customer_id", "voucher_code", "amount", "order_source_id", "rollback_id"):
                    if getattr(known, name) is None:
                        setattr(known, name, getattr(named, name))
                if known.parent_id is None and not known.children:
                    known.parent_id = named.parent_id
                if known.parent_id is None:
                    known.children += [child for child in named.children if child not in known.children]
        return added

    def seed_history(
        self,
        count: int,
        *,
        days: float = 90,
        end: datetime | None = None,
        rollback_share: float = 0.12,
        stack_share: float = 0.05,
        failed_share: float = 0.03,
        seed: int = 0,
    ) -> dict[str, int]:
        """Adds a seeded history of ``count`` objects over ``days`` up to ``end`` (default now; see ``seeding``);
        its redemptions are known to the rollback endpoints. Answers the history's counts."""
        with self._lock:
            taken = set(self._redemptions) | {o["id"] for o in self._history.objects()}
        seeded = seed_history(
            count,
            days=days,
            end=end,
            rollback_share=rollback_share,
            stack_share=stack_share,
            failed_share=failed_share,
            seed=seed,
            channel_id=self.app_id,
            taken=taken,
        )
        with self._lock:
            for redemption in seeded.redemptions:
                self._redemptions[redemption.id] = redemption
            self._history.extend(seeded.objects)
            return self._history.counts()

    def history(self) -> list[dict[str, Any]]:
        """Every object of the history, oldest first (copies)."""
        with self._lock:
            return [dict(o) for o in self._history.objects()]

    def history_webhooks(self, share: float = 1.0, seed: int = 0) -> list[tuple[str, bytes]]:
        """The webhook of each history object (a seeded ``share`` of them), oldest first: (the bundle's route,
        ``/webhooks/redemption-succeeded`` or ``/webhooks/redemption-rollback-succeeded``, the JSON body)."""
        with self._lock:
            return self._history.webhooks(
                project_id=self.project_id, app_id=self.app_id, share=share, seed=seed, target_url=self.webhook_url
            )

    def send_history_webhooks(self, share: float = 1.0, seed: int = 0) -> list[WebhookDelivery]:
        """Sends ``history_webhooks(share, seed)`` now, signed, each to its route on ``webhook_url``'s host, less
        the drop share (``state()["webhooks_dropped"]``); returns the deliveries made."""
        if not self.webhook_url:
            raise ValueError("the fake has no webhook_url to send the history's webhooks to")
        items = []
        for route, body in self.history_webhooks(share, seed):
            data = json.loads(body)["data"]
            subject = data.get("redemption_rollback") or data["redemption"]
            rollback_id = subject["id"] if "redemption_rollback" in data else None
            redemption_id = subject.get("redemption") if rollback_id else subject["id"]
            items.append((route, body, redemption_id or "", rollback_id, json.loads(body)["type"]))
        return self._webhooks.send_history(items)

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
            self._gate.reset()
            self._history.clear()
            self._rolled_back.clear()

    # --- observation ------------------------------------------------------------------------------
    def calls(self, redemption_id: str | None = None) -> int:
        """API calls (both rollback endpoints, any answer) for one redemption, or in all."""
        with self._lock:
            return self._calls[redemption_id] if redemption_id else sum(self._calls.values())

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def known(self, redemption_id: str) -> FakeRedemption | None:
        """The redemption as the rollback endpoints know it (a copy), or None: they answer ``404 not_found``
        (unless ``lenient``)."""
        with self._lock:
            redemption = self._redemptions.get(redemption_id)
            return replace(redemption, children=list(redemption.children)) if redemption else None

    def rollback_id(self, redemption_id: str) -> str | None:
        with self._lock:
            redemption = self._redemptions.get(redemption_id)
            return redemption.rollback_id if redemption else None

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self._calls),
                "rolled_back": dict(self._rolled_back),
                "redemptions": sorted(r.id for r in self._redemptions.values() if not r.seeded),
                "history": self._history.counts(),
                "faults": [f.as_dict() for f in self._faults],
                "webhooks": [asdict(w) for w in self.webhooks],
                "webhooks_pending": self._webhooks.pending,
                "webhooks_dropped": self._webhooks.dropped,
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
            control(self, handler, handler.command, url.path[len(CONTROL_PREFIX) :], raw)
            return
        pairs = parse_qsl(url.query, keep_blank_values=True)
        query = dict(pairs)
        rollback_match, get_match = _ROLLBACK_PATH.match(url.path), _GET_PATH.match(url.path)
        serve: Callable[[], tuple[int, Any]]
        if handler.command == "POST" and rollback_match:
            redemption_id: str | None = rollback_match.group("id")
            endpoint = rollback_match.group("endpoint")
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            with self._lock:
                self._calls[redemption_id] += 1
            serve = lambda: self._roll_back(endpoint, rollback_match.group("id"), query, body)  # noqa: E731
        elif handler.command == "GET" and url.path.rstrip("/") == LIST_PATH:
            redemption_id, endpoint, body = None, "list", None
            serve = lambda: self._list(pairs)  # noqa: E731
        elif handler.command == "GET" and get_match:
            redemption_id, endpoint, body = get_match.group("id"), "get", None
            serve = lambda: self._get(get_match.group("id"))  # noqa: E731
        else:
            handler.answer(404, {"code": 404, "key": "not_found", "message": "Resource not found"})
            return
        status, payload, headers = self._api(handler, endpoint, redemption_id, query, body, serve)
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    handler.command,
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
        self,
        handler: _Handler,
        endpoint: str,
        redemption_id: str | None,
        query: dict[str, str],
        body: Any,
        serve: Callable[[], tuple[int, Any]],
    ) -> tuple[int | None, Any, dict[str, str]]:
        """The answer to one API request: (status, or None when no answer is sent; body; headers). Faults, the keys
        and the rate limit first, then ``serve()``."""
        rollback = endpoint in ("rollback", "rollbacks")
        fault = self._pick_fault(redemption_id, rollback=rollback)
        if fault is not None and fault.kind in ("timeout", "drop"):
            if fault.apply:
                serve()
            if fault.kind == "timeout":
                self._stopping.wait(fault.seconds)
            handler.drop()
            return None, None, {}
        if not self._gate.authorized(handler.headers):
            return self._error("unauthorized", redemption_id or "")
        limited = self._gate.limited()
        if limited is not None:
            return 429, error_body(429, "too_many_requests", "Too many requests"), limited
        headers = self._gate.headers()
        if fault is not None:
            if fault.kind == "status":
                key, message = ("server_error", "Internal server error") if fault.status >= 500 else ("error", "Error")
                return fault.status, error_body(fault.status, key, message), headers
            if fault.kind == "error":
                named = {"resource_id": fault.resource_id, "resource_type": fault.resource_type}
                status, error, _ = self._error(
                    fault.key or "not_found", redemption_id or "", **{k: v for k, v in named.items() if v}
                )
                return status, error, headers
            if fault.kind == "rate_limit":
                return (
                    429,
                    error_body(429, "too_many_requests", "Too many requests"),
                    {**self._gate.retry_headers(fault.retry_after), "X-Rate-Limit-Remaining": "0"},
                )
            if fault.kind == "failure" and redemption_id is not None:
                return 200, self._failed_rollback(redemption_id, query, body, fault), headers
        status, payload = serve()
        return status, payload, headers

    def _list(self, pairs: list[tuple[str, str]]) -> tuple[int, Any]:
        """``GET /v1/redemptions``: a page of the history, or 400 for a query the API refuses."""
        try:
            query = parse_query(pairs)
        except InvalidQuery as refused:
            code, key, message = INVALID_QUERY
            return code, error_body(code, key, message, str(refused))
        with self._lock:
            return 200, self._history.list(query)

    def _get(self, object_id: str) -> tuple[int, Any]:
        """``GET /v1/redemptions/{id}``: the redemption or rollback, or 404 not_found."""
        with self._lock:
            found = self._history.get(object_id)
        if found is None:
            status, error, _ = self._error("not_found", object_id)
            return status, error
        return 200, found

    def _pick_fault(self, redemption_id: str | None, *, rollback: bool = True) -> Fault | None:
        """The fault that decides this request's answer (latencies waited out here); a ``failure`` fault (a
        rollback's FAILURE) is for the rollback endpoints only."""
        chosen: Fault | None = None
        latencies: list[Fault] = []
        with self._lock:
            for fault in self._faults:
                if not fault.matches(redemption_id) or (fault.kind == "failure" and not rollback):
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
