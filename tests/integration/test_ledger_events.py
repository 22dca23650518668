"""The ledger's events end to end: the real webhook functions, the rollback worker and the reconciler write the ledger
(moto, the table's stream on), the stream's records are handed to LedgerEventsFunction as Lambda hands them (a
DynamoDB Streams event), and what reaches the bus is read back through a rule's SQS target: exactly the events
docs/events describes, each valid against its schema, none carrying personal data."""

from __future__ import annotations

import base64
import copy
import json
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from jsonschema import Draft202012Validator

from ledger_dev.harness.apigw import LambdaContext
from ledger_dev.harness.functions import load_handler
from ledger_dev.harness.template import PROJECT_ROOT, function_environment
from support.documents import compact, payload
from support.functions import REDEMPTION_FN, ROLLBACK_FN, Aws, LambdaApp, emitted_metrics
from support.listing import ListEndpoint, history
from support.worker import Harness
from voucherify_ledger.events.changes import events_of
from voucherify_ledger.events.details import DETAIL_TYPES, event_id
from voucherify_ledger.reconcile.run import Reconciler

FUNCTION = "LedgerEventsFunction"
BUS = "voucherify-ledger-test-ledger"
SCHEMAS = PROJECT_ROOT / "docs" / "events"
R1 = "r_0e2500291ae016adea"  # the seed redemption (events/payloads/redemption_succeeded.json)
RF = "rf_0e3ac5685ba431c104"  # events/payloads/redemption_failed.json
R_ROLLED, RR = "r_0e3ab1f3fb99fee4b9", "rr_0e3ac8762299fef1e3"  # events/payloads/redemption_rollback_succeeded.json
SCHEDULED, BACKFILLED = "r_5c4ed01ed0000000000001", "r_bacf111ed0000000000001"
# What the deliveries say of their customers: no event may repeat it.
CUSTOMER = {
    "name": "Zofia Prywatna",
    "email": "zofia.prywatna@example.org",
    "phone": "+48 600 700 800",
    "address": {"line_1": "ul. Tajna 7", "city": "Gdańsk", "postal_code": "80-001", "country": "PL"},
    "metadata": {"loyalty_note": "prefers-evening-calls"},
}
PERSONAL = (
    "Zofia",
    "Prywatna",
    "zofia.prywatna@example.org",
    "600 700 800",
    "Tajna",
    "Gdańsk",
    "prefers-evening-calls",
    "Jane Doe",
    "jane@jane.io",
    "Jack Webhook",
    "jck-wbhk",
    "test_customer_id_2",
)


# --- the stream and the bus ----------------------------------------------------------------------------------
def _lambda_value(value: Any) -> Any:
    """An attribute value of a GetRecords answer as a Lambda event carries it: binary values base64-encoded."""
    if isinstance(value, dict):
        found = {}
        for kind, inner in value.items():
            if kind == "B":
                found[kind] = base64.b64encode(inner).decode("ascii")
            elif kind == "BS":
                found[kind] = [base64.b64encode(b).decode("ascii") for b in inner]
            else:
                found[kind] = _lambda_value(inner)
        return found
    if isinstance(value, list):
        return [_lambda_value(v) for v in value]
    return value


