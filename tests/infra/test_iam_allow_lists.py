"""Least privilege and the template's security posture, over template.yaml as CloudFormation receives it
(expanded by aws-sam-translator): every IAM action each function's role holds, on which resource, against an
explicit allow-list (log writes included: each function may write to its own log group only, which needs the
template's own roles, as SAM's generated ones always carry AWSLambdaBasicExecutionRole on "*"); the API stage's
throttling, access log and source-IP allow-list; checkov on the SAM source and on the expanded template, every
suppression justified."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from support.template import of_type, sam_source
from voucherify_ledger.ledger.keys import INDEXES

# What the AWS managed policies SAM attaches to a role it generates grant (AWS's published policy documents). No role
# holds one: each function has an explicit role (template.yaml, FunctionLogs); these are here so that a managed policy
# that comes back is counted with its grants, and the allow-list fails on them.
MANAGED_POLICIES: dict[str, list[tuple[str, str]]] = {
    "AWSLambdaBasicExecutionRole": [
        ("logs:CreateLogGroup", "*"),
        ("logs:CreateLogStream", "*"),
        ("logs:PutLogEvents", "*"),
    ],
    "AWSLambdaSQSQueueExecutionRole": [
        ("sqs:ReceiveMessage", "*"),
        ("sqs:DeleteMessage", "*"),
        ("sqs:GetQueueAttributes", "*"),
        ("logs:CreateLogGroup", "*"),
        ("logs:CreateLogStream", "*"),
        ("logs:PutLogEvents", "*"),
    ],
}


def own_logs(function: str) -> set[tuple[str, str]]:
    """Writing its own logs, in its own log group only. A role SAM generates gets AWSLambdaBasicExecutionRole (these
    actions and logs:CreateLogGroup on "*", every log group of the account) and SAM cannot leave it out, hence the
    explicit roles. No CreateLogGroup: the stack creates the group, before the function."""
    group = f"log-group:{function}Logs"
    return {("logs:CreateLogStream", group), ("logs:PutLogEvents", group)}


LEDGER = "LedgerTable"

# With the Tracing parameter On only (a statement under the TracingOn condition): X-Ray accepts no resource but "*".
TRACING = {("xray:PutTraceSegments", "*"), ("xray:PutTelemetryRecords", "*")}


WEBHOOK_SECRET = "secret:WebhookSecretId"


API_SECRET = "secret:VoucherifyApiSecretId"


# Every grant each function may hold: (action, resource), the resource by logical id or parameter. A grant that
# is added to the template without being added here, or removed from it, fails the test.
ALLOWED: dict[str, set[tuple[str, str]]] = {
    "RedemptionSucceededFunction": own_logs("RedemptionSucceededFunction")
    | TRACING
    | {
        ("dynamodb:GetItem", LEDGER),  # the existing redemption (idempotency, merge of early rollbacks)
        ("dynamodb:UpdateItem", LEDGER),  # the redemption; quarantine records
        ("secretsmanager:GetSecretValue", WEBHOOK_SECRET),
    },
    "RedemptionRollbackSucceededFunction": own_logs("RedemptionRollbackSucceededFunction")
    | TRACING
    | {
        ("dynamodb:GetItem", LEDGER),
        ("dynamodb:UpdateItem", LEDGER),  # the rollback, written into its redemption's item; quarantine records
        ("secretsmanager:GetSecretValue", WEBHOOK_SECRET),
    },
    "RollbackWorkerFunction": own_logs("RollbackWorkerFunction")
    | TRACING
    | {
        # the event source mapping, with the function's role, on the rollback queue only
        ("sqs:ReceiveMessage", "RollbackQueue"),
        ("sqs:DeleteMessage", "RollbackQueue"),
        ("sqs:GetQueueAttributes", "RollbackQueue"),
        # fan-out of order requests and retry delays
        ("sqs:SendMessage", "RollbackQueue"),
        ("sqs:ChangeMessageVisibility", "RollbackQueue"),
        # requests, rollbacks, redemption status, the claim on a redemption (its own item): updates only
        ("dynamodb:GetItem", LEDGER),
        ("dynamodb:BatchGetItem", LEDGER),
        ("dynamodb:UpdateItem", LEDGER),
        ("dynamodb:Query", f"{LEDGER}/index/ByOrder"),  # an order's redemptions, by Voucherify's order id
        ("dynamodb:Query", f"{LEDGER}/index/ByOrderSourceId"),  # … or by the merchant's (order_source_id)
        ("secretsmanager:GetSecretValue", API_SECRET),
    },
    "ReconcilerFunction": own_logs("ReconcilerFunction")
    | TRACING
    | {
        ("dynamodb:BatchGetItem", LEDGER),  # what the ledger holds of a listed page, in one read
        ("dynamodb:GetItem", LEDGER),  # its state (checkpoint, lease) and backfill jobs
        ("dynamodb:UpdateItem", LEDGER),  # the webhooks' own writes; its state and jobs
        ("dynamodb:Query", f"{LEDGER}/index/ByRedeemedDay"),  # what the ledger holds of a walked range
        ("secretsmanager:GetSecretValue", API_SECRET),
    },
    "LedgerEventsFunction": own_logs("LedgerEventsFunction")
    | TRACING
    | {
        # the event source mapping reads the ledger's stream with the function's role, that stream only
        ("dynamodb:DescribeStream", f"{LEDGER}/stream"),
        ("dynamodb:GetRecords", f"{LEDGER}/stream"),
        ("dynamodb:GetShardIterator", f"{LEDGER}/stream"),
        ("dynamodb:ListStreams", f"{LEDGER}/stream"),
        ("events:PutEvents", "bus:LedgerEventBus"),  # the stack's bus, or the one LedgerEventBusName names
        ("sqs:SendMessage", "LedgerEventsDeadLetterQueue"),  # the batches the stream gives up on
    },
}


def resource_name(resource: Any) -> str:
    """A policy resource as a short name: ``*``, a logical id, ``<id>/index/<name>``, ``secret:<parameter>`` or
    ``log-group:<id>`` (the streams of a log group of the template)."""
    if resource == "*" or (isinstance(resource, str) and re.fullmatch(r"arn:[^:]*:[^:]*:[^:]*:[^:]*:\*", resource)):
        return "*"
    if resource == {"Ref": "AWS::StackId"}:
        return "the stack"
    if isinstance(resource, dict):
        if "Fn::GetAtt" in resource and resource["Fn::GetAtt"][1] == "Arn":
            return resource["Fn::GetAtt"][0]
        if "Fn::GetAtt" in resource and resource["Fn::GetAtt"][1] == "StreamArn":
            return resource["Fn::GetAtt"][0] + "/stream"
        if "Fn::Sub" in resource and isinstance(resource["Fn::Sub"], str):
            text = resource["Fn::Sub"]
            index = re.fullmatch(r"\$\{(\w+)\.Arn\}(/index/\w+)", text)
            if index:
                return index.group(1) + index.group(2)
            region_account = re.escape("${AWS::Region}:${AWS::AccountId}")
            log_group = re.fullmatch(
                re.escape("arn:${AWS::Partition}:logs:") + region_account + r":log-group:\$\{(\w+)\}:\*", text
            )
            if log_group:
                return f"log-group:{log_group.group(1)}"
        if "Fn::If" in resource and resource["Fn::If"][0] == "CreateLedgerEventBus":
            # the stack's own bus, or the existing one LedgerEventBusName names: nothing else
            _, own, named = resource["Fn::If"]
            region_account = "${AWS::Region}:${AWS::AccountId}"
            expected = f"arn:${{AWS::Partition}}:events:{region_account}:event-bus/${{LedgerEventBusName}}"
            if own == {"Fn::GetAtt": ["LedgerEventBus", "Arn"]} and named == {"Fn::Sub": expected}:
                return "bus:LedgerEventBus"
        if "Fn::If" in resource:
            # the secret by ARN or by name: both branches must name the same parameter
            _, by_arn, by_name = resource["Fn::If"]
            parameter = by_arn.get("Ref") if isinstance(by_arn, dict) else None
            region_account = "${AWS::Region}:${AWS::AccountId}"
            expected = f"arn:${{AWS::Partition}}:secretsmanager:{region_account}:secret:${{{parameter}}}-??????"
            if parameter and by_name == {"Fn::Sub": expected}:
                return f"secret:{parameter}"
    return f"<unrecognised {json.dumps(resource)}>"


def grants(template: dict[str, Any], function: str) -> set[tuple[str, str]]:
    """Every (action, resource) the function's role allows: inline statements and managed policies."""
    role_id = template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    found: set[tuple[str, str]] = set()
    for arn in role.get("ManagedPolicyArns", []):
        name = str(arn).rsplit("/", 1)[-1]
        assert name in MANAGED_POLICIES, f"{function}: managed policy {arn} whose grants this test does not know"
        found |= set(MANAGED_POLICIES[name])
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:  # a statement granted only when its condition holds: counted as granted
                condition, statement, otherwise = statement["Fn::If"]
                assert (condition, otherwise) == ("TracingOn", {"Ref": "AWS::NoValue"}), condition
            assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
            assert "Condition" not in statement, statement  # none expected: a condition would need its own review
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            found |= {(action, resource_name(resource)) for action in actions for resource in resources}
    return found


