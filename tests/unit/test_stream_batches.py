"""The DynamoDB stream event source mapping's logic, without AWS: the records Lambda hands over, how a batch is
gathered (BatchSize, the 6 MB event, filters), what a handler's answer means (ReportBatchItemFailures), retries from
the first failed record, bisection, MaximumRetryAttempts and MaximumRecordAgeInSeconds, the on-failure record, and the
mapping as the template's DynamoDB event gives it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger_dev.harness.event_filters import FilterPattern
from ledger_dev.harness.stream_poller import (
    PAYLOAD_LIMIT_BYTES,
    RECORD_AGE_EXCEEDED,
    RETRY_ATTEMPTS_EXHAUSTED,
    Discarded,
    StreamMapping,
    batch_run,
    failure_record,
    gather,
    lambda_record,
    retry_from,
)
from ledger_dev.harness.template import template_values
from ledger_dev.local_stack.streams import StreamEvent, stream_mapping

STREAM_ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/voucherify-ledger/stream/2026-01-01T00:00:00.000"
FN = "LedgerEventsFunction"


def record(seq: int, pk: str = "REDEMPTION#r_1", *, created: float = 1_800_000_000.0, **extra: Any) -> dict[str, Any]:
    """A record as Lambda hands it over."""
    return {
        "eventID": f"e{seq}",
        "eventName": extra.pop("event_name", "INSERT"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": {
            "ApproximateCreationDateTime": created,
            "Keys": {"pk": {"S": pk}, "sk": {"S": "REDEMPTION"}},
            "NewImage": {"pk": {"S": pk}, "sk": {"S": "REDEMPTION"}, **extra},
            "SequenceNumber": str(1000 + seq),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": STREAM_ARN,
    }


def seqs(records: list[dict[str, Any]]) -> list[int]:
    return [int(r["dynamodb"]["SequenceNumber"]) - 1000 for r in records]


class Handler:
    """Records each invocation's sequence numbers and answers what ``answer`` says for it."""

    def __init__(self, answer: Any = None) -> None:
        self.calls: list[list[int]] = []
        self.answer = answer

    def __call__(self, records: list[dict[str, Any]]) -> Any:
        self.calls.append(seqs(records))
        result = self.answer(records) if callable(self.answer) else self.answer
        if isinstance(result, Exception):
            raise result
        return result


def fail_on(*bad: int) -> Any:
    """A handler answer: the records numbered ``bad`` reported as failed (Powertools' shape)."""

    def answer(records: list[dict[str, Any]]) -> dict[str, Any]:
        failed = [r for r in records if seqs([r])[0] in bad]
        return {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in failed]}

    return answer


def raise_on(*bad: int) -> Any:
    def answer(records: list[dict[str, Any]]) -> Any:
        return RuntimeError("boom") if set(seqs(records)) & set(bad) else None

    return answer


def mapping(**options: Any) -> StreamMapping:
    options.setdefault("report_batch_item_failures", True)
    return StreamMapping(FN, **options)


def run(batch: list[dict[str, Any]], handler: Handler, options: StreamMapping, **kwargs: Any) -> Any:
    gone: list[Discarded] = []
    outcome = batch_run(batch, options, handler, discard=gone.append, **kwargs)
    return outcome, gone


# --- the records Lambda hands over ---------------------------------------------------------------------------
def test_a_get_records_record_becomes_the_record_lambda_sends() -> None:
    raw = {
        "eventID": "abc",
        "eventName": "MODIFY",
        "eventVersion": "1.0",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",  # what moto says, whatever the table's region
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
            "Keys": {"pk": {"S": "REDEMPTION#r_1"}, "sk": {"S": "REDEMPTION"}},
            "NewImage": {
                "raw": {"B": b"\x78\x9c\x00"},
                "ids": {"BS": [b"\x01"]},
                "nested": {"M": {"blob": {"B": b"\x02"}, "list": {"L": [{"B": b"\x03"}, {"N": "1"}]}}},
                "status": {"S": "ROLLED_BACK"},
            },
            "OldImage": {"status": {"S": "SUCCEEDED"}},
            "SequenceNumber": "111",
            "SizeBytes": 59,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }

    converted = lambda_record(raw, stream_arn=STREAM_ARN, region="eu-west-1")

    assert converted["eventSourceARN"] == STREAM_ARN and converted["awsRegion"] == "eu-west-1"
    assert (converted["eventVersion"], converted["eventSource"], converted["eventName"]) == (
        "1.1",
        "aws:dynamodb",
        "MODIFY",
    )
    stream = converted["dynamodb"]
    assert stream["ApproximateCreationDateTime"] == int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp())
    assert stream["NewImage"]["raw"] == {"B": "eJwA"}
    assert stream["NewImage"]["ids"] == {"BS": ["AQ=="]}
    assert stream["NewImage"]["nested"] == {"M": {"blob": {"B": "Ag=="}, "list": {"L": [{"B": "Aw=="}, {"N": "1"}]}}}
    assert stream["OldImage"] == {"status": {"S": "SUCCEEDED"}}
    assert (stream["SequenceNumber"], stream["StreamViewType"]) == ("111", "NEW_AND_OLD_IMAGES")
    json.dumps(converted)  # what Lambda would serialise


