"""``make loadtest`` / ``make chaos``: does the ledger hold under load and faults? (dev only, loopback only)

Starts the local stack (moto server, the template's routes served on 127.0.0.1, the real handlers, the SQS
poller and a fake Voucherify; every port ephemeral) and runs up to three phases, each bounded in time:

``load``    a corpus (``ledger_tools.corpus``) of deliveries built from Voucherify's published schemas, 30 %
            duplicates, shuffled (many rollbacks before their redemption), half v2024 envelopes and half bare
            data, correctly signed, sent by concurrent senders over real HTTP. No 5xx is acceptable. The ledger
            must then equal the expected state exactly: the table is scanned and compared item by item.
``faults``  the same with a second corpus while a share of the webhook functions' DynamoDB writes fail:
            throttling, TransactionConflict / TransactionCanceled, InternalServerError, connection errors and
            timeouts before the write, and "lost answers" (the write is applied, the answer never arrives). The
            faults are injected by a botocore event hook (``before-call`` / ``after-call``) registered on the
            handlers' own DynamoDB clients. Every delivery hit by a fault must be answered 5xx, every other one
            2xx; the sender resends the 5xx ones (as Voucherify does) until they succeed, and the ledger must
            again be exact, with no partial record.
``chaos``   rollback requests (some twice) for redemptions of the corpora go through the queue, the worker and
            the fake Voucherify, which answers 5xx, 429 (with Retry-After / X-Rate-Limit-*), drops connections
            (before and after rolling back), hangs past the client's timeout and adds latency spikes. Every
            request must end SUCCEEDED / ALREADY_ROLLED_BACK / FAILED (dead-lettered, its message in the
            dead-letter queue), each redemption rolled back in Voucherify at most once and never called again
            after a 200, and the ledger must match Voucherify (every rollback id, nothing else changed).

A delivery that gets no HTTP answer at all (a connection error) is resent on a new connection, as Voucherify
retries a delivery it got no answer to; those are counted (``connection_errors``, by kind) and fail the run only
when a delivery never gets an answer. Since its request may have been handled, its entity need not have been
answered ``recorded``, but it must never be answered ``recorded`` twice. The same goes for a delivery whose write
botocore retried after a timeout (``sdk_retries``: the first try may have been applied, the retry then hears
"already recorded").

Exit status 0 when every check passed, 1 otherwise (the problems are printed). ``--json FILE`` writes the
figures. Run ``python -m ledger_tools.loadtest --help`` for the knobs (e.g. ``--deliveries 500``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import math
import os
import random
import sys
import threading
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from ledger_tools.corpus import REDEMPTION_ROUTE, ROLLBACK_ROUTE, Corpus, build_corpus
from ledger_tools.local_stack import INTEGRATION_TIMEOUT_SECONDS, WORKER_QUEUE, LocalConfig, LocalStack
from voucherify_ledger.auth import SIGNATURE_HEADER, sign
from voucherify_ledger.ledger import (
    REDEMPTION_PREFIX,
    REDEMPTION_SK,
    REQUEST_SK_PREFIX,
    ROLLBACK_IDS,
    ROLLBACK_PREFIX,
    ROLLED_BACK,
    SUCCEEDED,
    iso,
    redemption_summary,
    rollback_summary,
)
from voucherify_ledger.models import EventRedemptionRollbackSucceededData, EventRedemptionSucceededData

log = logging.getLogger("ledger_tools.loadtest")

PHASES = ("load", "faults", "chaos")
TAG_HEADER = "x-loadtest-delivery"  # which delivery and attempt: the fault hook's answers are matched on it
WEBHOOK_FUNCTIONS = ("RedemptionSucceededFunction", "RedemptionRollbackSucceededFunction")
DEAD_LETTER_QUEUE = "RollbackDeadLetterQueue"
IDEMPOTENCY_PK = "IDEMPOTENCY#rollback-worker"
# Attributes whose value depends on when a write happened, not on what was delivered.
TIMING_ATTRIBUTES = frozenset({"updated_at", "redemption_recorded_at", "recorded_at"})
AUDIT_ATTRIBUTES = frozenset({"redemption_delivery", "delivery"})
TERMINAL_STATES = frozenset({SUCCEEDED, "ALREADY_ROLLED_BACK", "FAILED"})
MAX_REPORTED_PROBLEMS = 25
# A sender waits longer than the API's integration timeout: a function busy that long is answered 503 (as API
# Gateway does), not a sender's timeout that would look like a lost connection.
SENDER_TIMEOUT_SECONDS = INTEGRATION_TIMEOUT_SECONDS + 10

# The worker's settings for a chaos run: quick retries, a short read timeout, a budget that never paces.
CHAOS_ENVIRONMENT = {
    "ROLLBACK_RETRY_BASE_SECONDS": "0.2",
    "ROLLBACK_RETRY_MAX_SECONDS": "2",
    "VOUCHERIFY_CONNECT_TIMEOUT_SECONDS": "1",
    "VOUCHERIFY_READ_TIMEOUT_SECONDS": "2",
}
CHAOS_PARAMETERS = {"VoucherifyRequestsPerMinute": "100000"}
QUIET_ENVIRONMENT = {"POWERTOOLS_METRICS_DISABLED": "true"}  # no EMF line per invocation on stdout


# --- the fault hook --------------------------------------------------------------------------------
class DynamoFaults:
    """Fails a share of the DynamoDB writes the webhook functions make, through botocore's event hooks.

    ``before-call`` answers in place of DynamoDB (an error response, or a raised connection error / timeout:
    nothing was written); ``lost_answer`` lets the write through and raises a read timeout in ``after-call``
    (written, but the function never hears so). The hook sees the handler's own client, after botocore's
    retries, i.e. what the function has to deal with. Faults are counted per delivery attempt (``TAG_HEADER``).
    """

    WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
    KINDS = ("throttling", "transaction_conflict", "internal_error", "connection_error", "timeout", "lost_answer")

    def __init__(self, share: float, *, seed: int = 0, kinds: Sequence[str] = KINDS) -> None:
        if not 0 <= share <= 1:
            raise ValueError("share must be in [0, 1]")
        unknown = set(kinds) - set(self.KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {', '.join(sorted(unknown))}")
        self.share = share
        self.kinds = tuple(kinds)
        self.enabled = False
        self.injected: Counter[str] = Counter()
        self.by_attempt: dict[str, list[str]] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._local = threading.local()

    def install(self, stack: LocalStack, function_ids: Sequence[str] = WEBHOOK_FUNCTIONS) -> None:
        for logical_id in function_ids:
            function = stack.function(logical_id)
            module = sys.modules[f"functions.{logical_id}.app"]
            events = module.receiver.ledger.client.meta.events
            events.register("before-call.dynamodb", self._before)
            events.register("after-call.dynamodb", self._after)
            function.handler = self._wrap(function.handler)

    def _wrap(self, handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
        def wrapped(event: dict[str, Any], context: Any) -> Any:
            tag = (event.get("headers") or {}).get(TAG_HEADER)
            self._local.faults = []
            try:
                return handler(event, context)
            finally:
                if tag:
                    with self._lock:
                        self.by_attempt[tag] = list(self._local.faults)
                self._local.faults = None

        return wrapped

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        faults = getattr(self._local, "faults", None)
        if faults is None or not self.enabled or model.name not in self.WRITES:
            return None
        with self._lock:
            if self._rng.random() >= self.share:
                return None
            kind = self._rng.choice(self.kinds)
            variant = self._rng.random()
            self.injected[kind] += 1
        faults.append(kind)
        endpoint = "http://127.0.0.1/dynamodb"
        if kind == "lost_answer":
            context["loadtest_lost_answer"] = True
            return None
        if kind == "connection_error":
            raise EndpointConnectionError(endpoint_url=endpoint)
        if kind == "timeout":
            raise ConnectTimeoutError(endpoint_url=endpoint)
        return self._error(kind, model.name, variant)

    def _after(self, context: dict[str, Any], **_: Any) -> None:
        if context.pop("loadtest_lost_answer", False):
            raise ReadTimeoutError(endpoint_url="http://127.0.0.1/dynamodb")

    @staticmethod
    def _error(kind: str, operation: str, variant: float) -> tuple[Any, dict[str, Any]]:
        status, extra = 400, {}
        if kind == "throttling":
            code = "ThrottlingException"
            if operation != "TransactWriteItems" and variant < 0.5:
                code = "ProvisionedThroughputExceededException"
            message = "Rate of requests exceeds the allowed throughput."
        elif kind == "transaction_conflict" and operation == "TransactWriteItems":
            code = "TransactionCanceledException"
            reasons = [{"Code": "None"}, {"Code": "None"}]
            reasons[0 if variant < 0.5 else 1] = {"Code": "TransactionConflict", "Message": "Transaction is ongoing"}
            listed = ", ".join(r["Code"] for r in reasons)
            message = f"Transaction cancelled, please refer cancellation reasons for specific reasons [{listed}]"
            extra = {"CancellationReasons": reasons}
        elif kind == "transaction_conflict":
            code, message = "TransactionConflictException", "Transaction is ongoing for the item"
        else:
            status, code, message = 500, "InternalServerError", "Internal server error"
        parsed = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "loadtest-fault"},
            **extra,
        }
        return SimpleNamespace(status_code=status, headers={}, content=b""), parsed


class SdkRetries:
    """Counts botocore's own retries of the webhook functions' DynamoDB calls after a timeout or a broken
    connection, per delivery attempt (``TAG_HEADER``).

    Such a retry may repeat a write the first try applied, its answer only late (moto's thread starved on a
    loaded machine, past the functions' 1.5 s read timeout): the conditional write then fails and the delivery
    that wrote the item is answered ``duplicate``. Like a lost answer, its entity need not have been answered
    ``recorded`` (the ledger must still be exact).
    """

    def __init__(self) -> None:
        self.by_attempt: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()  # the exceptions retried (``ReadTimeoutError`` …)
        self._lock = threading.Lock()
        self._local = threading.local()

    def install(self, stack: LocalStack, function_ids: Sequence[str] = WEBHOOK_FUNCTIONS) -> None:
        for logical_id in function_ids:
            function = stack.function(logical_id)
            module = sys.modules[f"functions.{logical_id}.app"]
            module.receiver.ledger.client.meta.events.register("needs-retry.dynamodb", self._needs_retry)
            function.handler = self._wrap(function.handler)

    def clear(self) -> None:
        with self._lock:
            self.by_attempt.clear()
            self.kinds.clear()

    def _wrap(self, handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
        def wrapped(event: dict[str, Any], context: Any) -> Any:
            self._local.tag = (event.get("headers") or {}).get(TAG_HEADER)
            try:
                return handler(event, context)
            finally:
                self._local.tag = None

        return wrapped

    def _needs_retry(self, caught_exception: Exception | None = None, **_: Any) -> None:
        if caught_exception is None:  # an answer: botocore's retry handler judges it (throttling, 5xx …)
            return
        tag = getattr(self._local, "tag", None)
        with self._lock:
            self.kinds[type(caught_exception).__name__] += 1
            if tag:
                self.by_attempt[tag] += 1


# --- sending ---------------------------------------------------------------------------------------
@dataclass
class Attempt:
    delivery: int  # position in the corpus's deliveries
    attempt: int
    status: int | None  # None: no answer (connection error)
    seconds: float
    answer: dict[str, Any] | None = None
    faults: tuple[str, ...] = ()
    error: str | None = None  # no answer: the exception (``ConnectionResetError: …``)

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
) -> SendResult:
    """Sends every delivery of ``corpus`` in order with ``senders`` threads, each on its own keep-alive HTTP
    connection. A 5xx is resent (``resend_5xx``) after a short pause, like Voucherify's retries, up to
    ``max_attempts``; a connection error (no answer) is resent on a new connection, whatever ``resend_5xx``."""
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
                    SIGNATURE_HEADER: sign(secret, delivery.signed_body),
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
                        attempts.append(Attempt(index, number, status, took, answer, error=error))
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


# --- the expected ledger ---------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "value") and isinstance(value.value, bytes):  # boto3 Binary
        return bytes(value.value)
    return value


def scan_ledger(client: Any, table_name: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every item of the table (a consistent scan), keyed (pk, sk), as plain Python values."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True):
        for raw in page.get("Items", []):
            item = {k: _plain(deserializer.deserialize(v)) for k, v in raw.items()}
            items[(item["pk"], item["sk"])] = item
    return items


def expected_ledger(corpora: Sequence[Corpus]) -> dict[tuple[str, str], dict[str, Any]]:
    """What the ledger must hold after every delivery of ``corpora`` was accepted once: per redemption its
    summary (a rollback's copy of the redemption fills only what the redemption's own delivery left out,
    whichever came first), its status and rollback ids, and per rollback its summary (the attribute
    ``rollback#<rr_…>``). Timing and audit attributes are left out (checked separately)."""
    expected: dict[tuple[str, str], dict[str, Any]] = {}
    for corpus in corpora:
        for redemption_id, data in corpus.redemptions.items():
            parsed = EventRedemptionSucceededData.model_validate(data)
            item = {"pk": REDEMPTION_PREFIX + redemption_id, "sk": REDEMPTION_SK, "entity": "redemption"}
            item.update(redemption_summary(parsed, parsed.redemption))
            item["status"] = SUCCEEDED
            expected[(item["pk"], item["sk"])] = item
        for rollback_id, data in corpus.rollbacks.items():
            parsed_rollback = EventRedemptionRollbackSucceededData.model_validate(data)
            redemption_id = parsed_rollback.redemption_id
            key = (REDEMPTION_PREFIX + redemption_id, REDEMPTION_SK)
            item = expected.setdefault(key, {"pk": key[0], "sk": key[1], "entity": "redemption"})
            if parsed_rollback.redemption is not None and parsed_rollback.redemption.id == redemption_id:
                for name, value in redemption_summary(parsed_rollback, parsed_rollback.redemption).items():
                    item.setdefault(name, value)
            item.setdefault("redemption_id", redemption_id)
            item["status"] = ROLLED_BACK
            item["rolled_back_at"] = iso(parsed_rollback.redemption_rollback.date)
            item["rollback_ids"] = sorted({*item.get("rollback_ids", []), rollback_id})
            # the rollback: an attribute of its redemption's item, named by its id (which it does not repeat)
            summary = rollback_summary(parsed_rollback.redemption_rollback, redemption_id)
            item[ROLLBACK_PREFIX + rollback_id] = {
                "source": "webhook",
                **{k: v for k, v in summary.items() if k not in ROLLBACK_IDS},
            }
    return expected


def _comparable(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item without timing and audit attributes, also inside its rollbacks (``rollback#<rr_…>``)."""
    hidden = TIMING_ATTRIBUTES | AUDIT_ATTRIBUTES
    shown = {k: v for k, v in item.items() if k not in hidden}
    for name, value in shown.items():
        if name.startswith(ROLLBACK_PREFIX) and isinstance(value, Mapping):
            shown[name] = {k: v for k, v in value.items() if k not in hidden}
    return shown


def _documents(corpora: Sequence[Corpus]) -> dict[str, list[Any]]:
    """entity → the JSON documents delivered for it (a stored raw delivery must be one of them)."""
    found: dict[str, list[Any]] = {}
    for corpus in corpora:
        for delivery in corpus.deliveries:
            if not delivery.duplicate:
                found.setdefault(delivery.entity, []).append(json.loads(delivery.body))
    return found


def compare_ledger(
    expected: Mapping[tuple[str, str], Mapping[str, Any]],
    actual: Mapping[tuple[str, str], Mapping[str, Any]],
    documents: Mapping[str, list[Any]],
) -> list[str]:
    """The differences between the expected and the scanned ledger (empty when exact)."""
    problems: list[str] = []
    for key in sorted(expected.keys() - actual.keys()):
        problems.append(f"missing {key[0]} / {key[1]}")
    for key in sorted(actual.keys() - expected.keys()):
        problems.append(f"unexpected {key[0]} / {key[1]}")
    for key in sorted(expected.keys() & actual.keys()):
        want, got = expected[key], actual[key]
        shown = _comparable(got)
        if shown != _comparable(want):
            differing = sorted(k for k in want.keys() | shown.keys() if want.get(k) != shown.get(k))
            detail = ", ".join(f"{k}: want {want.get(k)!r} got {shown.get(k)!r}" for k in differing[:4])
            problems.append(f"{key[0]} / {key[1]} differs: {detail}")
        # the raw deliveries: the redemption's, and each rollback's inside its attribute
        audits = [
            (
                "redemption_delivery",
                f"redemption:{key[0].removeprefix(REDEMPTION_PREFIX)}",
                got.get("redemption_delivery"),
            )
        ]
        audits += [
            (f"{name}.delivery", f"rollback:{name.removeprefix(ROLLBACK_PREFIX)}", value.get("delivery"))
            for name, value in sorted(got.items())
            if name.startswith(ROLLBACK_PREFIX) and isinstance(value, Mapping)
        ]
        for audit_name, entity, audit in audits:
            if not isinstance(audit, dict) or "raw_zlib" not in audit:
                problems.append(f"{key[0]} / {key[1]}: no {audit_name} (its delivery was never recorded)")
                continue
            raw = json.loads(zlib.decompress(audit["raw_zlib"]))
            if raw not in documents.get(entity, []):
                problems.append(f"{key[0]} / {key[1]}: the stored delivery is none of those sent for {entity}")
    return problems


# --- checks on the answers ---------------------------------------------------------------------------
def check_answers(
    corpus: Corpus, result: SendResult, faults: DynamoFaults | None, retries: SdkRetries | None = None
) -> tuple[list[str], Counter[str]]:
    """Problems with the HTTP answers, and the count of each answer (``200 recorded``, ``503`` …; attempts
    without one are ``connection_errors``). A connection error is no problem in itself: the delivery was resent
    (a delivery never answered is), but its request may have been handled, so, like a lost answer, its entity
    need not have been answered ``recorded``; nor need one whose write botocore retried after a timeout
    (``retries``)."""
    problems: list[str] = []
    answers: Counter[str] = Counter()
    recorded: Counter[str] = Counter()
    lost: set[str] = set()
    seen: dict[str, list[str]] = {}  # entity → its attempts, as reported with a problem
    for attempt in result.attempts:
        delivery = corpus.deliveries[attempt.delivery]
        injected = faults.by_attempt.get(attempt.tag, []) if faults is not None else []
        attempt.faults = tuple(injected)
        answered = (
            "no answer" if attempt.status is None else f"{attempt.status} {(attempt.answer or {}).get('status', '')}"
        )
        retried = retries is not None and attempt.tag in retries.by_attempt
        noted = [*injected, "sdk_retry"] if retried else list(injected)
        seen.setdefault(delivery.entity, []).append(f"{attempt.tag} {answered.strip()} {noted}")
        if "lost_answer" in injected or attempt.status is None or retried:
            lost.add(delivery.entity)
        if attempt.status is None:
            continue
        label = f"{attempt.status} {attempt.answer.get('status')}" if attempt.answer and attempt.status == 200 else ""
        answers[label or str(attempt.status)] += 1
        if attempt.status >= 500 and not injected:
            problems.append(f"delivery {attempt.tag} ({delivery.entity}): {attempt.status} while storage was healthy")
        elif attempt.status < 500 and injected:
            problems.append(f"delivery {attempt.tag} ({delivery.entity}): {attempt.status} despite faults {injected}")
        elif attempt.status < 500 and attempt.status != 200:
            problems.append(f"delivery {attempt.tag} ({delivery.entity}): answered {attempt.status} {attempt.answer}")
        if attempt.status == 200 and attempt.answer and attempt.answer.get("status") == "recorded":
            recorded[delivery.entity] += 1
    entities = {d.entity for d in corpus.deliveries}
    for entity in sorted(entities):
        if recorded[entity] > 1:
            problems.append(f"{entity} answered 'recorded' {recorded[entity]} times: {'; '.join(seen[entity])}")
        elif recorded[entity] == 0 and entity not in lost:
            problems.append(f"{entity} never answered 'recorded': {'; '.join(seen.get(entity, []))}")
    if result.unsent:
        problems.append(f"{result.unsent} deliveries were not sent before the deadline")
    if result.gave_up:
        problems.append(f"{result.gave_up} deliveries never got a 2xx")
    return problems, answers


def connection_errors(result: SendResult) -> Counter[str]:
    """Attempts that got no answer, by exception (``ConnectionResetError`` …)."""
    return Counter((a.error or "?").split(":", 1)[0] for a in result.attempts if a.status is None)


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


@dataclass
class PhaseReport:
    name: str
    ok: bool = True
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def fail(self, problems: Sequence[str]) -> None:
        if problems:
            self.ok = False
            self.problems.extend(problems)


def run_webhook_phase(
    stack: LocalStack,
    name: str,
    corpus: Corpus,
    loaded: list[Corpus],
    *,
    senders: int,
    deadline: float,
    faults: DynamoFaults | None = None,
    retries: SdkRetries | None = None,
) -> PhaseReport:
    """Sends ``corpus`` (with ``faults`` enabled, if given), then checks the answers and that the whole ledger
    equals ``loaded`` + ``corpus`` exactly."""
    report = PhaseReport(name)
    if retries is not None:
        retries.clear()
    if faults is not None:
        faults.enabled = True
    try:
        result = send_corpus(stack, corpus, senders=senders, deadline=deadline, resend_5xx=faults is not None)
    finally:
        if faults is not None:
            faults.enabled = False
    loaded.append(corpus)
    problems, answers = check_answers(corpus, result, faults, retries)
    report.fail(problems)
    actual = scan_ledger(stack.aws_client("dynamodb"), stack.config.table_name)
    expected = expected_ledger(loaded)
    differences = compare_ledger(expected, actual, _documents(loaded))
    report.fail(differences)
    latencies = [a.seconds for a in result.attempts if a.status is not None]
    errors = connection_errors(result)
    faulted = [a for a in result.attempts if a.faults and a.status is not None]  # answered
    report.figures = {
        "deliveries": len(corpus.deliveries),
        "unique_deliveries": corpus.unique,
        "duplicates": corpus.stats["duplicates"],
        "duplicates_reformatted": corpus.stats["duplicates_reformatted"],
        "redemptions": len(corpus.redemptions),
        "rollbacks": len(corpus.rollbacks),
        "rollbacks_before_their_redemption": corpus.stats["rollbacks_before_their_redemption"],
        "envelopes": corpus.stats["envelope"],
        "bare": corpus.stats["bare"],
        "discounts": {
            k.removeprefix("discount_"): v for k, v in sorted(corpus.stats.items()) if k.startswith("discount_")
        },
        "stacks": corpus.stats["stacks"],
        "stack_children": corpus.stats["stack_children"],
        "promotion_tier_redemptions": corpus.stats["promotion_tier"],
        "null_customers": corpus.stats["null_customer"],
        "unicode_codes": corpus.stats["unicode_code"],
        "senders": senders,
        "requests": len(result.attempts),
        "seconds": round(result.seconds, 2),
        "deliveries_per_second": round(len(result.attempts) / result.seconds, 1) if result.seconds else 0.0,
        "latency_ms_p50": round(percentile(latencies, 0.5) * 1000, 1),
        "latency_ms_p99": round(percentile(latencies, 0.99) * 1000, 1),
        "answers": dict(sorted(answers.items())),
        "connection_errors": sum(errors.values()),
        "connection_errors_by_kind": dict(sorted(errors.items())),
        "sdk_retries": dict(sorted(retries.kinds.items())) if retries is not None else {},
        "ledger_items_expected": len(expected),
        "ledger_items_scanned": len(actual),
        "ledger_differences": len(differences),
        "records_lost": sum(1 for d in differences if d.startswith("missing")),
    }
    if faults is not None:
        report.figures.update(
            {
                "fault_share": faults.share,
                "faults_injected": dict(sorted(faults.injected.items())),
                "faulted_attempts": len(faulted),
                "faulted_attempts_answered_5xx": sum(1 for a in faulted if a.status is not None and a.status >= 500),
                "resends": sum(1 for a in result.attempts if a.attempt > 1),
            }
        )
        faults.injected.clear()
        faults.by_attempt.clear()
    return report


# --- the worker's chaos run -----------------------------------------------------------------------------
CHAOS_FAULTS: tuple[tuple[float, dict[str, Any]], ...] = (
    # (share of all API requests, Fault options); the first matching fault decides, so the probabilities are
    # derived from the shares in order.
    (0.10, {"kind": "status", "status": 500}),
    (0.05, {"kind": "status", "status": 502}),
    (0.05, {"kind": "status", "status": 503}),
    (0.10, {"kind": "rate_limit", "retry_after": 1}),
    (0.03, {"kind": "drop"}),
    (0.03, {"kind": "drop", "apply": True}),
    (0.02, {"kind": "timeout", "seconds": 2.5}),  # past the worker's read timeout (CHAOS_ENVIRONMENT)
)
CHAOS_LATENCY = {"kind": "latency", "seconds": 0.3, "probability": 0.05}


def chaos_faults(fake: Any) -> None:
    taken = 0.0
    for share, options in CHAOS_FAULTS:
        fake.fail(**options, times=None, probability=min(1.0, share / (1.0 - taken)))
        taken += share
    fake.fail(**CHAOS_LATENCY, times=None)


def chaos_targets(corpora: Sequence[Corpus]) -> list[tuple[str, list[str]]]:
    """Redemptions the corpora left SUCCEEDED, as (target, children): a stack parent with its children (rolled
    back together, through the stack endpoint), or a single redemption that is not a stack child."""
    targets: list[tuple[str, list[str]]] = []
    for corpus in corpora:
        children_of = {p: c for p, c in corpus.stacks.items() if p in corpus.redemptions}
        in_stacks = {child for children in corpus.stacks.values() for child in children}
        for redemption_id in corpus.redemptions:
            if redemption_id in corpus.rollbacks_of:
                continue
            if redemption_id in children_of:
                children = children_of[redemption_id]
                if not any(c in corpus.rollbacks_of for c in children):
                    targets.append((redemption_id, children))
            elif redemption_id not in in_stacks:
                targets.append((redemption_id, []))
    return targets


def _queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
        attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
    )


def run_chaos_phase(
    stack: LocalStack, corpora: Sequence[Corpus], *, requests: int, seed: int, deadline: float
) -> PhaseReport:
    """Queues ``requests`` rollback requests (about 15 % a second request for a redemption already asked for)
    against a misbehaving fake Voucherify, waits until every one is finished, then checks the outcome."""
    report = PhaseReport("chaos")
    fake, poller = stack.fake_voucherify, stack.rollback_poller
    if fake is None or poller is None or WORKER_QUEUE not in stack.queues:
        report.fail(["the local stack runs no rollback worker with a fake Voucherify"])
        return report
    rng = random.Random(seed)
    ledger_client = stack.aws_client("dynamodb")
    table = stack.config.table_name
    before = scan_ledger(ledger_client, table)
    candidates = chaos_targets(corpora)
    rng.shuffle(candidates)
    distinct = max(1, min(len(candidates), round(requests * 0.85)))
    chosen = candidates[:distinct]
    if not chosen:
        report.fail(["no SUCCEEDED redemption in the ledger to roll back"])
        return report
    for parent, children in chosen:
        if children:
            fake.add_stack(parent, children)
        else:
            fake.add_redemption(parent)
    plan = [target for target, _ in chosen] + [rng.choice(chosen)[0] for _ in range(max(0, requests - distinct))]
    rng.shuffle(plan)
    request_ids = {f"chaos-{seed}-{n}": target for n, target in enumerate(plan)}
    chaos_faults(fake)
    sqs = stack.aws_client("sqs")
    queue_url = stack.queues[WORKER_QUEUE].url
    started = time.monotonic()
    bodies = [
        json.dumps({"redemption_id": target, "reason": "loadtest chaos — zwrot 🎉", "request_id": request_id})
        for request_id, target in request_ids.items()
    ]
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start : start + 10])]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)

    from voucherify_ledger.ledger import Ledger

    ledger = Ledger(table, ledger_client)
    states: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for request_id, target in request_ids.items():
            if states.get(request_id, {}).get("state") in TERMINAL_STATES:
                continue
            item = ledger.get_rollback_request(request_id, target)
            if item is not None:
                states[request_id] = item
        if all(states.get(r, {}).get("state") in TERMINAL_STATES for r in request_ids):
            break
        time.sleep(1.0)
    finished = time.monotonic() - started
    fake.clear_faults()
    # The dead-lettered messages move to the dead-letter queue on the next receive after their last delay.
    dead_letter_url = stack.queues[DEAD_LETTER_QUEUE].url if DEAD_LETTER_QUEUE in stack.queues else None
    dead_lettered = {r for r, item in states.items() if item.get("dead_lettered")}
    while time.monotonic() < deadline and _queue_depth(sqs, queue_url) > 0:
        time.sleep(0.5)
    fake.wait_for_webhooks(max(1.0, min(30.0, deadline - time.monotonic())))
    in_dead_letter_queue = _queue_depth(sqs, dead_letter_url) if dead_letter_url else 0
    report.fail(_chaos_problems(fake, request_ids, states, dead_lettered, in_dead_letter_queue))

    # The ledger: targets rolled back exactly as Voucherify says, everything else as before.
    after = scan_ledger(ledger_client, table)
    targets = {parent: children for parent, children in chosen}
    touched = {REDEMPTION_PREFIX + r for parent, children in chosen for r in (parent, *children)}
    problems: list[str] = []
    for key in sorted(before.keys() | after.keys()):
        pk = key[0]
        if pk == IDEMPOTENCY_PK or pk in touched:
            continue
        if before.get(key) != after.get(key):
            problems.append(f"{pk} / {key[1]} changed though no request named it")
    for parent, children in targets.items():
        for redemption_id in (parent, *children):
            pk = REDEMPTION_PREFIX + redemption_id
            item = after.get((pk, REDEMPTION_SK)) or {}
            rolled = fake.rollback_id(redemption_id)
            rollback_keys = sorted(name for name in item if name.startswith(ROLLBACK_PREFIX))
            if rolled:
                if item.get("status") != ROLLED_BACK or item.get("rollback_ids") != [rolled]:
                    problems.append(
                        f"{redemption_id}: Voucherify rolled it back as {rolled}, the ledger says "
                        f"{item.get('status')} {item.get('rollback_ids')}"
                    )
                if rollback_keys != [ROLLBACK_PREFIX + rolled]:
                    problems.append(f"{redemption_id}: rollbacks {rollback_keys}, want [{rolled}]")
            elif item.get("status") != SUCCEEDED or item.get("rollback_ids") or rollback_keys:
                problems.append(f"{redemption_id}: not rolled back in Voucherify, the ledger says {item.get('status')}")
            # Voucherify's rollback webhook may fill in details the redemption lacked, never change one.
            before_item = before.get((pk, REDEMPTION_SK)) or {}
            changed = sorted(k for k, v in before_item.items() if k not in _CHANGES and item.get(k) != v)
            if changed:
                problems.append(f"{redemption_id}: the redemption's {', '.join(changed)} changed")
        request_keys = {
            sk.removeprefix(REQUEST_SK_PREFIX)
            for p, sk in after
            if p == REDEMPTION_PREFIX + parent and sk.startswith(REQUEST_SK_PREFIX)
        }
        wanted = {r for r, target in request_ids.items() if target == parent}
        if request_keys != wanted:
            problems.append(f"{parent}: request items {sorted(request_keys)}, want {sorted(wanted)}")
    report.fail(problems)

    requests_seen = fake.requests
    answers = Counter("no answer" if r.status is None else str(r.status) for r in requests_seen)
    report.figures = {
        "requests": len(request_ids),
        "redemptions": len(chosen),
        "stacks": sum(1 for _, children in chosen if children),
        "second_requests": len(request_ids) - len(chosen),
        "seconds": round(finished, 2),
        "api_calls": len(requests_seen),
        "api_answers": dict(sorted(answers.items())),
        "faults_configured": {
            **{
                f"{o['kind']}{'_' + str(o['status']) if 'status' in o else ''}{'_applied' if o.get('apply') else ''}": s
                for s, o in CHAOS_FAULTS
            },
            "latency_spike": CHAOS_LATENCY["probability"],
        },
        "states": dict(sorted(Counter(str(states.get(r, {}).get("state")) for r in request_ids).items())),
        "dead_lettered": len(dead_lettered),
        "in_dead_letter_queue": in_dead_letter_queue,
        "rolled_back_in_voucherify": sum(1 for target, _ in chosen if fake.rollback_id(target)),
        # Rollbacks made but never confirmed to the worker (a dropped connection after rolling back, a 200 after
        # the read timeout): the worker asked again and Voucherify said already_rolled_back.
        "confirmations_lost": sum(
            1
            for target, _ in chosen
            if fake.rollback_id(target)
            and not any(states.get(r, {}).get("state") == SUCCEEDED for r, t in request_ids.items() if t == target)
        ),
        "webhooks_back": dict(sorted(Counter(str(w.status) for w in fake.webhooks).items())),
    }
    return report