def test_every_function_is_in_the_allow_list(cfn: dict[str, Any]) -> None:
    assert set(of_type(cfn, "AWS::Lambda::Function")) == set(ALLOWED)


@pytest.mark.parametrize("function", sorted(ALLOWED))
def test_each_role_grants_exactly_its_allow_list(cfn: dict[str, Any], function: str) -> None:
    held = grants(cfn, function)
    assert sorted(held - ALLOWED[function]) == [], "beyond what the function uses"
    assert sorted(ALLOWED[function] - held) == [], "allow-listed but not granted: update the allow-list"


@pytest.mark.parametrize("function", sorted(ALLOWED))
def test_no_action_on_a_wildcard_resource(cfn: dict[str, Any], function: str) -> None:
    """Not even log writes: "*" would let a function write into any log group of the account."""
    wildcard = {(action, resource) for action, resource in grants(cfn, function) if resource == "*"}
    assert wildcard == TRACING, sorted(wildcard)  # X-Ray's, and only with Tracing On (grants checks the condition)
    assert not [action for action, _ in grants(cfn, function) if "*" in action]


def test_no_role_holds_a_managed_policy(cfn: dict[str, Any]) -> None:
    """SAM attaches AWSLambdaBasicExecutionRole (logs on "*") to every role it generates, and its `Events: SQS`
    AWSLambdaSQSQueueExecutionRole (SQS on "*"): each role is the template's own, and the worker's queue is wired
    by an explicit event source mapping and a statement scoped to the queue."""
    for function in ALLOWED:
        role_id = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
        assert "ManagedPolicyArns" not in cfn["Resources"][role_id]["Properties"], function
    mappings = {
        mapping["Properties"]["FunctionName"]["Ref"]: resource_name(mapping["Properties"]["EventSourceArn"])
        for mapping in of_type(cfn, "AWS::Lambda::EventSourceMapping").values()
    }
    assert mappings == {"RollbackWorkerFunction": "RollbackQueue", "LedgerEventsFunction": f"{LEDGER}/stream"}


