"""Least privilege in the functions' policies: no broad statement, no managed policy beyond the execution roles,
every DynamoDB call a webhook function makes allowed and nothing more, no secret value in any environment."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from support.documents import compact, seed_documents
from support.functions import Aws, LambdaApp
from support.template import (
    WEBHOOK_FUNCTIONS,
    as_list,
    of_type,
    policy_statements,
    references,
    sam_source,
    worker,
    worker_statements,
)

# Services whose actions read or write data: never on "*", only on resources the template defines or names.
DATA_SERVICES = {"dynamodb", "secretsmanager", "sqs", "sns", "s3", "kms", "ssm", "events", "lambda", "logs"}


# The Tracing parameter's grant (a statement under the TracingOn condition): X-Ray takes no resource-level permissions.
TRACING_STATEMENT = {
    "Sid": "Tracing",
    "Effect": "Allow",
    "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
    "Resource": ["*"],
}


# None: every function has an explicit role (template.yaml, FunctionLogs). The managed policies SAM would attach
# (AWSLambdaBasicExecutionRole, AWSLambdaSQSQueueExecutionRole) grant logs or SQS actions on "*".
ALLOWED_MANAGED_POLICIES = re.compile(r"(?!)")


def literal_strings(value: Any) -> list[str]:
    """Plain strings of a value, the branches of Fn::If included (a literal "*" hides there too)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for inner in value for s in literal_strings(inner)]
    if isinstance(value, dict) and "Fn::If" in value:
        return literal_strings(value["Fn::If"][1:])
    return []


