"""The stack's CloudWatch dashboard and its alarms name only metrics that exist: every custom metric is one the code
emits, in the namespace and with the one dimension Powertools gives it; every AWS metric names a resource of the
template by the dimension AWS publishes it with. The dashboard shows what an operator needs on one page."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ledger_dev.harness.template import PROJECT_ROOT, load_template
from support.template import of_type, sam_source

GLOBALS = load_template()["Globals"]["Function"]["Environment"]["Variables"]
NAMESPACE = GLOBALS["POWERTOOLS_METRICS_NAMESPACE"]
SERVICE = GLOBALS["POWERTOOLS_SERVICE_NAME"]
CODE = [
    *sorted((PROJECT_ROOT / "layers" / "shared" / "voucherify_ledger").rglob("*.py")),
    *sorted((PROJECT_ROOT / "functions").glob("*/app.py")),
]
METRIC_CALLS = {"add_metric", "metric", "_metric"}


def _names_in(node: ast.expr, tables: dict[str, set[str]]) -> set[str]:
    """The metric names an argument can be: a literal, either branch of ``a if c else b``, a table's values."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _names_in(node.body, tables) | _names_in(node.orelse, tables)
    if isinstance(node, ast.Name):  # a variable read from a *_METRICS table
        return set().union(*tables.values()) if tables else set()
    return set()


