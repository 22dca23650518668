"""ReconcilerFunction in the template: on an EventBridge Scheduler schedule that a parameter sets or turns off, one
run at a time for up to Lambda's 15 minutes, with the reconciler's share of the API budget left to it by the worker,
and the alarm that says deliveries are being lost."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ledger_dev.harness.template import load_template, resources
from support.template import WORKER, of_type

RECONCILER = "ReconcilerFunction"


def reconciler() -> dict[str, Any]:
    return resources("AWS::Serverless::Function")[RECONCILER]["Properties"]


def test_the_reconciler_runs_on_a_schedule_the_parameter_sets_or_turns_off(cfn: dict[str, Any]) -> None:
    (schedule,) = of_type(cfn, "AWS::Scheduler::Schedule").values()
    props = schedule["Properties"]
    assert props["Target"]["Arn"] == {"Fn::GetAtt": [RECONCILER, "Arn"]}
    assert props["ScheduleExpression"] == {"Fn::If": ["ReconcileOn", {"Ref": "ReconcileSchedule"}, "rate(1 hour)"]}
    assert props["State"] == {"Fn::If": ["ReconcileOn", "ENABLED", "DISABLED"]}
    assert props["Target"]["RetryPolicy"] == {"MaximumRetryAttempts": 0}  # the next run does a failed one's work
    # unique per account and region: the stack's id, not the logical id SAM would use
    assert "StackId" in str(props["Name"])
    assert cfn["Conditions"]["ReconcileOn"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ReconcileSchedule"}, "Off"]}]}
    # the role the schedule assumes may invoke the reconciler and nothing else
    role = cfn["Resources"][props["Target"]["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
    (statement,) = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert (statement["Action"], statement["Resource"]) == (
        "lambda:InvokeFunction",
        {"Fn::GetAtt": [RECONCILER, "Arn"]},
    )


@pytest.mark.parametrize(
    ("expression", "valid"),
    [
        ("rate(1 hour)", True),
        ("rate(15 minutes)", True),
        ("rate(1 day)", True),
        ("cron(0 * * * ? *)", True),
        ("Off", True),
        ("off", False),
        ("rate(0 hours)", False),
        ("every hour", False),
        ("", False),
    ],
)
def test_the_schedule_parameter_takes_scheduler_expressions_or_off(expression: str, valid: bool) -> None:
    parameter = load_template()["Parameters"]["ReconcileSchedule"]
    assert (
        re.fullmatch(parameter["AllowedPattern"], expression) is not None
        if valid
        else not re.fullmatch(parameter["AllowedPattern"], expression)
    )
    assert parameter["Default"] == "rate(1 hour)"


def test_one_run_at_a_time_for_up_to_fifteen_minutes() -> None:
    props = reconciler()
    assert props["ReservedConcurrentExecutions"] == 1
    assert props["Timeout"] == 900
    assert props["CodeUri"] == "functions/reconciler/" and props["Handler"] == "app.lambda_handler"


def test_the_worker_leaves_the_reconciler_its_share_of_the_budget() -> None:
    mine = reconciler()["Environment"]["Variables"]
    workers = resources("AWS::Serverless::Function")[WORKER]["Properties"]["Environment"]["Variables"]
    for variables in (mine, workers):
        assert variables["VOUCHERIFY_REQUESTS_PER_MINUTE"] == {"Ref": "VoucherifyRequestsPerMinute"}
        # the same share in both, whether the schedule is on or off (a backfill may run either way)
        assert variables["RECONCILE_REQUESTS_PER_MINUTE"] == {"Ref": "ReconcileRequestsPerMinute"}
    assert mine["RECONCILE_OVERLAP_MINUTES"] == {"Ref": "ReconcileOverlapMinutes"}
    assert mine["VOUCHERIFY_API_SECRET_ID"] == workers["VOUCHERIFY_API_SECRET_ID"]
    parameters = load_template()["Parameters"]
    assert parameters["ReconcileRequestsPerMinute"]["Default"] < parameters["VoucherifyRequestsPerMinute"]["Default"]
    assert parameters["ReconcileOverlapMinutes"]["Default"] == 60


def test_the_alarms_say_deliveries_are_lost_or_runs_fail(cfn: dict[str, Any]) -> None:
    alarms = of_type(cfn, "AWS::CloudWatch::Alarm")
    missing = alarms["ReconciledMissingAlarm"]["Properties"]
    assert (missing["MetricName"], missing["Threshold"], missing["ComparisonOperator"]) == (
        "ReconciledMissing",
        0,
        "GreaterThanThreshold",
    )
    assert "dashboard" in missing["AlarmDescription"] and "WebhookUnauthorizedAlarm" in missing["AlarmDescription"]
    unlisted = alarms["ReconcileUnlistedAlarm"]["Properties"]
    assert (unlisted["MetricName"], unlisted["Threshold"]) == ("ReconcileUnlisted", 0)
    assert "--status" in unlisted["AlarmDescription"]
    errors = alarms["ReconcilerErrorsAlarm"]["Properties"]
    watched = {m["MetricStat"]["Metric"]["MetricName"] for m in errors["Metrics"] if "MetricStat" in m}
    assert watched == {"Errors", "ReconcileErrors"}
    assert {"Ref": RECONCILER} in [
        d["Value"] for m in errors["Metrics"] if "MetricStat" in m for d in m["MetricStat"]["Metric"]["Dimensions"]
    ]


def test_the_stack_names_its_reconciler(cfn: dict[str, Any]) -> None:
    assert cfn["Outputs"]["ReconcilerFunctionName"]["Value"] == {"Ref": RECONCILER}