@pytest.mark.parametrize("function", sorted(ALLOWED))
def test_each_role_is_the_templates_own_not_generated_by_sam(cfn: dict[str, Any], function: str) -> None:
    source = sam_source()["Resources"]
    role = source[function]["Properties"]["Role"]
    assert role == {"Fn::GetAtt": [f"{function}Role", "Arn"]}, function
    assert source[f"{function}Role"]["Type"] == "AWS::IAM::Role"
    assert "Policies" not in source[function]["Properties"], "SAM ignores Policies when Role is set"


@pytest.mark.parametrize("function", sorted(ALLOWED))
def test_each_role_writes_only_the_log_group_its_function_logs_to(cfn: dict[str, Any], function: str) -> None:
    """The log group in the function's LoggingConfig, created by the stack, is the one place it may write logs."""
    group = cfn["Resources"][function]["Properties"]["LoggingConfig"]["LogGroup"]
    assert group == {"Ref": f"{function}Logs"}
    assert cfn["Resources"][group["Ref"]]["Type"] == "AWS::Logs::LogGroup"
    logs = {(action, resource) for action, resource in grants(cfn, function) if action.startswith("logs:")}
    assert logs == own_logs(function)
    # no other function's group
    others = {f"log-group:{other}Logs" for other in ALLOWED if other != function}
    assert not [grant for grant in grants(cfn, function) if grant[1] in others]


