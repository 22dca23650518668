"""What a million deliveries, worker rollbacks and reconciled objects cost, computed from the figures this run
measured (capacity, warm CPU, log bytes, ledger events) and the list prices below (``PRICES``: the one place they are
kept, with their date). What is assumed rather than measured is in ``ASSUMED``, and printed with the table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ledger_dev.bench.report import Report, Row
from ledger_dev.bench.seeds import (
    LEDGER_EVENTS_FUNCTION,
    RECONCILER_FUNCTION,
    WEBHOOK_FUNCTIONS,
    WORKER_FUNCTION,
)


@dataclass(frozen=True)
class Prices:
    """List prices in US dollars, us-east-1, as published on ``date``."""

    date: str = "2026-12-01"
    region: str = "us-east-1"
    http_api_per_million_requests: float = 1.00
    lambda_arm64_per_gb_second: float = 0.0000133334
    lambda_per_million_requests: float = 0.20
    dynamodb_per_million_write_units: float = 0.625  # on-demand
    dynamodb_per_million_read_units: float = 0.125  # on-demand
    eventbridge_per_million_events: float = 1.00  # custom events
    cloudwatch_logs_per_gb: float = 0.50  # ingestion
    sqs_per_million_requests: float = 0.40  # standard queue


PRICES = Prices()


@dataclass(frozen=True)
class Assumed:
    """What the cost model takes as given instead of measuring it here."""

    lambda_mb_per_vcpu: int = 1769  # Lambda gives a function one vCPU at 1,769 MB, a proportional share below
    dynamodb_call_ms: float = 5.0  # one DynamoDB round trip from Lambda in the same region
    put_events_call_ms: float = 10.0  # one PutEvents round trip
    voucherify_call_ms: float = 100.0  # one Voucherify API call (the worker section's fake latency)
    list_call_ms: float = 300.0  # one page of Voucherify's list of redemptions (the reconciler)
    sqs_requests_per_rollback: int = 3  # SendMessage, the event source's ReceiveMessage and DeleteMessage
    records_per_stream_batch: int = 1  # a delivery's stream record invokes LedgerEventsFunction on its own
    objects_per_page: int = 100  # the reconciler lists 100 objects a call and reads them with one BatchGetItem


ASSUMED = Assumed()
GB = 1024**3


def memory_mb(logical_id: str) -> int:
    """The function's MemorySize in template.yaml (its own, else the Globals')."""
    from ledger_dev.harness.template import load_template, resources

    props = resources("AWS::Serverless::Function")[logical_id]["Properties"]
    globals_ = (load_template().get("Globals") or {}).get("Function") or {}
    return int(props.get("MemorySize") or globals_.get("MemorySize") or 128)


def billed_ms(cpu_ms: float, waits_ms: float, memory: int, assumed: Assumed = ASSUMED) -> int:
    """Lambda's billed duration of one invocation: the CPU time measured on this machine stretched by the CPU share
    ``memory`` MB gets (a whole vCPU at ``lambda_mb_per_vcpu``), plus the waits for its calls, rounded up to 1 ms."""
    stretch = max(1.0, assumed.lambda_mb_per_vcpu / memory)
    return max(1, math.ceil(cpu_ms * stretch + waits_ms))


def gb_seconds(ms: float, memory: int) -> float:
    return ms / 1000 * memory / 1024


@dataclass
class Usage:
    """What one unit of work (a delivery, a rollback, an object) uses of each priced thing."""

    http_requests: float = 0.0
    lambda_requests: float = 0.0
    lambda_gb_seconds: float = 0.0
    write_units: float = 0.0
    read_units: float = 0.0
    events: float = 0.0
    sqs_requests: float = 0.0
    log_bytes: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(Usage)})

    def scaled(self, factor: float) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) * factor for f in fields(Usage)})


def cost_per_million(usage: Usage, prices: Prices = PRICES) -> dict[str, float]:
    """Dollars per million units of work, by what is billed."""
    million = 1_000_000
    return {
        "HTTP API": usage.http_requests * prices.http_api_per_million_requests,
        "Lambda requests": usage.lambda_requests * prices.lambda_per_million_requests,
        "Lambda duration": usage.lambda_gb_seconds * million * prices.lambda_arm64_per_gb_second,
        "DynamoDB writes": usage.write_units * prices.dynamodb_per_million_write_units,
        "DynamoDB reads": usage.read_units * prices.dynamodb_per_million_read_units,
        "EventBridge": usage.events * prices.eventbridge_per_million_events,
        "SQS": usage.sqs_requests * prices.sqs_per_million_requests,
        "CloudWatch Logs": usage.log_bytes * million / GB * prices.cloudwatch_logs_per_gb,
    }


def invocation(cpu_ms: float, waits_ms: float, memory: int, log_bytes: float, assumed: Assumed = ASSUMED) -> Usage:
    """One Lambda invocation: its request, its billed GB-seconds, its log bytes."""
    return Usage(
        lambda_requests=1.0,
        lambda_gb_seconds=gb_seconds(billed_ms(cpu_ms, waits_ms, memory, assumed), memory),
        log_bytes=log_bytes,
    )


@dataclass
class CostLine:
    """One row of the cost table: what a million units of ``work`` cost one side, by what is billed."""

    work: str
    side: str  # "bundle" | "textbook"
    usage: Usage | None  # None: the side has no such function
    components: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def total(self) -> float | None:
        return sum(self.components.values()) if self.usage is not None else None


def line(work: str, side: str, usage: Usage | None, note: str = "", prices: Prices = PRICES) -> CostLine:
    return CostLine(work, side, usage, cost_per_million(usage, prices) if usage is not None else {}, note)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def ledger_events_usage(events: float, records: float, cpu_ms: float, log_bytes: float) -> Usage:
    """The ledger events of one write: each entry on the bus, and LedgerEventsFunction invoked for its records."""
    if not records:
        return Usage()
    memory = memory_mb(LEDGER_EVENTS_FUNCTION)
    batches = records / ASSUMED.records_per_stream_batch
    one = invocation(cpu_ms / batches, ASSUMED.put_events_call_ms if events else 0.0, memory, log_bytes / batches)
    return one.scaled(batches) + Usage(events=events)


def webhook_usage(capacities: Sequence[Any], warm_ms: float, logical_id: str, *, bundle: bool) -> Usage:
    """One new delivery of ``logical_id``'s route: the mean of the seeds its capacity rows measured."""
    calls = _mean([c.call_count for c in capacities])
    memory = memory_mb(logical_id)
    usage = invocation(warm_ms, calls * ASSUMED.dynamodb_call_ms, memory, _mean([c.log_bytes for c in capacities]))
    usage = usage + Usage(
        http_requests=1.0,
        write_units=_mean([c.write_units for c in capacities]),
        read_units=_mean([c.read_units for c in capacities]),
    )
    if bundle:
        usage = usage + ledger_events_usage(
            _mean([c.events for c in capacities]),
            _mean([1.0 if c.events_cpu_ms else 0.0 for c in capacities]),
            _mean([c.events_cpu_ms for c in capacities]),
            _mean([c.events_log_bytes for c in capacities]),
        )
    return usage


