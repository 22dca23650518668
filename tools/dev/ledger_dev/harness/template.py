"""Reads ``template.yaml`` so that tests and the local stack build exactly what the template defines."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
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


def table_definition(
    logical_id: str = "LedgerTable", table_name: str = "voucherify-ledger", *, stream: bool = True
) -> dict[str, Any]:
    """``CreateTable`` arguments from the template's ``AWS::DynamoDB::Table`` properties: its keys, indexes, billing
    mode, encryption and (unless ``stream`` is False) its stream, ``StreamSpecification`` as CloudFormation passes it
    (a ``StreamViewType`` enables the stream)."""
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
    view_type = (props.get("StreamSpecification") or {}).get("StreamViewType")
    if stream and view_type:
        definition["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view_type}
    return definition


def create_table(
    client: Any, logical_id: str = "LedgerTable", table_name: str = "voucherify-ledger", *, stream: bool = True
) -> str:
    """Creates the table (its stream, unless ``stream`` is False, and its TTL setting) as the template defines it;
    returns its name."""
    props = resources()[logical_id]["Properties"]
    client.create_table(**table_definition(logical_id, table_name, stream=stream))
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
    its template default. A variable whose ``Fn::If`` chooses ``AWS::NoValue`` is left out, as CloudFormation does.
    """
    template = load_template()
    values = template_values(refs)
    variables = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    own = resources()[logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    variables.update(own)
    resolved = {name: _resolve(value, values) for name, value in variables.items()}
    return {name: value for name, value in resolved.items() if value is not None}


def template_values(refs: Mapping[str, Any]) -> dict[str, str]:
    """What intrinsic functions resolve from: every parameter's ``Default``, then ``refs`` (logical ids,
    ``Id.Attribute``, parameters given, pseudo parameters)."""
    params = {name: str(p.get("Default", "")) for name, p in (load_template().get("Parameters") or {}).items()}
    return {**params, **{k: str(v) for k, v in refs.items()}}


def condition_holds(name: str, values: Mapping[str, str]) -> bool:
    """The template condition ``name`` (``Conditions``) evaluated with ``values`` (``template_values``)."""
    conditions = load_template().get("Conditions") or {}
    if name not in conditions:
        raise KeyError(f"no condition {name!r} in the template")
    return bool(resolve_value(conditions[name], values))


def resolve_value(value: Any, values: Mapping[str, str]) -> Any:
    """A template value with its intrinsic functions resolved from ``values``: ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``,
    ``Fn::If`` (None for ``AWS::NoValue``), ``Fn::Equals`` / ``Not`` / ``And`` / ``Or``, ``Condition``,
    ``Fn::Select``, ``Fn::Split``, ``Fn::Join``; lists and maps recursively. A name ``values`` lacks is a KeyError."""
    if isinstance(value, list):
        return [resolve_value(item, values) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        return {key: resolve_value(item, values) for key, item in value.items()}
    ((name, args),) = value.items()
    if name == "Ref":
        return None if args == "AWS::NoValue" else values[args]
    if name == "Fn::GetAtt":
        return values[".".join(args) if isinstance(args, list) else str(args)]
    if name == "Fn::Sub":
        text, extra = (args[0], args[1]) if isinstance(args, list) else (args, {})
        scope = {**values, **{k: str(resolve_value(v, values)) for k, v in extra.items()}}
        return re.sub(r"\$\{([^}!][^}]*)\}", lambda m: scope[m.group(1)], text)
    if name == "Fn::If":
        chosen = args[1] if condition_holds(args[0], values) else args[2]
        return resolve_value(chosen, values)
    if name == "Condition":
        return condition_holds(args, values)
    if name == "Fn::Equals":
        return str(resolve_value(args[0], values)) == str(resolve_value(args[1], values))
    if name == "Fn::Not":
        return not resolve_value(args[0], values)
    if name == "Fn::And":
        return all(resolve_value(arg, values) for arg in args)
    if name == "Fn::Or":
        return any(resolve_value(arg, values) for arg in args)
    if name == "Fn::Select":
        return resolve_value(args[1], values)[int(resolve_value(args[0], values))]
    if name == "Fn::Split":
        return str(resolve_value(args[1], values)).split(args[0])
    if name == "Fn::Join":
        return str(args[0]).join(str(resolve_value(item, values)) for item in resolve_value(args[1], values))
    return {name: resolve_value(args, values)}


def _resolve(value: Any, values: dict[str, str]) -> str | None:
    if isinstance(value, dict) and "Ref" in value:
        return None if value["Ref"] == "AWS::NoValue" else values[value["Ref"]]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return values[".".join(value["Fn::GetAtt"])]
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        for name, replacement in values.items():
            text = text.replace("${" + name + "}", replacement)
        return text
    if isinstance(value, dict) and "Fn::If" in value:
        condition, when_true, when_false = value["Fn::If"]
        return _resolve(when_true if condition_holds(condition, values) else when_false, values)
    return str(value)


def default_region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION", "eu-west-1")
