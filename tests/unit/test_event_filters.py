"""Lambda's event filtering as the local stream poller applies it (EventBridge pattern syntax on the record): the
matchers, nesting, lists, absence, ``$or``, several filters OR'ed, and a pattern the emulation does not understand
refused when read — with the template's own filters on the ledger's items."""

from __future__ import annotations

from typing import Any

import pytest

from ledger_dev.harness.event_filters import FilterPattern, FilterPatternError, matches_any
from ledger_dev.harness.template import template_values
from ledger_dev.local_stack.streams import stream_events, stream_mapping


def item(pk: str, event_name: str = "INSERT", **new: Any) -> dict[str, Any]:
    image = {"pk": {"S": pk}, "sk": {"S": "REDEMPTION"}, **{k: {"S": v} for k, v in new.items()}}
    return {"eventName": event_name, "dynamodb": {"Keys": {"pk": image["pk"], "sk": image["sk"]}, "NewImage": image}}


def matches(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    return FilterPattern.parse(pattern).matches(record)


@pytest.mark.parametrize(
    ("matcher", "value", "expected"),
    [
        ("INSERT", "INSERT", True),
        ("INSERT", "MODIFY", False),
        ({"prefix": "REDEMPTION#"}, "REDEMPTION#r_1", True),
        ({"prefix": "REDEMPTION#"}, "QUARANTINE#q_1", False),
        ({"prefix": {"equals-ignore-case": "redemption#"}}, "REDEMPTION#r_1", True),
        ({"suffix": "#r_1"}, "REDEMPTION#r_1", True),
        ({"equals-ignore-case": "insert"}, "INSERT", True),
        ({"wildcard": "REDEMPTION#*_1"}, "REDEMPTION#rf_1", True),
        ({"wildcard": "REDEMPTION#*_1"}, "REDEMPTION#rf_2", False),
        ({"anything-but": "REMOVE"}, "INSERT", True),
        ({"anything-but": ["INSERT", "MODIFY"]}, "MODIFY", False),
        ({"anything-but": {"prefix": "IDEMPOTENCY#"}}, "IDEMPOTENCY#rollback-worker", False),
        ({"anything-but": {"prefix": "IDEMPOTENCY#"}}, "REDEMPTION#r_1", True),
        ({"anything-but": {"equals-ignore-case": ["remove"]}}, "REMOVE", False),
        ({"numeric": [">", 0, "<=", 5]}, 5, True),
        ({"numeric": [">", 0, "<=", 5]}, 6, False),
        ({"numeric": [">", 0]}, "5", False),  # a string is not a number
        (5, 5.0, True),
        (None, None, True),
        (True, "true", False),
    ],
)
def test_each_matcher(matcher: Any, value: Any, expected: bool) -> None:
    assert matches({"field": [matcher]}, {"field": value}) is expected


def test_any_matcher_of_a_list_may_match_and_any_item_of_a_list_field() -> None:
    pattern = {"tags": ["b", {"prefix": "z"}]}

    assert matches(pattern, {"tags": ["a", "b"]})
    assert matches(pattern, {"tags": ["a", "zz"]})
    assert not matches(pattern, {"tags": ["a", "c"]})


def test_nested_fields_are_matched_and_an_absent_one_matches_nothing_but_exists_false() -> None:
    pattern = {"dynamodb": {"NewImage": {"status": {"S": ["ROLLED_BACK"]}}}}

    assert matches(pattern, item("REDEMPTION#r_1", status="ROLLED_BACK"))
    assert not matches(pattern, item("REDEMPTION#r_1", status="SUCCEEDED"))
    assert not matches(pattern, {"eventName": "REMOVE", "dynamodb": {"Keys": {}}})
    assert matches({"dynamodb": {"NewImage": [{"exists": False}]}}, {"eventName": "REMOVE", "dynamodb": {}})
    assert matches({"dynamodb": {"OldImage": {"status": [{"exists": False}]}}}, {"dynamodb": {}})
    assert not matches({"dynamodb": {"NewImage": [{"exists": True}]}}, {"dynamodb": {}})


def test_or_at_a_level_and_several_filters_are_alternatives() -> None:
    either = {"$or": [{"eventName": ["REMOVE"]}, {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "QUARANTINE#"}]}}}}]}
    redemptions = FilterPattern.parse('{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "REDEMPTION#"}]}}}}')
    removes = FilterPattern.parse('{"eventName": ["REMOVE"]}')

    assert matches(either, item("QUARANTINE#q_1")) and matches(either, item("X", "REMOVE"))
    assert not matches(either, item("REDEMPTION#r_1"))
    assert matches_any([redemptions, removes], item("REDEMPTION#r_1"))
    assert matches_any([redemptions, removes], item("RECONCILE", "REMOVE"))
    assert not matches_any([redemptions, removes], item("RECONCILE"))
    assert matches_any([], item("RECONCILE"))  # no filters: every record


@pytest.mark.parametrize(
    "pattern",
    [
        "[1, 2]",
        "{}",
        '{"eventName": "INSERT"}',  # a field's pattern is a list
        '{"eventName": []}',
        '{"ip": [{"cidr": "10.0.0.0/24"}]}',
        '{"n": [{"numeric": ["!=", 1]}]}',
        '{"x": [{"prefix": 1}]}',
        '{"$or": [{"a": ["b"]}]}',
    ],
)
def test_a_pattern_the_emulation_does_not_understand_is_refused_when_read(pattern: str) -> None:
    with pytest.raises((FilterPatternError, ValueError)):
        FilterPattern.parse(pattern)


def test_the_templates_stream_filters_read_and_pass_the_items_events_come_from() -> None:
    events = stream_events()
    assert events, "template.yaml has no DynamoDB stream event"
    values = {**template_values({}), "LedgerTable.StreamArn": "arn:stream", "LedgerEventsDeadLetterQueue.Arn": "arn:q"}
    for event in events:
        filters = stream_mapping(event, values).filters
        for kept in ("REDEMPTION#r_1", "QUARANTINE#q_1"):  # redemptions, rollbacks, requests; quarantined deliveries
            assert matches_any(filters, item(kept)), (event.function, kept)
            assert matches_any(filters, item(kept, "MODIFY")), (event.function, kept)
        for dropped in ("RECONCILE", "IDEMPOTENCY#rollback-worker"):  # the reconciler's state, Powertools' records
            assert not matches_any(filters, item(dropped)), (event.function, dropped)
