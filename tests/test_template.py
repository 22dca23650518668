"""Infrastructure tests: template.yaml expanded by aws-sam-translator, linted by cfn-lint, and checked for
what matters (runtime, routes, least-privilege policies, no secrets in the environment, the table).

Written to stay true as resources are added: every check iterates over the functions, routes, policies and
outputs that exist, and pins only what the webhook ingestion needs."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cfnlint.api import lint
from conftest import ROUTES, Aws, LambdaApp, compact, seed_documents
from samtranslator.translator.transform import transform

from ledger_tools.template import PROJECT_ROOT, TEMPLATE_PATH, load_template

WEBHOOK_FUNCTIONS = {
    "RedemptionSucceededFunction": "/webhooks/redemption-succeeded",
    "RedemptionRollbackSucceededFunction": "/webhooks/redemption-rollback-succeeded",
}
VOUCHERIFY_DELIVERY_TIMEOUT_SECONDS = 10
# Services whose actions read or write data: never on "*", only on resources the template defines or names.
DATA_SERVICES = {"dynamodb", "secretsmanager", "sqs", "sns", "s3", "kms", "ssm", "events", "lambda"}
ALLOWED_MANAGED_POLICIES = re.compile(
    r"arn:(aws|\$\{AWS::Partition\}):iam::aws:policy/(service-role/AWSLambda(Basic|SQSQueue)ExecutionRole"
    r"|AWSXRayDaemonWriteAccess)"
)
PERSONAL = re.compile(r"name|email|phone|address|birth", re.IGNORECASE)


class ManagedPolicyLoader:
    """Stands in for the IAM ListPolicies call the SAM transform makes for managed-policy names."""

    def load(self) -> dict[str, str]:
        return {
            name: f"arn:aws:iam::aws:policy/{path}"
            for name, path in {
                "AWSLambdaBasicExecutionRole": "service-role/AWSLambdaBasicExecutionRole",
                "AWSLambdaSQSQueueExecutionRole": "service-role/AWSLambdaSQSQueueExecutionRole",
                "AWSXRayDaemonWriteAccess": "AWSXRayDaemonWriteAccess",
            }.items()
        }


def sam_source() -> dict[str, Any]:
    return copy.deepcopy(load_template(TEMPLATE_PATH))


def with_s3_artifacts(template: dict[str, Any]) -> dict[str, Any]:
    """Local CodeUri / ContentUri replaced with S3 locations, as cfn-lint and `sam package` do."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://artifacts-bucket/{logical_id}.zip"
    return template


@pytest.fixture(scope="module")
def cfn() -> Iterator[dict[str, Any]]:
    """The CloudFormation template that the SAM transform makes of template.yaml."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        env.delenv("AWS_PROFILE", raising=False)
        yield transform(with_s3_artifacts(sam_source()), {}, ManagedPolicyLoader())


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def http_functions() -> dict[str, list[dict[str, Any]]]:
    """Logical ids of the functions behind an HttpApi route, with the properties of those events."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, res in of_type(sam_source(), "AWS::Serverless::Function").items():
        events = [e["Properties"] for e in (res["Properties"].get("Events") or {}).values() if e["Type"] == "HttpApi"]
        if events:
            found[name] = events
    return found