def statements(cfn: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = cfn["Resources"][role]["Properties"].get("Policies") or []
    found = []
    for statement in policy_statements(policies):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        found.append({**statement, "Action": actions, "Resource": resources})
    return found


# --- permissions ---------------------------------------------------------------------------------------
def policy_problems(cfn: dict[str, Any]) -> list[str]:
    """What is too broad in the functions' roles: managed policies beyond the Lambda execution roles, wildcard
    actions, data actions on "*" or on resources the template neither defines nor names in a parameter."""
    template = sam_source()
    parameters = set(template.get("Parameters") or {})
    resources = template["Resources"]
    problems = []
    for function in of_type(cfn, "AWS::Lambda::Function"):
        role_id = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
        for arn in cfn["Resources"][role_id]["Properties"].get("ManagedPolicyArns", []):
            text = arn if isinstance(arn, str) else json.dumps(arn.get("Fn::Sub", arn))
            if not ALLOWED_MANAGED_POLICIES.fullmatch(text):
                problems.append(f"{function}: managed policy {text}")
        for statement in statements(cfn, function):
            where = f"{function}/{statement.get('Sid', '?')}"
            if statement["Effect"] != "Allow" or "NotAction" in statement or "NotResource" in statement:
                problems.append(f"{where}: only plain Allow statements are expected")
            if statement == TRACING_STATEMENT:
                continue  # X-Ray's, with Tracing On: no resource but "*" exists for it
            problems += [f"{where}: wildcard action {a}" for a in statement["Action"] if "*" in a]
            services = {action.split(":")[0] for action in statement["Action"]}
            if not services & DATA_SERVICES:
                continue
            for resource in statement["Resource"]:
                if [s for s in literal_strings(resource) if s == "*" or s.endswith(":*") or s.endswith("/*")]:
                    problems.append(f"{where}: data actions on a wildcard resource")
                targets = references(resource)
                if not targets:
                    problems.append(f"{where}: resource {resource} is not a resource or parameter of the template")
                unknown = [t for t in targets if t not in resources and t not in parameters]
                problems += [f"{where}: unknown resource {t}" for t in unknown]
                kinds = {resources[t]["Type"] for t in targets if t in resources}
                if "dynamodb" in services and kinds - {"AWS::DynamoDB::Table"}:
                    problems.append(f"{where}: dynamodb actions on {kinds}")
                if "sqs" in services and kinds - {"AWS::SQS::Queue"}:
                    problems.append(f"{where}: sqs actions on {kinds}")
                if "logs" in services and kinds != {"AWS::Logs::LogGroup"}:
                    problems.append(f"{where}: logs actions on {kinds or 'no log group of the template'}")
                if "secretsmanager" in services:
                    if set(statement["Action"]) != {"secretsmanager:GetSecretValue"}:
                        problems.append(f"{where}: secretsmanager actions beyond GetSecretValue")
                    if not targets <= parameters:
                        problems.append(f"{where}: a secret that is not named by a parameter")
    return problems


def test_function_policies_are_least_privilege(cfn: dict[str, Any]) -> None:
    assert policy_problems(cfn) == []


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "dynamodb:Scan", "Resource": "*"},
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": {"Fn::GetAtt": ["LedgerTable", "Arn"]}},
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "arn:aws:secretsmanager:*"},
        {"Effect": "Allow", "Action": "secretsmanager:PutSecretValue", "Resource": {"Ref": "WebhookSecretId"}},
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:eu-west-1:123456789012:other"},
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": {"Fn::Sub": "${OtherTable.Arn}"}},
    ],
    ids=["scan-anything", "all-actions", "any-secret", "write-secret", "foreign-queue", "unknown-table"],
)
def test_policy_check_catches_broad_statements(cfn: dict[str, Any], statement: dict[str, Any]) -> None:
    broken = copy.deepcopy(cfn)
    role_id = broken["Resources"]["RedemptionSucceededFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    broken["Resources"][role_id]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(statement)
    assert policy_problems(broken)


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess",
        # what SAM attaches to a role it generates: log writes to every log group of the account
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    ],
)
def test_policy_check_catches_managed_policies(cfn: dict[str, Any], arn: str) -> None:
    broken = copy.deepcopy(cfn)
    role_id = broken["Resources"]["RedemptionRollbackSucceededFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    broken["Resources"][role_id]["Properties"].setdefault("ManagedPolicyArns", []).append(arn)
    assert policy_problems(broken) == [f"RedemptionRollbackSucceededFunction: managed policy {arn}"]


@pytest.mark.parametrize(
    ("resource", "problem"),
    [
        ("*", "data actions on a wildcard resource"),
        ({"Fn::GetAtt": ["LedgerTable", "Arn"]}, "logs actions on {'AWS::DynamoDB::Table'}"),
    ],
    ids=["any-log-group", "not-a-log-group"],
)
def test_policy_check_catches_log_writes_beyond_log_groups(cfn: dict[str, Any], resource: Any, problem: str) -> None:
    broken = copy.deepcopy(cfn)
    role_id = broken["Resources"]["RedemptionSucceededFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    statements_ = broken["Resources"][role_id]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements_.append({"Sid": "Extra", "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": resource})
    assert f"RedemptionSucceededFunction/Extra: {problem}" in policy_problems(broken)


@pytest.mark.parametrize("function", sorted(WEBHOOK_FUNCTIONS))
def test_webhook_function_may_only_use_the_ledger_read_its_secret_and_write_its_logs(
    cfn: dict[str, Any], function: str
) -> None:
    log_group = cfn["Resources"][function]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    for statement in statements(cfn, function):
        if statement == TRACING_STATEMENT:
            continue
        for action in statement["Action"]:
            service = action.split(":")[0]
            assert service in {"dynamodb", "secretsmanager", "logs"}, action
            if service == "secretsmanager":
                assert action == "secretsmanager:GetSecretValue"
                assert all(references(r) == {"WebhookSecretId"} for r in statement["Resource"]), statement
            elif service == "logs":
                assert action in {"logs:CreateLogStream", "logs:PutLogEvents"}, action
                assert all(references(r) == {log_group} for r in statement["Resource"]), statement
            else:
                assert all(references(r) == {"LedgerTable"} for r in statement["Resource"]), statement
    assert any("secretsmanager:GetSecretValue" in s["Action"] for s in statements(cfn, function))


class Recorder:
    """A boto3 client that records the operations made through it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.operations: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.operations.append((name, kwargs))
            return method(*args, **kwargs)

        return call


TRANSACTION_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def iam_actions(operations: list[tuple[str, dict[str, Any]]]) -> set[str]:
    """The IAM actions DynamoDB checks for these calls (a transaction checks each of its items)."""
    actions = set()
    for name, kwargs in operations:
        if name == "transact_write_items":
            kinds = {kind for item in kwargs["TransactItems"] for kind in item}
            names = {
                "Put": "PutItem",
                "Update": "UpdateItem",
                "Delete": "DeleteItem",
                "ConditionCheck": "ConditionCheckItem",
            }
            actions |= {f"dynamodb:{names[kind]}" for kind in kinds}
        else:
            actions.add("dynamodb:" + "".join(part.title() for part in name.split("_")))
    return actions


@pytest.mark.parametrize(
    ("function", "seed"),
    [("RedemptionSucceededFunction", "002"), ("RedemptionRollbackSucceededFunction", "000")],
)
def test_webhook_policy_allows_every_dynamodb_call_the_function_makes(
    cfn: dict[str, Any], lambda_app: Callable[..., LambdaApp], aws: Aws, function: str, seed: str
) -> None:
    webhook = lambda_app(function)
    recorder = Recorder(webhook.receiver.ledger.client)
    webhook.receiver.ledger.client = recorder
    body = compact(seed_documents(seed)[0])
    outcomes = [webhook.post(body).body["status"], webhook.post(body).body["status"]]
    outcomes.append(webhook.post(compact({"not": "a redemption"})).body["status"])
    assert outcomes == ["recorded", "duplicate", "quarantined"]
    allowed = {action for s in statements(cfn, function) for action in s["Action"]}
    needed = iam_actions(recorder.operations)
    assert needed <= allowed, needed - allowed


# --- environment ---------------------------------------------------------------------------------------
SECRET_LIKE_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE|CREDENTIAL", re.IGNORECASE)


POINTER_SUFFIX = ("_ID", "_ARN", "_NAME", "_HEADER", "_URL")


def environment_problems(cfn: dict[str, Any]) -> list[str]:
    """Environment variables that carry a secret rather than point to one."""
    parameters = sam_source().get("Parameters") or {}
    problems = []
    for function, res in of_type(cfn, "AWS::Lambda::Function").items():
        for name, value in res["Properties"].get("Environment", {}).get("Variables", {}).items():
            text = json.dumps(value)
            if "resolve:secretsmanager" in text or "resolve:ssm-secure" in text:
                problems.append(f"{function}: {name} resolves a secret into the environment")
            if any(parameters.get(ref, {}).get("NoEcho") for ref in references(value)):
                problems.append(f"{function}: {name} holds a NoEcho parameter")
            if SECRET_LIKE_NAME.search(name) and not name.endswith(POINTER_SUFFIX):
                problems.append(f"{function}: {name} looks like it carries a secret")
            if [s for s in literal_strings(value) if re.fullmatch(r"[A-Za-z0-9+/=_-]{24,}", s)]:
                problems.append(f"{function}: {name} holds a key-like literal")
    return problems


def test_no_secret_values_in_function_environments(cfn: dict[str, Any]) -> None:
    assert environment_problems(cfn) == []
    for function in of_type(cfn, "AWS::Lambda::Function"):
        variables = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert variables["LEDGER_TABLE_NAME"] == {"Ref": "LedgerTable"}, function
    for function in WEBHOOK_FUNCTIONS:
        variables = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert variables["WEBHOOK_SECRET_ID"] == {"Ref": "WebhookSecretId"}


@pytest.mark.parametrize(
    "variables",
    [
        {"WEBHOOK_SIGNING_SECRET": "x"},
        {"WEBHOOK_SECRET_ID": "{{resolve:secretsmanager:voucherify-ledger/webhook:SecretString:signing_secret}}"},
        {"SIGNING_KEY_VALUE": "a2V5LWZvci10aGUtd2ViaG9va3MtMTIzNDU2Nzg5MA=="},
    ],
    ids=["secret-name", "dynamic-reference", "key-literal"],
)
def test_environment_check_catches_secrets(cfn: dict[str, Any], variables: dict[str, str]) -> None:
    broken = copy.deepcopy(cfn)
    broken["Resources"]["RedemptionSucceededFunction"]["Properties"]["Environment"]["Variables"].update(variables)
    assert len(environment_problems(broken)) == 1


def test_the_worker_policies_are_least_privilege() -> None:
    by_sid = {s["Sid"]: s for s in worker_statements()}

    assert set(by_sid) == {
        "OwnLogGroup",
        "ReceiveRollbackRequests",
        "LedgerItems",
        "RedemptionsOfAnOrder",
        "FanOutAndRetryDelays",
        "VoucherifyApiKeys",
        "Tracing",
    }
    for statement in by_sid.values():
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in as_list(statement["Action"]))
    assert {**by_sid["Tracing"], "Resource": ["*"]} == TRACING_STATEMENT
    logs = by_sid["OwnLogGroup"]
    assert set(logs["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert "${RollbackWorkerFunctionLogs}:*" in logs["Resource"]["Fn::Sub"]
    assert worker()["LoggingConfig"]["LogGroup"] == {"Ref": "RollbackWorkerFunctionLogs"}
    ledger = by_sid["LedgerItems"]
    assert set(ledger["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:UpdateItem",
    }
    assert ledger["Resource"] == {"Fn::GetAtt": ["LedgerTable", "Arn"]}
    assert by_sid["RedemptionsOfAnOrder"]["Action"] == "dynamodb:Query"
    assert by_sid["RedemptionsOfAnOrder"]["Resource"] == [
        {"Fn::Sub": "${LedgerTable.Arn}/index/ByOrder"},
        {"Fn::Sub": "${LedgerTable.Arn}/index/ByOrderSourceId"},
    ]
    assert set(by_sid["FanOutAndRetryDelays"]["Action"]) == {"sqs:SendMessage", "sqs:ChangeMessageVisibility"}
    assert by_sid["FanOutAndRetryDelays"]["Resource"] == {"Fn::GetAtt": ["RollbackQueue", "Arn"]}
    secret = by_sid["VoucherifyApiKeys"]
    assert secret["Action"] == "secretsmanager:GetSecretValue"
    assert "VoucherifyApiSecretId" in json.dumps(secret["Resource"]) and "WebhookSecretId" not in json.dumps(secret)
