"""LedgerOperatorPolicy against what `redemption-ledger` really calls: every command an operator runs against a stack
(show, list by each key, quarantine list and replay, rollback with --wait, reconcile --stack and --status), over the
stack's ledger, rollback queue, reconciler function and outputs in moto (in-process), each AWS call the CLI makes
recorded as the IAM action it needs and the stack resource it touches; every one of them must be a grant of the policy
as CloudFormation receives it (tests/infra/test_iam_allow_lists.py reads its grants). Seeded through the real webhook
functions: a redemption (order, order source id, customer, voucher code) and two quarantined deliveries."""

from __future__ import annotations

import copy
import io
import json
import socket
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from infra.test_iam_allow_lists import policy_grants
from moto.core.models import default_user_config
from samtranslator.translator.transform import transform

from ledger_dev.harness.queues import create_queues
from ledger_dev.harness.template import resources
from support.cli import run_cli
from support.documents import SEED_ORDER_ID, SEED_REDEMPTION_ID, compact, payload
from support.functions import TABLE_NAME, Aws
from support.template import ManagedPolicyLoader, sam_source, with_s3_artifacts
from support.worker import redemption_document, template_refs

POLICY = "LedgerOperatorPolicy"
STACK = "ledger-ops"
FUNCTION = f"{STACK}-ReconcilerFunction-1A2B3C"
ORDER_SOURCE_ID = "ops-1001"
CUSTOMER, VOUCHER_CODE = "cust_1g637SqVZnkdPNdAIZ7Ra879", "Always-add-prods-5"
TARGET = ["--stack", STACK, "--region", "eu-west-1"]
WAIT = "0.1"  # no worker polls the queue: the request stays pending, and --wait gives up (exit 5)


@pytest.fixture(scope="module")
def cfn() -> Iterator[dict[str, Any]]:
    """template.yaml as CloudFormation receives it, built as tests/infra/conftest.py's ``cfn`` builds it."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        env.delenv("AWS_PROFILE", raising=False)
        yield transform(with_s3_artifacts(sam_source()), {}, ManagedPolicyLoader())


# --- AWS calls as IAM sees them ---------------------------------------------------------------------------------
# Operations IAM authorises under another action's name.
SAME_AS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "lambda:Invoke": "lambda:InvokeFunction",
    "lambda:InvokeAsync": "lambda:InvokeFunction",
    "lambda:InvokeWithResponseStream": "lambda:InvokeFunction",
}
# TransactWriteItems has no action of its own: each of its items needs its kind's.
TRANSACT_ITEMS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def authorised_as(prefix: str, operation: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (IAM action, physical resource) pairs one API call needs: a table (``<table>/index/<name>`` when the call
    reads an index), a queue URL, a function name, a stack name."""
    if prefix == "dynamodb":
        if operation == "TransactWriteItems":
            return [
                (f"dynamodb:{TRANSACT_ITEMS[kind]}", body["TableName"])
                for item in params["TransactItems"]
                for kind, body in item.items()
            ]
        if operation == "TransactGetItems":
            return [("dynamodb:GetItem", item["Get"]["TableName"]) for item in params["TransactItems"]]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{operation}", table) for table in params["RequestItems"]]
        table = str(params.get("TableName", "?"))
        index = params.get("IndexName")
        return [(f"dynamodb:{operation}", f"{table}/index/{index}" if index else table)]
    action = SAME_AS.get(f"{prefix}:{operation}", f"{prefix}:{operation}")
    resource = {"sqs": "QueueUrl", "lambda": "FunctionName", "cloudformation": "StackName"}.get(prefix)
    return [(action, str(params.get(resource, "?")) if resource else "?")]


@dataclass(frozen=True)
class Call:
    action: str
    resource: str  # as the allow-list names it: a logical id, ``<id>/index/<name>``, ``the stack``
    command: str  # the CLI command that made it


