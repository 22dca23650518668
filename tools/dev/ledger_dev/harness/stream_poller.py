"""A DynamoDB Streams event source mapping for development and tests: table stream → Lambda handler, as Lambda does it.

``StreamPoller`` follows the stream's shards (``DescribeStream``; a child shard once its parent is read to its end;
``GetShardIterator`` at the mapping's ``StartingPosition`` — ``TRIM_HORIZON`` or ``LATEST``, a shard found later at
``TRIM_HORIZON`` —, then ``AFTER_SEQUENCE_NUMBER`` of the last record read whenever an iterator has to be taken
again), four reads a second per shard as Lambda polls, and hands each batch to the handler as the DynamoDB event
Lambda sends (``{"Records": [...]}``, each record with ``eventID``, ``eventName``, ``eventVersion`` 1.1,
``eventSource`` aws:dynamodb, ``awsRegion``, ``dynamodb`` with ``ApproximateCreationDateTime`` in epoch seconds and
binary attributes base64-encoded, ``eventSourceARN``). What a ``StreamMapping`` says, it follows:

- **batching**: up to ``BatchSize`` records (at most 6 MB of event), gathered for at most
  ``MaximumBatchingWindowInSeconds`` (0: whatever is there, at once);
- **filters** (``FilterCriteria``, ``harness.event_filters``): a record no filter matches is dropped before batching;
- **failures** (``batch_run``): a handler that raises fails the whole batch; with ``ReportBatchItemFailures`` its
  ``batchItemFailures`` name the first record to retry from (the lowest sequence number; the records before it are
  done), an empty string, ``null`` or unknown identifier failing the whole batch; a retry takes the records from
  there, ``BisectBatchOnFunctionError`` splits a batch that raised in two first (splits use no retry);
  after ``MaximumRetryAttempts`` (-1: for ever) retries, or once older than ``MaximumRecordAgeInSeconds``, the
  records are discarded: the invocation record Lambda writes (``DDBStreamBatchInfo``: shard, first and last sequence
  numbers, batch size, stream; ``requestContext.condition`` ``RetryAttemptsExhausted`` / ``RecordAgeExceeded``) goes
  to the ``DestinationConfig.OnFailure`` queue and the shard goes on.

Records of a shard are handed over in order, one batch at a time. Works with any client: moto in-process
(``mock_aws``) or moto's server (the local stack)::

    poller = StreamPoller(streams, stream_arn, handler, StreamMapping("LedgerEventsFunction", batch_size=10))
    poller.drain()                      # read and hand over until the stream has nothing more (tests)
    poller.start(); ...; poller.stop()  # a background thread (the local stack)
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger_dev.harness.apigw import LambdaContext
from ledger_dev.harness.event_filters import FilterPattern, matches_any
from ledger_dev.harness.polling import BackgroundPoller

log = logging.getLogger("ledger_dev.harness.stream_poller")

Handler = Callable[[dict[str, Any], Any], Any]
MAX_BATCH_SIZE = 10_000  # Lambda's limit for a DynamoDB stream
MAX_BATCHING_WINDOW_SECONDS = 300
MAX_RETRY_ATTEMPTS = 10_000
MAX_RECORD_AGE_SECONDS = 604_800
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024  # a synchronous invocation's event: a batch never grows past it
GET_RECORDS_LIMIT = 1_000  # DynamoDB Streams' GetRecords limit
POLL_INTERVAL_SECONDS = 0.25  # Lambda reads each shard four times a second
RETRY_BASE_SECONDS = 0.2  # a failed batch's next attempt: 0.2 s, doubling, at most RETRY_MAX_SECONDS
RETRY_MAX_SECONDS = 5.0
DESCRIBE_INTERVAL_SECONDS = 10.0  # new shards looked for this often (and whenever a shard ends)
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")
RETRY_ATTEMPTS_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"


@dataclass(frozen=True)
class StreamMapping:
    """An event source mapping of a DynamoDB stream: Lambda's defaults unless the template says otherwise."""

    function: str
    batch_size: int = 100
    batching_window_seconds: float = 0.0
    starting_position: str = "TRIM_HORIZON"
    report_batch_item_failures: bool = False
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = -1  # -1: for ever (until the record leaves the stream)
    maximum_record_age_seconds: int = -1  # -1: for ever
    on_failure_arn: str | None = None
    filters: tuple[FilterPattern, ...] = ()
    enabled: bool = True
    event: str = ""  # the event's name in the template, for messages

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            problems.append(f"BatchSize must be 1-{MAX_BATCH_SIZE:,}, got {self.batch_size}")
        if not 0 <= self.batching_window_seconds <= MAX_BATCHING_WINDOW_SECONDS:
            problems.append(f"MaximumBatchingWindowInSeconds must be 0-{MAX_BATCHING_WINDOW_SECONDS}")
        if self.starting_position not in STARTING_POSITIONS:
            problems.append(f"StartingPosition must be one of {', '.join(STARTING_POSITIONS)} for a DynamoDB stream")
        if not -1 <= self.maximum_retry_attempts <= MAX_RETRY_ATTEMPTS:
            problems.append(f"MaximumRetryAttempts must be -1-{MAX_RETRY_ATTEMPTS:,}")
        age = self.maximum_record_age_seconds
        if age != -1 and not 60 <= age <= MAX_RECORD_AGE_SECONDS:
            problems.append(f"MaximumRecordAgeInSeconds must be -1 or 60-{MAX_RECORD_AGE_SECONDS:,}")
        if len(self.filters) > 5:
            problems.append("FilterCriteria takes at most 5 filters")
        if problems:
            raise ValueError(f"{self.function} {self.event or 'stream event'}: " + "; ".join(problems))

    def describe(self) -> str:
        parts = [f"batch {self.batch_size}", f"window {self.batching_window_seconds:g} s", self.starting_position]
        if self.filters:
            parts.append(f"{len(self.filters)} filter(s)")
        if self.report_batch_item_failures:
            parts.append("ReportBatchItemFailures")
        if self.bisect_batch_on_function_error:
            parts.append("bisect")
        retries = "for ever" if self.maximum_retry_attempts < 0 else str(self.maximum_retry_attempts)
        parts.append(f"retries {retries}")
        return ", ".join(parts)


