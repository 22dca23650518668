"""Reads ``template.yaml`` so that tests and the local stack build exactly what the template defines."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[4]  # tools/dev/ledger_dev/harness/template.py
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form tags (``!Ref x`` → ``{"Ref": "x"}``)."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@cache
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)


def parameter_default(name: str) -> str:
    """The template parameter's ``Default``."""
    return str(load_template()["Parameters"][name]["Default"])


def resources(kind: str | None = None) -> dict[str, dict[str, Any]]:
    found = load_template()["Resources"]
    return {name: res for name, res in found.items() if kind is None or res["Type"] == kind}


def table_definition(logical_id: str = "LedgerTable", table_name: str = "voucherify-ledger") -> dict[str, Any]:
    """``CreateTable`` arguments from the template's ``AWS::DynamoDB::Table`` properties."""
    props = resources()[logical_id]["Properties"]
    definition: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props["BillingMode"],
    }
    if props.get("GlobalSecondaryIndexes"):
        definition["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("SSESpecification", {}).get("SSEEnabled"):
        definition["SSESpecification"] = {"Enabled": True}
    return definition


def create_table(client: Any, logical_id: str = "LedgerTable", table_name: str = "voucherify-ledger") -> str:
    """Creates the table (and its TTL setting) as the template defines it; returns its name."""
    props = resources()[logical_id]["Properties"]
    client.create_table(**table_definition(logical_id, table_name))
    client.get_waiter("table_exists").wait(TableName=table_name)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )
    return table_name


@dataclass(frozen=True)
class HttpRoute:
    function: str  # logical id
    method: str
    path: str
    code_uri: Path
    handler: str
    payload_format: str


def http_routes() -> list[HttpRoute]:
    """Every ``HttpApi`` event of every function: what API Gateway routes to which handler."""
    found = []
    for logical_id, res in resources("AWS::Serverless::Function").items():
        props = res["Properties"]
        for event in (props.get("Events") or {}).values():
            if event["Type"] != "HttpApi":
                continue
            ev = event["Properties"]
            found.append(
                HttpRoute(
                    function=logical_id,
                    method=ev["Method"].upper(),
                    path=ev["Path"],
                    code_uri=PROJECT_ROOT / props["CodeUri"],
                    handler=props["Handler"],
                    payload_format=str(ev.get("PayloadFormatVersion", "2.0")),
                )
            )
    return found


def function_environment(logical_id: str, refs: dict[str, Any]) -> dict[str, str]:
    """The function's environment (Globals merged with its own), intrinsic functions resolved from ``refs``.

    ``refs`` maps logical ids and parameter names to local values; a parameter not in ``refs`` takes
    its template default.
    """
    template = load_template()
    params = {name: str(p.get("Default", "")) for name, p in (template.get("Parameters") or {}).items()}
    values = {**params, **{k: str(v) for k, v in refs.items()}}
    variables = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    own = resources()[logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    variables.update(own)
    return {name: _resolve(value, values) for name, value in variables.items()}


def condition_holds(name: str, values: dict[str, str]) -> bool:
    """The template condition ``name`` (``Conditions``), evaluated with ``values``."""
    return _holds(load_template()["Conditions"][name], values)


def _holds(expression: Any, values: dict[str, str]) -> bool:
    if "Condition" in expression:
        return condition_holds(expression["Condition"], values)
    ((function, arguments),) = expression.items()
    if function == "Fn::Equals":
        left, right = (_resolve(argument, values) for argument in arguments)
        return left == right
    if function == "Fn::Not":
        return not _holds(arguments[0], values)
    if function == "Fn::And":
        return all(_holds(argument, values) for argument in arguments)
    if function == "Fn::Or":
        return any(_holds(argument, values) for argument in arguments)
    raise ValueError(f"unsupported condition function {function}")


def _resolve(value: Any, values: dict[str, str]) -> str:
    if isinstance(value, dict) and "Fn::If" in value:
        condition, when_true, when_false = value["Fn::If"]
        return _resolve(when_true if condition_holds(condition, values) else when_false, values)
    if isinstance(value, dict) and "Ref" in value:
        return values[value["Ref"]]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return values[".".join(value["Fn::GetAtt"])]
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        for name, replacement in values.items():
            text = text.replace("${" + name + "}", replacement)
        return text
    return str(value)


def default_region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION", "eu-west-1")
