"""The bench's figures: a row per figure (value, floor, ratio, target), printed and written as PERFORMANCE.md."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGETS = {
    "cold_webhook": 1.3,  # × the floor: the two webhook functions
    "cold_other": 1.4,  # × the floor: the worker, the reconciler, the ledger-events function
    "rss": 1.3,
    "warm": 2.5,  # × the floor, per new delivery
    "textbook": 1.0,  # × the textbook, every figure that has one: the bundle must cost less
    "write_units": 4,
    "duplicate_calls": 1,  # DynamoDB calls per duplicate delivery
    "worker_calls": 3,  # DynamoDB calls per rollback in the worker
    "worker_write_units": 7,  # write units per rollback in the worker
    "redelivery_calls": 1,  # DynamoDB calls per redelivered rollback request (already finished)
    "batch": 2.0,
    "drain_rate": 0.9,
    "layer_mb": 20.0,
}


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def ratio(value: float | None, floor: float | None) -> float | None:
    if value is None or not floor:
        return None
    return value / floor


@dataclass
class Row:
    """One line of the report: a figure, its floor, the ratio and the target it is held to."""

    section: str
    what: str
    value: float | None
    floor: float | None
    unit: str
    target: float | None = None  # the largest acceptable ratio (or value, when ``floor`` is None)
    minimum: bool = False  # the target is a lower bound
    note: str = ""
    textbook: float | None = None  # the same figure of the textbook baseline, measured in the same run

    @property
    def ratio(self) -> float | None:
        return ratio(self.value, self.floor)

    @property
    def textbook_ratio(self) -> float | None:
        return ratio(self.value, self.textbook)

    @property
    def measure(self) -> float | None:
        return self.ratio if self.floor is not None else self.value

    @property
    def floor_met(self) -> bool | None:
        if self.target is None or self.measure is None:
            return None
        return self.measure >= self.target if self.minimum else self.measure <= self.target

    @property
    def textbook_met(self) -> bool | None:
        """At most ``TARGETS["textbook"]`` × the textbook's figure (a textbook at 0 allows 0 alone)."""
        if self.textbook is None or self.value is None:
            return None
        if self.minimum:  # a rate: at least the textbook's
            return self.value * TARGETS["textbook"] >= self.textbook
        return self.value <= self.textbook * TARGETS["textbook"]

    @property
    def met(self) -> bool | None:
        found = [m for m in (self.floor_met, self.textbook_met) if m is not None]
        return all(found) if found else None


@dataclass
class Report:
    repeat: int
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    costs: list[Any] = field(default_factory=list)  # cost.CostLine: the cost table

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)
        for row in rows:
            print(format_row(row), flush=True)


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("WU", "calls", "") or (float(value).is_integer() and abs(value) >= 100):
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _floor_verdict(row: Row) -> str:
    if row.floor_met is None:
        return ""
    bound = "≥" if row.minimum else "≤"
    kind = "×" if row.floor is not None else f" {row.unit}".rstrip()
    target = f"{bound} {row.target:g}{kind}"
    if row.floor_met:
        return target
    measure = row.measure or 0.0
    by = f"{(measure / row.target - 1) * 100:+.0f} %" if row.target else f"{measure:g}"
    return f"{target}, by {by}"


def _textbook_verdict(row: Row) -> str:
    if row.textbook_met is None:
        return ""
    target = f"{'≥' if row.minimum else '≤'} {TARGETS['textbook']:g}× textbook"
    if row.textbook_met:
        return target
    by = row.textbook_ratio
    if by is None:  # a textbook at 0
        return f"{target}, by {row.value:g}"
    return f"{target}, by {(by / TARGETS['textbook'] - 1) * 100:+.0f} %"


def verdict(row: Row) -> str:
    if row.met is None:
        return ""
    held = [v for v in (_floor_verdict(row), _textbook_verdict(row)) if v]
    if row.met:
        return f"met ({'; '.join(held)})"
    missed = [
        v for v, ok in ((_floor_verdict(row), row.floor_met), (_textbook_verdict(row), row.textbook_met)) if ok is False
    ]
    return f"MISSED ({'; '.join(missed)})"


