"""The DynamoDB stream poller against moto (in-process), with a stand-in handler: the ledger's own writes reach it as
the DynamoDB event Lambda sends (one record per write, none for a duplicate), filtered, in batches of the mapping's
size; a record the handler reports failed is retried from there and, after the retries, its batch's place goes to the
on-failure queue while the stream goes on; a handler that raises is bisected to the record; the background thread
follows new writes, stops at once and, started again, goes on after what it had done."""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from botocore.config import Config
from moto import mock_aws

from ledger_dev.harness.event_filters import FilterPattern
from ledger_dev.harness.moto_patches import serialize_moto_dynamodb
from ledger_dev.harness.stream_poller import StreamMapping, StreamPoller
from ledger_dev.harness.template import table_definition
from support.documents import SEED_REDEMPTION_ID, payload
from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.models.webhooks import EventRedemptionSucceededData

TABLE = "voucherify-ledger-streams"
FN = "LedgerEventsFunction"


class Aws:
    def __init__(self) -> None:
        self.dynamodb = boto3.client("dynamodb")
        # botocore's account-based endpoint (<account>.streams-ddb.…) is not one moto in-process answers
        self.streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
        self.sqs = boto3.client("sqs")
        definition = table_definition(table_name=TABLE)  # the ledger table, with the stream LedgerEventsFunction reads
        definition["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        self.dynamodb.create_table(**definition)
        self.stream_arn = self.dynamodb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        self.dlq = self.sqs.create_queue(QueueName="ledger-events-dlq")["QueueUrl"]
        self.ledger = Ledger(TABLE, self.dynamodb)

    def put(self, pk: str, sk: str = "REDEMPTION", **values: str) -> None:
        item = {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"S": v} for k, v in values.items()}}
        self.dynamodb.put_item(TableName=TABLE, Item=item)

    def dead_letters(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(QueueUrl=self.dlq, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in answer.get("Messages") or []]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    serialize_moto_dynamodb()  # as make run: one stream record per write (moto_patches.faithful_moto_streams)
    with mock_aws():
        yield Aws()


class StandIn:
    """A stand-in handler: keeps each event, reports as failed the records whose pk is in ``failing``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.failing: set[str] = set()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(json.loads(json.dumps(event)))  # what Lambda would serialise
        failures = [
            {"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
            for r in event["Records"]
            if r["dynamodb"]["Keys"]["pk"]["S"] in self.failing
        ]
        return {"batchItemFailures": failures}

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for e in self.events for r in e["Records"]]

    def pks(self, event: dict[str, Any] | None = None) -> list[str]:
        return [r["dynamodb"]["Keys"]["pk"]["S"] for r in (event["Records"] if event else self.records)]


# The items events come from (the template's own filters are held to these in tests/unit/test_event_filters.py).
LEDGER_ITEMS = FilterPattern.parse(
    '{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "REDEMPTION#"}]}}}}'
)


def poller(aws: Aws, handler: StandIn, mapping: StreamMapping, **options: Any) -> StreamPoller:
    options = {"retry_base_seconds": 0.01, "retry_max_seconds": 0.01, "poll_interval_seconds": 0.02, **options}
    return StreamPoller(
        aws.streams, aws.stream_arn, handler, mapping, sqs=aws.sqs, on_failure_queue_url=aws.dlq, **options
    )


def test_the_ledgers_writes_reach_the_handler_as_lambdas_dynamodb_event_one_record_each(aws: Aws) -> None:
    handler = StandIn()
    data = EventRedemptionSucceededData.model_validate(payload("redemption_succeeded"))
    raw = json.dumps(payload("redemption_succeeded")).encode()
    delivery = Delivery(raw=raw, route="redemption-succeeded", received_at=datetime.now(UTC))

    assert aws.ledger.redemptions.record(data, delivery).status == "recorded"
    assert aws.ledger.redemptions.record(data, delivery).status == "duplicate"  # writes nothing: no record
    aws.put("IDEMPOTENCY#rollback-worker", "rollback-call#x")  # the filter drops these
    aws.put("RECONCILE", "STATE")
    poller(aws, handler, StreamMapping(FN, batch_size=100, filters=(LEDGER_ITEMS,))).drain()

    (event,) = handler.events
    (new,) = event["Records"]
    assert new["eventName"] == "INSERT"  # one record (moto wrote two: the key alone, then the update)
    assert (new["eventSource"], new["eventSourceARN"], new["awsRegion"]) == (
        "aws:dynamodb",
        aws.stream_arn,
        "eu-west-1",
    )
    assert new["dynamodb"]["Keys"] == {"pk": {"S": f"REDEMPTION#{SEED_REDEMPTION_ID}"}, "sk": {"S": "REDEMPTION"}}
    assert new["dynamodb"]["NewImage"]["status"] == {"S": "SUCCEEDED"}
    assert "OldImage" not in new["dynamodb"]
    assert isinstance(new["dynamodb"]["ApproximateCreationDateTime"], int)
    parsed = DynamoDBStreamEvent(event)  # as a function reads it
    (record,) = list(parsed.records)
    assert record.dynamodb is not None and record.dynamodb.new_image["status"] == "SUCCEEDED"
    binaries = [base64.b64decode(b) for b in _binaries(new["dynamodb"]["NewImage"])]
    assert raw in [zlib.decompress(b) for b in binaries]  # the raw delivery kept (zlib), base64 in the event


def _binaries(value: Any) -> list[str]:
    """Every ``B`` of a DynamoDB JSON value, at any depth."""
    if isinstance(value, dict):
        return [value["B"]] if set(value) == {"B"} else [b for v in value.values() for b in _binaries(v)]
    if isinstance(value, list):
        return [b for v in value for b in _binaries(v)]
    return []


def test_a_change_comes_with_both_images_and_a_write_that_changes_nothing_with_none(aws: Aws) -> None:
    handler = StandIn()
    aws.put("REDEMPTION#r_1", status="SUCCEEDED")
    aws.put("REDEMPTION#r_1", status="SUCCEEDED")  # the same item again
    aws.put("REDEMPTION#r_1", status="ROLLED_BACK")
    aws.dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "REDEMPTION#r_1"}, "sk": {"S": "REDEMPTION"}})

    poller(aws, handler, StreamMapping(FN, batch_size=10)).drain()

    names = [r["eventName"] for r in handler.records]
    assert names == ["INSERT", "MODIFY", "REMOVE"]
    modify = handler.records[1]["dynamodb"]
    assert (modify["OldImage"]["status"], modify["NewImage"]["status"]) == ({"S": "SUCCEEDED"}, {"S": "ROLLED_BACK"})


def test_records_come_in_batches_of_the_mappings_size_in_stream_order(aws: Aws) -> None:
    handler = StandIn()
    for n in range(25):
        aws.put(f"REDEMPTION#r_{n:02d}")

    poller(aws, handler, StreamMapping(FN, batch_size=10, batching_window_seconds=0.2)).drain()

    assert [len(e["Records"]) for e in handler.events] == [10, 10, 5]
    assert handler.pks() == [f"REDEMPTION#r_{n:02d}" for n in range(25)]


def test_a_record_that_keeps_failing_is_retried_then_its_place_goes_to_the_dead_letter_queue(aws: Aws) -> None:
    handler = StandIn()
    handler.failing = {"REDEMPTION#r_bad"}
    for pk in ("REDEMPTION#r_1", "REDEMPTION#r_bad", "REDEMPTION#r_3"):
        aws.put(pk)
    mapping = StreamMapping(FN, batch_size=10, report_batch_item_failures=True, maximum_retry_attempts=2)
    stream = poller(aws, handler, mapping)

    stream.drain()

    assert [handler.pks(e) for e in handler.events] == [
        ["REDEMPTION#r_1", "REDEMPTION#r_bad", "REDEMPTION#r_3"],
        ["REDEMPTION#r_bad", "REDEMPTION#r_3"],  # from the failed record on
        ["REDEMPTION#r_bad", "REDEMPTION#r_3"],
    ]
    (dead,) = aws.dead_letters()
    bad, third = handler.events[1]["Records"]
    info = dead["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        bad["dynamodb"]["SequenceNumber"],
        third["dynamodb"]["SequenceNumber"],
        2,
    )
    assert (info["streamArn"], dead["requestContext"]["condition"]) == (aws.stream_arn, "RetryAttemptsExhausted")
    assert dead["requestContext"]["approximateInvokeCount"] == 3
    assert dead["requestContext"]["functionArn"] == f"arn:aws:lambda:eu-west-1:123456789012:function:{FN}"

    aws.put("REDEMPTION#r_4")  # the stream has gone on
    stream.drain()
    assert handler.pks(handler.events[-1]) == ["REDEMPTION#r_4"]


def test_a_handler_that_raises_is_bisected_to_the_record_and_the_others_are_handed_over(aws: Aws) -> None:
    calls: list[list[str]] = []

    def crashes_on_bad(event: dict[str, Any], context: Any) -> None:
        pks = [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]
        calls.append(pks)
        if "REDEMPTION#r_bad" in pks:
            raise RuntimeError("cannot publish")

    for pk in ("REDEMPTION#r_1", "REDEMPTION#r_2", "REDEMPTION#r_bad", "REDEMPTION#r_4"):
        aws.put(pk)
    mapping = StreamMapping(FN, batch_size=10, bisect_batch_on_function_error=True, maximum_retry_attempts=0)

    StreamPoller(
        aws.streams, aws.stream_arn, crashes_on_bad, mapping, sqs=aws.sqs, on_failure_queue_url=aws.dlq
    ).drain()

    assert calls == [
        ["REDEMPTION#r_1", "REDEMPTION#r_2", "REDEMPTION#r_bad", "REDEMPTION#r_4"],
        ["REDEMPTION#r_1", "REDEMPTION#r_2"],
        ["REDEMPTION#r_bad", "REDEMPTION#r_4"],
        ["REDEMPTION#r_bad"],
        ["REDEMPTION#r_4"],
    ]
    (dead,) = aws.dead_letters()
    assert dead["DDBStreamBatchInfo"]["batchSize"] == 1 and dead["responseContext"]["functionError"] == "Unhandled"


def test_the_thread_follows_new_writes_stops_at_once_and_goes_on_after_its_checkpoint(aws: Aws) -> None:
    handler = StandIn()
    stream = poller(aws, handler, StreamMapping(FN, batch_size=10), max_runtime_seconds=60)
    stream.start()
    try:
        aws.put("REDEMPTION#r_1")
        assert stream.wait_idle(10)
        assert handler.pks() == ["REDEMPTION#r_1"]
        aws.put("REDEMPTION#r_2")
        assert stream.wait_idle(10)
    finally:
        started = time.monotonic()
        stream.stop()
        assert time.monotonic() - started < 2 and not stream.running
    aws.put("REDEMPTION#r_3")  # written while it was stopped

    stream.start()
    try:
        assert stream.wait_idle(10)
    finally:
        stream.stop()

    assert handler.pks() == ["REDEMPTION#r_1", "REDEMPTION#r_2", "REDEMPTION#r_3"]  # nothing twice, nothing lost
