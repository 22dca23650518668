"""DynamoDB capacity per delivery: the seed deliveries through the handlers and through the textbook webhook against
moto, the tables read around each one; item sizes, write units and read units as DynamoDB bills them."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ledger_dev.bench.children import aws_environment, child_environment
from ledger_dev.bench.report import TARGETS, Report, Row
from ledger_dev.bench.seeds import REGION, TABLE_NAME, WEBHOOK_FUNCTIONS, SeedEvent, webhook_secret
from ledger_dev.harness.template import resources

ITEM_UNIT_BYTES = 1024  # one write unit per KB of item
READ_UNIT_BYTES = 4096  # one read unit per 4 KB read, strongly consistent (half of one eventually consistent)
TEXTBOOK_TABLE_NAME = "textbook-ledger"  # the textbook's table beside the bundle's, the same key schema


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


def read_units(size: int, *, consistent: bool = True, transactional: bool = False) -> float:
    """Read units of one item read: 1 per started 4 KB (at least 1) strongly consistent, half eventually
    consistent, doubled inside a transaction."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    if transactional:
        return float(units * 2)
    return float(units) if consistent else units / 2


def call_read_units(operation: str, params: Mapping[str, Any], answer: Mapping[str, Any] | None) -> float:
    """Read units of one DynamoDB read call, from what it answered: GetItem and each key of BatchGetItem /
    TransactGetItems by its item (a missing item still costs the minimum), Query and Scan by the total size of
    the items they return (rounded up once per call). Writes read nothing (their condition is part of the write)."""
    answer = answer or {}
    consistent = bool(params.get("ConsistentRead"))
    if operation == "GetItem":
        return read_units(item_size(answer.get("Item")), consistent=consistent)
    if operation in ("Query", "Scan"):
        total = sum(item_size(item) for item in answer.get("Items") or [])
        return read_units(total, consistent=consistent)
    if operation == "BatchGetItem":
        units = 0.0
        for table, request in (params.get("RequestItems") or {}).items():
            found = list((answer.get("Responses") or {}).get(table) or [])
            strong = bool(request.get("ConsistentRead"))
            units += sum(read_units(item_size(item), consistent=strong) for item in found)
            missing = len(request.get("Keys") or []) - len(found)
            units += max(0, missing) * read_units(0, consistent=strong)
        return units
    if operation == "TransactGetItems":
        return sum(read_units(item_size(r.get("Item")), transactional=True) for r in answer.get("Responses") or [])
    return 0.0


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
    read_units: float = 0.0
    log_bytes: int = 0  # what the handler logged (Logger lines and EMF metrics)
    events: int = 0  # ledger events the write published (LedgerEventsFunction fed its stream records)
    events_cpu_ms: float = 0.0  # LedgerEventsFunction's CPU time for them
    events_log_bytes: int = 0

    @property
    def call_count(self) -> int:
        return len(self.calls)

    def operations(self) -> str:
        """The calls by operation, in order of first use: ``UpdateItem×2+GetItem``."""
        counts: dict[str, int] = {}
        for call in self.calls:
            counts[call] = counts.get(call, 0) + 1
        return "+".join(f"{op}×{n}" if n > 1 else op for op, n in counts.items()) or "no call"


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    return (item["pk"]["S"], item["sk"]["S"])


def _written_keys(operation: str, params: Mapping[str, Any]) -> list[tuple[tuple[str, str], bool]]:
    """(key, transactional) of every item a DynamoDB write call names; a transaction's ConditionCheck is billed as
    a write of the item it checks."""
    if operation in ("PutItem",):
        return [(_key(params["Item"]), False)]
    if operation in ("UpdateItem", "DeleteItem"):
        return [(_key(params["Key"]), False)]
    if operation == "TransactWriteItems":
        found = []
        for entry in params["TransactItems"]:
            ((kind, body),) = entry.items()
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
    answers: Sequence[Mapping[str, Any] | None] | None = None,
    states: Sequence[Mapping[tuple[str, str], Mapping[str, Any] | None] | None] | None = None,
) -> Capacity:
    """The capacity one delivery used: its calls (and, for reads, what each answered) and the table before and
    after it. A write whose condition failed still costs the units of the item it checked (DynamoDB bills it).
    ``states`` (when known) gives each write's items as they were right after it, so that an item written twice is
    billed first by its state between the writes, then by its final one; otherwise each write is billed by the
    item before the delivery and after it."""
    result = Capacity(name, calls=[op for op, _ in calls])
    current: dict[tuple[str, str], Mapping[str, Any] | None] = dict(before)
    for position, (operation, params) in enumerate(calls):
        answer = answers[position] if answers is not None and position < len(answers) else None
        result.read_units += call_read_units(operation, params, answer)
        state = states[position] if states is not None and position < len(states) else None
        for key, transactional in _written_keys(operation, params):
            if state is not None and key in state:
                old, new = current.get(key), state[key]
                current[key] = new
            else:
                old, new = before.get(key), after.get(key)
            result.write_units += write_units(item_size(old), item_size(new), transactional=transactional)
            if new is not None and new != old:
                result.items += 1
                result.bytes_written += item_size(new)
                result.index_write_units += index_write_units(old, new, indexes)
    return result