def rollback_usage(capacity: Any, cpu_ms: float, api_calls: int, *, bundle: bool) -> Usage:
    """One rollback in the worker, its message alone in its batch."""
    waits = capacity.call_count * ASSUMED.dynamodb_call_ms + api_calls * ASSUMED.voucherify_call_ms
    usage = invocation(cpu_ms, waits, memory_mb(WORKER_FUNCTION), capacity.log_bytes)
    usage = usage + Usage(
        write_units=capacity.write_units,
        read_units=capacity.read_units,
        sqs_requests=ASSUMED.sqs_requests_per_rollback,
    )
    if bundle:
        records = 1.0 if capacity.events_cpu_ms else 0.0
        usage = usage + ledger_events_usage(capacity.events, records, capacity.events_cpu_ms, capacity.events_log_bytes)
    return usage


def reconcile_usage(item_bytes: int, page_wait_ms: float) -> Usage:
    """One reconciled object the ledger already holds: its share of a page (one list call, one strongly consistent
    BatchGetItem of the page's keys, billed by each item's size) and of the invocation's time."""
    from ledger_dev.bench.capacity import read_units

    per_page = ASSUMED.objects_per_page
    memory = memory_mb(RECONCILER_FUNCTION)
    page_ms = billed_ms(0.0, page_wait_ms + ASSUMED.dynamodb_call_ms, memory)
    return Usage(
        lambda_gb_seconds=gb_seconds(page_ms, memory) / per_page,
        read_units=read_units(item_bytes, consistent=True),
    )