# --- gathering a batch -------------------------------------------------------------------------------------------
def test_a_batch_takes_batch_size_records_and_leaves_the_rest_in_order() -> None:
    pending: list[dict[str, Any]] = [record(1)]

    left, dropped = gather(pending, [record(n) for n in range(2, 8)], mapping(batch_size=4))

    assert (seqs(pending), seqs(left), dropped) == ([1, 2, 3, 4], [5, 6, 7], 0)


def test_a_batch_never_grows_past_the_six_mb_event() -> None:
    big = "x" * (2 * 1024 * 1024)
    records = [record(n, blob={"S": big}) for n in range(1, 5)]
    pending: list[dict[str, Any]] = []

    left, _ = gather(pending, records, mapping(batch_size=100))

    assert seqs(pending) == [1, 2] and seqs(left) == [3, 4]
    assert len(json.dumps({"Records": pending})) < PAYLOAD_LIMIT_BYTES


def test_a_record_no_filter_matches_is_dropped_before_batching() -> None:
    only_redemptions = FilterPattern.parse('{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "REDEMPTION#"}]}}}}')
    no_removes = FilterPattern.parse('{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"Keys": {"pk": {"S": ["X"]}}}}')
    records = [record(1), record(2, "RECONCILE"), record(3, "IDEMPOTENCY#rollback-worker"), record(4, "REDEMPTION#r_2")]
    pending: list[dict[str, Any]] = []

    left, dropped = gather(pending, records, mapping(batch_size=2, filters=(only_redemptions, no_removes)))

    assert (seqs(pending), left, dropped) == ([1, 4], [], 2)


# --- what the handler's answer means --------------------------------------------------------------------------------
@pytest.mark.parametrize("answer", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}])
def test_an_empty_or_null_answer_is_a_complete_success(answer: Any) -> None:
    assert retry_from(answer, [record(1), record(2)], report_batch_item_failures=True) is None


@pytest.mark.parametrize(
    "answer",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"id": "1002"}]},  # a bad key name
        {"batchItemFailures": [{"itemIdentifier": "999"}]},  # not a record of the batch
        {"batchItemFailures": "1002"},
        "ok",
    ],
)
def test_an_unusable_answer_fails_the_whole_batch(answer: Any) -> None:
    assert retry_from(answer, [record(1), record(2)], report_batch_item_failures=True) == 0


def test_the_lowest_failed_sequence_number_is_where_the_retry_starts() -> None:
    batch = [record(n) for n in range(1, 6)]
    answer = {"batchItemFailures": [{"itemIdentifier": "1004"}, {"itemIdentifier": "1002"}]}

    assert retry_from(answer, batch, report_batch_item_failures=True) == 1


def test_without_report_batch_item_failures_the_answer_is_ignored() -> None:
    answer = {"batchItemFailures": [{"itemIdentifier": "1001"}]}

    assert retry_from(answer, [record(1)], report_batch_item_failures=False) is None