@dataclass
class Recorder:
    """Every AWS call made by a client created while a command runs (botocore's ``provide-client-params`` event:
    paginated pages included), as IAM authorises it, its resource named as the template's allow-list names it."""

    logical: Mapping[str, str]  # physical name or URL → the allow-list's name of it
    calls: list[Call] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)

    def resource(self, physical: str) -> str:
        table, _, index = physical.partition("/index/")
        if index and table in self.logical:
            return f"{self.logical[table]}/index/{index}"
        return self.logical.get(physical, f"<not a resource of stack {STACK}: {physical}>")

    @contextmanager
    def command(self, name: str) -> Iterator[None]:
        real = boto3.session.Session.client

        def recorded_client(session: Any, service: str, *args: Any, **kwargs: Any) -> Any:
            client = real(session, service, *args, **kwargs)
            prefix = client.meta.service_model.signing_name
            self.clients.append(prefix)

            def record(params: Mapping[str, Any], model: Any, **_: Any) -> None:
                for action, physical in authorised_as(prefix, model.name, params):
                    self.calls.append(Call(action, self.resource(physical), name))

            client.meta.events.register("provide-client-params", record)
            return client

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(boto3.session.Session, "client", recorded_client)
            yield

    def pairs(self) -> set[tuple[str, str]]:
        return {(c.action, c.resource) for c in self.calls}


def ungranted(calls: Iterable[Call], granted: set[tuple[str, str]]) -> list[str]:
    """What the calls needed that ``granted`` lacks: ``<action> on <resource> (<commands>)``, sorted."""
    lacking: dict[tuple[str, str], set[str]] = {}
    for call in calls:
        if (call.action, call.resource) not in granted:
            lacking.setdefault((call.action, call.resource), set()).add(call.command)
    return [f"{a} on {r} ({', '.join(sorted(c))})" for (a, r), c in sorted(lacking.items())]


# --- the stack, seeded, and the operator's session against it -------------------------------------------------------
@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto is in-process: nothing may connect anywhere but 127.0.0.1."""
    real = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            raise OSError(f"test_operator_policy connects to 127.0.0.1 only, not {address[0]}")
        return real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@dataclass
class Stack:
    recorder: Recorder
    quarantined: dict[str, str]  # why → quarantine id
    queue_url: str


def _reconciler_function() -> None:
    """The stack's ReconcilerFunction in moto's Lambda (no Docker: an invocation is answered, nothing runs)."""
    role = boto3.client("iam").create_role(
        RoleName=f"{STACK}-ReconcilerFunctionRole",
        AssumeRolePolicyDocument=json.dumps(
            {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:*"}]}
        ),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return None\n")
    boto3.client("lambda").create_function(
        FunctionName=FUNCTION,
        Runtime="python3.11",
        Role=role,
        Handler="app.lambda_handler",
        Code={"ZipFile": code.getvalue()},
    )


@pytest.fixture
def stack(aws: Aws, invoke: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, loopback_only: None) -> Stack:
    """The stack's table (the ``aws`` fixture's, from template.yaml), its queues (template.yaml's), its reconciler and
    its outputs in moto's CloudFormation; a redemption and two quarantined deliveries through the webhook function."""
    monkeypatch.setitem(default_user_config["lambda"], "use_docker", False)
    created = create_queues(boto3.client("sqs"), resources("AWS::SQS::Queue"), template_refs())
    queues = {queue.logical_id: queue for queue in created}
    _reconciler_function()
    outputs = {
        "LedgerTableName": TABLE_NAME,
        "RollbackQueueUrl": queues["RollbackQueue"].url,
        "ReconcilerFunctionName": FUNCTION,
    }
    boto3.client("cloudformation").create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(
            {
                "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {key: {"Value": value} for key, value in outputs.items()},
            }
        ),
    )
    redemption = redemption_document(SEED_REDEMPTION_ID, order_source_id=ORDER_SOURCE_ID)
    assert invoke("RedemptionSucceededFunction", compact(redemption)).status == 200
    unknown_status = payload("redemption_succeeded")
    unknown_status["redemption"]["id"] = "r_0e2500291ae016ad99"
    unknown_status["redemption"]["status"] = "PARTIALLY_SUCCEEDED"  # a status today's model does not know
    quarantined = {
        "still invalid": invoke("RedemptionSucceededFunction", compact(unknown_status)),
        "wrong url": invoke("RedemptionSucceededFunction", compact(payload("customer_redemption_rollback_succeeded"))),
    }
    assert {(a.status, a.body["status"]) for a in quarantined.values()} == {(202, "quarantined")}
    logical = {
        TABLE_NAME: "LedgerTable",
        FUNCTION: "ReconcilerFunction",
        STACK: "the stack",
        **{q.url: q.logical_id for q in queues.values()},
    }
    ids = {why: answer.body["quarantine_id"] for why, answer in quarantined.items()}
    return Stack(Recorder(logical), ids, outputs["RollbackQueueUrl"])