def _cells(row: Row) -> tuple[str, str, str, str, str]:
    unit = f" {row.unit}" if row.unit else ""
    value = f"{_number(row.value, row.unit)}{unit}"
    floor = f"{_number(row.floor, row.unit)}{unit}" if row.floor is not None else "—"
    ratio_text = f"{row.ratio:.2f}×" if row.ratio is not None else "—"
    textbook = f"{_number(row.textbook, row.unit)}{unit}" if row.textbook is not None else "—"
    textbook_ratio = f"{row.textbook_ratio:.2f}×" if row.textbook_ratio is not None else "—"
    return value, floor, ratio_text, textbook, textbook_ratio


HEADER = (
    f"  {'section':<9} {'figure':<58} {'value':>12} {'floor':>12} {'ratio':>7} {'textbook':>12} {'vs tb':>7}  target"
)


def format_row(row: Row) -> str:
    value, floor, ratio_text, textbook, textbook_ratio = _cells(row)
    return (
        f"  {row.section:<9} {row.what:<58} {value:>12} {floor:>12} {ratio_text:>7} {textbook:>12} {textbook_ratio:>7}"
        f"  {verdict(row)}"
    )


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("aws-lambda-powertools", "pydantic", "pydantic-core", "boto3", "botocore", "moto"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} CPUs, load average {load:.2f} at start"


def markdown(report: Report, command: str) -> str:
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`python -m ledger_dev.bench`); the latest run replaces this file. Every figure",
        "is a median of repeated runs and, where there is one, a ratio against a floor measured in the same run,",
        "so the machine's speed and load cancel out; see `tools/dev/ledger_dev/bench/` for what each one runs.",
        "",
        f"- command: `{command}`",
        f"- repetitions: {report.repeat} (cold starts: {report.repeat} fresh processes each for every function and"
        f" its floor; warm: {report.repeat}×20 invocations per seed event)",
        f"- machine: {machine()}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        "- Lambda runs python3.13 on arm64; this run is the machine above, so read the ratios, not the milliseconds.",
        f"- run time: {report.seconds:.0f} s",
        "",
        "| section | figure | value | floor | ratio | textbook | vs textbook | target | note |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in report.rows:
        value, floor, ratio_text, textbook, textbook_ratio = _cells(row)
        lines.append(
            f"| {row.section} | {row.what} | {value} | {floor} | {ratio_text} | {textbook} | {textbook_ratio} "
            f"| {verdict(row)} | {row.note} |"
        )
    missed = [row for row in report.rows if row.met is False]
    lines += ["", "## Targets", ""]
    if not missed:
        lines.append("Every target is met in this run.")
    else:
        lines.append("Missed in this run:")
        lines.append("")
        lines += [f"- {row.section} / {row.what}: {verdict(row)}" for row in missed]
    if report.costs:
        from ledger_dev.bench.cost import cost_markdown

        lines += ["", *cost_markdown(report.costs)]
    if report.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in report.notes]
    lines += ["", NOTES.strip(), ""]
    return "\n".join(lines)