# --- retries -----------------------------------------------------------------------------------------------------
def test_a_partial_failure_is_retried_from_the_failed_record_then_discarded_after_the_retries() -> None:
    handler = Handler(fail_on(3))
    outcome, gone = run([record(n) for n in range(1, 6)], handler, mapping(maximum_retry_attempts=2))

    assert handler.calls == [[1, 2, 3, 4, 5], [3, 4, 5], [3, 4, 5]]  # the first try, then two retries
    assert outcome.done == 5 and not outcome.stopped
    (discarded,) = gone
    assert (seqs(discarded.records), discarded.condition, discarded.invoke_count) == (
        [3, 4, 5],
        RETRY_ATTEMPTS_EXHAUSTED,
        3,
    )
    assert not discarded.function_error


def test_a_record_that_succeeds_on_a_retry_is_not_discarded() -> None:
    attempts: list[list[int]] = []

    def flaky(records: list[dict[str, Any]]) -> Any:
        attempts.append(seqs(records))
        return fail_on(2)(records) if len(attempts) == 1 else None

    outcome, gone = run([record(1), record(2), record(3)], Handler(flaky), mapping(maximum_retry_attempts=5))

    assert attempts == [[1, 2, 3], [2, 3]] and gone == [] and outcome.done == 3


def test_a_raising_handler_fails_the_whole_batch_and_without_bisection_it_is_retried_whole() -> None:
    handler = Handler(raise_on(2))
    outcome, gone = run([record(1), record(2), record(3)], handler, mapping(maximum_retry_attempts=1))

    assert handler.calls == [[1, 2, 3], [1, 2, 3]]
    ((discarded),) = gone
    assert seqs(discarded.records) == [1, 2, 3] and discarded.function_error and discarded.invoke_count == 2
    assert outcome.done == 3


def test_bisection_isolates_the_record_that_raises_and_uses_no_retries_to_split() -> None:
    handler = Handler(raise_on(3))
    options = mapping(maximum_retry_attempts=1, bisect_batch_on_function_error=True)

    outcome, gone = run([record(n) for n in range(1, 5)], handler, options)

    # [1-4] raises → [1,2] ok, [3,4] raises → [3] raises, retried once, discarded; [4] ok
    assert handler.calls == [[1, 2, 3, 4], [1, 2], [3, 4], [3], [3], [4]]
    ((discarded),) = gone
    assert seqs(discarded.records) == [3] and discarded.invoke_count == 2
    assert outcome.done == 4 and outcome.invocations == 6


def test_with_bisection_a_partial_failure_retries_only_the_records_from_it() -> None:
    handler = Handler(fail_on(2))
    options = mapping(maximum_retry_attempts=1, bisect_batch_on_function_error=True)

    _, gone = run([record(1), record(2), record(3)], handler, options)

    assert handler.calls == [[1, 2, 3], [2, 3]]
    assert [seqs(d.records) for d in gone] == [[2, 3]]


def test_records_are_retried_for_ever_by_default_until_they_succeed() -> None:
    answers = iter([RuntimeError("down")] * 7 + [None])
    handler = Handler(lambda _records: next(answers))
    waits: list[float] = []

    outcome, gone = run([record(1)], handler, mapping(), wait=lambda s: waits.append(s) or True)

    assert len(handler.calls) == 8 and gone == [] and outcome.done == 1
    assert waits == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]  # doubling, capped


def test_a_stop_between_retries_leaves_the_rest_undone() -> None:
    handler = Handler(fail_on(2))

    outcome, gone = run([record(1), record(2), record(3)], handler, mapping(), wait=lambda _s: False)

    assert outcome.stopped and outcome.done == 1 and gone == []


def test_records_older_than_the_maximum_age_are_discarded_without_an_invocation() -> None:
    handler = Handler()
    batch = [record(1, created=1000.0), record(2, created=1100.0), record(3, created=1990.0)]

    outcome, gone = run(batch, handler, mapping(maximum_record_age_seconds=600), now=lambda: 2000.0)

    assert handler.calls == [[3]]
    ((discarded),) = gone
    assert (seqs(discarded.records), discarded.condition, discarded.invoke_count) == ([1, 2], RECORD_AGE_EXCEEDED, 0)
    assert outcome.done == 3


