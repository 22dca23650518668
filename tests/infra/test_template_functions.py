"""The functions, routes and queues of template.yaml: python3.13 on arm64, handlers that exist, the shared layer,
HTTP API routes with payload 2.0, timeouts within Voucherify's delivery timeout, SnapStart and authentication
settings of the webhook functions, the rollback queue with its dead-letter queue and event source, the outputs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ledger_dev.harness.template import PROJECT_ROOT, load_template, resources
from support.functions import ROUTES
from support.template import WEBHOOK_FUNCTIONS, WORKER, of_type, references, sam_source, worker

VOUCHERIFY_DELIVERY_TIMEOUT_SECONDS = 10


def http_functions() -> dict[str, list[dict[str, Any]]]:
    """Logical ids of the functions behind an HttpApi route, with the properties of those events."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, res in of_type(sam_source(), "AWS::Serverless::Function").items():
        events = [e["Properties"] for e in (res["Properties"].get("Events") or {}).values() if e["Type"] == "HttpApi"]
        if events:
            found[name] = events
    return found


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


def test_every_function_is_built_by_the_functions_makefile() -> None:
    """No function needs python3.13 or Docker to build: each is its app.py, copied by functions/Makefile."""
    makefile = (PROJECT_ROOT / "functions" / "Makefile").read_text(encoding="utf-8")
    for name, res in of_type(sam_source(), "AWS::Serverless::Function").items():
        assert res["Metadata"]["BuildMethod"] == "makefile", name
        assert res["Metadata"]["ContextPath"] == "functions", name
        assert res["Properties"]["Handler"] == "app.lambda_handler", name
        assert name in makefile.split("FUNCTIONS :=", 1)[1].split("\n\n", 1)[0], name
    assert 'cp app.py "$(ARTIFACTS_DIR)/"' in makefile


def test_shared_layer_is_built_for_python313_and_used_by_every_function(cfn: dict[str, Any]) -> None:
    layers = of_type(sam_source(), "AWS::Serverless::LayerVersion")
    layer = layers["SharedLayer"]
    # Built by its own Makefile (python3.13 / arm64 wheels by pip): `sam build` needs neither python3.13 nor Docker.
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Metadata"].get("BuildArchitecture", "arm64") == "arm64"
    assert "python3.13" in layer["Properties"]["CompatibleRuntimes"]
    assert "arm64" in layer["Properties"]["CompatibleArchitectures"]
    folder = PROJECT_ROOT / layer["Properties"]["ContentUri"]
    assert (folder / "requirements.txt").is_file() and (folder / "voucherify_ledger" / "__init__.py").is_file()
    makefile = (folder / "Makefile").read_text(encoding="utf-8")
    assert "\nbuild-SharedLayer:" in makefile
    assert "--platform $(LAMBDA_PLATFORM) --python-version $(LAMBDA_PYTHON)" in makefile
    assert "LAMBDA_PLATFORM ?= manylinux2014_aarch64" in makefile and "LAMBDA_PYTHON ?= 3.13" in makefile
    assert "--only-binary=:all:" in makefile
    assert not (folder / "python").exists()  # the build makes the python/ folder itself
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
    # An explicit mapping rather than `Events: SQS`, whose managed policy grants SQS on "*" (test_iam_allow_lists.py).
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


def test_outputs_and_parameters() -> None:
    template = load_template()
    assert template["Outputs"]["RollbackQueueUrl"]["Value"] == {"Ref": "RollbackQueue"}
    params = template["Parameters"]
    pattern = re.compile(params["VoucherifyApiUrl"]["AllowedPattern"])
    assert pattern.match(params["VoucherifyApiUrl"]["Default"]) and pattern.match("https://us1.api.voucherify.io")
    assert not pattern.match("http://api.voucherify.io")
    assert params["RollbackWorkerMaxConcurrency"]["MinValue"] == 2  # the least MaximumConcurrency SQS allows


def test_the_expanded_event_source_mapping_reports_batch_item_failures_and_caps_concurrency(
    cfn: dict[str, Any],
) -> None:
    """As CloudFormation receives it (the lint of this template: tests/infra/test_template_lint.py)."""
    mappings = [r["Properties"] for r in cfn["Resources"].values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    (mapping,) = [m for m in mappings if m["FunctionName"] == {"Ref": "RollbackWorkerFunction"}]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "RollbackWorkerMaxConcurrency"}}