NOTES = """
## How to read it

- **Cold init** is the import of the handler module in a fresh interpreter (what Lambda's *Init Duration*
  adds to the runtime's own start), with the function's environment from `template.yaml`; the floor imports
  boto3 and creates the same AWS clients. Nothing is deferred to look small: the webhook functions create their
  DynamoDB and Secrets Manager clients and build their payload validators during init, and *first invocation*
  shows what the first event still pays (the secret fetch, Powertools' first metric flush).
- **Peak RSS** is `ru_maxrss` of the same processes right after init.
- **Warm** is one seed event through the handler (authentication, validation, ledger write, Logger, Metrics)
  vs `json.loads` + one `put_item`, both through the same Stubber-backed DynamoDB client. The *reachable
  floor* rows time what any handler meeting the spec must do before it writes: the floor plus the HMAC check
  (cached secret) and the full validation of the payload, one Powertools `parse` of the body text that
  replaces the floor's `json.loads`; the handler's ratio against it is what is left to the bundle's choices.
- **Capacity** counts base-table write units as DynamoDB bills them: 1 per started KB of the larger of the
  item before and after the write, at least 1, twice inside a transaction; a write whose condition fails
  (a duplicate) is billed too. Index writes are shown apart (the note), since they depend on the indexes and
  not on how the function writes.
- **Worker**: the worker runs in the benchmark's process as in Lambda and its batch runs the 10 records on
  threads; moto's server (DynamoDB, SQS, Secrets Manager) and the fake Voucherify each run in a child process
  of their own, so that, as in Lambda, the worker pays for them only its own requests (building, signing,
  parsing) and the waits. Both the batch and the single record use that same setup; the note gives the CPU
  time of the worker and of moto for each. The drain uses the template's `RollbackWorkerMaxConcurrency`
  executions, each pacing itself to an equal share of the budget, against a fake that answers 429 beyond it.
- **Size** is the layer `sam build` makes for python3.13/arm64, built by the same `layers/shared/Makefile` target:
  its `requirements.txt` as manylinux2014 aarch64 wheels plus `voucherify_ledger`; boto3 comes with the runtime and is
  not in it.

## Why some targets are missed

- **Warm cost per event** (about 3.3–3.9× a floor of ~0.14 ms): the floor is one `json.loads` and one stubbed
  `put_item`. The HMAC check and the validation of the whole payload alone (the *reachable floor* rows) cost
  about 1.35–1.45× it, so 1.5× leaves some 20 µs for everything else. The handler is ~2.5× its reachable floor,
  per event: zlib of the raw delivery (~45 µs), the ledger's real write instead of a 3-attribute `put_item`
  (~20 attributes through botocore's serializer, ~90 µs more), one Powertools Logger line (~65 µs) and one EMF
  flush (~40 µs), measured on this machine. In Lambda a real DynamoDB round trip (several ms) sits on both
  sides, so the billed-ms ratio is close to 1. Reaching 1.5× of a stubbed floor would mean dropping the
  compressed audit copy, the Logger line or the metrics, which the bundle keeps.
- **Batch of 10 vs 1**: a record makes one API call and five DynamoDB calls (its request item to PENDING, the
  redemption's state, Powertools' idempotency record in progress and then completed, the outcome transaction).
  The 10 API calls overlap (the fake's 100 ms is paid about once) and the worker's own CPU is ~8–9 ms a
  record (~85 ms for ten, mostly botocore building, signing and parsing requests). What does not overlap is moto:
  it handles one DynamoDB request at a time (as `make run` does, for correctness) with ~25–30 ms of Python
  a record, mostly parsing and validating update expressions, so a batch cannot end before about 100 ms +
  10 × that ≈ 380 ms while one record takes ≈ 150 ms. That is the floor of this setup, not of the worker
  (moto's CPU per run is in the note). DynamoDB serves concurrent requests in parallel in a few ms each;
  from the worker's own CPU, a batch there would take about 100 ms + five round trips + ~85 ms, some
  1.5× one record (an estimate, not measured here). The figure also swings with the load of this 2-core
  machine, which the worker, moto and the fake share.
- **Cold init** costs some 80–100 ms above its floor on a machine that is not overloaded: pydantic itself
  (~30 ms), building the payload models (~35 ms) and the Powertools Logger/Metrics/parser (~20 ms); the route's
  validators built during init add ~1 ms. The ratio therefore follows the floor: 1.29× (webhook) on a machine
  where boto3 and its clients took ~275 ms, 1.5–1.6× where they took ~175 ms, and it swings ±0.2× with the load
  of this shared machine. With `WebhookSnapStart=On` none of it is paid per cold start (see the README).
"""