class Stream:
    """The ledger table's stream, read from the start, as the Lambda events of its records."""

    def __init__(self, aws: Aws) -> None:
        table = aws.dynamodb.describe_table(TableName=aws.table_name)["Table"]
        if not (table.get("StreamSpecification") or {}).get("StreamEnabled"):
            aws.dynamodb.update_table(
                TableName=aws.table_name,
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )
            table = aws.dynamodb.describe_table(TableName=aws.table_name)["Table"]
        assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        self.arn = table["LatestStreamArn"]
        # The streams endpoint by region, as moto serves it (not the account-based endpoint botocore may choose).
        self.client = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))

    def records(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for shard in self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]:
            iterator = self.client.get_shard_iterator(
                StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = self.client.get_records(ShardIterator=iterator, Limit=1000)
                if not page["Records"]:
                    break
                found.extend(page["Records"])
                iterator = page.get("NextShardIterator")
        return [self._lambda_record(record) for record in found]

    def _lambda_record(self, record: dict[str, Any]) -> dict[str, Any]:
        stream = dict(record["dynamodb"])
        stream["ApproximateCreationDateTime"] = stream["ApproximateCreationDateTime"].timestamp()
        return {**record, "eventSourceARN": self.arn, "dynamodb": _lambda_value(stream)}

    def event(self) -> dict[str, Any]:
        return {"Records": self.records()}


class Bus:
    """The function's bus, with a rule sending every voucherify.ledger event to an SQS queue."""

    def __init__(self) -> None:
        self.events, self.sqs = boto3.client("events"), boto3.client("sqs")
        self.events.create_event_bus(Name=BUS)
        self.queue_url = self.sqs.create_queue(QueueName="ledger-events-consumer")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self.events.put_rule(
            Name="ledger-events", EventBusName=BUS, EventPattern=json.dumps({"source": ["voucherify.ledger"]})
        )
        self.events.put_targets(
            Rule="ledger-events", EventBusName=BUS, Targets=[{"Id": "consumer", "Arn": queue_arn["QueueArn"]}]
        )

    def received(self) -> list[dict[str, Any]]:
        """Every event the queue holds (then none), as the rule's target got it."""
        found: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def stream(aws: Aws) -> Stream:
    return Stream(aws)


@pytest.fixture
def bus(aws: Aws) -> Bus:
    return Bus()


@pytest.fixture
def ledger_events(aws: Aws, stream: Stream, bus: Bus, monkeypatch: pytest.MonkeyPatch) -> LambdaApp:
    """LedgerEventsFunction loaded as Lambda loads it, with its template environment (the stack's bus: the test's)."""
    environment = function_environment(FUNCTION, {"LedgerTable": aws.table_name, "LedgerEventBus": BUS})
    assert environment["EVENT_BUS_NAME"] == BUS
    for name, value in {**environment, "POWERTOOLS_METRICS_NAMESPACE": "VoucherifyLedgerTest"}.items():
        monkeypatch.setenv(name, value)
    load_handler(FUNCTION)
    return LambdaApp(FUNCTION, sys.modules[f"functions.{FUNCTION}.app"])


def invoke(app: LambdaApp, event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = app.module.lambda_handler(event, LambdaContext(function_name=FUNCTION, timeout_seconds=30))
    return result


def schemas() -> dict[str, Draft202012Validator]:
    return {
        detail_type: Draft202012Validator(
            json.loads(Path(SCHEMAS / f"{model.SLUG}.schema.json").read_text(encoding="utf-8"))
        )
        for detail_type, model in DETAIL_TYPES.items()
    }


def assert_valid_and_private(events: list[dict[str, Any]]) -> None:
    validators = schemas()
    for event in events:
        assert event["source"] == "voucherify.ledger" and event["resources"] == []
        errors = list(validators[event["detail-type"]].iter_errors(event["detail"]))
        assert errors == [], (event["detail-type"], [e.message for e in errors])
    text = json.dumps(events, ensure_ascii=False)
    for value in PERSONAL:
        assert value not in text, f"an event repeats {value!r}"


def by_subject(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each event's detail by (detail type, what it is about); no two events of a run about the same thing."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        detail = event["detail"]
        subject = (
            (detail.get("rollback_id") if event["detail-type"] == "Redemption Rolled Back" else None)
            or detail.get("redemption_id")
            or detail.get("quarantine_id")
            or detail["request_id"]
        )
        key = (event["detail-type"], str(subject))
        assert key not in found, f"two events {key}"
        found[key] = detail
    return found


# --- the deliveries ------------------------------------------------------------------------------------------
def with_customer(data: dict[str, Any]) -> dict[str, Any]:
    """A delivery whose customer carries everything personal Voucherify may send."""
    data = copy.deepcopy(data)
    for holder in (data, data.get("redemption") or {}):
        if isinstance(holder.get("customer"), dict):
            holder["customer"].update(copy.deepcopy(CUSTOMER))
    data["redemption"]["metadata"] = {"note": CUSTOMER["metadata"]["loyalty_note"]}
    return data


def listed(redemption_id: str, when: datetime) -> dict[str, Any]:
    """A redemption object of Voucherify's list, with its customer's personal data."""
    (obj,) = [o for o in history(2, seed=3)[0] if o["id"].startswith("r_")]
    obj = copy.deepcopy(obj)
    obj["id"], obj["date"] = redemption_id, when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(obj.get("customer"), dict):
        obj["customer"].update(copy.deepcopy(CUSTOMER))
    return obj


def write_the_ledger(make_harness: Callable[..., Harness], lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    """A new redemption, its duplicate, a failed redemption, a rollback, a quarantined delivery, a rollback request
    Voucherify refuses, a redemption a scheduled reconcile run records and one a backfill records."""
    harness = make_harness()
    redemptions, rollbacks = lambda_app(REDEMPTION_FN), lambda_app(ROLLBACK_FN)
    seed = compact(with_customer(payload("redemption_succeeded")))
    assert redemptions.post(seed).body["status"] == "recorded"
    assert redemptions.post(seed).body["status"] == "duplicate"
    assert redemptions.post(compact(with_customer(payload("redemption_failed")))).body["ledger_status"] == "FAILED"
    assert rollbacks.post(compact(payload("redemption_rollback_succeeded"))).body["ledger_status"] == "ROLLED_BACK"
    invalid = with_customer(payload("redemption_succeeded"))
    invalid["redemption"]["status"] = "PARTIALLY_SUCCEEDED"
    assert redemptions.post(compact(invalid)).status == 202

    harness.fake.fail("failure", failure_code="customer_rules_violated", failure_message="Not for Zofia Prywatna")
    harness.send(redemption_id=R1, request_id="cancel-1001", customer={"id": "cust_1", "email": CUSTOMER["email"]})
    harness.drain()
    assert harness.request(R1, "cancel-1001")["state"] == "FAILED"

    now = datetime.now(UTC)
    scheduled = Reconciler(
        aws.ledger, ListEndpoint([listed(SCHEDULED, now - timedelta(minutes=10))]), overlap=timedelta(hours=1)
    )
    assert scheduled.run(now, time_left=lambda: 60).counts.recorded == 1
    since = now - timedelta(days=30)
    aws.ledger.reconciliation.start_job(since, since + timedelta(days=1), now)
    backfill = Reconciler(
        aws.ledger, ListEndpoint([listed(BACKFILLED, since + timedelta(hours=3))]), overlap=timedelta(hours=1)
    )
    assert backfill.run(now, time_left=lambda: 60).counts.recorded == 1


# --- the tests -----------------------------------------------------------------------------------------------
def test_the_ledgers_changes_reach_the_bus_as_exactly_the_documented_events(
    make_harness: Callable[..., Harness],
    lambda_app: Callable[..., LambdaApp],
    aws: Aws,
    stream: Stream,
    bus: Bus,
    ledger_events: LambdaApp,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_the_ledger(make_harness, lambda_app, aws)
    event = stream.event()
    capsys.readouterr()

    answer = invoke(ledger_events, event)
    received = bus.received()

    assert answer == {"batchItemFailures": []}
    assert Counter(e["detail-type"] for e in received) == {
        "Redemption Recorded": 3,  # the seed, the scheduled run's, the backfill's
        "Redemption Failed": 1,
        "Redemption Rolled Back": 1,
        "Rollback Request Failed": 1,  # its failed rollback (rrf_…) leaves the redemption as it was: no event
        "Delivery Quarantined": 1,
        "Reconciled Missing": 2,
    }
    assert_valid_and_private(received)
    found = by_subject(received)
    seed = found[("Redemption Recorded", R1)]
    assert seed["event_id"] == event_id("Redemption Recorded", R1)
    assert (seed["status"], seed["recorded_by"], seed["order_id"], seed["discount_amount"]) == (
        "SUCCEEDED",
        "webhook",
        "ord_3VYCHwdV0YOOch2nm1RsTKNI",
        1000,
    )
    assert seed["customer_id"] == "cust_1g637SqVZnkdPNdAIZ7Ra879" and seed["voucher_code"] == "Always-add-prods-5"
    failed = found[("Redemption Failed", RF)]
    assert (failed["status"], failed["failure_code"]) == ("FAILED", "no_applicable_redeemables")
    rolled = found[("Redemption Rolled Back", RR)]
    assert (rolled["redemption_id"], rolled["status"], rolled["recorded_by"]) == (R_ROLLED, "ROLLED_BACK", "webhook")
    request = found[("Rollback Request Failed", R1)]
    assert (request["request_id"], request["error_key"], request["error_status"]) == (
        "cancel-1001",
        "customer_rules_violated",
        200,
    )
    assert request["rollback_id"].startswith("rrf_") and request["dead_lettered"] is False
    (quarantined,) = [d for (t, _), d in found.items() if t == "Delivery Quarantined"]
    assert quarantined["route"] == "redemption-succeeded" and quarantined["quarantine_id"].startswith("q_")
    assert found[("Redemption Recorded", SCHEDULED)]["recorded_by"] == "reconciler"
    assert "backfill_job_id" not in found[("Reconciled Missing", SCHEDULED)]  # a lost delivery
    assert found[("Reconciled Missing", BACKFILLED)]["backfill_job_id"].startswith("bf_")  # history
    # each event's time is its change's: the stream record's
    times = {e["detail"]["event_id"]: e["time"] for e in received}
    assert all(t.startswith(str(datetime.now(UTC).year)) for t in times.values())
    assert emitted_metrics(capsys.readouterr().out) == {"LedgerEventsPublished": 9, "LedgerEventsFailed": 0}

    # The same records again (a retried batch): the same events, with the same event ids to deduplicate on.
    assert invoke(ledger_events, event) == {"batchItemFailures": []}
    again = bus.received()
    assert sorted(e["detail"]["event_id"] for e in again) == sorted(e["detail"]["event_id"] for e in received)
    assert sorted(json.dumps(e["detail"], sort_keys=True) for e in again) == sorted(
        json.dumps(e["detail"], sort_keys=True) for e in received
    )


def test_the_sample_stream_event_is_what_the_stream_gives(
    lambda_app: Callable[..., LambdaApp], stream: Stream, bus: Bus, ledger_events: LambdaApp
) -> None:
    """events/ledger_events_stream.json (``sam local invoke LedgerEventsFunction``) holds the records the ledger's
    writes give, and its batch gives every detail type once."""
    sample = json.loads((PROJECT_ROOT / "events" / "ledger_events_stream.json").read_text(encoding="utf-8"))
    lambda_app(REDEMPTION_FN).post(compact(payload("redemption_succeeded")))
    (written,) = [r for r in stream.records() if "redemption_recorded_at" in r["dynamodb"].get("NewImage", {})]
    (sampled,) = [r for r in sample["Records"] if r["dynamodb"]["Keys"] == written["dynamodb"]["Keys"]]

    assert set(sampled) == set(written) and set(sampled["dynamodb"]) == set(written["dynamodb"])
    assert set(sampled["dynamodb"]["NewImage"]) == set(written["dynamodb"]["NewImage"])
    ((sampled_event,), (written_event,)) = events_of(sampled), events_of(written)
    assert sampled_event.detail.model_dump(exclude={"recorded_at"}) == written_event.detail.model_dump(
        exclude={"recorded_at"}
    )

    assert invoke(ledger_events, sample) == {"batchItemFailures": []}
    received = bus.received()
    assert sorted(e["detail-type"] for e in received) == sorted(
        ["Redemption Recorded", *DETAIL_TYPES]  # the seed's and the reconciled one's
    )
    assert_valid_and_private(received)


class FlakyEvents:
    """EventBridge (moto) behind a client that answers ``FailedEntryCount`` for the entries ``fails`` picks."""

    def __init__(self, real: Any, fails: Callable[[dict[str, Any], int], bool]) -> None:
        self.real, self.fails = real, fails
        self.sent: Counter[str] = Counter()  # event_id → times sent

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        refused = []
        for entry in Entries:
            key = json.loads(entry["Detail"])["event_id"]
            self.sent[key] += 1
            refused.append(self.fails(entry, self.sent[key]))
        kept = [entry for entry, no in zip(Entries, refused, strict=True) if not no]
        put = iter(self.real.put_events(Entries=kept)["Entries"] if kept else [])
        answered = [
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"} if no else next(put) for no in refused
        ]
        return {"FailedEntryCount": sum(refused), "Entries": answered}


def test_entries_putevents_refuses_are_retried_then_their_records_reported(
    lambda_app: Callable[..., LambdaApp],
    stream: Stream,
    bus: Bus,
    ledger_events: LambdaApp,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    redemptions, rollbacks = lambda_app(REDEMPTION_FN), lambda_app(ROLLBACK_FN)
    redemptions.post(compact(payload("redemption_succeeded")))
    redemptions.post(compact(payload("redemption_failed")))
    rollbacks.post(compact(payload("redemption_rollback_succeeded")))
    event = stream.event()
    publisher = ledger_events.module.stream.publisher
    publisher._sleep = lambda seconds: None
    real = publisher.client

    # Refused twice, then put: retried within the invocation, nothing reported.
    publisher.client = flaky = FlakyEvents(real, lambda e, n: e["DetailType"] == "Redemption Failed" and n <= 2)
    capsys.readouterr()
    assert invoke(ledger_events, event) == {"batchItemFailures": []}
    assert sorted(e["detail-type"] for e in bus.received()) == [
        "Redemption Failed",
        "Redemption Recorded",
        "Redemption Rolled Back",
    ]
    assert sorted(flaky.sent.values()) == [1, 1, 3]
    assert emitted_metrics(capsys.readouterr().out) == {"LedgerEventsPublished": 3, "LedgerEventsFailed": 0}

    # Refused every time: given up on after the publisher's attempts; its record and every later one reported.
    publisher.client = flaky = FlakyEvents(real, lambda e, n: e["DetailType"] == "Redemption Failed")
    answer = invoke(ledger_events, event)

    gives = [[e.detail_type for e in events_of(record)] for record in event["Records"]]
    first = next(i for i, types in enumerate(gives) if "Redemption Failed" in types)
    expected = [r["dynamodb"]["SequenceNumber"] for r in event["Records"][first:]]
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == expected
    # The rollback's event went in the same request and was put: its record is reported all the same (the stream
    # retries from the failed record, in order), and its event comes again, with the same event_id.
    assert sorted(e["detail-type"] for e in bus.received()) == ["Redemption Recorded", "Redemption Rolled Back"]
    assert sorted(flaky.sent.values()) == [1, 1, publisher.attempts]
    output = capsys.readouterr().out
    assert emitted_metrics(output) == {"LedgerEventsPublished": 2, "LedgerEventsFailed": len(expected)}
    (warning,) = [r for r in caplog.records if r.getMessage() == "ledger events not put"]
    failed_record = warning.__dict__["failed_record"]
    assert failed_record["error_codes"] == ["ThrottlingException"] and failed_record["records_failed"] == len(expected)
    assert failed_record["detail_types"] == ["Redemption Failed"]  # ids and codes: no detail in the log