def operator_session(stack: Stack) -> dict[str, tuple[int, str]]:
    """Every command an operator runs against the stack, each recorded under its name: its exit code and output."""
    since = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d")
    wait = ["--wait", WAIT]
    commands = {
        "show": ["show", SEED_REDEMPTION_ID],
        "list --order": ["list", "--order", SEED_ORDER_ID],
        "list --order-source-id": ["list", "--order-source-id", ORDER_SOURCE_ID],
        "list --customer": ["list", "--customer", CUSTOMER],
        "list --voucher-code": ["list", "--voucher-code", VOUCHER_CODE],
        "quarantine list": ["quarantine", "list"],
        "quarantine replay ID": ["quarantine", "replay", stack.quarantined["wrong url"]],
        "quarantine replay --all": ["quarantine", "replay", "--all"],
        "rollback ID --wait": ["rollback", SEED_REDEMPTION_ID, "--reason", "Order cancelled", *wait],
        "rollback --order --wait": ["rollback", "--order", SEED_ORDER_ID, "--reason", "Refund", *wait],
        "rollback --order-source-id --wait": [
            "rollback",
            "--order-source-id",
            ORDER_SOURCE_ID,
            "--reason",
            "Refund",
            *wait,
        ],
        "reconcile --since --stack": ["reconcile", "--since", since],
        "reconcile --status --stack": ["reconcile", "--status"],
    }
    answers = {}
    for name, argv in commands.items():
        with stack.recorder.command(name):
            answers[name] = run_cli([*argv, *TARGET])
    return answers


EXPECTED_EXITS = {
    "show": 0,
    "list --order": 0,
    "list --order-source-id": 0,
    "list --customer": 0,
    "list --voucher-code": 0,
    "quarantine list": 0,
    "quarantine replay ID": 0,  # the rollback sent to the redemption URL, recorded where it belongs
    "quarantine replay --all": 4,  # the unknown status still fails and stays quarantined
    "rollback ID --wait": 5,  # queued; not finished within --wait (no worker here)
    "rollback --order --wait": 5,
    "rollback --order-source-id --wait": 5,
    "reconcile --since --stack": 0,
    "reconcile --status --stack": 0,
}


def _check_answers(stack: Stack, answers: dict[str, tuple[int, str]]) -> None:
    assert {name: code for name, (code, _) in answers.items()} == EXPECTED_EXITS
    assert json.loads(answers["show"][1])["id"] == SEED_REDEMPTION_ID
    for name in ("list --order", "list --order-source-id"):
        assert json.loads(answers[name][1])["redemption_count"] == 1, name
    for name in ("list --customer", "list --voucher-code"):
        assert [r["redemption_id"] for r in json.loads(answers[name][1])] == [SEED_REDEMPTION_ID], name
    assert {r["quarantine_id"] for r in json.loads(answers["quarantine list"][1])} == set(stack.quarantined.values())
    assert json.loads(answers["quarantine replay ID"][1])["recorded"] == 1
    assert json.loads(answers["quarantine replay --all"][1])["still_invalid"] == 1
    for name in ("rollback ID --wait", "rollback --order --wait", "rollback --order-source-id --wait"):
        queued = json.loads(answers[name][1])
        assert (queued["queued"], queued["finished"], queued["queue_url"]) == (True, False, stack.queue_url), name
    started = json.loads(answers["reconcile --since --stack"][1])
    assert (started["started"], started["invoked"], started["function_name"]) == (True, True, FUNCTION)
    assert json.loads(answers["reconcile --status --stack"][1])["running_job"]["job_id"] == started["job_id"]