class CallRecorder:
    """Every DynamoDB call of the clients attached to it, in order: (operation, params) and what it answered; with
    ``read``, also each write's items right after it (``read(key)``: the item, strongly consistent, or None)."""

    def __init__(self, read: Callable[[tuple[str, str]], Mapping[str, Any] | None] | None = None) -> None:
        self.calls: list[tuple[str, Mapping[str, Any]]] = []
        self.answers: list[Mapping[str, Any] | None] = []
        self.states: list[dict[tuple[str, str], Mapping[str, Any] | None] | None] = []
        self._read = read
        self.read_seconds = 0.0  # CPU time spent reading those items (to be taken out of a function's CPU time)
        self._attached: set[int] = set()

    def attach(self, client: Any) -> None:
        if id(client) in self._attached:
            return
        self._attached.add(id(client))
        client.meta.events.register("provide-client-params.dynamodb.*", self._called)
        client.meta.events.register("after-call.dynamodb.*", self._answered)

    def clear(self) -> None:
        self.calls.clear()
        self.answers.clear()
        self.states.clear()

    def _called(self, model: Any, params: Mapping[str, Any], **_: Any) -> None:
        self.calls.append((model.name, json.loads(json.dumps(params, default=_json_default))))
        self.answers.append(None)
        self.states.append(None)

    def _answered(self, model: Any, parsed: Mapping[str, Any], **_: Any) -> None:
        for position in range(len(self.calls) - 1, -1, -1):  # the latest call of this operation not yet answered
            if self.calls[position][0] == model.name and self.answers[position] is None:
                self.answers[position] = parsed
                if self._read is not None:
                    started = time.process_time()
                    keys = _written_keys(*self.calls[position])
                    self.states[position] = {key: self._read(key) for key, _ in keys}
                    self.read_seconds += time.process_time() - started
                return

    def capacity(
        self,
        name: str,
        before: Mapping[tuple[str, str], Mapping[str, Any]],
        after: Mapping[tuple[str, str], Mapping[str, Any]],
        indexes: Sequence[IndexDefinition],
    ) -> Capacity:
        return delivery_capacity(name, self.calls, before, after, indexes, self.answers, self.states)


def item_reader(client: Any, table_name: str) -> Callable[[tuple[str, str]], Mapping[str, Any] | None]:
    """``CallRecorder``'s ``read``: one item of ``table_name`` by its key, strongly consistent, through ``client``
    (a client of the bench's own, never one the recorder is attached to)."""

    def read(key: tuple[str, str]) -> Mapping[str, Any] | None:
        answer = client.get_item(
            TableName=table_name, Key={"pk": {"S": key[0]}, "sk": {"S": key[1]}}, ConsistentRead=True
        )
        item: Mapping[str, Any] | None = answer.get("Item")
        return item

    return read


def dynamodb_clients(module: Any) -> list[Any]:
    """The DynamoDB clients a loaded handler module holds."""
    from ledger_dev.bench.ledger_events import clients_of

    return clients_of(module, "dynamodb")


def snapshot(client: Any, table_name: str = TABLE_NAME) -> dict[tuple[str, str], dict[str, Any]]:
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True):
        for item in page["Items"]:
            items[_key(item)] = item
    return items


@dataclass
class DeliveryCapacity:
    """One seed delivery through the bundle's handler and through the textbook's."""

    seed: SeedEvent
    bundle: Capacity
    textbook: Capacity


# The kinds of delivery the capacity rows summarise: (row label, which seeds belong).
DELIVERY_KINDS: tuple[tuple[str, str, str], ...] = (
    ("new redemption", "RedemptionSucceededFunction", "recorded"),
    ("new rollback webhook", "RedemptionRollbackSucceededFunction", "recorded"),
    ("duplicate delivery", "", "duplicate"),
)


def kind_of(found: DeliveryCapacity) -> str | None:
    for label, function, status in DELIVERY_KINDS:
        if found.bundle.status == status and function in ("", found.seed.function):
            return label
    return None