_CHANGES = frozenset({"status", "rollback_ids", "rolled_back_at", "updated_at"})


def _chaos_problems(
    fake: Any,
    request_ids: Mapping[str, str],
    states: Mapping[str, Mapping[str, Any]],
    dead_lettered: set[str],
    in_dead_letter_queue: int,
) -> list[str]:
    problems = []
    for request_id, target in request_ids.items():
        state = states.get(request_id, {}).get("state")
        if state not in TERMINAL_STATES:
            problems.append(f"request {request_id} ({target}) did not finish: {state}")
        elif state == "FAILED" and request_id not in dead_lettered:
            problems.append(f"request {request_id} ({target}) FAILED: {states[request_id].get('error')}")
    if in_dead_letter_queue != len(dead_lettered):
        problems.append(f"{len(dead_lettered)} requests dead-lettered, {in_dead_letter_queue} in the dead-letter queue")
    calls: dict[str, list[int | None]] = {}
    for request in sorted(fake.requests, key=lambda r: r.arrived):  # in the order made, not answered
        calls.setdefault(request.redemption_id or "", []).append(request.status)
    succeeded = {target for r, target in request_ids.items() if states.get(r, {}).get("state") == SUCCEEDED}
    for target in set(request_ids.values()):
        answers = calls.get(target, [])
        oks = answers.count(200)
        if oks > 1:
            problems.append(f"{target}: rolled back {oks} times (200 answers)")
        if target not in succeeded:
            # A 200 the worker never read (its read timeout came first): asking again is right, and Voucherify
            # answers already_rolled_back; the request says ALREADY_ROLLED_BACK and the webhook brings the id.
            continue
        if oks != 1:
            problems.append(f"{target}: a request SUCCEEDED with {oks} 200 answers")
        elif answers.index(200) != len(answers) - 1:
            problems.append(f"{target}: called again after the worker got Voucherify's 200: {answers}")
    return problems