def references(value: Any) -> set[str]:
    """Logical ids and parameter names a CloudFormation value refers to (Ref, GetAtt, ${…} in Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= {ref.split(".")[0] for ref in re.findall(r"\$\{([^}!]+)\}", text)}
                if isinstance(inner, list):
                    found |= references(inner[1])
            elif key == "Fn::If":
                found |= references(inner[1]) | references(inner[2])
            else:
                found |= references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= references(inner)
    return found - {"AWS::Partition", "AWS::Region", "AWS::AccountId", "AWS::URLSuffix", "AWS::NoValue"}


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
    for policy in policies:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            found.append({**statement, "Action": actions, "Resource": resources})
    return found


# --- the whole template --------------------------------------------------------------------------------
def test_translated_template_lints_without_errors(cfn: dict[str, Any]) -> None:
    matches = lint(json.dumps(cfn), regions=["eu-west-1", "us-east-1"])
    errors = [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


def test_sam_source_lints_without_errors() -> None:
    matches = lint(TEMPLATE_PATH.read_text(encoding="utf-8"), regions=["eu-west-1"])
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")] == []


def test_linting_would_catch_a_broken_template(cfn: dict[str, Any]) -> None:
    broken = copy.deepcopy(cfn)
    function = next(iter(of_type(broken, "AWS::Lambda::Function").values()))
    function["Properties"]["Runtime"] = "python2.6"
    function["Properties"]["Timeout"] = "soon"
    assert [m for m in lint(json.dumps(broken), regions=["eu-west-1"]) if m.rule.id.startswith("E")]


# --- functions -----------------------------------------------------------------------------------------
def test_every_function_runs_python313_on_arm64(cfn: dict[str, Any]) -> None:
    functions = of_type(cfn, "AWS::Lambda::Function")
    assert set(functions) >= set(of_type(sam_source(), "AWS::Serverless::Function"))
    assert set(WEBHOOK_FUNCTIONS) <= set(functions)
    for name, res in functions.items():
        props = res["Properties"]
        assert props["Runtime"] == "python3.13", name
        assert props["Architectures"] == ["arm64"], name


def test_webhook_functions_answer_within_voucherify_delivery_timeout(cfn: dict[str, Any]) -> None:
    behind_http = http_functions()
    assert set(WEBHOOK_FUNCTIONS) <= set(behind_http)
    for name in behind_http:
        timeout = cfn["Resources"][name]["Properties"]["Timeout"]
        assert isinstance(timeout, int) and timeout < VOUCHERIFY_DELIVERY_TIMEOUT_SECONDS, (name, timeout)


def test_every_function_code_exists_with_its_handler() -> None:
    for name, res in of_type(sam_source(), "AWS::Serverless::Function").items():
        module, _, handler = res["Properties"]["Handler"].rpartition(".")
        source = PROJECT_ROOT / res["Properties"]["CodeUri"] / f"{module.replace('.', '/')}.py"
        assert source.is_file(), name
        assert f"def {handler}(" in source.read_text(encoding="utf-8"), name


def test_shared_layer_is_built_for_python313_and_used_by_every_function(cfn: dict[str, Any]) -> None:
    layers = of_type(sam_source(), "AWS::Serverless::LayerVersion")
    layer = layers["SharedLayer"]
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert layer["Metadata"].get("BuildArchitecture", "arm64") == "arm64"
    assert "python3.13" in layer["Properties"]["CompatibleRuntimes"]
    assert "arm64" in layer["Properties"]["CompatibleArchitectures"]
    folder = PROJECT_ROOT / layer["Properties"]["ContentUri"]
    assert (folder / "requirements.txt").is_file() and (folder / "voucherify_ledger" / "__init__.py").is_file()
    assert not (folder / "python").exists()  # BuildMethod python3.13 makes the python/ folder itself
    (version,) = [n for n in of_type(cfn, "AWS::Lambda::LayerVersion") if n.startswith("SharedLayer")]
    for name, res in of_type(cfn, "AWS::Lambda::Function").items():
        assert {"Ref": version} in res["Properties"].get("Layers", []), name


# --- routes --------------------------------------------------------------------------------------------
def test_http_api_routes_point_to_their_functions_with_payload_2(cfn: dict[str, Any]) -> None:
    assert ROUTES == WEBHOOK_FUNCTIONS
    ((api_id, api),) = [(n, r) for n, r in of_type(cfn, "AWS::ApiGatewayV2::Api").items() if n == "WebhookApi"]
    paths = api["Properties"]["Body"]["paths"]
    for function, path in WEBHOOK_FUNCTIONS.items():
        integration = paths[path]["post"]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy"
        assert integration["payloadFormatVersion"] == "2.0"
        # The function itself, or its AutoPublishAlias (SnapStart restores published versions only).
        targets = {function} | {
            name
            for name, alias in of_type(cfn, "AWS::Lambda::Alias").items()
            if alias["Properties"]["FunctionName"] == {"Ref": function}
        }
        (target,) = references(integration["uri"])
        assert target in targets, f"{path} must invoke {function} or its alias, not {target}"
        assert set(paths[path]) == {"post"}, f"{path} must accept POST only"
        permission = [
            r["Properties"]
            for r in of_type(cfn, "AWS::Lambda::Permission").values()
            if r["Properties"]["FunctionName"] == {"Ref": target}
        ]
        assert any(
            p["Principal"] == "apigateway.amazonaws.com" and f"/POST{path}" in json.dumps(p["SourceArn"])
            for p in permission
        ), function
    for events in http_functions().values():
        for event in events:
            assert str(event.get("PayloadFormatVersion")) == "2.0"
            assert event["ApiId"] == {"Ref": api_id}


def test_outputs_name_both_webhook_urls_and_the_table(cfn: dict[str, Any]) -> None:
    outputs = [json.dumps(output["Value"]) for output in cfn["Outputs"].values()]
    for path in WEBHOOK_FUNCTIONS.values():
        assert any("https://${WebhookApi}.execute-api." in o and o.endswith(f'{path}"}}') for o in outputs), path
    assert any(output["Value"] == {"Ref": "LedgerTable"} for output in cfn["Outputs"].values())


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


def test_policy_check_catches_broad_managed_policies(cfn: dict[str, Any]) -> None:
    broken = copy.deepcopy(cfn)
    role_id = broken["Resources"]["RedemptionRollbackSucceededFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    broken["Resources"][role_id]["Properties"]["ManagedPolicyArns"].append(
        "arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess"
    )
    assert policy_problems(broken) == [
        "RedemptionRollbackSucceededFunction: managed policy arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess"
    ]


@pytest.mark.parametrize("function", sorted(WEBHOOK_FUNCTIONS))
def test_webhook_function_may_only_use_the_ledger_and_read_its_secret(cfn: dict[str, Any], function: str) -> None:
    for statement in statements(cfn, function):
        for action in statement["Action"]:
            service = action.split(":")[0]
            assert service in {"dynamodb", "secretsmanager"}, action
            if service == "secretsmanager":
                assert action == "secretsmanager:GetSecretValue"
                assert all(references(r) == {"WebhookSecretId"} for r in statement["Resource"]), statement
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


# --- the table -----------------------------------------------------------------------------------------
def test_ledger_table_is_on_demand_recoverable_encrypted_and_expires_quarantine(cfn: dict[str, Any]) -> None:
    table = cfn["Resources"]["LedgerTable"]
    props = table["Properties"]
    assert table.get("DeletionPolicy") == "Retain" and table.get("UpdateReplacePolicy") == "Retain"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert [k["AttributeName"] for k in props["KeySchema"]] == ["pk", "sk"]


def test_indexes_key_on_ids_and_project_no_personal_data(cfn: dict[str, Any]) -> None:
    props = cfn["Resources"]["LedgerTable"]["Properties"]
    gsis = {g["IndexName"]: g for g in props["GlobalSecondaryIndexes"]}
    assert {name: g["KeySchema"][0]["AttributeName"] for name, g in gsis.items()}.items() >= {
        "ByOrder": "order_id",
        "ByCustomer": "customer_id",
        "ByVoucherCode": "voucher_code",
    }.items()
    for name, gsi in gsis.items():
        projection = gsi["Projection"]
        assert projection["ProjectionType"] in ("KEYS_ONLY", "INCLUDE"), name
        attributes = [k["AttributeName"] for k in gsi["KeySchema"]] + projection.get("NonKeyAttributes", [])
        assert not [a for a in attributes if PERSONAL.search(a)], name
        assert not [a for a in attributes if "raw" in a or "delivery" in a], name
    defined = {a["AttributeName"] for a in props["AttributeDefinitions"]}
    assert not [a for a in defined if PERSONAL.search(a)]


def test_snapstart_is_a_parameter_of_the_webhook_functions_only(cfn: dict[str, Any]) -> None:
    template = sam_source()
    assert template["Parameters"]["WebhookSnapStart"]["Default"] == "Off"
    functions = of_type(cfn, "AWS::Lambda::Function")
    for name, function in functions.items():
        snap = function["Properties"].get("SnapStart")
        if name in WEBHOOK_FUNCTIONS:
            assert snap == {"ApplyOn": {"Fn::If": ["WebhookSnapStartOn", "PublishedVersions", "None"]}}, name
            aliases = of_type(cfn, "AWS::Lambda::Alias").values()
            (alias,) = [a for a in aliases if a["Properties"]["FunctionName"] == {"Ref": name}]
            assert "Version" in json.dumps(alias["Properties"]["FunctionVersion"])
        else:
            assert snap is None, f"{name} must not use SnapStart"
