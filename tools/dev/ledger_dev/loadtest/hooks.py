"""Hooks on the webhook functions' own DynamoDB clients and handlers: injected write faults (``DynamoFaults``),
botocore's own retries counted (``SdkRetries``), the handlers' time per request (``HandlerTimes``)."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from ledger_dev.loadtest.common import TAG_HEADER, WEBHOOK_FUNCTIONS
from ledger_dev.local_stack import LocalStack


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