# --- running it ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Options:
    deliveries: int = 5000
    fault_deliveries: int = 1500
    fault_share: float = 0.15
    duplicate_share: float = 0.3
    senders: int = 16
    chaos_requests: int = 150
    seed: int = 2024
    phases: tuple[str, ...] = PHASES
    max_seconds: float = 600.0
    log_level: str = "CRITICAL"


def run(options: Options, *, out: Any = None) -> list[PhaseReport]:
    """Starts a local stack on ephemeral ports, runs the phases, stops it. Never longer than ``max_seconds``
    (plus the stack's start and stop)."""
    out = out or sys.stdout
    reports: list[PhaseReport] = []
    parameters = {**CHAOS_PARAMETERS, "LogLevel": options.log_level}
    config = LocalConfig(aws_port=0, api_port=0, voucherify_port=0, parameter_overrides=parameters)
    with contextlib.ExitStack() as context:
        context.enter_context(environment({**CHAOS_ENVIRONMENT, **QUIET_ENVIRONMENT}))
        stack = context.enter_context(LocalStack(config))
        deadline = time.monotonic() + options.max_seconds
        retries = SdkRetries()
        retries.install(stack)
        loaded: list[Corpus] = []
        if "load" in options.phases or "chaos" in options.phases:
            # Alone, the chaos run only needs redemptions in the ledger to roll back: a smaller corpus will do.
            deliveries = options.deliveries
            if "load" not in options.phases:
                deliveries = min(deliveries, max(300, options.chaos_requests * 4))
            corpus = build_corpus(deliveries, seed=options.seed, duplicate_share=options.duplicate_share)
            print(f"load: {len(corpus.deliveries)} deliveries, {options.senders} senders …", file=out, flush=True)
            reports.append(
                run_webhook_phase(
                    stack, "load", corpus, loaded, senders=options.senders, deadline=deadline, retries=retries
                )
            )
        if "faults" in options.phases:
            faults = DynamoFaults(options.fault_share, seed=options.seed + 1)
            faults.install(stack)
            corpus = build_corpus(
                options.fault_deliveries, seed=options.seed + 1, duplicate_share=options.duplicate_share
            )
            print(
                f"faults: {len(corpus.deliveries)} deliveries, {options.fault_share:.0%} of writes failing …",
                file=out,
                flush=True,
            )
            reports.append(
                run_webhook_phase(
                    stack,
                    "faults",
                    corpus,
                    loaded,
                    senders=options.senders,
                    deadline=deadline,
                    faults=faults,
                    retries=retries,
                )
            )
        if "chaos" in options.phases:
            print(f"chaos: {options.chaos_requests} rollback requests …", file=out, flush=True)
            reports.append(
                run_chaos_phase(
                    stack, loaded, requests=options.chaos_requests, seed=options.seed + 2, deadline=deadline
                )
            )
    return reports


