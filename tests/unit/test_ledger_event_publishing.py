"""PutEvents and the stream batch (voucherify_ledger.events.publisher and .stream) against a stub EventBridge client:
requests of at most 10 entries and 256 KB, failed entries sent again a bounded number of times, and the records of a
batch reported failed from the first whose events were not put."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from voucherify_ledger.events.changes import LedgerEvent
from voucherify_ledger.events.details import RedemptionRecorded, event_id
from voucherify_ledger.events.publisher import MAX_REQUEST_BYTES, EventPublisher, chunks, entry_size
from voucherify_ledger.events.stream import LedgerEventsSettings, LedgerEventsStream
from voucherify_ledger.settings import SettingsError

BUS = "voucherify-ledger-test-ledger"
WHEN = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def recorded(n: int, code: str = "CODE") -> LedgerEvent:
    redemption_id = f"r_{n:018x}"
    detail = RedemptionRecorded(
        event_id=event_id("Redemption Recorded", redemption_id),
        redemption_id=redemption_id,
        status="SUCCEEDED",
        recorded_by="webhook",
        voucher_code=code,
    )
    return LedgerEvent(detail, WHEN)


class StubEvents:
    """PutEvents as EventBridge answers it; ``fail(entry_number, attempt)`` says which entries fail (an ErrorCode)."""

    def __init__(self, fail: Callable[[int, int], str | None] = lambda n, a: None) -> None:
        self.fail = fail
        self.requests: list[list[dict[str, Any]]] = []
        self.tries: dict[str, int] = {}  # event_id → times sent
        self.raise_on: set[int] = set()  # request numbers answered with a ClientError

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.requests.append(Entries)
        if len(self.requests) in self.raise_on:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutEvents")
        answered, failed = [], 0
        for entry in Entries:
            detail = json.loads(entry["Detail"])
            attempt = self.tries[detail["event_id"]] = self.tries.get(detail["event_id"], 0) + 1
            code = self.fail(int(detail["redemption_id"][2:], 16), attempt)
            if code:
                failed += 1
                answered.append({"ErrorCode": code, "ErrorMessage": "try again"})
            else:
                answered.append({"EventId": f"ev-{detail['redemption_id']}"})
        return {"FailedEntryCount": failed, "Entries": answered}

    def sent(self) -> list[str]:
        return [json.loads(e["Detail"])["redemption_id"] for request in self.requests for e in request]


def publisher(client: StubEvents, **options: Any) -> EventPublisher:
    return EventPublisher(client, BUS, sleep=lambda seconds: None, **options)


# --- the publisher -----------------------------------------------------------------------------------------
def test_each_entry_is_the_event_on_the_bus() -> None:
    client = StubEvents()

    result = publisher(client).put([recorded(1)])

    ((entry,),) = client.requests
    assert entry == {
        "Source": "voucherify.ledger",
        "DetailType": "Redemption Recorded",
        "Detail": recorded(1).detail.as_json(),
        "EventBusName": BUS,
        "Resources": [],
        "Time": WHEN,
    }
    assert ": " not in entry["Detail"] and ", " not in entry["Detail"]  # compact
    assert (result.published, result.event_ids, result.requests) == (1, [f"ev-r_{1:018x}"], 1)


def test_requests_hold_at_most_ten_entries_in_order() -> None:
    client = StubEvents()

    result = publisher(client).put([recorded(n) for n in range(23)])

    assert [len(r) for r in client.requests] == [10, 10, 3]
    assert client.sent() == [f"r_{n:018x}" for n in range(23)]
    assert result.published == 23 and result.first_failed() is None


def test_requests_stay_under_256_kb() -> None:
    big = [recorded(n, code="C" * 40_000) for n in range(9)]  # 9 × 40 KB: 6 fit in one request
    client = StubEvents()

    publisher(client).put(big)

    assert [len(r) for r in client.requests] == [6, 3]
    assert all(sum(entry_size(e) for e in r) <= MAX_REQUEST_BYTES for r in client.requests)
    assert chunks([]) == []


def test_an_entry_too_large_for_any_request_is_not_sent_nor_what_follows() -> None:
    client = StubEvents()

    result = publisher(client).put([recorded(0), recorded(1, code="C" * MAX_REQUEST_BYTES), recorded(2)])

    assert client.sent() == [f"r_{0:018x}"]
    assert result.first_failed() == 1 and result.errors[1] == "EntryTooLarge"


def test_failed_entries_are_sent_again_alone_until_they_are_put() -> None:
    client = StubEvents(lambda n, attempt: "ThrottlingException" if n in (2, 5) and attempt < 3 else None)
    slept: list[float] = []

    result = EventPublisher(client, BUS, sleep=slept.append).put([recorded(n) for n in range(7)])

    assert [len(r) for r in client.requests] == [7, 2, 2]  # then only the two that failed, twice
    assert result.published == 7 and result.first_failed() is None
    assert result.retried == 4 and result.error_codes == {"ThrottlingException": 4}
    assert len(slept) == 2 and all(0 < s < 1 for s in slept) and slept[0] < slept[1] * 2


def test_entries_that_keep_failing_are_given_up_on_and_stop_the_publishing() -> None:
    client = StubEvents(lambda n, attempt: "InternalFailure" if n == 12 else None)

    result = publisher(client, attempts=3).put([recorded(n) for n in range(25)])

    # the second request's entry 12 fails three times; the third request is never sent
    assert [len(r) for r in client.requests] == [10, 10, 1, 1]
    assert result.first_failed() == 12 and result.errors[12] == "InternalFailure"
    assert result.published == 19 and result.event_ids[20:] == [None] * 5


def test_a_request_that_fails_whole_is_sent_again() -> None:
    client = StubEvents()
    client.raise_on = {1}

    result = publisher(client).put([recorded(n) for n in range(3)])

    assert [len(r) for r in client.requests] == [3, 3]
    assert result.published == 3 and result.error_codes == {"ThrottlingException": 3}


def test_no_request_without_time_for_it() -> None:
    client = StubEvents()

    result = publisher(client).put([recorded(1)], time_left=lambda: 2.0)

    assert client.requests == [] and result.errors == ["OutOfTime"]


# --- a stream batch -------------------------------------------------------------------------------------------
class Recorder:
    """Logger and Metrics stand-in: what the service said."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def add_metric(self, *, name: str, unit: str, value: float) -> None:
        self.metrics[name] = self.metrics.get(name, 0) + value

    def info(self, message: str, **fields: Any) -> None:
        self.lines.append(("info", message, fields))

    def warning(self, message: str, **fields: Any) -> None:
        self.lines.append(("warning", message, fields))