# --- the records Lambda hands over -----------------------------------------------------------------------
def _lambda_attribute(value: Any) -> Any:
    """An attribute value of GetRecords (boto3: bytes for B / BS) as in Lambda's event (base64 strings)."""
    if not isinstance(value, Mapping):
        return value
    converted: dict[str, Any] = {}
    for kind, inner in value.items():
        if kind == "B":
            converted[kind] = base64.b64encode(inner).decode("ascii") if isinstance(inner, bytes | bytearray) else inner
        elif kind == "BS":
            converted[kind] = [
                base64.b64encode(v).decode("ascii") if isinstance(v, bytes | bytearray) else v for v in inner
            ]
        elif kind == "M":
            converted[kind] = {k: _lambda_attribute(v) for k, v in inner.items()}
        elif kind == "L":
            converted[kind] = [_lambda_attribute(v) for v in inner]
        else:
            converted[kind] = inner
    return converted


def _epoch_seconds(value: Any) -> Any:
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
    return value


def lambda_record(record: Mapping[str, Any], *, stream_arn: str, region: str) -> dict[str, Any]:
    """One ``Records[]`` entry of the DynamoDB event Lambda sends, from one record of ``GetRecords``."""
    stream = dict(record.get("dynamodb") or {})
    if "ApproximateCreationDateTime" in stream:
        stream["ApproximateCreationDateTime"] = _epoch_seconds(stream["ApproximateCreationDateTime"])
    for image in ("Keys", "NewImage", "OldImage"):
        if image in stream:
            stream[image] = {name: _lambda_attribute(value) for name, value in stream[image].items()}
    converted: dict[str, Any] = {
        "eventID": record.get("eventID", ""),
        "eventName": record.get("eventName", ""),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": stream,
        "eventSourceARN": stream_arn,
    }
    if record.get("userIdentity"):
        converted["userIdentity"] = dict(record["userIdentity"])
    return converted