def test_allow_list_check_catches_log_writes_beyond_the_functions_own_group(cfn: dict[str, Any]) -> None:
    import copy

    broken = copy.deepcopy(cfn)
    role_id = broken["Resources"]["RedemptionSucceededFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = broken["Resources"][role_id]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    other = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${RollbackWorkerFunctionLogs}:*"
    statements.append({"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": {"Fn::Sub": other}})
    statements.append({"Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "*"})
    broken["Resources"][role_id]["Properties"]["ManagedPolicyArns"] = [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    ]
    extra = grants(broken, "RedemptionSucceededFunction") - ALLOWED["RedemptionSucceededFunction"]
    assert extra == {
        ("logs:PutLogEvents", "log-group:RollbackWorkerFunctionLogs"),
        ("logs:CreateLogGroup", "*"),
        ("logs:CreateLogStream", "*"),
        ("logs:PutLogEvents", "*"),
    }


@pytest.mark.parametrize("function", sorted(ALLOWED))
def test_roles_are_assumed_by_lambda_alone(cfn: dict[str, Any], function: str) -> None:
    role_id = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    (statement,) = cfn["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": ["lambda.amazonaws.com"]}
    assert statement["Action"] == ["sts:AssumeRole"]


def test_allow_list_check_catches_a_broader_grant(cfn: dict[str, Any]) -> None:
    import copy

    broken = copy.deepcopy(cfn)
    role_id = broken["Resources"]["RollbackWorkerFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    broken["Resources"][role_id]["Properties"].setdefault("ManagedPolicyArns", []).append(
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
    )
    statements = broken["Resources"][role_id]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements.append({"Effect": "Allow", "Action": "dynamodb:Scan", "Resource": {"Fn::GetAtt": [LEDGER, "Arn"]}})
    extra = grants(broken, "RollbackWorkerFunction") - ALLOWED["RollbackWorkerFunction"]
    assert extra == {
        ("dynamodb:Scan", LEDGER),
        ("sqs:ReceiveMessage", "*"),
        ("sqs:DeleteMessage", "*"),
        ("sqs:GetQueueAttributes", "*"),
        ("logs:CreateLogGroup", "*"),
        ("logs:CreateLogStream", "*"),
        ("logs:PutLogEvents", "*"),
    }


# --- what the worker really calls is allowed ----------------------------------------------------------------
class Recorder:
    def __init__(self, client: Any, service: str, calls: set[str]) -> None:
        self._client, self._service, self._calls = client, service, calls

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method) or name.startswith(("get_paginator", "get_waiter", "can_paginate", "meta")):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == "transact_write_items":
                kinds = {kind for item in kwargs["TransactItems"] for kind in item}
                names = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "GetItem"}
                self._calls.update(f"dynamodb:{names[kind]}" for kind in kinds)
            else:
                action = "".join(part.title() for part in name.split("_"))
                self._calls.add(f"{self._service}:{action}")
            return method(*args, **kwargs)

        return call


def test_the_worker_policy_allows_every_call_it_makes(cfn: dict[str, Any], make_harness: Callable[..., Any]) -> None:
    """Rollback by redemption and by order (fan-out, index query), a retry (visibility change), a duplicate: the
    calls the worker's code makes, mapped to IAM actions, are all granted (the poller stands in for the mapping)."""
    import sys

    from support.worker import R1, record_redemption

    harness = make_harness()
    module = sys.modules["functions.RollbackWorkerFunction.app"]
    calls: set[str] = set()
    worker = module.worker
    worker.ledger.client = Recorder(worker.ledger.client, "dynamodb", calls)
    if hasattr(worker, "queue") and hasattr(worker.queue, "client"):
        worker.queue.client = Recorder(worker.queue.client, "sqs", calls)
    record_redemption(harness.ledger, R1, order_id="ord_iamtest", order_source_id="iam-1001")
    harness.send(order_id="ord_iamtest", reason="Refund")
    harness.send(order_source_id="iam-1001", reason="Refund")
    harness.send(redemption_id=R1, reason="again")
    harness.send_raw('{"not": "a request"}')
    harness.drain()
    calls = {
        c.replace("SendMessageBatch", "SendMessage") for c in calls
    }  # SendMessageBatch is authorised as SendMessage
    allowed = {action for action, _ in grants(cfn, "RollbackWorkerFunction")}
    assert calls, "nothing recorded"
    assert calls <= allowed, sorted(calls - allowed)


# --- the API stage ------------------------------------------------------------------------------------------
def test_the_api_stage_is_throttled_by_parameters(cfn: dict[str, Any]) -> None:
    (stage,) = of_type(cfn, "AWS::ApiGatewayV2::Stage").values()
    routes = stage["Properties"]["DefaultRouteSettings"]
    assert routes["ThrottlingRateLimit"] == {"Ref": "WebhookThrottlingRateLimit"}
    assert routes["ThrottlingBurstLimit"] == {"Ref": "WebhookThrottlingBurstLimit"}
    parameters = sam_source()["Parameters"]
    assert parameters["WebhookThrottlingRateLimit"]["Default"] >= 1
    assert parameters["WebhookThrottlingBurstLimit"]["Default"] >= parameters["WebhookThrottlingRateLimit"]["Default"]


def test_the_access_log_records_no_headers_or_bodies(cfn: dict[str, Any]) -> None:
    (stage,) = of_type(cfn, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["AccessLogSettings"]
    assert resource_name(settings["DestinationArn"]) == "WebhookAccessLogs"
    variables = set(re.findall(r"\$context\.([\w.]+)", settings["Format"]))
    assert "identity.sourceIp" in variables and "status" in variables
    assert not [v for v in variables if re.search(r"header|body|authorizer|input|identity\.(?!sourceIp)", v, re.I)]
    json.loads(re.sub(r"\$context\.[\w.]+", "x", settings["Format"]))  # one JSON object per request
    log_group = cfn["Resources"]["WebhookAccessLogs"]["Properties"]
    assert log_group["RetentionInDays"] == {"Ref": "WebhookAccessLogRetentionDays"}


def test_the_source_ip_allow_list_reaches_every_webhook_function(cfn: dict[str, Any]) -> None:
    parameter = sam_source()["Parameters"]["AllowedSourceCidrs"]
    assert parameter["Default"] == ""
    pattern = re.compile(parameter["AllowedPattern"])
    voucherify_eu = "34.247.197.22,63.32.191.141,52.215.148.84"
    assert pattern.fullmatch("") and pattern.fullmatch(voucherify_eu) and pattern.fullmatch("10.0.0.0/8, 2001:db8::/32")
    assert not pattern.fullmatch("*") and not pattern.fullmatch("any")
    for function, resource in of_type(sam_source(), "AWS::Serverless::Function").items():
        events = (resource["Properties"].get("Events") or {}).values()
        if any(event["Type"] == "HttpApi" for event in events):
            variables = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
            assert variables["ALLOWED_SOURCE_CIDRS"] == {"Ref": "AllowedSourceCidrs"}, function


def test_the_reconciler_policy_allows_every_call_it_makes(cfn: dict[str, Any], aws: Any) -> None:
    """A scheduled run and a backfill run over a fake list (redemptions the ledger lacks, a rollback of one it
    holds): the DynamoDB calls the reconciler's code makes, mapped to IAM actions, are all granted."""
    from datetime import UTC, datetime, timedelta

    from support.listing import ListEndpoint, history
    from voucherify_ledger.ledger import Ledger
    from voucherify_ledger.reconcile.run import Reconciler

    calls: set[str] = set()
    ledger = Ledger(aws.table_name, Recorder(aws.dynamodb, "dynamodb", calls))
    now = datetime(2026, 9, 1, tzinfo=UTC)
    objects, _ = history(120, seed=9, start=now - timedelta(days=3), days=2)
    ledger.reconciliation.start_job(now - timedelta(days=4), now, now)
    for _ in range(2):  # the backfill, then a scheduled run from its checkpoint
        Reconciler(ledger, ListEndpoint(objects), overlap=timedelta(hours=1)).run(now, time_left=lambda: 60)
    allowed = {action for action, _ in grants(cfn, "ReconcilerFunction")}
    assert {"dynamodb:BatchGetItem", "dynamodb:UpdateItem", "dynamodb:GetItem"} <= calls
    assert calls <= allowed, sorted(calls - allowed)


# --- the managed policies the stack offers the services and people around it ---------------------------------------
POLICIES: dict[str, set[tuple[str, str]]] = {
    "RollbackRequestSenderPolicy": {("sqs:SendMessage", "RollbackQueue")},
    "LedgerOperatorPolicy": {
        ("cloudformation:DescribeStacks", "the stack"),  # --stack: the outputs
        ("dynamodb:GetItem", LEDGER),
        ("dynamodb:Query", LEDGER),  # show: a redemption's items; --wait on an order request
        *{("dynamodb:Query", f"{LEDGER}/index/{name}") for name in INDEXES.values()},  # list
        ("dynamodb:Scan", f"{LEDGER}/index/Quarantine"),  # quarantine list
        ("dynamodb:UpdateItem", LEDGER),  # quarantine replay; a backfill job
        ("dynamodb:DeleteItem", LEDGER),
        ("sqs:SendMessage", "RollbackQueue"),  # rollback
        ("lambda:InvokeFunction", "ReconcilerFunction"),  # reconcile --stack
    },
}


def policy_grants(template: dict[str, Any], policy: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for statement in template["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow" and "Condition" not in statement and "NotAction" not in statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        found |= {(action, resource_name(resource)) for action in actions for resource in resources}
    return found


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_each_managed_policy_grants_exactly_its_allow_list_and_is_an_output(cfn: dict[str, Any], policy: str) -> None:
    assert cfn["Resources"][policy]["Type"] == "AWS::IAM::ManagedPolicy"
    assert policy_grants(cfn, policy) == POLICIES[policy]
    assert cfn["Outputs"][f"{policy}Arn"]["Value"] == {"Ref": policy}


def test_the_queue_arns_are_outputs(cfn: dict[str, Any]) -> None:
    for queue in ("RollbackQueue", "RollbackDeadLetterQueue"):
        assert cfn["Outputs"][f"{queue}Arn"]["Value"] == {"Fn::GetAtt": [queue, "Arn"]}
