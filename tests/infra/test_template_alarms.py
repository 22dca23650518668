"""The alarms: each failure path a person must act on has one, watching the right metric, notifying the alarm
topic and saying what to do, with thresholds as parameters; every custom metric watched is emitted by the code."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ledger_dev.harness.template import PROJECT_ROOT, load_template, resources
from support.template import WEBHOOK_FUNCTIONS, WORKER, of_type, sam_source

# --- alarms --------------------------------------------------------------------------------------------
ALARM_ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def expected_alarms(cfn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The webhook path's alarms: what each watches (metric, dimensions, statistic, period) and when it fires."""
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    powertools = {
        "Namespace": variables["POWERTOOLS_METRICS_NAMESPACE"],
        "Dimensions": [{"Name": "service", "Value": variables["POWERTOOLS_SERVICE_NAME"]}],
        "Statistic": "Sum",
    }
    any_ = "GreaterThanThreshold"
    expected: dict[str, dict[str, Any]] = {
        # every 503 is a delivery Voucherify must retry (12 failures disable the webhook): the first one alarms
        "WebhookStorageErrorsAlarm": {
            **powertools,
            "MetricName": "StorageErrors",
            "Period": 60,
            "Threshold": 0,
            "ComparisonOperator": any_,
        },
        # a wrong secret answers every delivery 401; a stray probe must not page anyone
        "WebhookUnauthorizedAlarm": {
            **powertools,
            "MetricName": "Unauthorized",
            "Period": 900,
            "Threshold": {"Ref": "WebhookUnauthorizedAlarmThreshold"},
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
        "ConflictingDuplicatesAlarm": {
            **powertools,
            "MetricName": "ConflictingDuplicates",
            "Period": 300,
            "Threshold": 0,
            "ComparisonOperator": any_,
        },
        "StorageRefusedAlarm": {
            **powertools,
            "MetricName": "StorageRefused",
            "Period": 300,
            "Threshold": 0,
            "ComparisonOperator": any_,
        },
    }
    for function in WEBHOOK_FUNCTIONS:
        short = function.removesuffix("Function")
        timeout_ms = cfn["Resources"][function]["Properties"]["Timeout"] * 1000
        lambda_ = {"Namespace": "AWS/Lambda", "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function}}]}
        expected[f"{short}ErrorsAlarm"] = {
            **lambda_,
            "MetricName": "Errors",
            "Statistic": "Sum",
            "Period": 300,
            "Threshold": 0,
            "ComparisonOperator": any_,
        }
        expected[f"{short}ThrottlesAlarm"] = {
            **lambda_,
            "MetricName": "Throttles",
            "Statistic": "Sum",
            "Period": 300,
            "Threshold": 0,
            "ComparisonOperator": any_,
        }
        # the slowest invocation reached 80 % of the timeout: the next slow one times out
        expected[f"{short}DurationAlarm"] = {
            **lambda_,
            "MetricName": "Duration",
            "Statistic": "Maximum",
            "Period": 300,
            "Threshold": int(timeout_ms * 0.8),
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        }
    (stage,) = of_type(cfn, "AWS::ApiGatewayV2::Stage").values()
    # HTTP API metrics (not the REST API's 5XXError / 4XXError, nor ApiName): AWS/ApiGateway, ApiId and Stage.
    api = {
        "Namespace": "AWS/ApiGateway",
        "Dimensions": [
            {"Name": "ApiId", "Value": {"Ref": "WebhookApi"}},
            {"Name": "Stage", "Value": stage["Properties"]["StageName"]},
        ],
        "Statistic": "Sum",
        "Period": 300,
        "ComparisonOperator": any_,
    }
    expected["WebhookApi5xxAlarm"] = {**api, "MetricName": "5xx", "Threshold": 0}
    expected["WebhookApi4xxAlarm"] = {**api, "MetricName": "4xx", "Threshold": {"Ref": "Webhook4xxAlarmThreshold"}}
    return expected


def alarm_problems(cfn: dict[str, Any]) -> list[str]:
    """What is missing or wrong in the webhook path's alarms."""
    problems = []
    for name, want in expected_alarms(cfn).items():
        resource = cfn["Resources"].get(name)
        if not resource or resource["Type"] != "AWS::CloudWatch::Alarm":
            problems.append(f"{name}: missing")
            continue
        props = resource["Properties"]
        for key, value in want.items():
            if props.get(key) != value:
                problems.append(f"{name}: {key} is {props.get(key)!r}, expected {value!r}")
        for key, value in {
            "EvaluationPeriods": 1,
            "TreatMissingData": "notBreaching",
            "AlarmActions": ALARM_ACTIONS,
        }.items():
            if props.get(key) != value:
                problems.append(f"{name}: {key} is {props.get(key)!r}, expected {value!r}")
        if "Metrics" in props or "ExtendedStatistic" in props:
            problems.append(f"{name}: one metric, one statistic")
    return problems


def test_the_webhook_path_alarms_watch_the_right_metrics(cfn: dict[str, Any]) -> None:
    assert alarm_problems(cfn) == []
    # the dimensions name the stack's API and functions
    assert cfn["Resources"]["WebhookApi"]["Type"] == "AWS::ApiGatewayV2::Api"
    assert of_type(cfn, "AWS::ApiGatewayV2::Stage").popitem()[1]["Properties"]["StageName"] == "$default"


@pytest.mark.parametrize(
    ("alarm", "key", "value"),
    [
        ("WebhookStorageErrorsAlarm", None, None),  # removed
        ("WebhookApi5xxAlarm", "MetricName", "5XXError"),  # the REST API's name
        ("WebhookApi4xxAlarm", "Dimensions", [{"Name": "ApiName", "Value": {"Ref": "WebhookApi"}}]),
        (
            "WebhookApi4xxAlarm",
            "Dimensions",
            [{"Name": "ApiId", "Value": {"Ref": "WebhookApi"}}, {"Name": "Stage", "Value": "prod"}],
        ),
        ("RedemptionSucceededDurationAlarm", "Threshold", 5000),  # the timeout itself: too late
        (
            "RedemptionRollbackSucceededErrorsAlarm",
            "Dimensions",
            [{"Name": "FunctionName", "Value": {"Ref": "RedemptionSucceededFunction"}}],
        ),
        ("RedemptionSucceededThrottlesAlarm", "Statistic", "Average"),
        ("WebhookUnauthorizedAlarm", "AlarmActions", None),
        ("WebhookUnauthorizedAlarm", "Threshold", 0),
        ("ConflictingDuplicatesAlarm", "Namespace", "AWS/Lambda"),
        ("StorageRefusedAlarm", "MetricName", "Quarantined"),
    ],
)
def test_the_alarm_check_catches_a_missing_or_wrong_alarm(
    cfn: dict[str, Any], alarm: str, key: str | None, value: Any
) -> None:
    broken = copy.deepcopy(cfn)
    if key is None:
        del broken["Resources"][alarm]
    elif value is None:
        del broken["Resources"][alarm]["Properties"][key]
    else:
        broken["Resources"][alarm]["Properties"][key] = value
    problems = alarm_problems(broken)
    assert problems and all(p.startswith(f"{alarm}: ") for p in problems), problems


def test_every_alarm_notifies_the_alarm_topic_and_says_what_to_do(cfn: dict[str, Any]) -> None:
    alarms = of_type(cfn, "AWS::CloudWatch::Alarm")
    assert set(expected_alarms(cfn)) < set(alarms)
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == ALARM_ACTIONS, name
        assert props["TreatMissingData"] == "notBreaching", name
        description = props["AlarmDescription"]
        assert len(description) <= 1024, f"{name}: CloudWatch truncates nothing, it refuses the alarm"
        if name in expected_alarms(cfn):
            assert len(description.split()) >= 30, f"{name}: say what happened and what to do"


def test_the_alarm_thresholds_are_parameters_with_sane_defaults() -> None:
    parameters = sam_source()["Parameters"]
    unauthorized = parameters["WebhookUnauthorizedAlarmThreshold"]
    assert unauthorized["Type"] == "Number" and unauthorized["MinValue"] >= 1
    assert 1 < unauthorized["Default"] <= 10  # a rotated secret passes it within minutes; one stray probe does not
    client_errors = parameters["Webhook4xxAlarmThreshold"]
    assert client_errors["Type"] == "Number" and client_errors["MinValue"] >= 1
    # a flood throttled to 429 passes it within seconds (the stage's rate limit is per second, the period 300 s)
    assert 10 <= client_errors["Default"] < parameters["WebhookThrottlingRateLimit"]["Default"] * 300


def test_the_duration_alarm_fires_before_the_timeout(cfn: dict[str, Any]) -> None:
    for function in WEBHOOK_FUNCTIONS:
        timeout_ms = cfn["Resources"][function]["Properties"]["Timeout"] * 1000
        threshold = cfn["Resources"][f"{function.removesuffix('Function')}DurationAlarm"]["Properties"]["Threshold"]
        assert 0.5 * timeout_ms <= threshold < timeout_ms, function


def test_every_custom_metric_an_alarm_watches_is_emitted_by_the_code(cfn: dict[str, Any]) -> None:
    """An alarm on a metric nobody emits never fires: each name must be a metric name in the layer's code."""
    namespace = load_template()["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    source = "\n".join(path.read_text(encoding="utf-8") for path in (PROJECT_ROOT / "layers" / "shared").rglob("*.py"))
    watched = set()
    for alarm in of_type(cfn, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        metrics = [props] + [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        watched |= {m["MetricName"] for m in metrics if m.get("Namespace") == namespace}
    assert {"StorageErrors", "Unauthorized", "ConflictingDuplicates", "StorageRefused", "Quarantined"} <= watched
    missing = sorted(name for name in watched if f'"{name}"' not in source)
    assert missing == [], f"alarms watch metrics the code never emits: {missing}"


def test_alarms_watch_the_dead_letter_queue_errors_and_auth_failures() -> None:
    alarms = resources("AWS::CloudWatch::Alarm")
    glob = load_template()["Globals"]["Function"]["Environment"]["Variables"]

    dlq = alarms["RollbackDeadLetterAlarm"]["Properties"]
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible" and dlq["Threshold"] == 0
    assert dlq["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["RollbackDeadLetterQueue", "QueueName"]}}
    ]
    auth = alarms["VoucherifyAuthFailuresAlarm"]["Properties"]
    # The metric the worker emits (Powertools: namespace and "service" dimension from the environment).
    assert (auth["Namespace"], auth["MetricName"]) == (glob["POWERTOOLS_METRICS_NAMESPACE"], "VoucherifyAuthFailures")
    assert auth["Dimensions"] == [{"Name": "service", "Value": glob["POWERTOOLS_SERVICE_NAME"]}]
    errors = json.dumps(alarms["RollbackWorkerErrorsAlarm"]["Properties"]["Metrics"])
    assert '"Errors"' in errors and '"RollbackWorkerErrors"' in errors and WORKER in errors