def test_every_call_the_operator_cli_makes_against_a_stack_is_granted_by_ledger_operator_policy(
    cfn: dict[str, Any], stack: Stack
) -> None:
    answers = operator_session(stack)

    _check_answers(stack, answers)
    recorded = stack.recorder.pairs()
    assert recorded, "nothing recorded"
    assert set(stack.recorder.clients) == {"cloudformation", "dynamodb", "sqs", "lambda"}
    assert ungranted(stack.recorder.calls, policy_grants(cfn, POLICY)) == []
    # the calls each kind of command needs were seen: the outputs, an index, the queue, the function
    assert {
        ("cloudformation:DescribeStacks", "the stack"),
        ("dynamodb:Query", "LedgerTable/index/ByOrder"),
        ("dynamodb:Query", "LedgerTable/index/ByOrderSourceId"),
        ("dynamodb:Query", "LedgerTable/index/ByCustomer"),
        ("dynamodb:Query", "LedgerTable/index/ByVoucherCode"),
        ("dynamodb:Scan", "LedgerTable/index/Quarantine"),
        ("sqs:SendMessage", "RollbackQueue"),
        ("lambda:InvokeFunction", "ReconcilerFunction"),
    } <= recorded
    by_command = {(c.command, c.action, c.resource) for c in stack.recorder.calls}
    assert ("list --customer", "dynamodb:Query", "LedgerTable/index/ByCustomer") in by_command
    assert ("quarantine list", "dynamodb:Scan", "LedgerTable/index/Quarantine") in by_command
    assert ("rollback ID --wait", "sqs:SendMessage", "RollbackQueue") in by_command
    assert ("reconcile --since --stack", "lambda:InvokeFunction", "ReconcilerFunction") in by_command
    described = {c.command for c in stack.recorder.calls if c.action == "cloudformation:DescribeStacks"}
    assert described == set(EXPECTED_EXITS)  # each command found the stack's resources through its outputs


def _without(cfn: dict[str, Any], sid: str, resource: Any = None) -> dict[str, Any]:
    """A copy of the template whose operator policy lacks statement ``sid`` (or only ``resource`` of it)."""
    broken = copy.deepcopy(cfn)
    statements = broken["Resources"][POLICY]["Properties"]["PolicyDocument"]["Statement"]
    (statement,) = [s for s in statements if s["Sid"] == sid]
    if resource is None:
        statements.remove(statement)
    else:
        statement["Resource"].remove(resource)
    return broken


def test_the_comparison_names_the_call_a_missing_grant_would_refuse(cfn: dict[str, Any], stack: Stack) -> None:
    """One index taken out of a copy of the policy: the comparison names it and the command that needed it; and each
    statement taken out in turn is named, by what the session used of it (every statement is needed by a command)."""
    answers = operator_session(stack)
    assert {name: code for name, (code, _) in answers.items()} == EXPECTED_EXITS
    calls = stack.recorder.calls
    assert ungranted(calls, policy_grants(cfn, POLICY)) == []

    no_customer_index = _without(cfn, "ListByIndex", {"Fn::Sub": "${LedgerTable.Arn}/index/ByCustomer"})
    assert ungranted(calls, policy_grants(no_customer_index, POLICY)) == [
        "dynamodb:Query on LedgerTable/index/ByCustomer (list --customer)"
    ]
    for statement in cfn["Resources"][POLICY]["Properties"]["PolicyDocument"]["Statement"]:
        remaining = policy_grants(_without(cfn, statement["Sid"]), POLICY)
        expected = sorted(stack.recorder.pairs() - remaining)
        named = ungranted(calls, remaining)
        assert expected, f"{statement['Sid']}: no command of the session needs it"
        assert [line.split(" (")[0] for line in named] == [f"{a} on {r}" for a, r in expected], statement["Sid"]
