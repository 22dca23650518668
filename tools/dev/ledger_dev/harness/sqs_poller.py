"""An SQS event source mapping for development and tests: queue → Lambda handler, as AWS does it.

``SqsPoller`` receives up to ``batch_size`` messages (with every system and message attribute), builds the
SQS event Lambda would (``messageId``, ``receiptHandle``, ``body``, ``attributes`` with
``ApproximateReceiveCount``/``SentTimestamp``/``ApproximateFirstReceiveTimestamp``, ``messageAttributes``,
``md5OfBody``, ``eventSource: aws:sqs``, ``eventSourceARN``, ``awsRegion``), invokes the handler with a Lambda
context, and — as ``FunctionResponseTypes: [ReportBatchItemFailures]`` does — deletes the records not listed
in ``batchItemFailures``. A handler that raises, or answers with an invalid ``batchItemFailures``, fails the
whole batch (nothing deleted). Records left on the queue come back when their visibility timeout ends (the
worker shortens it for its retries), and after the queue's ``maxReceiveCount`` SQS — and moto, on the next
``ReceiveMessage`` — moves them to the dead-letter queue; a test checks moto does.

Works with any SQS client: moto in-process (``mock_aws``) or moto's server (the local stack)::

    poller = SqsPoller(sqs, queue_url, load_handler("RollbackWorkerFunction"), timeout_seconds=30)
    poller.poll_once()                  # one receive + invoke + delete (tests)
    poller.start(); ...; poller.stop()  # a background thread (the local stack)
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger_dev.harness.apigw import LambdaContext
from ledger_dev.harness.polling import BackgroundPoller

log = logging.getLogger("ledger_dev.harness.sqs_poller")

Handler = Callable[[dict[str, Any], Any], Any]
MAX_BATCH_SIZE = 10  # a standard queue's ReceiveMessage limit


@dataclass(frozen=True)
class PollResult:
    received: int = 0
    deleted: list[str] = field(default_factory=list)  # message ids processed and deleted
    failed: list[str] = field(default_factory=list)  # message ids left on the queue
    response: Any = None  # the handler's answer (None if it raised)
    error: str | None = None  # the handler's exception, if any


def message_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """``MessageAttributes`` of ReceiveMessage → the Lambda event's ``messageAttributes`` (camelCase, base64)."""
    converted: dict[str, Any] = {}
    for name, value in (attributes or {}).items():
        binary = value.get("BinaryValue")
        entry: dict[str, Any] = {
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": [base64.b64encode(v).decode("ascii") for v in value.get("BinaryListValues") or []],
            "dataType": value.get("DataType", "String"),
        }
        if value.get("StringValue") is not None:
            entry["stringValue"] = value["StringValue"]
        if binary is not None:
            entry["binaryValue"] = base64.b64encode(binary).decode("ascii")
        converted[name] = entry
    return converted


def sqs_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One ``Records[]`` entry of an SQS event, from one message of ReceiveMessage."""
    attributes = {k: str(v) for k, v in (message.get("Attributes") or {}).items()}
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": message_attributes(message.get("MessageAttributes")),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


class SqsPoller(BackgroundPoller):
    """Polls one queue and hands its batches to a handler. ``start()``/``stop()`` run it on a daemon thread
    that stops by itself after ``max_runtime_seconds`` or ``max_consecutive_errors`` failed polls."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        function_name: str = "RollbackWorkerFunction",
        batch_size: int = MAX_BATCH_SIZE,
        wait_time_seconds: int = 1,
        timeout_seconds: float = 30.0,
        memory_mb: int = 512,
        region: str | None = None,
        queue_arn: str | None = None,
        idle_sleep_seconds: float = 0.2,
        max_runtime_seconds: float | None = None,
        max_consecutive_errors: int = 20,
        name: str | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH_SIZE}")
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.function_name = function_name
        self.batch_size = batch_size
        self.wait_time_seconds = wait_time_seconds
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self.region = region or getattr(getattr(sqs, "meta", None), "region_name", None) or "eu-west-1"
        self._queue_arn = queue_arn
        self.idle_sleep_seconds = idle_sleep_seconds
        self.max_runtime_seconds = max_runtime_seconds
        self.max_consecutive_errors = max_consecutive_errors
        self.name = name or f"sqs-poller:{function_name}"
        super().__init__()
        self.invocations = 0

    @property
    def queue_arn(self) -> str:
        if self._queue_arn is None:
            answer = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
            self._queue_arn = str(answer["Attributes"]["QueueArn"])
        return self._queue_arn

    # --- one round ----------------------------------------------------------------------------------
    def receive(self, wait_time_seconds: int | None = None) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_time_seconds if wait_time_seconds is None else wait_time_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(answer.get("Messages") or [])

    def event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": [sqs_record(m, queue_arn=self.queue_arn, region=self.region) for m in messages]}

    def poll_once(self, wait_time_seconds: int | None = None) -> PollResult:
        """Receive one batch, invoke the handler, delete what it did not report as failed."""
        messages = self.receive(wait_time_seconds)
        if not messages:
            return PollResult()
        event = self.event(messages)
        ids = [m["MessageId"] for m in messages]
        context = LambdaContext(
            function_name=self.function_name,
            memory_limit_in_mb=self.memory_mb,
            timeout_seconds=self.timeout_seconds,
            region=self.region,
        )
        self.invocations += 1
        try:
            response = self.handler(event, context)
        except Exception as exc:
            log.exception("%s: the handler failed; the whole batch stays on the queue", self.function_name)
            return PollResult(len(messages), [], ids, None, f"{type(exc).__name__}: {exc}")
        failed = self._failed_ids(response, ids)
        receipts = {m["MessageId"]: m["ReceiptHandle"] for m in messages}
        deleted = [i for i in ids if i not in failed]
        self._delete([receipts[i] for i in deleted])
        return PollResult(len(messages), deleted, [i for i in ids if i in failed], response)

    def drain(self, max_polls: int = 20) -> list[PollResult]:
        """Polls (without waiting) until a poll receives nothing, at most ``max_polls`` times (tests)."""
        results = []
        for _ in range(max_polls):
            result = self.poll_once(wait_time_seconds=0)
            if not result.received:
                break
            results.append(result)
        return results

    def _failed_ids(self, response: Any, ids: list[str]) -> set[str]:
        """``batchItemFailures`` as Lambda reads them: an invalid answer fails the whole batch."""
        if response is None:
            return set()
        if not isinstance(response, dict) or not isinstance(response.get("batchItemFailures", []), list):
            log.error("%s: invalid batch response; the whole batch failed", self.function_name)
            return set(ids)
        failed = set()
        for item in response.get("batchItemFailures") or []:
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not identifier or identifier not in ids:
                log.error("%s: batchItemFailures names %r, not in the batch", self.function_name, identifier)
                return set(ids)
            failed.add(identifier)
        return failed

    def _delete(self, receipt_handles: list[str]) -> None:
        for start in range(0, len(receipt_handles), 10):
            chunk = receipt_handles[start : start + 10]
            answer = self.sqs.delete_message_batch(
                QueueUrl=self.queue_url, Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)]
            )
            for failure in answer.get("Failed") or []:
                log.warning("could not delete a message: %s", failure.get("Code"))

    # --- background -------------------------------------------------------------------------------
    def describe(self) -> list[str]:
        return [f"queue poller  {self.queue_url} -> {self.function_name}  (batch {self.batch_size})"]

    def poll_busy(self) -> bool:
        return bool(self.poll_once().received)

    def idle_interval(self) -> float:
        return self.idle_sleep_seconds