# --- what goes to the on-failure destination --------------------------------------------------------------------
def test_the_on_failure_record_names_the_batch_not_its_data() -> None:
    records = [record(3, created=1_800_000_000), record(4, created=1_800_000_002)]

    sent = failure_record(
        records,
        condition=RETRY_ATTEMPTS_EXHAUSTED,
        invoke_count=11,
        function_error=True,
        function_arn=f"arn:aws:lambda:eu-west-1:123456789012:function:{FN}",
        shard_id="shardId-1",
        stream_arn=STREAM_ARN,
        now=1_800_000_010.5,
    )

    assert sent["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert sent["requestContext"]["approximateInvokeCount"] == 11
    assert sent["requestContext"]["functionArn"].endswith(f":function:{FN}")
    assert sent["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert (sent["version"], sent["timestamp"]) == ("1.0", "2027-01-15T08:00:10.500Z")
    assert sent["DDBStreamBatchInfo"] == {
        "shardId": "shardId-1",
        "startSequenceNumber": "1003",
        "endSequenceNumber": "1004",
        "approximateArrivalOfFirstRecord": "2027-01-15T08:00:00Z",
        "approximateArrivalOfLastRecord": "2027-01-15T08:00:02Z",
        "batchSize": 2,
        "streamArn": STREAM_ARN,
    }
    assert "REDEMPTION#" not in json.dumps(sent)


def test_the_on_failure_record_parses_as_powertools_on_failure_destination_model() -> None:
    from aws_lambda_powertools.utilities.parser import parse
    from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamLambdaOnFailureDestinationModel

    sent = failure_record(
        [record(1)],
        condition=RECORD_AGE_EXCEEDED,
        invoke_count=1,
        function_error=False,
        function_arn=f"arn:aws:lambda:eu-west-1:123456789012:function:{FN}",
        shard_id="shardId-1",
        stream_arn=STREAM_ARN,
    )

    parsed = parse(event=sent, model=DynamoDBStreamLambdaOnFailureDestinationModel)
    assert parsed.ddb_stream_batch_info.batch_size == 1


# --- the mapping, as the template's DynamoDB event says -------------------------------------------------------------
def test_the_mapping_is_read_from_the_event_with_lambdas_defaults_for_what_it_leaves_out() -> None:
    values = {**template_values({}), "LedgerEventsDeadLetterQueue.Arn": "arn:aws:sqs:eu-west-1:1:dlq", "Size": "25"}
    event = StreamEvent(
        FN,
        "Stream",
        {
            "Stream": {"Fn::GetAtt": ["LedgerTable", "StreamArn"]},
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": {"Ref": "Size"},
            "MaximumBatchingWindowInSeconds": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": 10,
            "MaximumRecordAgeInSeconds": 86400,
            "DestinationConfig": {
                "OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": ["LedgerEventsDeadLetterQueue", "Arn"]}}
            },
            "FilterCriteria": {
                "Filters": [{"Pattern": '{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "REDEMPTION#"}]}}}}'}]
            },
        },
    )

    read = stream_mapping(event, values)

    assert (read.batch_size, read.batching_window_seconds, read.starting_position) == (25, 1.0, "TRIM_HORIZON")
    assert read.report_batch_item_failures and read.bisect_batch_on_function_error
    assert (read.maximum_retry_attempts, read.maximum_record_age_seconds) == (10, 86400)
    assert read.on_failure_arn == "arn:aws:sqs:eu-west-1:1:dlq"
    assert [f.pattern for f in read.filters] == [{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "REDEMPTION#"}]}}}}]

    bare = stream_mapping(StreamEvent(FN, "Stream", {"StartingPosition": "LATEST"}), values)
    assert (bare.batch_size, bare.batching_window_seconds, bare.maximum_retry_attempts) == (100, 0.0, -1)
    assert not bare.report_batch_item_failures and bare.filters == () and bare.on_failure_arn is None


@pytest.mark.parametrize(
    ("properties", "problem"),
    [
        ({"BatchSize": 10_001}, "BatchSize"),
        ({"StartingPosition": "AT_TIMESTAMP"}, "StartingPosition"),
        ({"MaximumRecordAgeInSeconds": 10}, "MaximumRecordAgeInSeconds"),
        (
            {"FilterCriteria": {"Filters": [{"Pattern": '{"dynamodb": {"Keys": {"pk": {"S": [{"cidr": "x"}]}}}}'}]}},
            "cidr",
        ),
    ],
)
def test_a_mapping_lambda_would_refuse_stops_start_up_with_the_reason(properties: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        stream_mapping(StreamEvent(FN, "Stream", {"StartingPosition": "TRIM_HORIZON", **properties}), {})
