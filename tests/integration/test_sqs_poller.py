"""The SQS poller: real SQS Lambda events, partial batch responses, redrive to the DLQ (moto in-process)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import SQSEvent

from ledger_dev.harness.queues import create_queues
from ledger_dev.harness.sqs_poller import SqsPoller
from ledger_dev.harness.template import load_template, resources
from support.functions import Aws


class Recorder:
    """A handler that records its events and fails the messages whose body says so."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.raise_error = False
        self.answer: Any = None

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        if self.raise_error:
            raise RuntimeError("handler crashed")
        if self.answer is not None:
            return self.answer
        failures = []
        for record in event["Records"]:
            if record["body"].startswith("fail"):
                failures.append({"itemIdentifier": record["messageId"]})
                # as the worker does: come back at once (the queue's visibility timeout is 180 s)
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
                )
        return {"batchItemFailures": failures}


@pytest.fixture
def queues(aws: Aws) -> tuple[Any, str, str]:
    sqs = boto3.client("sqs")
    refs = {name: str(p.get("Default", "")) for name, p in load_template()["Parameters"].items()}
    made = {q.logical_id: q for q in create_queues(sqs, resources("AWS::SQS::Queue"), refs)}
    return sqs, made["RollbackQueue"].url, made["RollbackDeadLetterQueue"].url


@pytest.fixture
def poller(queues: tuple[Any, str, str]) -> Callable[..., tuple[SqsPoller, Recorder]]:
    sqs, url, _ = queues

    def build(**options: Any) -> tuple[SqsPoller, Recorder]:
        recorder = Recorder(sqs, url)
        return SqsPoller(sqs, url, recorder, wait_time_seconds=0, **options), recorder

    return build


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_records_are_the_sqs_event_lambda_sends(
    queues: tuple[Any, str, str], poller: Callable[..., tuple[SqsPoller, Recorder]]
) -> None:
    sqs, url, _ = queues
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody='{"redemption_id":"r_1"}',
        MessageAttributes={
            "origin": {"DataType": "String", "StringValue": "orders"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    worker, recorder = poller(timeout_seconds=30)

    result = worker.poll_once()

    assert result.deleted == [sent["MessageId"]]
    ((record,),) = [e["Records"] for e in recorder.events]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == ("aws:sqs", arn, "eu-west-1")
    assert record["messageId"] == sent["MessageId"] and record["receiptHandle"]
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert record["md5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    attributes = record["attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"
    assert int(attributes["ApproximateFirstReceiveTimestamp"]) >= int(attributes["SentTimestamp"]) > 0
    assert record["messageAttributes"]["origin"] == {
        "stringValue": "orders",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="
    parsed = next(iter(SQSEvent(recorder.events[0]).records))  # Powertools reads it as Lambda's
    assert parsed.attributes.approximate_receive_count == "1" and parsed.message_attributes["origin"].string_value
    assert recorder.contexts[0].get_remaining_time_in_millis() > 25_000
    assert depth(sqs, url) == 0


def test_only_reported_failures_stay_on_the_queue(
    queues: tuple[Any, str, str], poller: Callable[..., tuple[SqsPoller, Recorder]]
) -> None:
    sqs, url, _ = queues
    ids = {body: sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"] for body in ("ok-1", "fail-1", "ok-2")}
    worker, _ = poller()

    result = worker.poll_once()

    assert result.received == 3
    assert sorted(result.deleted) == sorted([ids["ok-1"], ids["ok-2"]]) and result.failed == [ids["fail-1"]]
    (again,) = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["All"])["Messages"]
    assert again["MessageId"] == ids["fail-1"] and again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_crash_or_an_invalid_answer_fails_the_whole_batch(
    queues: tuple[Any, str, str], poller: Callable[..., tuple[SqsPoller, Recorder]]
) -> None:
    sqs, url, _ = queues
    sqs.send_message(QueueUrl=url, MessageBody="ok")
    worker, recorder = poller()
    recorder.raise_error = True
    crashed = worker.poll_once()
    assert crashed.deleted == [] and crashed.error and depth(sqs, url) == 1

    sqs.send_message(QueueUrl=url, MessageBody="ok too")  # the first one is in flight until its timeout
    recorder.raise_error = False
    recorder.answer = {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}
    invalid = worker.poll_once()
    assert invalid.received == 1 and invalid.deleted == [] and len(invalid.failed) == 1 and depth(sqs, url) == 2


def test_moto_moves_a_message_to_the_dlq_after_max_receive_count(
    queues: tuple[Any, str, str], poller: Callable[..., tuple[SqsPoller, Recorder]]
) -> None:
    sqs, url, dlq = queues
    message_id = sqs.send_message(QueueUrl=url, MessageBody="fail-always")["MessageId"]
    max_receive = load_template()["Parameters"]["RollbackMaxReceiveCount"]["Default"]
    worker, recorder = poller()

    results = worker.drain(max_polls=max_receive + 3)

    assert [r.failed for r in results] == [[message_id]] * max_receive
    counts = [e["Records"][0]["attributes"]["ApproximateReceiveCount"] for e in recorder.events]
    assert counts == [str(n) for n in range(1, max_receive + 1)]
    assert depth(sqs, url) == 0
    (dead,) = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert (dead["MessageId"], dead["Body"]) == (message_id, "fail-always")


def test_the_background_thread_polls_and_stops(
    queues: tuple[Any, str, str], poller: Callable[..., tuple[SqsPoller, Recorder]]
) -> None:
    sqs, url, _ = queues
    worker, recorder = poller(idle_sleep_seconds=0.02)
    for n in range(12):
        sqs.send_message(QueueUrl=url, MessageBody=f"ok-{n}")

    worker.start()
    for _ in range(200):  # bounded wait for the outcome, no timing asserted
        if depth(sqs, url) == 0:
            break
        time.sleep(0.02)
    worker.stop()

    assert depth(sqs, url) == 0 and not worker.running
    assert sum(len(e["Records"]) for e in recorder.events) == 12
    assert max(len(e["Records"]) for e in recorder.events) <= 10


def test_the_thread_stops_by_itself_when_its_time_is_up(poller: Callable[..., tuple[SqsPoller, Recorder]]) -> None:
    worker, _ = poller(max_runtime_seconds=0.0)
    worker.start()
    stopped = threading.Event()
    for _ in range(100):
        if not worker.running:
            stopped.set()
            break
        time.sleep(0.02)
    assert stopped.is_set()
    worker.stop()


def test_batch_size_is_bounded(queues: tuple[Any, str, str]) -> None:
    sqs, url, _ = queues
    with pytest.raises(ValueError, match="batch_size"):
        SqsPoller(sqs, url, lambda e, c: None, batch_size=11)