def warm_figures(report: Report, logical_id: str) -> tuple[float | None, float | None]:
    """The warm section's medians for ``logical_id`` (all seed events): the bundle's and the textbook's ms."""
    for row in report.rows:
        if row.section == "warm" and row.what == f"{logical_id} (all seed events)":
            return row.value, row.textbook
    return None, None


def measure_cost(report: Report, deliveries: Sequence[Any], worker: Mapping[str, Any]) -> list[CostLine]:
    """The cost table from this run's figures; its totals also become rows of the report (≤ 1× the textbook)."""
    from ledger_dev.harness.template import load_template

    lines: list[CostLine] = []
    kinds = {WEBHOOK_FUNCTIONS[0]: "new redemption", WEBHOOK_FUNCTIONS[1]: "new rollback webhook"}
    per_side: dict[str, list[Usage]] = {"bundle": [], "textbook": []}
    for logical_id in WEBHOOK_FUNCTIONS:
        mine_ms, textbook_ms = warm_figures(report, logical_id)
        new = [d for d in deliveries if d.seed.function == logical_id and d.bundle.status == "recorded"]
        if mine_ms is None or textbook_ms is None or not new:
            return lines  # the warm or capacity section did not run
        per_side["bundle"].append(webhook_usage([d.bundle for d in new], mine_ms, logical_id, bundle=True))
        per_side["textbook"].append(webhook_usage([d.textbook for d in new], textbook_ms, logical_id, bundle=False))
    basis = (
        f"half {kinds[WEBHOOK_FUNCTIONS[0]]}s, half {kinds[WEBHOOK_FUNCTIONS[1]]}s: the mean of each route's recorded "
        f"seed deliveries (failed ones included); warm ms × {ASSUMED.lambda_mb_per_vcpu}/"
        f"{memory_mb(WEBHOOK_FUNCTIONS[0])} + {ASSUMED.dynamodb_call_ms:g} ms a DynamoDB call"
    )
    notes = {
        "bundle": f"{basis}; its ledger events and LedgerEventsFunction included",
        "textbook": f"{basis}; no ledger events",
    }
    for side, usages in per_side.items():
        lines.append(line("deliveries", side, (usages[0] + usages[1]).scaled(0.5), notes[side]))
    if worker:
        for side in ("bundle", "textbook"):
            found = worker[side]
            usage = rollback_usage(found.rollback, found.cpu_ms, found.api_calls, bundle=side == "bundle")
            lines.append(
                line(
                    "worker rollbacks",
                    side,
                    usage,
                    f"one message a batch; the worker's measured CPU × {ASSUMED.lambda_mb_per_vcpu}/"
                    f"{memory_mb(WORKER_FUNCTION)}, {ASSUMED.voucherify_call_ms:g} ms a Voucherify call, "
                    f"{ASSUMED.sqs_requests_per_rollback} SQS requests a message"
                    + ("; its ledger events and LedgerEventsFunction included" if side == "bundle" else ""),
                )
            )
    recorded = [d.bundle for d in deliveries if d.bundle.status == "recorded" and d.bundle.items]
    item_bytes = max((c.bytes_written // max(1, c.items) for c in recorded), default=1024)
    per_minute = int(load_template()["Parameters"]["ReconcileRequestsPerMinute"]["Default"])
    lines.append(
        line(
            "reconciled objects (hourly runs)",
            "bundle",
            reconcile_usage(item_bytes, ASSUMED.list_call_ms),
            f"each already held: 1/{ASSUMED.objects_per_page} list call and BatchGetItem, a read of a "
            f"{item_bytes} B item; {ASSUMED.list_call_ms:g} ms a page",
        )
    )
    lines.append(
        line(
            "reconciled objects (paced backfill)",
            "bundle",
            reconcile_usage(item_bytes, 60_000 / per_minute),
            f"the run waits for its budget ({per_minute} calls/min, ReconcileRequestsPerMinute) inside the invocation",
        )
    )
    lines.append(line("reconciled objects", "textbook", None, "the textbook has no reconciler"))
    report.costs = lines
    for work in ("deliveries", "worker rollbacks"):
        mine = next((c for c in lines if c.work == work and c.side == "bundle"), None)
        theirs = next((c for c in lines if c.work == work and c.side == "textbook"), None)
        if mine is None:
            continue
        report.add(
            Row(
                "cost",
                f"per million {work}",
                mine.total,
                None,
                "$",
                note=f"list prices {PRICES.region}, {PRICES.date}; the cost table below",
                textbook=theirs.total if theirs else None,
            )
        )
    for work in ("reconciled objects (hourly runs)", "reconciled objects (paced backfill)"):
        found = next(c for c in lines if c.work == work)
        report.add(Row("cost", f"per million {work}", found.total, None, "$", note="no textbook reconciler"))
    return lines


COMPONENTS = tuple(cost_per_million(Usage()))


def _dollars(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.2f}" if value >= 0.995 or value == 0 else f"${value:.3f}"


def _plain(value: Any) -> str:
    """A price as written, without an exponent (0.0000133334, not 1.33334e-05)."""
    if isinstance(value, float):
        return f"{value:.10f}".rstrip("0").rstrip(".")
    return str(value)


def cost_markdown(lines: Sequence[CostLine], prices: Prices = PRICES) -> list[str]:
    """The cost table as markdown, with the prices, their date and what is assumed."""
    if not lines:
        return []
    out = [
        f"## Cost per million (list prices, {prices.region}, as published on {prices.date})",
        "",
        "| work | side | " + " | ".join(COMPONENTS) + " | total | note |",
        "|---|---|" + "---:|" * (len(COMPONENTS) + 1) + "---|",
    ]
    for cost in lines:
        cells = [_dollars(cost.components.get(name)) if cost.usage is not None else "—" for name in COMPONENTS]
        out.append(f"| {cost.work} | {cost.side} | " + " | ".join(cells) + f" | {_dollars(cost.total)} | {cost.note} |")
    out += ["", "Prices: " + ", ".join(f"{f.name} {_plain(getattr(prices, f.name))}" for f in fields(prices)) + "."]
    out += [
        "Assumed, not measured: " + ", ".join(f"{f.name} {getattr(ASSUMED, f.name)}" for f in fields(ASSUMED)) + "."
    ]
    return out


def cost_text(lines: Sequence[CostLine]) -> list[str]:
    """The cost table as the bench prints it."""
    if not lines:
        return []
    short = {"Lambda requests": "λ req", "Lambda duration": "λ GB-s", "DynamoDB writes": "WRU", "DynamoDB reads": "RRU"}
    names = [short.get(n, n.replace("CloudWatch ", "")) for n in COMPONENTS]
    out = [f"  cost per million, {PRICES.region} list prices of {PRICES.date}:"]
    out.append(f"    {'work':<36} {'side':<9} " + " ".join(f"{n:>11}" for n in names) + f" {'total':>11}")
    for cost in lines:
        cells = [_dollars(cost.components.get(n)) if cost.usage is not None else "—" for n in COMPONENTS]
        out.append(
            f"    {cost.work:<36} {cost.side:<9} "
            + " ".join(f"{c:>11}" for c in cells)
            + f" {_dollars(cost.total):>11}"
        )
    return out