def stream_event(count: int) -> dict[str, Any]:
    return {
        "Records": [
            {"eventName": "INSERT", "eventSource": "aws:dynamodb", "dynamodb": {"SequenceNumber": str(100 + n)}}
            for n in range(count)
        ]
    }


def events_by_sequence(per_record: dict[int, int]) -> Callable[[Any], list[LedgerEvent]]:
    """A mapper: record n (sequence 100 + n) gives ``per_record[n]`` events (default 1), numbered n * 10 + i."""

    def mapper(record: Any) -> list[LedgerEvent]:
        n = int(record.dynamodb.sequence_number) - 100
        if per_record.get(n) == -1:
            raise KeyError("an image the mapping does not know")
        return [recorded(n * 10 + i) for i in range(per_record.get(n, 1))]

    return mapper


def service(client: StubEvents, mapper: Callable[[Any], list[LedgerEvent]], recorder: Recorder) -> LedgerEventsStream:
    return LedgerEventsStream(publisher(client), logger=recorder, metrics=recorder, mapper=mapper)


def failures(answer: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in answer["batchItemFailures"]]


def test_a_batch_whose_events_are_all_put_reports_no_failure() -> None:
    client, recorder = StubEvents(), Recorder()

    answer = service(client, events_by_sequence({1: 0, 2: 3}), recorder).process(stream_event(14), None)

    assert answer == {"batchItemFailures": []}
    assert [len(r) for r in client.requests] == [10, 5]  # 15 events of 14 records, across records
    assert recorder.metrics == {"LedgerEventsPublished": 15, "LedgerEventsFailed": 0}
    assert recorder.lines == [("info", "ledger events put", {"records": 14, "published": 15, "records_failed": 0})]


def test_from_the_first_record_whose_events_were_not_put_every_record_is_reported() -> None:
    client, recorder = StubEvents(lambda n, attempt: "ThrottlingException" if n == 41 else None), Recorder()

    answer = service(client, events_by_sequence({4: 2}), recorder).process(stream_event(8), None)

    assert failures(answer) == ["104", "105", "106", "107"]  # record 4's second event, then every later record
    assert recorder.metrics == {"LedgerEventsPublished": 8, "LedgerEventsFailed": 4}
    ((level, message, fields),) = recorder.lines
    assert (level, message) == ("warning", "ledger events not put")
    assert fields["failed_record"] == {
        "sequence_number": "104",
        "event_name": "INSERT",
        "reason": "its events were not put (ThrottlingException)",
        "error_codes": ["ThrottlingException"],
        "detail_types": ["Redemption Recorded", "Redemption Recorded"],
        "event_ids": [recorded(40).detail.event_id, recorded(41).detail.event_id],
        "records_failed": 4,
    }


def test_a_record_that_cannot_be_mapped_fails_with_every_later_one_and_the_earlier_are_put() -> None:
    client, recorder = StubEvents(), Recorder()

    answer = service(client, events_by_sequence({3: -1}), recorder).process(stream_event(6), None)

    assert failures(answer) == ["103", "104", "105"]
    assert client.sent() == [f"r_{n * 10:018x}" for n in range(3)]
    assert recorder.lines[0][2]["failed_record"]["reason"] == "its change could not be read (KeyError)"


def test_a_batch_that_fails_whole_is_answered_not_raised() -> None:
    client, recorder = StubEvents(lambda n, attempt: "InternalFailure"), Recorder()

    answer = service(client, events_by_sequence({}), recorder).process(stream_event(3), None)

    assert failures(answer) == ["100", "101", "102"]
    assert len(client.requests) == 4  # one request, sent four times: no later record was sent


def test_the_same_service_answers_the_next_batch_afresh() -> None:
    state = {"fail": True}
    client, recorder = StubEvents(lambda n, attempt: "InternalFailure" if state["fail"] else None), Recorder()
    stream = service(client, events_by_sequence({}), recorder)

    assert failures(stream.process(stream_event(2), None)) == ["100", "101"]
    state["fail"] = False
    assert failures(stream.process(stream_event(2), None)) == []


def test_settings() -> None:
    assert LedgerEventsSettings.from_env({"EVENT_BUS_NAME": BUS}).event_bus_name == BUS
    arn = "arn:aws:events:eu-west-1:123456789012:event-bus/ledger"
    assert LedgerEventsSettings.from_env({"EVENT_BUS_NAME": arn}).event_bus_name == arn
    for env in ({}, {"EVENT_BUS_NAME": ""}, {"EVENT_BUS_NAME": "a bus with spaces"}):
        with pytest.raises(SettingsError, match="EVENT_BUS_NAME"):
            LedgerEventsSettings.from_env(env)
