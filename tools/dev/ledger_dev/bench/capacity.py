"""DynamoDB capacity per delivery: the seed deliveries through the handlers against moto, the table read around
each one; item sizes and write units as DynamoDB bills them."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ledger_dev.bench.children import aws_environment, child_environment
from ledger_dev.bench.report import TARGETS, Report, Row
from ledger_dev.bench.seeds import REGION, TABLE_NAME, WEBHOOK_FUNCTIONS, SeedEvent, webhook_secret
from ledger_dev.harness.template import resources

ITEM_UNIT_BYTES = 1024  # one write unit per KB of item


def _number_size(value: str) -> int:
    """A DynamoDB number: about one byte per two significant digits, plus one."""
    digits = value.lstrip("-").replace(".", "").lstrip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def attribute_size(value: Mapping[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value (low-level ``{"S": …}`` form)."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode("utf-8"))
    if kind == "N":
        return _number_size(str(raw))
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode("utf-8")) for v in raw)
    if kind == "NS":
        return sum(_number_size(str(v)) for v in raw)
    if kind == "BS":
        return sum(len(v) for v in raw)
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + attribute_size(v) for k, v in raw.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, Mapping[str, Any]] | None) -> int:
    """Bytes DynamoDB counts for an item: every attribute's name plus its value."""
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + attribute_size(value) for name, value in item.items())


def write_units(before: int, after: int, *, transactional: bool = False) -> int:
    """Write units of one item write: 1 per started KB of the larger of the old and the new item (a write
    always costs at least 1), doubled inside a transaction."""
    units = max(1, math.ceil(max(before, after) / ITEM_UNIT_BYTES))
    return units * (2 if transactional else 1)


@dataclass(frozen=True)
class IndexDefinition:
    name: str
    keys: tuple[str, ...]
    projected: tuple[str, ...] | None  # None: ALL


def table_indexes(logical_id: str = "LedgerTable") -> list[IndexDefinition]:
    props = resources()[logical_id]["Properties"]
    base_keys = tuple(k["AttributeName"] for k in props["KeySchema"])
    found = []
    for index in props.get("GlobalSecondaryIndexes") or []:
        keys = tuple(k["AttributeName"] for k in index["KeySchema"])
        projection = index.get("Projection") or {}
        kind = projection.get("ProjectionType", "ALL")
        if kind == "ALL":
            projected = None
        elif kind == "KEYS_ONLY":
            projected = base_keys + keys
        else:
            projected = base_keys + keys + tuple(projection.get("NonKeyAttributes") or ())
        found.append(IndexDefinition(index["IndexName"], keys, projected))
    return found


def index_write_units(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, indexes: Sequence[IndexDefinition]
) -> int:
    """Write units DynamoDB spends on the indexes for one item change: a put for an item entering an index or
    changing its projection, a delete for one leaving it, both when its index key changes."""
    units = 0
    for index in indexes:

        def view(item: Mapping[str, Any] | None, index: IndexDefinition = index) -> dict[str, Any] | None:
            if not item or not all(k in item for k in index.keys):
                return None
            names = item.keys() if index.projected is None else [n for n in index.projected if n in item]
            return {n: item[n] for n in names}

        old, new = view(before), view(after)
        if old == new:
            continue
        same_key = old is not None and new is not None and all(old[k] == new[k] for k in index.keys)
        if old is not None and not same_key:
            units += write_units(item_size(old), 0)  # delete
        if new is not None:
            units += write_units(item_size(new), 0 if not same_key else item_size(old))
    return units


@dataclass
class Capacity:
    name: str
    status: str = ""
    calls: list[str] = field(default_factory=list)
    items: int = 0
    bytes_written: int = 0
    write_units: int = 0
    index_write_units: int = 0


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    return (item["pk"]["S"], item["sk"]["S"])


def _written_keys(operation: str, params: Mapping[str, Any]) -> list[tuple[tuple[str, str], bool]]:
    """(key, transactional) of every item a DynamoDB write call names."""
    if operation in ("PutItem",):
        return [(_key(params["Item"]), False)]
    if operation in ("UpdateItem", "DeleteItem"):
        return [(_key(params["Key"]), False)]
    if operation == "TransactWriteItems":
        found = []
        for entry in params["TransactItems"]:
            ((kind, body),) = entry.items()
            if kind == "ConditionCheck":
                continue
            found.append((_key(body["Item"] if kind == "Put" else body["Key"]), True))
        return found
    if operation == "BatchWriteItem":
        found = []
        for requests in params["RequestItems"].values():
            for request in requests:
                body = request.get("PutRequest") or request.get("DeleteRequest")
                found.append((_key(body.get("Item") or body.get("Key")), False))
        return found
    return []


