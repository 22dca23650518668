"""The ledger's events in template.yaml: the table's stream, the bus (the stack's own, or one named by parameter),
LedgerEventsFunction on the stream with partial batch failures, bisection, an alarmed dead-letter queue and a filter
that lets through only the items events come from; the outputs a consumer needs."""

from __future__ import annotations

import json
from typing import Any

from support.template import of_type, sam_source


def stream_event(cfn: dict[str, Any]) -> dict[str, Any]:
    (mapping,) = [
        r["Properties"]
        for r in of_type(cfn, "AWS::Lambda::EventSourceMapping").values()
        if r["Properties"]["FunctionName"] == {"Ref": "LedgerEventsFunction"}
    ]
    return mapping


def test_the_ledger_table_streams_old_and_new_images() -> None:
    table = sam_source()["Resources"]["LedgerTable"]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_the_bus_is_the_stacks_own_unless_a_parameter_names_one(cfn: dict[str, Any]) -> None:
    source = sam_source()
    assert source["Parameters"]["LedgerEventBusName"]["Default"] == ""
    assert source["Conditions"]["CreateLedgerEventBus"] == {"Fn::Equals": [{"Ref": "LedgerEventBusName"}, ""]}
    bus = source["Resources"]["LedgerEventBus"]
    assert bus["Type"] == "AWS::Events::EventBus" and bus["Condition"] == "CreateLedgerEventBus"
    assert bus["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-ledger"}
    chosen = {"Fn::If": ["CreateLedgerEventBus", {"Ref": "LedgerEventBus"}, {"Ref": "LedgerEventBusName"}]}
    variables = cfn["Resources"]["LedgerEventsFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["EVENT_BUS_NAME"] == chosen
    assert cfn["Outputs"]["LedgerEventBusName"]["Value"] == chosen
    assert "LedgerEventBusArn" in cfn["Outputs"] and "LedgerEventsDeadLetterQueueUrl" in cfn["Outputs"]


def test_the_stream_reports_partial_failures_bisects_and_keeps_what_it_gives_up_on(cfn: dict[str, Any]) -> None:
    mapping = stream_event(cfn)
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["LedgerTable", "StreamArn"]}
    assert mapping["StartingPosition"] == "TRIM_HORIZON"  # nothing written before the first poll is skipped
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 1 <= mapping["MaximumRetryAttempts"] <= 100
    assert mapping["MaximumRecordAgeInSeconds"] == 86400  # the stream's own retention
    destination = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": ["LedgerEventsDeadLetterQueue", "Arn"]}
    alarm = sam_source()["Resources"]["LedgerEventsDeadLetterAlarm"]["Properties"]
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["LedgerEventsDeadLetterQueue", "QueueName"]}}
    ]
    assert (alarm["MetricName"], alarm["Threshold"]) == ("ApproximateNumberOfMessagesVisible", 0)


def test_the_filter_passes_the_items_events_come_from_and_nothing_else(cfn: dict[str, Any]) -> None:
    from voucherify_ledger.ledger import keys

    (only,) = stream_event(cfn)["FilterCriteria"]["Filters"]
    pattern = json.loads(only["Pattern"])
    assert pattern["eventName"] == ["INSERT", "MODIFY"]  # a TTL expiry (REMOVE) is no event
    prefixes = [p["prefix"] for p in pattern["dynamodb"]["Keys"]["pk"]["S"]]

    def passes(pk: str) -> bool:
        return any(pk.startswith(prefix) for prefix in prefixes)

    for pk in (
        keys.REDEMPTION_PREFIX + "r_1",
        keys.QUARANTINE_PREFIX + "q_1",
        keys.ORDER_PREFIX + "ord_1",
        keys.ORDER_SOURCE_PREFIX + "1001",
        keys.REJECTED_PREFIX + "req_1",
    ):
        assert passes(pk), pk
    assert not passes(keys.RECONCILE_PK) and not passes(keys.IDEMPOTENCY_PK)