def render(reports: Sequence[PhaseReport]) -> str:
    lines = []
    for report in reports:
        lines.append(f"== {report.name}: {'OK' if report.ok else 'FAILED'}")
        for name, value in report.figures.items():
            lines.append(f"  {name}: {json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value}")
        for problem in report.problems[:MAX_REPORTED_PROBLEMS]:
            lines.append(f"  ! {problem}")
        if len(report.problems) > MAX_REPORTED_PROBLEMS:
            lines.append(f"  ! … and {len(report.problems) - MAX_REPORTED_PROBLEMS} more")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m ledger_tools.loadtest",
        description="Load, fault and chaos runs against the local stack (127.0.0.1, ephemeral ports).",
    )
    parser.add_argument("--deliveries", type=int, default=defaults.deliveries, help="deliveries of the load phase")
    parser.add_argument("--fault-deliveries", type=int, default=defaults.fault_deliveries)
    parser.add_argument("--fault-share", type=float, default=defaults.fault_share, help="share of writes failing")
    parser.add_argument("--duplicates", type=float, default=defaults.duplicate_share, help="share of duplicates")
    parser.add_argument("--senders", type=int, default=defaults.senders, help="concurrent HTTP senders")
    parser.add_argument("--chaos-requests", type=int, default=defaults.chaos_requests)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)} (default: all)"
    )
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds, help="stop after this long")
    parser.add_argument("--log-level", default=defaults.log_level, help="the functions' log level (LogLevel)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    if not phases or set(phases) - set(PHASES):
        parser.error(f"--phases takes {', '.join(PHASES)}")
    if args.deliveries < 2 or args.fault_deliveries < 2 or args.senders < 1 or args.chaos_requests < 1:
        parser.error("--deliveries and --fault-deliveries must be at least 2, --senders and --chaos-requests 1")
    options = Options(
        deliveries=args.deliveries,
        fault_deliveries=args.fault_deliveries,
        fault_share=args.fault_share,
        duplicate_share=args.duplicates,
        senders=args.senders,
        chaos_requests=args.chaos_requests,
        seed=args.seed,
        phases=phases,
        max_seconds=args.max_seconds,
        log_level=args.log_level,
    )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = sys.stdout
    with contextlib.ExitStack() as context:
        if options.log_level.upper() == "CRITICAL":
            # Powertools prints an EMF line per invocation on stdout, and its loggers keep the stream they were
            # made with: a process of its own (this one) can send them all to /dev/null.
            context.enter_context(contextlib.redirect_stdout(context.enter_context(open(os.devnull, "w"))))
            context.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore", UserWarning)
        reports = run(options, out=out)
    print(render(reports), file=out, flush=True)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            json.dump(
                [{"phase": r.name, "ok": r.ok, **r.figures, "problems": r.problems} for r in reports],
                handle,
                indent=2,
                ensure_ascii=False,
            )
    return 0 if reports and all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