def delivery_capacity(
    name: str,
    calls: Sequence[tuple[str, Mapping[str, Any]]],
    before: Mapping[tuple[str, str], Mapping[str, Any]],
    after: Mapping[tuple[str, str], Mapping[str, Any]],
    indexes: Sequence[IndexDefinition],
) -> Capacity:
    """The capacity one delivery used: its write calls and the table before and after it. A write whose
    condition failed still costs the units of the item it checked (DynamoDB bills it)."""
    result = Capacity(name, calls=[op for op, _ in calls])
    for operation, params in calls:
        for key, transactional in _written_keys(operation, params):
            old, new = before.get(key), after.get(key)
            result.write_units += write_units(item_size(old), item_size(new), transactional=transactional)
            if new is not None and new != old:
                result.items += 1
                result.bytes_written += item_size(new)
                result.index_write_units += index_write_units(old, new, indexes)
    return result


def _snapshot(client: Any) -> dict[tuple[str, str], dict[str, Any]]:
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=TABLE_NAME, ConsistentRead=True):
        for item in page["Items"]:
            items[_key(item)] = item
    return items


def measure_capacity(report: Report, events: Sequence[SeedEvent]) -> list[Capacity]:
    """Every seed delivery, in order, through its handler against moto; the table read around each one."""
    import boto3
    from moto import mock_aws

    from ledger_dev.harness.apigw import LambdaContext
    from ledger_dev.harness.functions import load_handler
    from ledger_dev.harness.template import create_table

    indexes = table_indexes()
    found: list[Capacity] = []
    with mock_aws(), aws_environment({}):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, table_name=TABLE_NAME)
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="voucherify-ledger/webhook", SecretString=json.dumps(webhook_secret())
        )
        handlers = {}
        for logical_id in WEBHOOK_FUNCTIONS:
            os.environ.update(child_environment(logical_id))
            for name in ("AWS_ENDPOINT_URL",):
                if not os.environ.get(name):
                    os.environ.pop(name, None)
            with redirect_stdout(io.StringIO()):
                handlers[logical_id] = load_handler(logical_id)
        calls: list[tuple[str, Mapping[str, Any]]] = []

        def record(model: Any, params: Mapping[str, Any], **_: Any) -> None:
            calls.append((model.name, json.loads(json.dumps(params, default=_json_default))))

        hooked = set()
        for seed in events:
            before = _snapshot(dynamodb)
            calls.clear()
            with redirect_stdout(io.StringIO()):
                module = sys.modules[handlers[seed.function].__module__]
                client = module.receiver.ledger.client if hasattr(module, "receiver") else None
                if client is not None and id(client) not in hooked:
                    client.meta.events.register("provide-client-params.dynamodb.*", record)
                    hooked.add(id(client))
                answer = handlers[seed.function](seed.event, LambdaContext(function_name=seed.function))
            after = _snapshot(dynamodb)
            capacity = delivery_capacity(seed.name, calls, before, after, indexes)
            capacity.status = json.loads(answer["body"]).get("status", str(answer["statusCode"]))
            found.append(capacity)
    first = [c for c in found if c.status == "recorded"]
    for capacity in found:
        report.add(
            Row(
                "capacity",
                f"{capacity.name} ({capacity.status})",
                capacity.write_units,
                None,
                "WU",
                TARGETS["write_units"],
                note=f"{capacity.bytes_written} B in {capacity.items} item(s); {'+'.join(capacity.calls)}; "
                f"+{capacity.index_write_units} index WU",
            )
        )
    if first:
        report.add(
            Row(
                "capacity",
                "largest recorded delivery",
                max(c.write_units for c in first),
                None,
                "WU",
                TARGETS["write_units"],
                note=f"bytes written up to {max(c.bytes_written for c in first)} B; index writes up to "
                f"{max(c.index_write_units for c in first)} WU (not in the target)",
            )
        )
    return found


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": len(value), "data": base64.b64encode(value).decode("ascii")}
    if isinstance(value, set):
        return sorted(value)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)
