"""Senders over real HTTP: the genuine deliveries of a corpus (``send_corpus``, resending 5xx and lost answers as
Voucherify does) and the hostile plan's requests (``send_hostile``), each sender on its own keep-alive connection."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ledger_dev.loadtest.common import SENDER_TIMEOUT_SECONDS, TAG_HEADER
from ledger_dev.local_stack import LocalStack
from ledger_dev.payloads.corpus import (
    REDEMPTION_ROUTE,
    ROLLBACK_ROUTE,
    Corpus,
    CorpusDelivery,
)
from voucherify_ledger.webhooks.auth import SIGNATURE_HEADER, sign

if TYPE_CHECKING:
    from ledger_dev.loadtest.hostile_cases import HostileCase

LOOPBACK = frozenset({"127.0.0.1", "::1"})


@dataclass
class Attempt:
    delivery: int  # position in the corpus's deliveries
    attempt: int
    status: int | None  # None: no answer (connection error)
    seconds: float
    answer: dict[str, Any] | None = None
    faults: tuple[str, ...] = ()
    error: str | None = None  # no answer: the exception (``ConnectionResetError: …``)
    started: float = 0.0  # time.perf_counter() when it was sent

    @property
    def tag(self) -> str:
        return f"{self.delivery}.{self.attempt}"


@dataclass
class SendResult:
    attempts: list[Attempt]
    seconds: float
    unsent: int  # deliveries never sent (the deadline came first)
    gave_up: int  # deliveries that never got a 2xx

    def final(self) -> dict[int, Attempt]:
        last: dict[int, Attempt] = {}
        for attempt in self.attempts:
            if attempt.delivery not in last or attempt.attempt > last[attempt.delivery].attempt:
                last[attempt.delivery] = attempt
        return last


def route_paths(stack: LocalStack) -> dict[str, str]:
    """Receiver route name → the template's path (``/webhooks/<name>``)."""
    paths = {}
    for name in (REDEMPTION_ROUTE, ROLLBACK_ROUTE):
        (path,) = [r.path for r in stack.routes if r.method in ("POST", "ANY") and r.path.rstrip("/").endswith(name)]
        paths[name] = path
    return paths


def send_corpus(
    stack: LocalStack,
    corpus: Corpus,
    *,
    senders: int,
    deadline: float,
    resend_5xx: bool,
    max_attempts: int = 8,
    credentials: Callable[[CorpusDelivery], Mapping[str, str]] | None = None,
) -> SendResult:
    """Sends every delivery of ``corpus`` in order with ``senders`` threads, each on its own keep-alive HTTP
    connection. A 5xx is resent (``resend_5xx``) after a short pause, like Voucherify's retries, up to
    ``max_attempts``; a connection error (no answer) is resent on a new connection, whatever ``resend_5xx``.
    Each delivery carries its signature, or the headers ``credentials`` gives for it (e.g. the token alone)."""
    split = urlsplit(stack.api_url)
    paths = route_paths(stack)
    secret = stack.config.signing_secret
    attempts: list[Attempt] = []
    lock = threading.Lock()
    position = iter(range(len(corpus.deliveries)))
    counters = Counter[str]()

    def next_index() -> int | None:
        with lock:
            if time.monotonic() > deadline:
                return None
            return next(position, None)

    def worker() -> None:
        def connect() -> http.client.HTTPConnection:
            return http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=SENDER_TIMEOUT_SECONDS)

        connection = connect()
        try:
            while (index := next_index()) is not None:
                delivery = corpus.deliveries[index]
                headers = {
                    "content-type": "application/json",
                    "user-agent": "Voucherify-Webhooks (loadtest)",
                    **(
                        credentials(delivery)
                        if credentials is not None
                        else {SIGNATURE_HEADER: sign(secret, delivery.signed_body)}
                    ),
                }
                succeeded = False
                for number in range(1, max_attempts + 1):
                    headers[TAG_HEADER] = f"{index}.{number}"
                    started = time.perf_counter()
                    status: int | None = None
                    answer: dict[str, Any] | None = None
                    error: str | None = None
                    try:
                        connection.request("POST", paths[delivery.route], body=delivery.body, headers=headers)
                        response = connection.getresponse()
                        raw = response.read()
                        status = response.status
                        with contextlib.suppress(ValueError):
                            answer = json.loads(raw)
                    except (OSError, http.client.HTTPException) as exc:
                        error = f"{type(exc).__name__}: {exc}"
                        connection.close()
                        connection = connect()
                    took = time.perf_counter() - started
                    with lock:
                        attempts.append(Attempt(index, number, status, took, answer, error=error, started=started))
                    if status is not None and status < 500:
                        succeeded = True
                        break
                    if status is not None and not resend_5xx:
                        break
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.005 * number)
                if not succeeded:
                    with lock:
                        counters["gave_up"] += 1
        finally:
            connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, name=f"loadtest-sender-{i}", daemon=True) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(1.0, deadline - time.monotonic() + 60))
    seconds = time.monotonic() - started
    sent = {a.delivery for a in attempts}
    return SendResult(attempts, seconds, len(corpus.deliveries) - len(sent), counters["gave_up"])