def emitted_metrics(paths: list[Path] = CODE) -> set[str]:
    """Every metric name the code passes to Powertools' ``add_metric`` (directly or through its ``metric``
    callbacks), read from the source's syntax trees: literals, conditional literals and ``*_METRICS`` tables."""
    found: set[str] = set()
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        tables = {
            target.id: {v.value for v in node.value.values if isinstance(v, ast.Constant)}
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
            for target in node.targets
            if isinstance(target, ast.Name) and target.id.endswith("_METRICS")
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called not in METRIC_CALLS:
                continue
            name = next((k.value for k in node.keywords if k.arg == "name"), node.args[0] if node.args else None)
            if name is not None:
                found |= _names_in(name, tables)
    return found


def resolve_sub(text: str) -> str:
    """A ``!Sub`` string with its references made readable: ``${X}`` → ``<X>``, ``${X.Attr}`` → ``<X.Attr>``,
    pseudo parameters to example values."""
    pseudo = {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
    pseudo["AWS::StackName"] = "voucherify-ledger"
    return re.sub(r"\$\{([\w:.]+)\}", lambda m: pseudo.get(m.group(1), f"<{m.group(1)}>"), text)


def dashboard() -> dict[str, Any]:
    (board,) = of_type(sam_source(), "AWS::CloudWatch::Dashboard").values()
    body: dict[str, Any] = json.loads(resolve_sub(board["Properties"]["DashboardBody"]["Fn::Sub"]))
    return body


def dashboard_metrics() -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, name, dimensions) of every metric line of the dashboard's metric widgets."""
    found = []
    for widget in dashboard()["widgets"]:
        for line in widget["properties"].get("metrics", []):
            values = [v for v in line if not isinstance(v, dict)]
            namespace, name, *pairs = values
            assert "..." not in values and "." not in values, "write every line in full: the test reads each"
            found.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return found


def alarm_metrics() -> list[tuple[str, str, dict[str, str]]]:
    found = []
    for alarm in of_type(sam_source(), "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        metrics = [props] if "MetricName" in props else []
        metrics += [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        for metric in metrics:
            dimensions = {d["Name"]: _readable(d["Value"]) for d in metric.get("Dimensions", [])}
            found.append((metric["Namespace"], metric["MetricName"], dimensions))
    return found


def _readable(value: Any) -> str:
    """An alarm's dimension value in the dashboard's notation (``<X>`` for ``!Ref X``, ``<X.Attr>``)."""
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    return str(value)


def test_the_emitted_metrics_scan_finds_literals_conditionals_and_tables() -> None:
    """The scan itself, on the code it reads: a name from each form."""
    names = emitted_metrics()
    assert {"Unauthorized", "Recorded", "Duplicates"} <= names  # add_metric(name=…), and `a if c else b`
    assert {"RollbacksSucceeded", "RollbacksFailed"} <= names  # DONE_METRICS, through a variable
    assert {"Backfilled", "ReconciledMissing", "ReconcileLagSeconds"} <= names  # the reconciler's callback
    assert "LedgerEventsPublished" in names and "LedgerEventsFailed" in names


def test_no_code_changes_the_metrics_namespace_or_dimensions() -> None:
    """So that every custom metric is (POWERTOOLS_METRICS_NAMESPACE, name, service=POWERTOOLS_SERVICE_NAME), as
    the alarms and the dashboard name them."""
    for path in CODE:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"add_dimension|default_dimensions|single_metric|\bnamespace\s*=", text), path
        assert all(call == "Metrics()" for call in re.findall(r"\bMetrics\([^)]*\)", text)), path
    for name, function in of_type(sam_source(), "AWS::Serverless::Function").items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert not {"POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_SERVICE_NAME"} & set(variables), name


@pytest.mark.parametrize("source", ["dashboard", "alarms"])
def test_every_custom_metric_named_is_emitted_with_its_namespace_and_dimension(source: str) -> None:
    named = dashboard_metrics() if source == "dashboard" else alarm_metrics()
    custom = [(name, dimensions) for namespace, name, dimensions in named if not namespace.startswith("AWS/")]
    assert custom, "no custom metric named"
    assert {namespace for namespace, _, _ in named if not namespace.startswith("AWS/")} == {NAMESPACE}
    emitted = emitted_metrics()
    assert sorted({name for name, _ in custom} - emitted) == [], "named but never emitted by the code"
    assert [d for _, d in custom if d != {"service": SERVICE}] == []


@pytest.mark.parametrize("source", ["dashboard", "alarms"])
def test_every_aws_metric_names_a_resource_of_the_template(source: str) -> None:
    resources = sam_source()["Resources"]
    named = dashboard_metrics() if source == "dashboard" else alarm_metrics()
    kinds = {
        "AWS/Lambda": ({"FunctionName"}, "AWS::Serverless::Function", ""),
        "AWS/SQS": ({"QueueName"}, "AWS::SQS::Queue", ".QueueName"),
        "AWS/ApiGateway": ({"ApiId", "Stage"}, "AWS::Serverless::HttpApi", ""),
    }
    for namespace, name, dimensions in named:
        if not namespace.startswith("AWS/"):
            continue
        keys, kind, attribute = kinds[namespace]
        assert set(dimensions) == keys, (namespace, name, dimensions)
        primary = dimensions["ApiId" if namespace == "AWS/ApiGateway" else next(iter(keys))]
        match = re.fullmatch(r"<(\w+)" + re.escape(attribute) + ">", primary)
        assert match and resources[match.group(1)]["Type"] == kind, (namespace, name, primary)
        if namespace == "AWS/ApiGateway":
            assert dimensions["Stage"] == "$default"


def test_the_dashboard_shows_what_an_operator_needs() -> None:
    named = {(namespace, name) for namespace, name, _ in dashboard_metrics()}
    custom = {name for namespace, name in named if namespace == NAMESPACE}
    assert {"Recorded", "Duplicates", "Quarantined", "Rejected", "Unauthorized", "StorageErrors"} <= custom
    assert {"StorageRefused", "ConflictingDuplicates"} <= custom  # what a person must look at
    assert {"RollbacksSucceeded", "RollbacksAlreadyRolledBack", "RollbacksFailed", "RollbacksDeadLettered"} <= custom
    assert {"LedgerEventsPublished", "LedgerEventsFailed"} <= custom
    assert {"ReconciledMissing", "Backfilled", "ReconcileUnlisted", "ReconcileErrors", "ReconcileLagSeconds"} <= custom
    assert {("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("AWS/SQS", "ApproximateAgeOfOldestMessage")} <= named
    queues = {d["QueueName"] for ns, _, d in dashboard_metrics() if ns == "AWS/SQS"}
    assert queues == {f"<{q}.QueueName>" for q in of_type(sam_source(), "AWS::SQS::Queue")}  # depth of every queue
    functions = {d["FunctionName"] for ns, n, d in dashboard_metrics() if (ns, n) == ("AWS/Lambda", "Errors")}
    assert functions == {f"<{f}>" for f in of_type(sam_source(), "AWS::Serverless::Function")}
    widgets = dashboard()["widgets"]
    latency = [w for w in widgets if "Latency" in json.dumps(w["properties"].get("metrics", []))]
    (latency_widget,) = latency
    stats = {line[-1]["stat"] for line in latency_widget["properties"]["metrics"]}
    assert stats == {"p50", "p99"}
    assert latency_widget["properties"]["annotations"]["horizontal"][0]["value"] == 10_000  # Voucherify's timeout
    (answers,) = [w for w in widgets if w["type"] == "log"]  # answers by route and status code, from the access log
    assert answers["properties"]["query"].startswith("SOURCE '<WebhookAccessLogs>'")
    assert "by route, status" in answers["properties"]["query"]
    access_log = json.loads(re.sub(r"\$context\.[\w.]+", "x", _access_log_format()))
    assert {"route", "status", "latencyMs"} <= set(access_log)


def _access_log_format() -> str:
    (stage_api,) = of_type(sam_source(), "AWS::Serverless::HttpApi").values()
    return str(stage_api["Properties"]["AccessLogSettings"]["Format"])


def test_the_alarm_widget_shows_every_alarm() -> None:
    (widget,) = [w for w in dashboard()["widgets"] if w["type"] == "alarm"]
    shown = {arn.rsplit(":alarm:", 1)[1] for arn in widget["properties"]["alarms"]}
    assert shown == {f"<{name}>" for name in of_type(sam_source(), "AWS::CloudWatch::Alarm")}
    assert all(
        arn.startswith("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:") for arn in widget["properties"]["alarms"]
    )


def test_the_dashboard_fits_cloudwatch_limits() -> None:
    (board,) = of_type(sam_source(), "AWS::CloudWatch::Dashboard").values()
    body = dashboard()
    assert len(json.dumps(body)) < 1_000_000 and len(body["widgets"]) <= 500
    for widget in body["widgets"]:
        props = widget["properties"]
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24, widget
        assert len(props.get("metrics", [])) <= 500
    assert board["Properties"]["DashboardName"] == {"Fn::Sub": "${AWS::StackName}-ledger"}


def test_the_scan_of_emitted_metrics_fails_on_a_name_nobody_emits(tmp_path: Path) -> None:
    code = tmp_path / "code.py"
    code.write_text('metrics.add_metric(name="Seen", unit="Count", value=1)\nself.metric("A" if x else "B", 1)\n')
    assert emitted_metrics([code]) == {"Seen", "A", "B"}