def measure_capacity(report: Report, events: Sequence[SeedEvent]) -> list[DeliveryCapacity]:
    """Every seed delivery, in order, through its handler against moto and through the textbook webhook (a table of
    its own, the same seeds in the same order, each right after the bundle's); the tables read around each one."""
    import boto3
    from moto import mock_aws

    from ledger_dev.bench.ledger_events import LedgerEventsProbe, LogMeter
    from ledger_dev.bench.textbook import load_textbook
    from ledger_dev.harness.apigw import LambdaContext
    from ledger_dev.harness.functions import load_handler
    from ledger_dev.harness.template import create_table

    indexes = table_indexes()
    found: list[DeliveryCapacity] = []
    with mock_aws(), aws_environment({}):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, table_name=TABLE_NAME)
        create_table(dynamodb, table_name=TEXTBOOK_TABLE_NAME)
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="voucherify-ledger/webhook", SecretString=json.dumps(webhook_secret())
        )
        handlers: dict[str, Any] = {}
        meters: dict[str, Any] = {}
        bundle = CallRecorder(item_reader(dynamodb, TABLE_NAME))
        textbook = CallRecorder(item_reader(dynamodb, TEXTBOOK_TABLE_NAME))
        for logical_id in WEBHOOK_FUNCTIONS:
            os.environ.update(child_environment(logical_id))
            for name in ("AWS_ENDPOINT_URL",):
                if not os.environ.get(name):
                    os.environ.pop(name, None)
            with redirect_stdout(io.StringIO()):
                handlers[logical_id] = load_handler(logical_id)
            module = sys.modules[handlers[logical_id].__module__]
            meters[logical_id] = LogMeter(module)
            for client in dynamodb_clients(module):
                bundle.attach(client)
        # The textbook in a table of its own, under a service name of its own (Powertools' Logger would otherwise
        # reuse the bundle's logger).
        os.environ.update(LEDGER_TABLE_NAME=TEXTBOOK_TABLE_NAME, POWERTOOLS_SERVICE_NAME="voucherify-ledger-textbook")
        with redirect_stdout(io.StringIO()):
            textbook_handler, textbook_module = load_textbook(WEBHOOK_FUNCTIONS[0])
        textbook_meter = LogMeter(textbook_module)
        for client in dynamodb_clients(textbook_module):
            textbook.attach(client)
        probe = LedgerEventsProbe()
        for seed in events:
            context = LambdaContext(function_name=seed.function)
            before = snapshot(dynamodb)
            bundle.clear()
            with meters[seed.function].measure() as logged:
                answer = handlers[seed.function](seed.event, context)
            after = snapshot(dynamodb)
            mine = bundle.capacity(seed.name, before, after, indexes)
            mine.status = json.loads(answer["body"]).get("status", str(answer["statusCode"]))
            mine.log_bytes = logged[0]
            published = probe.publish(before, after)
            mine.events, mine.events_cpu_ms, mine.events_log_bytes = (
                published.events,
                published.cpu_ms,
                published.log_bytes,
            )
            before = snapshot(dynamodb, TEXTBOOK_TABLE_NAME)
            textbook.clear()
            with textbook_meter.measure() as logged:
                answer = textbook_handler(seed.event, context)
            theirs = textbook.capacity(seed.name, before, snapshot(dynamodb, TEXTBOOK_TABLE_NAME), indexes)
            theirs.status = str(answer["statusCode"])
            theirs.log_bytes = logged[0]
            found.append(DeliveryCapacity(seed, mine, theirs))
    for each in found:
        mine, theirs = each.bundle, each.textbook
        report.add(
            Row(
                "capacity",
                f"{mine.name} ({mine.status})",
                mine.write_units,
                None,
                "WU",
                TARGETS["write_units"],
                note=f"{mine.bytes_written} B in {mine.items} item(s); {mine.operations()}; "
                f"+{mine.index_write_units} index WU; {mine.events} ledger event(s); textbook: {theirs.operations()}",
                textbook=theirs.write_units,
            )
        )
    for label, _, _ in DELIVERY_KINDS:
        mine_kind = [f for f in found if kind_of(f) == label]
        if not mine_kind:
            continue
        names = ", ".join(f.seed.name for f in mine_kind)
        calls_target = TARGETS["duplicate_calls"] if label == "duplicate delivery" else None
        report.add(
            Row(
                "capacity",
                f"{label}: DynamoDB calls",
                max(f.bundle.call_count for f in mine_kind),
                None,
                "calls",
                calls_target,
                note=f"the most of {names}",
                textbook=max(f.textbook.call_count for f in mine_kind),
            ),
            Row(
                "capacity",
                f"{label}: write units",
                max(f.bundle.write_units for f in mine_kind),
                None,
                "WU",
                TARGETS["write_units"],
                note=f"+{max(f.bundle.index_write_units for f in mine_kind)} index WU at most (not in the target)",
                textbook=max(f.textbook.write_units for f in mine_kind),
            ),
        )
        if any(f.bundle.read_units or f.textbook.read_units for f in mine_kind):
            report.add(
                Row(
                    "capacity",
                    f"{label}: read units",
                    max(f.bundle.read_units for f in mine_kind),
                    None,
                    "RRU",
                    textbook=max(f.textbook.read_units for f in mine_kind),
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