@dataclass
class HostileAttempt:
    case: int  # position in the plan
    status: int | None  # None: no answer (connection error)
    seconds: float
    started: float  # time.perf_counter()
    answer: dict[str, Any] | None = None
    text: str = ""
    error: str | None = None
    tag: str = ""  # its TAG_HEADER: ``h<request>.<attempt>``


def _post(
    connection: http.client.HTTPConnection, path: str, body: bytes, headers: Mapping[str, str]
) -> tuple[int, bytes]:
    connection.request("POST", path, body=body, headers=dict(headers))
    response = connection.getresponse()
    return response.status, response.read()


def send_hostile(
    stack: LocalStack,
    plan: Sequence[HostileCase],
    *,
    attackers: int,
    limit: int,
    stop: threading.Event,
    deadline: float,
    max_attempts: int = 4,
) -> list[HostileAttempt]:
    """``attackers`` threads send the plan's requests in turn (``plan[n % len(plan)]``), each on its own keep-alive
    connection, until ``stop`` is set and every case was sent once, or ``limit`` requests were sent, or the
    deadline passed. A request without an answer (connection error) is resent on a new connection."""
    split = urlsplit(stack.api_url)
    if split.hostname not in LOOPBACK:
        raise ValueError(f"the hostile run only attacks a local stack on the loopback interface, not {split.hostname}")
    paths = route_paths(stack)
    attempts: list[HostileAttempt] = []
    lock = threading.Lock()
    counter = iter(range(limit))

    def next_case() -> tuple[int, int] | None:
        with lock:
            if time.monotonic() > deadline:
                return None
            n = next(counter, None)
            if n is None or (stop.is_set() and n >= len(plan)):
                return None
            return n, n % len(plan)

    def attacker() -> None:
        def connect() -> http.client.HTTPConnection:
            return http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=SENDER_TIMEOUT_SECONDS)

        connection = connect()
        try:
            while (taken := next_case()) is not None:
                n, index = taken
                case = plan[index]
                headers = {
                    "content-type": "application/json",
                    "user-agent": "loadtest-attacker",
                    **dict(case.credentials),
                }
                for number in range(1, max_attempts + 1):
                    headers[TAG_HEADER] = f"h{n}.{number}"
                    started = time.perf_counter()
                    attempt = HostileAttempt(index, None, 0.0, started, tag=headers[TAG_HEADER])
                    try:
                        attempt.status, raw = _post(connection, paths[case.route], case.body, headers)
                        attempt.text = raw.decode("utf-8", "replace")
                        with contextlib.suppress(ValueError):
                            attempt.answer = json.loads(raw)
                    except (OSError, http.client.HTTPException) as exc:
                        attempt.error = f"{type(exc).__name__}: {exc}"
                        connection.close()
                        connection = connect()
                    attempt.seconds = time.perf_counter() - started
                    with lock:
                        attempts.append(attempt)
                    if attempt.status is not None or time.monotonic() > deadline:
                        break
        finally:
            connection.close()

    threads = [threading.Thread(target=attacker, name=f"loadtest-attacker-{i}", daemon=True) for i in range(attackers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(1.0, deadline - time.monotonic() + 60))
    return attempts
