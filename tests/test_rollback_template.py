"""The rollback resources of template.yaml: queue, dead-letter queue, event source, policies, alarms."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from ledger_dev.harness.template import load_template, resources

WORKER = "RollbackWorkerFunction"


def worker() -> dict[str, Any]:
    return resources("AWS::Serverless::Function")[WORKER]["Properties"]


def statements() -> list[dict[str, Any]]:
    """The worker role's statements (its own AWS::IAM::Role: tests/test_iam.py says why)."""
    role = worker()["Role"]["Fn::GetAtt"][0]
    policies = resources("AWS::IAM::Role")[role]["Properties"]["Policies"]
    return [s for policy in policies for s in policy["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_queue_redrives_to_its_dead_letter_queue() -> None:
    queue = resources("AWS::SQS::Queue")["RollbackQueue"]["Properties"]
    dlq = resources("AWS::SQS::Queue")["RollbackDeadLetterQueue"]["Properties"]
    redrive = queue["RedrivePolicy"]

    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["RollbackDeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == {"Ref": "RollbackMaxReceiveCount"}
    assert load_template()["Parameters"]["RollbackMaxReceiveCount"]["Default"] == 5
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]  # a message outlives its attempts
    assert queue["SqsManagedSseEnabled"] and dlq["SqsManagedSseEnabled"]
    # The worker knows the attempt that dead-letters a message.
    assert worker()["Environment"]["Variables"]["ROLLBACK_MAX_RECEIVE_COUNT"] == {"Ref": "RollbackMaxReceiveCount"}


def test_visibility_timeout_is_at_least_six_times_the_worker_timeout() -> None:
    queue = resources("AWS::SQS::Queue")["RollbackQueue"]["Properties"]
    timeout = worker().get("Timeout", load_template()["Globals"]["Function"]["Timeout"])
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert timeout >= 20  # room for a paced batch and a full read timeout


def test_the_event_source_reports_batch_item_failures_and_caps_concurrency() -> None:
    # An explicit mapping rather than `Events: SQS`, whose managed policy grants SQS on "*" (tests/test_iam.py).
    assert "Events" not in worker()
    ((_, mapping),) = resources("AWS::Lambda::EventSourceMapping").items()
    props = mapping["Properties"]

    assert props["FunctionName"] == {"Ref": WORKER}
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["RollbackQueue", "Arn"]}
    assert props["BatchSize"] == 10
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 0 < props["MaximumBatchingWindowInSeconds"] <= 5
    assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "RollbackWorkerMaxConcurrency"}}
    variables = worker()["Environment"]["Variables"]
    assert variables["ROLLBACK_MAX_CONCURRENCY"] == {"Ref": "RollbackWorkerMaxConcurrency"}  # pacing shares
    assert variables["VOUCHERIFY_REQUESTS_PER_MINUTE"] == {"Ref": "VoucherifyRequestsPerMinute"}
    assert variables["ROLLBACK_QUEUE_URL"] == {"Ref": "RollbackQueue"}


def test_the_worker_policies_are_least_privilege() -> None:
    by_sid = {s["Sid"]: s for s in statements()}

    assert set(by_sid) == {
        "OwnLogGroup",
        "ReceiveRollbackRequests",
        "LedgerItems",
        "RedemptionsOfAnOrder",
        "FanOutAndRetryDelays",
        "VoucherifyApiKeys",
    }
    for statement in by_sid.values():
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in as_list(statement["Action"]))
    logs = by_sid["OwnLogGroup"]
    assert set(logs["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert "${RollbackWorkerFunctionLogs}:*" in logs["Resource"]["Fn::Sub"]
    assert worker()["LoggingConfig"]["LogGroup"] == {"Ref": "RollbackWorkerFunctionLogs"}
    ledger = by_sid["LedgerItems"]
    assert set(ledger["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }
    assert ledger["Resource"] == {"Fn::GetAtt": ["LedgerTable", "Arn"]}
    assert by_sid["RedemptionsOfAnOrder"]["Action"] == "dynamodb:Query"
    assert by_sid["RedemptionsOfAnOrder"]["Resource"] == {"Fn::Sub": "${LedgerTable.Arn}/index/ByOrder"}
    assert set(by_sid["FanOutAndRetryDelays"]["Action"]) == {"sqs:SendMessage", "sqs:ChangeMessageVisibility"}
    assert by_sid["FanOutAndRetryDelays"]["Resource"] == {"Fn::GetAtt": ["RollbackQueue", "Arn"]}
    secret = by_sid["VoucherifyApiKeys"]
    assert secret["Action"] == "secretsmanager:GetSecretValue"
    assert "VoucherifyApiSecretId" in json.dumps(secret["Resource"]) and "WebhookSecretId" not in json.dumps(secret)


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


def test_outputs_and_parameters() -> None:
    template = load_template()
    assert template["Outputs"]["RollbackQueueUrl"]["Value"] == {"Ref": "RollbackQueue"}
    params = template["Parameters"]
    pattern = re.compile(params["VoucherifyApiUrl"]["AllowedPattern"])
    assert pattern.match(params["VoucherifyApiUrl"]["Default"]) and pattern.match("https://us1.api.voucherify.io")
    assert not pattern.match("http://api.voucherify.io")
    assert params["RollbackWorkerMaxConcurrency"]["MinValue"] == 2  # the least MaximumConcurrency SQS allows


@pytest.fixture(scope="module")
def expanded() -> dict[str, Any]:
    """template.yaml through aws-sam-translator, as CloudFormation receives it after ``sam package``."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    policies = {
        "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "AWSLambdaSQSQueueExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
    }
    template = copy.deepcopy(load_template())
    for resource in template["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = f"s3://artifacts/{key.lower()}.zip"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name="eu-west-1"))
    return translator.translate(template, parameter_values={}, get_managed_policy_map=lambda: policies)


def test_the_template_expands_with_the_sam_translator_and_passes_cfn_lint(expanded: dict[str, Any]) -> None:
    from cfnlint.api import lint

    mappings = [
        r["Properties"] for r in expanded["Resources"].values() if r["Type"] == "AWS::Lambda::EventSourceMapping"
    ]
    (mapping,) = mappings
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "RollbackWorkerMaxConcurrency"}}
    matches = lint(json.dumps(expanded), regions=["eu-west-1"])
    assert [str(m) for m in matches] == []
