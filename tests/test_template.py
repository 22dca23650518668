"""Infrastructure tests: template.yaml expanded by aws-sam-translator, linted by cfn-lint, and checked for
what matters (runtime, routes, least-privilege policies, no secrets in the environment, the table).

Written to stay true as resources are added: every check iterates over the functions, routes, policies and
outputs that exist, and pins only what the webhook ingestion needs."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from cfnlint.api import lint
from support.documents import compact, seed_documents
from support.functions import ROUTES, Aws, LambdaApp
from support.template import of_type, sam_source

from ledger_dev.harness.template import PROJECT_ROOT, TEMPLATE_PATH, load_template

WEBHOOK_FUNCTIONS = {
    "RedemptionSucceededFunction": "/webhooks/redemption-succeeded",
    "RedemptionRollbackSucceededFunction": "/webhooks/redemption-rollback-succeeded",
}
VOUCHERIFY_DELIVERY_TIMEOUT_SECONDS = 10
# Services whose actions read or write data: never on "*", only on resources the template defines or names.
DATA_SERVICES = {"dynamodb", "secretsmanager", "sqs", "sns", "s3", "kms", "ssm", "events", "lambda", "logs"}
# None: every function has an explicit role (template.yaml, FunctionLogs). The managed policies SAM would attach
# (AWSLambdaBasicExecutionRole, AWSLambdaSQSQueueExecutionRole) grant logs or SQS actions on "*".
ALLOWED_MANAGED_POLICIES = re.compile(r"(?!)")
PERSONAL = re.compile(r"name|email|phone|address|birth", re.IGNORECASE)


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


# --- authentication per route (WEBHOOK_AUTH) ------------------------------------------------------------
WEBHOOK_AUTH = {
    # function: (parameter, default). Project-settings webhooks are always signed: the redemption route accepts a
    # signature only, so a leaked distribution token cannot forge redemptions. Distribution webhooks (rollbacks) may
    # be unsigned and carry the token header.
    "RedemptionSucceededFunction": ("RedemptionWebhookAuth", "signature"),
    "RedemptionRollbackSucceededFunction": ("RollbackWebhookAuth", "either"),
}


@pytest.mark.parametrize("function", sorted(WEBHOOK_AUTH))
def test_each_webhook_route_has_its_own_authentication_setting(cfn: dict[str, Any], function: str) -> None:
    parameter, default = WEBHOOK_AUTH[function]
    spec = sam_source()["Parameters"][parameter]
    assert spec["Type"] == "String"
    assert spec["AllowedValues"] == ["signature", "token", "either"]
    assert spec["Default"] == default
    variables = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
    assert variables["WEBHOOK_AUTH"] == {"Ref": parameter}


def test_only_webhook_functions_get_an_authentication_setting(cfn: dict[str, Any]) -> None:
    assert set(WEBHOOK_AUTH) == set(WEBHOOK_FUNCTIONS) == set(http_functions())
    for function, res in of_type(cfn, "AWS::Lambda::Function").items():
        if function not in WEBHOOK_FUNCTIONS:
            assert "WEBHOOK_AUTH" not in res["Properties"]["Environment"]["Variables"], function
    assert "WEBHOOK_AUTH" not in load_template()["Globals"]["Function"]["Environment"]["Variables"]


def test_env_json_gives_sam_local_invoke_each_routes_authentication_setting() -> None:
    env = json.loads((PROJECT_ROOT / "events" / "env.json").read_text(encoding="utf-8"))
    for function, (_, default) in WEBHOOK_AUTH.items():
        assert env[function]["WEBHOOK_AUTH"] == default, function
    assert "WEBHOOK_AUTH" not in env["RollbackWorkerFunction"]


# --- function logs -------------------------------------------------------------------------------------
# CloudWatch Logs' retention values (PutRetentionPolicy): anything else is refused at deploy time.
CLOUDWATCH_RETENTION_DAYS = [
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
]


def test_function_log_retention_is_a_parameter_with_cloudwatchs_values() -> None:
    parameters = sam_source()["Parameters"]
    spec = parameters["FunctionLogRetentionDays"]
    assert spec["Type"] == "Number"
    assert spec["AllowedValues"] == CLOUDWATCH_RETENTION_DAYS
    assert spec["Default"] == 30
    assert parameters["WebhookAccessLogRetentionDays"]["AllowedValues"] == CLOUDWATCH_RETENTION_DAYS


def test_every_function_logs_to_its_own_group_kept_function_log_retention_days(cfn: dict[str, Any]) -> None:
    functions = of_type(cfn, "AWS::Lambda::Function")
    assert set(functions) == set(of_type(sam_source(), "AWS::Serverless::Function"))
    groups = {}
    for name, function in functions.items():
        logging = function["Properties"].get("LoggingConfig")
        assert logging, f"{name} has no LoggingConfig: Lambda would create /aws/lambda/<name>, kept for ever"
        # Text: Powertools writes JSON lines itself; Lambda's JSON format would filter its metric (EMF) lines as INFO.
        assert logging.get("LogFormat") == "Text", name
        assert set(logging) == {"LogGroup", "LogFormat"}, name
        group = logging["LogGroup"]["Ref"]
        assert cfn["Resources"][group]["Type"] == "AWS::Logs::LogGroup", name
        props = cfn["Resources"][group]["Properties"]
        assert props["RetentionInDays"] == {"Ref": "FunctionLogRetentionDays"}, group
        assert props["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{name}"}, group
        groups[name] = group
    assert len(set(groups.values())) == len(groups), "each function has its own log group"


def test_no_log_group_is_kept_for_ever(cfn: dict[str, Any]) -> None:
    for name, group in of_type(cfn, "AWS::Logs::LogGroup").items():
        assert group["Properties"].get("RetentionInDays") in (
            {"Ref": "FunctionLogRetentionDays"},
            {"Ref": "WebhookAccessLogRetentionDays"},
        ), name


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