def sequence_number(record: Mapping[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def record_bytes(record: Mapping[str, Any]) -> int:
    """What the record adds to the invocation's event."""
    return len(json.dumps(record, separators=(",", ":"), default=str)) + 1


def retry_from(response: Any, batch: Sequence[Mapping[str, Any]], *, report_batch_item_failures: bool) -> int | None:
    """Where the batch is to be retried from, by its handler's answer: None when it all succeeded, else the index of
    the first record to retry (0: the whole batch). Without ``ReportBatchItemFailures`` the answer is ignored."""
    if not report_batch_item_failures or response is None:
        return None
    if not isinstance(response, Mapping):
        log.error("the handler answered %s, not a batch response: the whole batch failed", type(response).__name__)
        return 0
    failures = response.get("batchItemFailures")
    if failures is None or failures == []:
        return None
    if not isinstance(failures, list):
        log.error("batchItemFailures is not a list: the whole batch failed")
        return 0
    positions = {sequence_number(r): i for i, r in enumerate(batch)}
    first = len(batch)
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(identifier, str) or identifier not in positions:
            log.error("batchItemFailures names %r, not a record of the batch: the whole batch failed", identifier)
            return 0
        first = min(first, positions[identifier])
    return first


def _iso(seconds: float, *, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def failure_record(
    records: Sequence[Mapping[str, Any]],
    *,
    condition: str,
    invoke_count: int,
    function_error: bool,
    function_arn: str,
    shard_id: str,
    stream_arn: str,
    now: float | None = None,
) -> dict[str, Any]:
    """The invocation record Lambda sends an on-failure destination for discarded stream records (their place in
    the stream, not the records themselves)."""
    arrivals = [r["dynamodb"].get("ApproximateCreationDateTime") for r in records]
    known = [float(a) for a in arrivals if isinstance(a, int | float)]
    first, last = (known[0], known[-1]) if known else (time.time(), time.time())
    answer: dict[str, Any] = {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "version": "1.0",
        "timestamp": _iso(time.time() if now is None else now, millis=True),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": sequence_number(records[0]),
            "endSequenceNumber": sequence_number(records[-1]),
            "approximateArrivalOfFirstRecord": _iso(first),
            "approximateArrivalOfLastRecord": _iso(last),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }
    if invoke_count:
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if function_error:
            response["functionError"] = "Unhandled"
        answer["responseContext"] = response
    return answer


# --- one batch to its end ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Discarded:
    """Records given up on: why, after how many invocations, whether the last one raised."""

    records: list[dict[str, Any]]
    condition: str
    invoke_count: int
    function_error: bool


@dataclass
class BatchOutcome:
    """What became of a batch: ``done`` records (handed over, or discarded) from its start; ``stopped`` when a stop
    came before the rest was."""

    done: int = 0
    invocations: int = 0
    discarded: list[Discarded] = field(default_factory=list)
    stopped: bool = False


def batch_run(
    batch: Sequence[dict[str, Any]],
    mapping: StreamMapping,
    invoke: Callable[[list[dict[str, Any]]], Any],
    *,
    discard: Callable[[Discarded], None] = lambda _d: None,
    wait: Callable[[float], bool] = lambda _s: True,
    now: Callable[[], float] = time.time,
    retry_base_seconds: float = RETRY_BASE_SECONDS,
    retry_max_seconds: float = RETRY_MAX_SECONDS,
) -> BatchOutcome:
    """Hands ``batch`` to ``invoke`` until every record is done, as Lambda's stream retries do (see the module's
    docstring). ``invoke`` raises for a function error and returns the handler's answer otherwise; ``discard`` gets
    what is given up; ``wait(seconds)`` pauses before a retry and returns False when the poller is stopping."""
    outcome = BatchOutcome()
    work: list[tuple[list[dict[str, Any]], int]] = [(list(batch), 0)]  # (records, retries used), in stream order
    while work:
        records, retries = work.pop()
        if mapping.maximum_record_age_seconds >= 0:
            expired = _expired(records, mapping.maximum_record_age_seconds, now())
            if expired:
                gone = Discarded(records[:expired], RECORD_AGE_EXCEEDED, retries, False)
                discard(gone)
                outcome.discarded.append(gone)
                outcome.done += expired
                records = records[expired:]
                if not records:
                    continue
        outcome.invocations += 1
        function_error = False
        try:
            response = invoke(records)
        except Exception:
            log.exception("%s: the handler failed on %d record(s)", mapping.function, len(records))
            function_error, first = True, 0
        else:
            retry = retry_from(response, records, report_batch_item_failures=mapping.report_batch_item_failures)
            if retry is None:
                outcome.done += len(records)
                continue
            first = retry
        outcome.done += first
        rest = records[first:]
        if function_error and mapping.bisect_batch_on_function_error and len(rest) > 1:
            half = len(rest) // 2
            work += [(rest[half:], retries), (rest[:half], retries)]  # the first half next
            continue
        if 0 <= mapping.maximum_retry_attempts <= retries:
            gone = Discarded(rest, RETRY_ATTEMPTS_EXHAUSTED, retries + 1, function_error)
            discard(gone)
            outcome.discarded.append(gone)
            outcome.done += len(rest)
            continue
        if not wait(min(retry_max_seconds, retry_base_seconds * 2**retries)):
            outcome.stopped = True
            return outcome
        work.append((rest, retries + 1))
    return outcome


def _expired(records: Sequence[Mapping[str, Any]], age_seconds: int, now: float) -> int:
    """How many records from the start are older than ``age_seconds``."""
    count = 0
    for record in records:
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        if not isinstance(created, int | float) or now - float(created) <= age_seconds:
            break
        count += 1
    return count


def gather(
    pending: list[dict[str, Any]], incoming: Iterable[dict[str, Any]], mapping: StreamMapping
) -> tuple[list[dict[str, Any]], int]:
    """Adds the records of ``incoming`` that a filter matches to ``pending`` (in place, while the batch has room:
    ``BatchSize`` records and ``PAYLOAD_LIMIT_BYTES``); returns the records that did not fit, and how many were
    filtered out."""
    size = sum(record_bytes(r) for r in pending)
    left: list[dict[str, Any]] = []
    dropped = 0
    for record in incoming:
        if left:
            left.append(record)
            continue
        if not matches_any(mapping.filters, record):
            dropped += 1
            continue
        grown = size + record_bytes(record)
        if len(pending) >= mapping.batch_size or (pending and grown > PAYLOAD_LIMIT_BYTES):
            left.append(record)
            continue
        pending.append(record)
        size = grown
    return left, dropped


# --- the poller ---------------------------------------------------------------------------------------------------
@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    position: str  # where an iterator starts when none has been read: TRIM_HORIZON or LATEST
    iterator: str | None = None
    read_after: str | None = None  # the last record read
    checkpoint: str | None = None  # the last record done (handed over, discarded or filtered out)
    buffer: list[dict[str, Any]] = field(default_factory=list)  # read, matched, not yet in a batch
    closed: bool = False  # read to its end


@dataclass(frozen=True)
class PollResult:
    read: int = 0  # records read from the stream
    filtered_out: int = 0
    batches: int = 0
    invocations: int = 0
    handed_over: int = 0  # records the handler was given and did not fail on (or was last given before discard)
    discarded: int = 0


class StreamPoller(BackgroundPoller):
    """Follows one table stream and hands its batches to a handler. ``start()``/``stop()`` run it on a daemon thread
    that stops by itself after ``max_runtime_seconds`` or ``max_consecutive_errors`` failed rounds."""

    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        handler: Handler,
        mapping: StreamMapping,
        *,
        sqs: Any = None,
        on_failure_queue_url: str | None = None,
        region: str | None = None,
        account_id: str = "123456789012",
        timeout_seconds: float = 30.0,
        memory_mb: int = 512,
        poll_interval_seconds: float = POLL_INTERVAL_SECONDS,
        retry_base_seconds: float = RETRY_BASE_SECONDS,
        retry_max_seconds: float = RETRY_MAX_SECONDS,
        max_runtime_seconds: float | None = None,
        max_consecutive_errors: int = 20,
        name: str | None = None,
    ) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.handler = handler
        self.mapping = mapping
        self.sqs = sqs
        self.on_failure_queue_url = on_failure_queue_url
        self.region = region or getattr(getattr(streams, "meta", None), "region_name", None) or "eu-west-1"
        self.function_arn = f"arn:aws:lambda:{self.region}:{account_id}:function:{mapping.function}"
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self.poll_interval_seconds = poll_interval_seconds
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.max_runtime_seconds = max_runtime_seconds
        self.max_consecutive_errors = max_consecutive_errors
        self.name = name or f"stream-poller:{mapping.function}"
        self.shards: dict[str, _Shard] = {}
        # The last invocation records that went to the on-failure destination (or were dropped without one).
        self.failure_records: deque[dict[str, Any]] = deque(maxlen=1_000)
        self.invocations = 0
        self._described_at: float | None = None
        super().__init__()
        self._rounds = threading.Condition()
        self._rounds_started = 0
        self._last_idle_round = 0

    # --- shards ---------------------------------------------------------------------------------------------
    def refresh_shards(self) -> None:
        """Reads the stream's shards (every page of DescribeStream); a shard seen for the first time starts at the
        mapping's position if it was there from the start, else at TRIM_HORIZON."""
        first_look = self._described_at is None
        found: list[dict[str, Any]] = []
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
            if start:
                kwargs["ExclusiveStartShardId"] = start
            description = self.streams.describe_stream(**kwargs)["StreamDescription"]
            found += list(description.get("Shards") or [])
            start = description.get("LastEvaluatedShardId")
            if not start:
                break
        for shard in found:
            shard_id = str(shard["ShardId"])
            if shard_id not in self.shards:
                position = self.mapping.starting_position if first_look else "TRIM_HORIZON"
                self.shards[shard_id] = _Shard(shard_id, shard.get("ParentShardId"), position)
        self._described_at = time.monotonic()

    def _ready(self, shard: _Shard) -> bool:
        if shard.closed and not shard.buffer:
            return False
        parent = self.shards.get(shard.parent_id or "")
        return parent is None or (parent.closed and not parent.buffer)

    def _read(self, shard: _Shard, limit: int) -> list[dict[str, Any]]:
        if shard.iterator is None:
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
            if shard.read_after is not None:
                kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.read_after)
            else:
                kwargs["ShardIteratorType"] = shard.position
            shard.iterator = self.streams.get_shard_iterator(**kwargs)["ShardIterator"]
        try:
            answer = self.streams.get_records(ShardIterator=shard.iterator, Limit=max(1, min(limit, GET_RECORDS_LIMIT)))
        except Exception:
            shard.iterator = None  # expired or lost: taken again after the last record read
            raise
        records = [
            lambda_record(r, stream_arn=self.stream_arn, region=self.region) for r in answer.get("Records") or []
        ]
        shard.iterator = answer.get("NextShardIterator")
        if records:
            shard.read_after = sequence_number(records[-1])
        if shard.iterator is None:
            shard.closed = True
            self._described_at = None if self._described_at is None else 0.0  # look for its children now
        return records

    # --- one round --------------------------------------------------------------------------------------------
    def poll_once(self) -> PollResult:
        """Every shard that can be read: gather one batch (within the batching window) and hand it over."""
        with self._rounds:
            self._rounds_started += 1
            this_round = self._rounds_started
        if self._described_at is None or time.monotonic() - self._described_at >= DESCRIBE_INTERVAL_SECONDS:
            self.refresh_shards()
        totals = PollResult()
        for shard in [s for s in self.shards.values() if self._ready(s)]:
            result = self._poll_shard(shard)
            totals = PollResult(*(a + b for a, b in zip(_fields(totals), _fields(result), strict=True)))
            if self._stop.is_set():
                break
        if totals.read == 0 and not any(s.buffer for s in self.shards.values()):
            with self._rounds:
                self._last_idle_round = this_round
                self._rounds.notify_all()
        return totals

    def _poll_shard(self, shard: _Shard) -> PollResult:
        batch, shard.buffer = shard.buffer, []
        read = dropped = 0
        deadline: float | None = None
        window = self.mapping.batching_window_seconds
        while not shard.closed and not self._stop.is_set():
            if len(batch) >= self.mapping.batch_size or shard.buffer:
                break
            records = self._read(shard, self.mapping.batch_size - len(batch))
            read += len(records)
            shard.buffer, filtered = gather(batch, records, self.mapping)
            dropped += filtered
            if batch and deadline is None:
                deadline = time.monotonic() + window
            if shard.buffer or len(batch) >= self.mapping.batch_size:
                break
            if deadline is None:  # nothing to hand over yet
                if not records:
                    break
                continue
            if time.monotonic() >= deadline:
                break
            if not records and self._stop.wait(min(self.poll_interval_seconds, max(0.0, deadline - time.monotonic()))):
                break
        if self._stop.is_set():  # read again after the checkpoint when the poller starts again
            shard.buffer = []
            return PollResult(read=read, filtered_out=dropped)
        if not batch:
            if not shard.buffer and shard.read_after is not None:
                shard.checkpoint = shard.read_after  # filtered out: done with
            return PollResult(read=read, filtered_out=dropped)
        outcome = batch_run(
            batch,
            self.mapping,
            self._invoke,
            discard=lambda gone: self._discard(shard, gone),
            wait=lambda seconds: not self._stop.wait(seconds),
            retry_base_seconds=self.retry_base_seconds,
            retry_max_seconds=self.retry_max_seconds,
        )
        if outcome.done:
            shard.checkpoint = sequence_number(batch[outcome.done - 1])
        if outcome.stopped:  # the rest is read again after the checkpoint when the poller starts again
            shard.buffer = []
        elif not shard.buffer and shard.read_after is not None:
            shard.checkpoint = shard.read_after
        discarded = sum(len(d.records) for d in outcome.discarded)
        return PollResult(read, dropped, 1, outcome.invocations, outcome.done - discarded, discarded)

    def _invoke(self, records: list[dict[str, Any]]) -> Any:
        context = LambdaContext(
            function_name=self.mapping.function,
            memory_limit_in_mb=self.memory_mb,
            timeout_seconds=self.timeout_seconds,
            region=self.region,
        )
        self.invocations += 1
        return self.handler({"Records": records}, context)

    def _discard(self, shard: _Shard, gone: Discarded) -> None:
        record = failure_record(
            gone.records,
            condition=gone.condition,
            invoke_count=gone.invoke_count,
            function_error=gone.function_error,
            function_arn=self.function_arn,
            shard_id=shard.shard_id,
            stream_arn=self.stream_arn,
        )
        info = record["DDBStreamBatchInfo"]
        where = "dropped (no OnFailure destination)"
        if self.sqs is not None and self.on_failure_queue_url:
            self.sqs.send_message(QueueUrl=self.on_failure_queue_url, MessageBody=json.dumps(record))
            where = f"its invocation record sent to {self.on_failure_queue_url}"
        self.failure_records.append(record)
        log.warning(
            "%s: %d record(s) %s to %s discarded (%s after %d invocation(s)); %s",
            self.mapping.function,
            info["batchSize"],
            info["startSequenceNumber"],
            info["endSequenceNumber"],
            gone.condition,
            gone.invoke_count,
            where,
        )

    def drain(self, max_polls: int = 50) -> list[PollResult]:
        """Polls until a round reads nothing, at most ``max_polls`` rounds (tests)."""
        results = []
        for _ in range(max_polls):
            result = self.poll_once()
            results.append(result)
            if not result.read and not any(s.buffer for s in self.shards.values()):
                break
        return results

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once a round that began after this call found nothing more to read: everything written before the
        call has been handed over (or given up on). False on timeout."""
        deadline = time.monotonic() + timeout
        with self._rounds:
            after = self._rounds_started
            while self._last_idle_round <= after:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._rounds.wait(left)
        return True

    # --- background -------------------------------------------------------------------------------------------
    def before_start(self) -> None:
        """After a stop, each shard is read again after its checkpoint."""
        for shard in self.shards.values():
            shard.iterator, shard.buffer, shard.read_after = None, [], shard.checkpoint
            shard.closed = False

    def describe(self) -> list[str]:
        table = self.stream_arn.split(":table/", 1)[-1].split("/stream/", 1)[0]
        return [f"stream poller {table} (its stream) -> {self.mapping.function}  ({self.mapping.describe()})"]

    def poll_busy(self) -> bool:
        return bool(self.poll_once().read)

    def idle_interval(self) -> float:
        return self.poll_interval_seconds


def _fields(result: PollResult) -> tuple[int, ...]:
    return (
        result.read,
        result.filtered_out,
        result.batches,
        result.invocations,
        result.handed_over,
        result.discarded,
    )
