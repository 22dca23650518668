"""``make loadtest`` / ``make chaos``: does the ledger hold under load and faults? (dev only, loopback only)

Starts the local stack (moto server, the template's routes served on 127.0.0.1, the real handlers, the SQS
poller and a fake Voucherify; every port ephemeral) and runs up to four phases, each bounded in time:

``load``    a corpus (``ledger_dev.payloads.corpus``) of deliveries built from Voucherify's published schemas, 30 %
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
``hostile`` a quiet stream of genuine signed deliveries (the baseline), the crafted bodies alone, then a second
            genuine stream (some rollbacks by the distribution token alone) while attackers send, over and over
            until it is done: 256 KB and 4 KB bodies built to make a string scan restart at every quote (``"``
            then ``\\"`` repeated, unterminated) with a wrong signature; forged signatures beside the right token
            on both URLs; the token alone on the redemption URL; envelopes whose ``event.type`` is an attacker's
            string; ids DynamoDB keys cannot take (``r_a5.dot``, ``r_`` + 150 characters), a 41-digit amount, a
            voucher code over 2,048 bytes; genuine deliveries sent to the wrong URL; conflicting duplicates of
            genuine redemptions; valid redemptions whose raw copy is too large to keep inline. Every answer must
            be the expected one (401 with its reason / 202 ``quarantined`` with its reason and quarantine id /
            200 ``duplicate`` with the ``conflict_id`` …) and repeat no attacker string; the wrong-URL deliveries
            are then replayed (by content, onto their route: ``duplicate``); the ledger must equal what the genuine
            deliveries say, beside the quarantine, ``CONFLICT#`` and ``RAW#`` records the attack caused (each
            checked). Figures: the genuine deliveries' latency under attack against the quiet baseline, the
            crafted bodies' (256 KB against 4 KB), at the client and in the handler (``HandlerTimes``).
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
figures. Run ``python -m ledger_dev.loadtest --help`` for the knobs (e.g. ``--deliveries 500``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import hashlib
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
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from ledger_dev.harness.api_emulator import INTEGRATION_TIMEOUT_SECONDS
from ledger_dev.local_stack import WORKER_QUEUE, LocalConfig, LocalStack
from ledger_dev.payloads.corpus import (
    REDEMPTION_ROUTE,
    ROLLBACK_ROUTE,
    Corpus,
    CorpusBuilder,
    CorpusDelivery,
    build_corpus,
    load_openapi_webhooks,
)
from ledger_dev.payloads.schema_payloads import dumps
from voucherify_ledger.auth import SIGNATURE_HEADER, sign
from voucherify_ledger.ledger.keys import (
    CONFLICT_SK_PREFIX,
    QUARANTINE_PREFIX,
    QUARANTINE_SK,
    RAW_SK_PREFIX,
    REDEMPTION_PREFIX,
    REDEMPTION_SK,
    REQUEST_SK_PREFIX,
    ROLLBACK_IDS,
    ROLLBACK_PREFIX,
    ROLLED_BACK,
    SUCCEEDED,
    iso,
)
from voucherify_ledger.ledger.quarantine import quarantine_id_for
from voucherify_ledger.ledger.redemptions import redemption_summary, rollback_summary, summary_digest
from voucherify_ledger.models.webhooks import (
    VOUCHERIFY_EVENT_TYPES,
    EventRedemptionRollbackSucceededData,
    EventRedemptionSucceededData,
)
from voucherify_ledger.webhooks import ROUTES as WEBHOOK_ROUTES

log = logging.getLogger("ledger_dev.loadtest")

PHASES = ("load", "faults", "hostile", "chaos")
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


class HandlerTimes:
    """How long the webhook functions' handlers took, per request (``TAG_HEADER``): an answer's latency without the
    local API server's HTTP. (That server writes an answer's headers and body in two sends, so on a keep-alive
    connection the body waits for the client's delayed ACK of the headers, about 40 ms on Linux: a floor under
    every latency measured at the client that neither the handlers nor API Gateway have.)"""

    def __init__(self) -> None:
        self.by_tag: dict[str, float] = {}
        self._lock = threading.Lock()

    def install(self, stack: LocalStack, function_ids: Sequence[str] = WEBHOOK_FUNCTIONS) -> None:
        for logical_id in function_ids:
            function = stack.function(logical_id)
            function.handler = self._wrap(function.handler)

    def clear(self) -> None:
        with self._lock:
            self.by_tag.clear()

    def taken(self, tags: Collection[str]) -> list[float]:
        """The handler times of those of ``tags`` it saw."""
        with self._lock:
            return [self.by_tag[tag] for tag in tags if tag in self.by_tag]

    def _wrap(self, handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
        def wrapped(event: dict[str, Any], context: Any) -> Any:
            tag = (event.get("headers") or {}).get(TAG_HEADER)
            started = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                if tag:
                    took = time.perf_counter() - started
                    with self._lock:
                        self.by_tag[tag] = took

        return wrapped


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
            summary = redemption_summary(parsed, parsed.redemption)
            item.update(summary)
            item["redemption_digest"] = summary_digest(summary)  # what a conflicting redelivery is told apart by
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
    allowed: Collection[tuple[str, str]] = (),
) -> list[str]:
    """The differences between the expected and the scanned ledger (empty when exact). ``allowed``: keys of items
    a phase caused beside the expected ones (quarantine records, conflicts, raw deliveries kept out of line), checked
    by that phase; a raw delivery kept out of line (``raw_item``) is read from its ``RAW#`` item in ``actual``."""
    problems: list[str] = []
    for key in sorted(expected.keys() - actual.keys()):
        problems.append(f"missing {key[0]} / {key[1]}")
    for key in sorted(actual.keys() - expected.keys() - set(allowed)):
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
            compressed = audit.get("raw_zlib") if isinstance(audit, dict) else None
            if isinstance(audit, dict) and compressed is None and audit.get("raw_item"):
                compressed = (actual.get((key[0], str(audit["raw_item"]))) or {}).get("raw_zlib")
                if compressed is None:
                    problems.append(f"{key[0]} / {key[1]}: {audit_name} names {audit['raw_item']}, which is missing")
                    continue
            if compressed is None:
                problems.append(f"{key[0]} / {key[1]}: no {audit_name} (its delivery was never recorded)")
                continue
            raw = json.loads(zlib.decompress(compressed))
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
            item = ledger.requests.get(request_id, target)
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


# --- the hostile run --------------------------------------------------------------------------------------
# A string scan restarted at every quote ran in quadratic time on these (issue 10, defect 1): a quote, then an
# escaped quote repeated, never closed. 262,143 bytes is the largest under MAX_BODY_BYTES (256 KiB).
CRAFTED_LARGE_BYTES = 262_143
CRAFTED_SMALL_BYTES = 4_095
CRAFTED_ALONE_ROUNDS = 10  # each crafted body, one at a time, before the attack: its latency without the stream
ATTACKER_EVENT_TYPE = "mallory@attacker.example"  # an attacker-chosen event.type (an email address was tried)
SIGNATURE_MISMATCH = f"{SIGNATURE_HEADER} does not match the webhook secret"
SIGNED_ONLY = f"missing {SIGNATURE_HEADER} header (this URL accepts signed deliveries only)"
WRONG_EVENT_TYPE = "wrong event type for this webhook URL"
STORAGE_REFUSED = "the ledger cannot store this delivery as it is"
LARGE_METADATA_BYTES = 48_000  # random bytes, base64 in a redemption's metadata: its raw copy is kept out of line
LOOPBACK = frozenset({"127.0.0.1", "::1"})
GENUINE_AFTER_CRAFTED = "genuine_after_crafted"


def crafted_body(size: int) -> bytes:
    """``"`` then ``\\"`` repeated, unterminated: at most ``size`` bytes."""
    return b'"' + b'\\"' * ((size - 1) // 2)


def schema_mismatch(route: str) -> str:
    """The quarantine reason of a delivery that does not validate on ``route``."""
    return f"the payload does not match the {WEBHOOK_ROUTES[route].schema} schema"


@dataclass(frozen=True)
class HostileCase:
    """One request of the attack, and the one answer it must get."""

    kind: str
    route: str  # the route it is sent to (perhaps the wrong one)
    body: bytes
    credentials: tuple[tuple[str, str], ...]  # headers
    status: int
    answer: str  # the answer's ``status``: unauthorized / quarantined / duplicate / recorded
    reason: str | None = None  # a 401's ``error``, a 202's ``reason``
    quarantine_id: str | None = None
    conflict_id: str | None = None
    redemption_id: str | None = None
    storable: bool = False  # a valid delivery the ledger keeps (``recorded`` once, then ``duplicate``)
    replay_route: str | None = None  # a delivery at the wrong URL: where its replay must record it
    attacker_strings: tuple[str, ...] = ()  # never in an answer, nor in a record outside the raw copy

    @property
    def entity(self) -> str:
        return f"redemption:{self.redemption_id}"


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


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            yield str(key)
            yield from _strings(inner)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for inner in value:
            yield from _strings(inner)


def repeated(strings: Sequence[str], text: str, answer: Any) -> list[str]:
    """Those of ``strings`` an answer repeats: in its text as sent, or in any string of it once parsed (where a
    non-ASCII string is no longer escaped)."""
    values = list(_strings(answer))
    return [s for s in strings if s and (s in text or any(s in v for v in values))]


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")


def check_hostile_answer(
    case: HostileCase, status: int | None, answer: Mapping[str, Any] | None, text: str, never: Sequence[str] = ()
) -> list[str]:
    """What is wrong with one answer to ``case`` (empty when it is the expected one): its status and ``status``,
    the 401's error or the 202's reason and quarantine id, a conflict's ``conflict_id``, a storable delivery's
    ``recorded`` / ``duplicate`` without a conflict; and no attacker string (nor any of ``never``) repeated."""
    where = f"{case.kind} at {case.route}"
    answer = answer if isinstance(answer, Mapping) else {}
    got = answer.get("status")
    wanted = ("recorded", "duplicate") if case.storable else (case.answer,)
    problems: list[str] = []
    if status != case.status or got not in wanted:
        problems.append(f"{where}: answered {status} {got!r}, want {case.status} {' or '.join(wanted)}")
    elif case.status == 401 and answer.get("error") != case.reason:
        problems.append(f"{where}: 401 says {answer.get('error')!r}, want {case.reason!r}")
    elif case.status == 202 and (answer.get("reason"), answer.get("quarantine_id")) != (
        case.reason,
        case.quarantine_id,
    ):
        problems.append(
            f"{where}: quarantined as {answer.get('quarantine_id')} {answer.get('reason')!r}, "
            f"want {case.quarantine_id} {case.reason!r}"
        )
    elif case.status == 200 and answer.get("redemption_id") != case.redemption_id:
        problems.append(f"{where}: answered for {answer.get('redemption_id')}, want {case.redemption_id}")
    elif case.status == 200 and answer.get("conflict_id") != case.conflict_id:
        problems.append(f"{where}: conflict_id {answer.get('conflict_id')}, want {case.conflict_id}")
    for value in repeated([*case.attacker_strings, *never], text, answer):
        problems.append(f"{where}: the answer repeats {_shown(value)}")
    return problems


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


def check_hostile_attempts(
    plan: Sequence[HostileCase], attempts: Sequence[HostileAttempt], never: Sequence[str] = ()
) -> tuple[list[str], Counter[str]]:
    """Problems with the attack's answers (``check_hostile_answer`` for each, every case answered at least once, a
    storable delivery ``recorded`` exactly once) and the count of each answer by kind (``crafted_256kb: 401
    unauthorized``). A request without an answer is resent, not a problem; its delivery may then be heard
    ``duplicate`` only."""
    problems: list[str] = []
    answers: Counter[str] = Counter()
    answered: set[int] = set()
    recorded: Counter[int] = Counter()
    unanswered: set[int] = set()
    for attempt in attempts:
        case = plan[attempt.case]
        if attempt.status is None:
            unanswered.add(attempt.case)
            answers[f"{case.kind}: no answer"] += 1
            continue
        answered.add(attempt.case)
        got = (attempt.answer or {}).get("status") if isinstance(attempt.answer, Mapping) else None
        answers[f"{case.kind}: {attempt.status} {got or ''}".strip()] += 1
        problems.extend(check_hostile_answer(case, attempt.status, attempt.answer, attempt.text, never))
        if case.storable and got == "recorded":
            recorded[attempt.case] += 1
    for index, case in enumerate(plan):
        if index not in answered:
            problems.append(f"{case.kind} at {case.route} ({index}) was never answered")
        elif case.storable and recorded[index] != 1 and not (recorded[index] == 0 and index in unanswered):
            problems.append(f"{case.kind} {case.redemption_id} answered 'recorded' {recorded[index]} times")
    return problems, answers


def hostile_ledger_items(
    actual: Mapping[tuple[str, str], Mapping[str, Any]],
    plan: Sequence[HostileCase],
    *,
    replayed: Collection[str] = (),
) -> tuple[set[tuple[str, str]], Counter[str], list[str]]:
    """The items the attack itself caused, checked, as ``(their keys, counts, problems)``: the quarantine record of
    each delivery answered 202 (route, reason, its raw copy; no attacker string outside that copy, an ``event_type``
    only if Voucherify's) except those ``replayed`` onto their route, which must be gone; the ``CONFLICT#`` record
    of each conflicting duplicate (its id, the differing fields, the delivery's raw copy); and each ``RAW#`` item an
    audit map of its redemption's item names. Any other item is left for ``compare_ledger`` to call unexpected."""
    caused: set[tuple[str, str]] = set()
    counts: Counter[str] = Counter()
    problems: list[str] = []
    quarantined = {case.quarantine_id: case for case in plan if case.quarantine_id}
    for quarantine_id, case in sorted(quarantined.items()):
        key = (QUARANTINE_PREFIX + quarantine_id, QUARANTINE_SK)
        item = actual.get(key)
        where = f"{case.kind} {quarantine_id}"
        if quarantine_id in replayed:
            if item is not None:
                problems.append(f"{where}: replayed onto {case.replay_route}, yet still quarantined")
            continue
        if item is None:
            problems.append(f"{where}: answered 202, but no quarantine record")
            continue
        caused.add(key)
        counts["quarantine_records"] += 1
        if (item.get("route"), item.get("reason")) != (case.route, case.reason):
            problems.append(f"{where}: recorded as {item.get('route')} {item.get('reason')!r}, want {case.reason!r}")
        if item.get("event_type") is not None and item.get("event_type") not in VOUCHERIFY_EVENT_TYPES:
            problems.append(f"{where}: the record names event type {_shown(str(item.get('event_type')))}")
        shown = {name: value for name, value in item.items() if name != "raw_zlib"}
        for value in repeated(case.attacker_strings, "", shown):
            problems.append(f"{where}: the record repeats {_shown(value)} outside its raw copy")
        raw = item.get("raw_zlib")
        if not isinstance(raw, bytes) or zlib.decompress(raw) != case.body:
            problems.append(f"{where}: the record's raw copy is not the delivery")
    conflicts = {
        (REDEMPTION_PREFIX + (case.redemption_id or ""), CONFLICT_SK_PREFIX + case.conflict_id.removeprefix("c_")): case
        for case in plan
        if case.conflict_id
    }
    for key, case in sorted(conflicts.items()):
        item = actual.get(key)
        where = f"{case.kind} {case.redemption_id}"
        if item is None:
            problems.append(f"{where}: answered conflict_id {case.conflict_id}, but no {key[1]} record")
            continue
        caused.add(key)
        counts["conflict_records"] += 1
        raw = (item.get("delivery") or {}).get("raw_zlib")
        if item.get("conflict_id") != case.conflict_id or not item.get("conflicting_fields"):
            problems.append(f"{where}: conflict record {item.get('conflict_id')} {item.get('conflicting_fields')}")
        if not isinstance(raw, bytes) or zlib.decompress(raw) != case.body:
            problems.append(f"{where}: the conflict record's raw copy is not the conflicting delivery")
    for pk, sk in actual:
        if not sk.startswith(RAW_SK_PREFIX):
            continue
        owner = actual.get((pk, REDEMPTION_SK)) or {}
        audits = [owner.get("redemption_delivery")] + [
            value.get("delivery")
            for name, value in owner.items()
            if name.startswith(ROLLBACK_PREFIX) and isinstance(value, Mapping)
        ]
        if any(isinstance(audit, Mapping) and audit.get("raw_item") == sk for audit in audits):
            caused.add((pk, sk))
            counts["raw_items"] += 1
    return caused, counts, problems


def _window(result: SendResult, within: tuple[float, float] | None = None) -> list[Attempt]:
    """The answered attempts; with ``within`` only those sent and answered inside that window."""
    return [
        a
        for a in result.attempts
        if a.status is not None and (within is None or (within[0] <= a.started and a.started + a.seconds <= within[1]))
    ]


def _ms(values: Sequence[float], share: float) -> float:
    return round(percentile(values, share) * 1000, 1)


def _ratio(values: Sequence[float], baseline: Sequence[float], share: float) -> float | None:
    if not values or not baseline or percentile(baseline, share) <= 0:
        return None
    return round(percentile(values, share) / percentile(baseline, share), 2)


def _stream_figures(
    corpus: Corpus, result: SendResult, answers: Counter[str], measured: Sequence[Attempt], handler: Sequence[float]
) -> dict[str, Any]:
    latencies = [a.seconds for a in measured]
    return {
        "deliveries": len(corpus.deliveries),
        "requests": len(result.attempts),
        "measured": len(latencies),
        "seconds": round(result.seconds, 2),
        "latency_ms_p50": _ms(latencies, 0.5),
        "latency_ms_p99": _ms(latencies, 0.99),
        "latency_ms_max": round(max(latencies, default=0.0) * 1000, 1),
        "handler_ms_p50": _ms(handler, 0.5),
        "handler_ms_p99": _ms(handler, 0.99),
        "answers": dict(sorted(answers.items())),
    }


def _crafted_figures(
    plan: Sequence[HostileCase], attempts: Sequence[HostileAttempt], times: HandlerTimes
) -> dict[str, Any]:
    """Answer latency (and handler time) of the crafted bodies by size, and of the genuine deliveries sent right
    after them."""
    by_size: dict[str, list[HostileAttempt]] = {}
    for attempt in attempts:
        kind = plan[attempt.case].kind
        if attempt.status is not None and (kind.startswith("crafted_") or kind == GENUINE_AFTER_CRAFTED):
            by_size.setdefault(kind.removeprefix("crafted_"), []).append(attempt)
    figures: dict[str, Any] = {}
    handler: dict[str, list[float]] = {}
    for size, answered in sorted(by_size.items()):
        values = [a.seconds for a in answered]
        handler[size] = times.taken([a.tag for a in answered])
        figures[size] = {
            "answers": len(values),
            "p50_ms": _ms(values, 0.5),
            "p99_ms": _ms(values, 0.99),
            "handler_ms_p50": _ms(handler[size], 0.5),
            "handler_ms_p99": _ms(handler[size], 0.99),
        }
    large, small = by_size.get("256kb", []), by_size.get("4kb", [])
    figures["p50_ratio_256kb_to_4kb"] = _ratio([a.seconds for a in large], [a.seconds for a in small], 0.5)
    figures["handler_p50_ratio_256kb_to_4kb"] = _ratio(handler.get("256kb", []), handler.get("4kb", []), 0.5)
    return figures


class HostilePlanner:
    """Builds the attack's requests (``HostileCase``) from Voucherify-shaped data (``CorpusBuilder``) and from the
    genuine deliveries a quiet stream has already recorded (``baseline``)."""

    def __init__(self, baseline: Corpus, *, secret: str, token_header: str, token: str, seed: int) -> None:
        self.baseline = baseline
        self.secret = secret
        self.token_header = token_header
        self.token = token
        self.builder = CorpusBuilder(load_openapi_webhooks(), seed)
        self.rng = random.Random(seed)

    # --- material ---------------------------------------------------------------------------------------
    def wrong_signature(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    def signed(self, body: bytes) -> tuple[tuple[str, str], ...]:
        return ((SIGNATURE_HEADER, sign(self.secret, body)),)

    def redemption(self) -> dict[str, Any]:
        """A new redemption's data (a voucher redemption, never sent as it is)."""
        customer = self.builder.customer()
        return self.builder.redemption(style="voucher", order=self.builder.order(customer), customer=customer)

    def document(self, data: Mapping[str, Any], event_type: str, envelope: bool) -> bytes:
        return dumps(self.builder.gen.envelope(data, event_type) if envelope else data)

    def recorded(self, kind: str, envelope: bool | None = None) -> list[CorpusDelivery]:
        """The baseline's deliveries of ``kind`` (first sendings, recorded by now), as envelopes or bare if said."""
        return [
            d for d in self.baseline.deliveries if d.kind == kind and envelope in (None, d.envelope) and not d.duplicate
        ]

    # --- the cases --------------------------------------------------------------------------------------
    def crafted_then_genuine(self) -> list[HostileCase]:
        """Each crafted body once per URL, each followed by a recorded genuine delivery of that URL, signed
        (answered ``duplicate``): how long a real delivery waits right after a crafted body."""
        cases: list[HostileCase] = []
        genuine = {
            REDEMPTION_ROUTE: next(iter(self.recorded("redemption")), None),
            ROLLBACK_ROUTE: next(iter(self.recorded("rollback")), None),
        }
        for case in self.crafted(weight=1):
            delivery = genuine[case.route]
            cases.append(case)
            if delivery is None:
                continue
            cases.append(
                HostileCase(
                    GENUINE_AFTER_CRAFTED,
                    case.route,
                    delivery.body,
                    self.signed(delivery.signed_body),
                    200,
                    "duplicate",
                    redemption_id=delivery.redemption_id,
                )
            )
        return cases

    def crafted(self, weight: int = 4) -> list[HostileCase]:
        cases = []
        for size, label in ((CRAFTED_LARGE_BYTES, "256kb"), (CRAFTED_SMALL_BYTES, "4kb")):
            body = crafted_body(size)
            for route in (REDEMPTION_ROUTE, ROLLBACK_ROUTE):
                for _ in range(weight):
                    credentials = ((SIGNATURE_HEADER, self.wrong_signature()),)
                    cases.append(
                        HostileCase(
                            f"crafted_{label}", route, body, credentials, 401, "unauthorized", SIGNATURE_MISMATCH
                        )
                    )
        return cases

    def cases(self) -> tuple[list[HostileCase], Corpus]:
        """Every case of the attack (crafted bodies weighted ×4), shuffled, and the corpus of its storable ones."""
        cases = self.crafted()
        redemption_route, rollback_route = REDEMPTION_ROUTE, ROLLBACK_ROUTE
        token = ((self.token_header, self.token),)
        # forged signatures beside the right token, on both URLs; the token alone on the redemption URL
        for envelope in (False, True):
            forged = self.redemption()
            forged_id = forged["redemption"]["id"]
            body = self.document(forged, "redemption.succeeded", envelope)
            forged_signature = ((SIGNATURE_HEADER, self.wrong_signature()), *token)
            cases.append(
                HostileCase(
                    "forged_signature_with_token",
                    redemption_route,
                    body,
                    forged_signature,
                    401,
                    "unauthorized",
                    SIGNATURE_MISMATCH,
                    attacker_strings=(forged_id,),
                )
            )
            cases.append(
                HostileCase(
                    "token_alone_on_redemption_url",
                    redemption_route,
                    body,
                    token,
                    401,
                    "unauthorized",
                    SIGNED_ONLY,
                    attacker_strings=(forged_id,),
                )
            )
            # a forged rollback of a genuine (recorded) redemption
            target = self.recorded("redemption")[0]
            event_type, rollback = self.builder.rollback(self.baseline.redemptions[target.redemption_id])
            forged_rollback = ((SIGNATURE_HEADER, self.wrong_signature()), *token)
            cases.append(
                HostileCase(
                    "forged_signature_with_token",
                    rollback_route,
                    self.document(rollback, event_type, envelope),
                    forged_rollback,
                    401,
                    "unauthorized",
                    SIGNATURE_MISMATCH,
                    attacker_strings=(rollback["redemption_rollback"]["id"],),
                )
            )
        # an attacker-chosen event.type (and envelope type and ids), correctly signed, on both URLs
        for route in (redemption_route, rollback_route):
            data = self.redemption() if route == redemption_route else self.builder.rollback(self.redemption())[1]
            document = self.builder.gen.envelope(data, "redemption.succeeded")
            document.update(id=ATTACKER_EVENT_TYPE, type=ATTACKER_EVENT_TYPE)
            document["event"].update(type=ATTACKER_EVENT_TYPE, id=ATTACKER_EVENT_TYPE)
            cases.append(
                self._quarantined(
                    "attacker_event_type", route, dumps(document), WRONG_EVENT_TYPE, (ATTACKER_EVENT_TYPE,)
                )
            )
        # ids DynamoDB keys cannot take (or no one could look up), a number past 38 digits: the schema refuses them
        long_id = "r_" + "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(150))
        for bad_id, envelope in (("r_a5.dot", False), (long_id, True)):
            data = self.redemption()
            data["redemption"]["id"] = bad_id
            body = self.document(data, "redemption.succeeded", envelope)
            cases.append(
                self._quarantined(
                    "unkeyable_redemption_id", redemption_route, body, schema_mismatch(redemption_route), (bad_id,)
                )
            )
        event_type, rollback = self.builder.rollback(self.redemption())
        rollback["redemption_rollback"]["redemption"] = "r_a5.dot"
        if isinstance(rollback.get("redemption"), dict):
            rollback["redemption"]["id"] = "r_a5.dot"
        cases.append(
            self._quarantined(
                "unkeyable_redemption_id",
                rollback_route,
                dumps(rollback),
                schema_mismatch(rollback_route),
                ("r_a5.dot",),
            )
        )
        huge = 12345678901234567890123456789012345678901  # 41 significant digits
        data = self.redemption()
        data["redemption"]["amount"] = huge
        cases.append(
            self._quarantined(
                "number_past_38_digits",
                redemption_route,
                self.document(data, "redemption.succeeded", True),
                schema_mismatch(redemption_route),
                (str(huge),),
            )
        )
        # a voucher code an index key cannot hold (over 2,048 bytes): valid, but DynamoDB would refuse it
        for code, envelope in (("ATTACKER-CODE-" + "Z" * 2_100, False), ("ŻÓŁW-" + "Ż" * 1_100, True)):
            data = self.redemption()
            data["voucher"]["code"] = code
            if isinstance(data["redemption"].get("voucher"), dict):
                data["redemption"]["voucher"]["code"] = code
            body = self.document(data, "redemption.succeeded", envelope)
            cases.append(
                self._quarantined("voucher_code_over_2048_bytes", redemption_route, body, STORAGE_REFUSED, (code,))
            )
        # genuine deliveries (recorded already) sent to the wrong URL: quarantined, then replayed onto their route
        # (a bare redemption says nothing of its event: at the rollback URL it fails that URL's schema)
        for kind, envelope in (("redemption", True), ("redemption", False), ("rollback", True), ("rollback", False)):
            route = rollback_route if kind == "redemption" else redemption_route
            reason = schema_mismatch(route) if kind == "redemption" and not envelope else WRONG_EVENT_TYPE
            for delivery in self.recorded(kind, envelope)[1:3]:
                case = self._quarantined(f"{kind}_at_the_wrong_url", route, delivery.body, reason, ())
                cases.append(replace(case, replay_route=delivery.route, redemption_id=delivery.redemption_id))
        # conflicting duplicates: a recorded redemption's id, another amount
        for envelope in (False, True):
            for delivery in self.recorded("redemption", envelope)[3:6]:
                data = copy.deepcopy(self.baseline.redemptions[delivery.redemption_id])
                data["redemption"]["amount"] = (data["redemption"].get("amount") or 0) + 1_000
                body = self.document(data, "redemption.succeeded", envelope)
                conflict_id = "c_" + hashlib.sha256(body).hexdigest()[:32]
                cases.append(
                    HostileCase(
                        "conflicting_duplicate",
                        redemption_route,
                        body,
                        self.signed(body),
                        200,
                        "duplicate",
                        conflict_id=conflict_id,
                        redemption_id=delivery.redemption_id,
                    )
                )
        storable = self.storable(4)
        for delivery in storable.deliveries:
            cases.append(
                HostileCase(
                    "raw_copy_out_of_line",
                    redemption_route,
                    delivery.body,
                    self.signed(delivery.body),
                    200,
                    "recorded",
                    redemption_id=delivery.redemption_id,
                    storable=True,
                )
            )
        self.rng.shuffle(cases)
        return cases, storable

    def storable(self, count: int) -> Corpus:
        """Valid redemptions whose compressed raw copy is too large to keep inline (random metadata): recorded, the
        copy in an item of its own (``RAW#…``)."""
        deliveries, redemptions = [], {}
        for index in range(count):
            data = self.redemption()
            data["redemption"]["metadata"] = {
                "blob": base64.b64encode(self.rng.randbytes(LARGE_METADATA_BYTES)).decode()
            }
            envelope = index % 2 == 1
            body = self.document(data, "redemption.succeeded", envelope)
            redemption_id = data["redemption"]["id"]
            deliveries.append(
                CorpusDelivery(
                    index, "redemption", REDEMPTION_ROUTE, "redemption.succeeded", envelope, body, body, redemption_id
                )
            )
            redemptions[redemption_id] = data
        return Corpus(-1, deliveries, redemptions, {}, {}, {}, Counter(redemptions=len(redemptions)))

    def _quarantined(
        self, kind: str, route: str, body: bytes, reason: str, attacker_strings: tuple[str, ...]
    ) -> HostileCase:
        return HostileCase(
            kind,
            route,
            body,
            self.signed(body),
            202,
            "quarantined",
            reason,
            quarantine_id=quarantine_id_for(body),
            attacker_strings=attacker_strings,
        )


def run_hostile_phase(
    stack: LocalStack,
    loaded: list[Corpus],
    *,
    deliveries: int,
    requests: int,
    attackers: int,
    senders: int,
    seed: int,
    deadline: float,
    retries: SdkRetries | None = None,
) -> PhaseReport:
    """A quiet stream of genuine deliveries (the baseline), the crafted bodies alone, then a second genuine stream
    while ``attackers`` send the attack (``HostilePlanner``) until it is done; every answer checked, the wrong-URL
    deliveries replayed, and the whole ledger compared with the genuine deliveries (``loaded`` and this phase's)."""
    report = PhaseReport("hostile")
    secret, token = stack.config.signing_secret, stack.config.header_token
    token_header = (
        stack.function("RedemptionRollbackSucceededFunction").environment.get("WEBHOOK_TOKEN_HEADER")
        or "x-voucherify-token"
    ).lower()
    never = (secret, token)
    times = HandlerTimes()
    times.install(stack)
    baseline = build_corpus(deliveries, seed=seed, duplicate_share=0.3)
    attack = build_corpus(deliveries, seed=seed + 1, duplicate_share=0.3)

    # 1. the quiet baseline
    if retries is not None:
        retries.clear()
    quiet = send_corpus(stack, baseline, senders=senders, deadline=deadline, resend_5xx=False)
    problems, quiet_answers = check_answers(baseline, quiet, None, retries)
    report.fail([f"baseline: {p}" for p in problems])
    loaded.append(baseline)
    quiet_measured = _window(quiet)
    quiet_handler = times.taken([a.tag for a in quiet_measured])

    # 2. the crafted bodies alone, one at a time, each followed by a genuine (already recorded) signed delivery
    planner = HostilePlanner(baseline, secret=secret, token_header=token_header, token=token, seed=seed + 2)
    crafted = planner.crafted_then_genuine()
    times.clear()
    alone = send_hostile(
        stack,
        crafted,
        attackers=1,
        limit=len(crafted) * CRAFTED_ALONE_ROUNDS,
        stop=threading.Event(),  # never set: every round is sent
        deadline=deadline,
    )
    alone_problems, _ = check_hostile_attempts(crafted, alone, never)
    report.fail([f"crafted alone: {p}" for p in alone_problems])
    crafted_alone = _crafted_figures(crafted, alone, times)

    # 3. the attack, with a genuine stream (some rollbacks by the token alone: that URL takes either credential)
    plan, storable = planner.cases()
    stop = threading.Event()
    sent: list[HostileAttempt] = []
    attack_thread = threading.Thread(
        target=lambda: sent.extend(
            send_hostile(stack, plan, attackers=attackers, limit=max(requests, len(plan)), stop=stop, deadline=deadline)
        ),
        name="loadtest-attack",
        daemon=True,
    )
    by_token = {d.index for d in attack.deliveries if d.kind == "rollback" and d.index % 3 == 0}

    def credentials(delivery: CorpusDelivery) -> Mapping[str, str]:
        if delivery.kind == "rollback" and delivery.index in by_token:
            return {token_header: token}
        return {SIGNATURE_HEADER: sign(secret, delivery.signed_body)}

    if retries is not None:
        retries.clear()
    times.clear()
    attack_started = time.perf_counter()
    attack_thread.start()
    loud = send_corpus(stack, attack, senders=senders, deadline=deadline, resend_5xx=False, credentials=credentials)
    stop.set()
    attack_thread.join(max(1.0, deadline - time.monotonic() + 90))
    attack_ended = max((a.started + a.seconds for a in sent), default=attack_started)
    problems, loud_answers = check_answers(attack, loud, None, retries)
    report.fail([f"under attack: {p}" for p in problems])
    loaded.extend([attack, storable])
    attack_problems, attack_answers = check_hostile_attempts(plan, sent, never)
    report.fail(attack_problems)
    leaks = [
        f"genuine delivery {a.tag}: the answer repeats {_shown(s)}"
        for result in (quiet, loud)
        for a in result.attempts
        for s in repeated(never, "", a.answer)
    ]
    report.fail(leaks)
    loud_measured = _window(loud, (attack_started, attack_ended))
    loud_handler = times.taken([a.tag for a in loud_measured])
    crafted_loud = _crafted_figures(plan, sent, times)

    # 4. the deliveries sent to the wrong URL, replayed: by content, onto the route they belong to (duplicates)
    from redemption_ledger_cli.replay import Replayer
    from voucherify_ledger.ledger import Ledger

    ledger_client = stack.aws_client("dynamodb")
    replayer = Replayer(Ledger(stack.config.table_name, ledger_client))
    replayed: dict[str, dict[str, Any]] = {}
    for case in plan:
        if case.replay_route and case.quarantine_id and case.quarantine_id not in replayed:
            result = replayer.replay(case.quarantine_id)
            replayed[case.quarantine_id] = result
            got = (result.get("status"), result.get("routed_by"), result.get("route"), result.get("quarantine_removed"))
            if got != ("duplicate", "content", case.replay_route, True):
                report.fail(
                    [f"{case.kind} {case.quarantine_id}: replay gave {got}, want duplicate on {case.replay_route}"]
                )

    # 5. the ledger: exactly what the genuine deliveries say, beside the records the attack caused
    actual = scan_ledger(ledger_client, stack.config.table_name)
    caused, caused_counts, ledger_problems = hostile_ledger_items(actual, plan, replayed=replayed)
    report.fail(ledger_problems)
    expected = expected_ledger(loaded)
    differences = compare_ledger(expected, actual, _documents(loaded), allowed=caused)
    report.fail(differences)

    quiet_latencies = [a.seconds for a in quiet_measured]
    loud_latencies = [a.seconds for a in loud_measured]
    errors = connection_errors(quiet) + connection_errors(loud)
    kinds: dict[str, dict[str, int]] = {}
    for label, count in sorted(attack_answers.items()):
        kind, answer = label.split(": ", 1)
        kinds.setdefault(kind, {})[answer] = count
    report.figures = {
        "genuine_senders": senders,
        "attackers": attackers,
        "baseline": _stream_figures(baseline, quiet, quiet_answers, quiet_measured, quiet_handler),
        "under_attack": {
            **_stream_figures(attack, loud, loud_answers, loud_measured, loud_handler),
            "rollbacks_by_token_alone": sum(
                1 for d in attack.deliveries if d.kind == "rollback" and d.index in by_token
            ),
        },
        "ratio_under_attack_to_baseline": {
            "latency_p50": _ratio(loud_latencies, quiet_latencies, 0.5),
            "latency_p99": _ratio(loud_latencies, quiet_latencies, 0.99),
            "handler_p50": _ratio(loud_handler, quiet_handler, 0.5),
            "handler_p99": _ratio(loud_handler, quiet_handler, 0.99),
        },
        "crafted_body_bytes": {"256kb": CRAFTED_LARGE_BYTES, "4kb": CRAFTED_SMALL_BYTES},
        "crafted_alone": crafted_alone,
        "crafted_under_attack": crafted_loud,
        "attack_cases": len(plan),
        "attack_requests": len(sent),
        "attack_passes": round(len(sent) / len(plan), 1) if plan else 0,
        "attack_seconds": round(attack_ended - attack_started, 2),
        "attack_answers": kinds,
        "answers_repeating_attacker_strings": sum(
            1 for p in attack_problems + alone_problems if "the answer repeats" in p
        )
        + len(leaks),
        "replayed": dict(sorted(Counter(str(r.get("status")) for r in replayed.values()).items())),
        **{name: caused_counts.get(name, 0) for name in ("quarantine_records", "conflict_records", "raw_items")},
        "connection_errors": sum(errors.values()) + sum(1 for a in [*alone, *sent] if a.status is None),
        "sdk_retries": dict(sorted(retries.kinds.items())) if retries is not None else {},
        "ledger_items_expected": len(expected),
        "ledger_items_scanned": len(actual),
        "ledger_differences": len(differences),
        "records_lost": sum(1 for d in differences if d.startswith("missing")),
    }
    return report


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
    hostile_deliveries: int = 1000  # per genuine stream: the quiet baseline, and the one under attack
    hostile_requests: int = 1500  # the attack's requests at most (every case is sent at least once)
    hostile_senders: int = 4
    attackers: int = 4
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
        if "hostile" in options.phases:
            # Before chaos: the ledger must still be exactly what the webhook deliveries say.
            print(
                f"hostile: 2 × {options.hostile_deliveries} genuine deliveries ({options.hostile_senders} senders), "
                f"up to {options.hostile_requests} attack requests ({options.attackers} attackers) …",
                file=out,
                flush=True,
            )
            reports.append(
                run_hostile_phase(
                    stack,
                    loaded,
                    deliveries=options.hostile_deliveries,
                    requests=options.hostile_requests,
                    attackers=options.attackers,
                    senders=options.hostile_senders,
                    seed=options.seed + 3,
                    deadline=deadline,
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
        prog="python -m ledger_dev.loadtest",
        description="Load, fault, hostile and chaos runs against the local stack (127.0.0.1, ephemeral ports).",
    )
    parser.add_argument("--deliveries", type=int, default=defaults.deliveries, help="deliveries of the load phase")
    parser.add_argument("--fault-deliveries", type=int, default=defaults.fault_deliveries)
    parser.add_argument("--fault-share", type=float, default=defaults.fault_share, help="share of writes failing")
    parser.add_argument("--duplicates", type=float, default=defaults.duplicate_share, help="share of duplicates")
    parser.add_argument("--senders", type=int, default=defaults.senders, help="concurrent HTTP senders")
    parser.add_argument("--chaos-requests", type=int, default=defaults.chaos_requests)
    parser.add_argument(
        "--hostile-deliveries",
        type=int,
        default=defaults.hostile_deliveries,
        help="genuine deliveries of each of the hostile phase's two streams (quiet, under attack)",
    )
    parser.add_argument(
        "--hostile-requests", type=int, default=defaults.hostile_requests, help="the attack's requests at most"
    )
    parser.add_argument("--hostile-senders", type=int, default=defaults.hostile_senders, help="genuine senders")
    parser.add_argument("--attackers", type=int, default=defaults.attackers, help="concurrent attacking connections")
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
    if args.hostile_deliveries < 20 or args.hostile_requests < 1 or args.hostile_senders < 1 or args.attackers < 1:
        parser.error("--hostile-deliveries must be at least 20, --hostile-requests, --hostile-senders, --attackers 1")
    options = Options(
        deliveries=args.deliveries,
        fault_deliveries=args.fault_deliveries,
        fault_share=args.fault_share,
        duplicate_share=args.duplicates,
        senders=args.senders,
        chaos_requests=args.chaos_requests,
        hostile_deliveries=args.hostile_deliveries,
        hostile_requests=args.hostile_requests,
        hostile_senders=args.hostile_senders,
        attackers=args.attackers,
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
