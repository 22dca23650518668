"""Cold init, peak RSS and first invocation of every function against its floor, each in a fresh interpreter
(``programs/cold_start.py``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ledger_dev.bench.children import ChildScript, child_environment, run_child
from ledger_dev.bench.report import TARGETS, Report, Row, median
from ledger_dev.bench.seeds import (
    FUNCTION_CLIENTS,
    LAYER_DIR,
    REGION,
    WEBHOOK_FUNCTIONS,
    WEBHOOK_WRITE,
    WORKER_FUNCTION,
    SeedEvent,
    function_dir,
    webhook_secret,
)

TRACED_FUNCTION = "RedemptionSucceededFunction"  # what Tracing On costs at init, measured on one webhook function


def child_script(logical_id: str, *, floor: bool, first_event: Mapping[str, Any] | None = None) -> ChildScript:
    """One cold-start child (``programs/cold_start.py``): the function's handler module, or its floor."""
    if floor:
        init = ("floor", ",".join(FUNCTION_CLIENTS[logical_id]))
        write: tuple[str, dict[str, Any]] = ("put_item", {})
    else:
        init = ("function", os.pathsep.join([str(LAYER_DIR), str(function_dir(logical_id))]))
        write = WEBHOOK_WRITE.get(logical_id, ("put_item", {}))
    if first_event is None:
        return ChildScript("cold_start.py", init)
    secret = {
        "ARN": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:voucherify-ledger/webhook-AbCdEf",
        "Name": "voucherify-ledger/webhook",
        "SecretString": json.dumps(webhook_secret()),
    }
    spec = {"event": dict(first_event), "write": list(write), "secret": secret, "function": logical_id}
    return ChildScript("cold_start.py", init, spec)


def measure_cold(report: Report, repeat: int, events: Sequence[SeedEvent]) -> None:
    """Cold init, peak RSS and first invocation of every function vs its floor, interleaved."""
    first_of = {}
    for seed in events:
        first_of.setdefault(seed.function, seed.event)
    runs: dict[str, list[dict[str, Any]]] = {}
    plans = []
    for logical_id in (*WEBHOOK_FUNCTIONS, WORKER_FUNCTION):
        event = first_of.get(logical_id) if logical_id in WEBHOOK_FUNCTIONS else None
        env = child_environment(logical_id)
        plans.append((f"{logical_id}", child_script(logical_id, floor=False, first_event=event), env))
        plans.append((f"{logical_id}:floor", child_script(logical_id, floor=True, first_event=event), env))
    # The same webhook function with the Tracing parameter On: Powertools' Tracer and the X-Ray SDK loaded and
    # botocore patched at init (LAMBDA_TASK_ROOT set, as in Lambda: outside it the Tracer disables itself).
    traced_env = child_environment(TRACED_FUNCTION, {"LEDGER_TRACING": "On", "LAMBDA_TASK_ROOT": str(LAYER_DIR)})
    traced_env["AWS_XRAY_CONTEXT_MISSING"] = "IGNORE_ERROR"
    plans.append((f"{TRACED_FUNCTION}:tracing", child_script(TRACED_FUNCTION, floor=False), traced_env))
    for plan in plans:  # compile caches (.pyc) warm, as in a deployed package
        run_child(plan[1], plan[2])
    for _ in range(repeat):
        for name, script, env in plans:
            runs.setdefault(name, []).append(run_child(script, env))
    for logical_id in (*WEBHOOK_FUNCTIONS, WORKER_FUNCTION):
        mine, floor = runs[logical_id], runs[f"{logical_id}:floor"]
        services = " + ".join(FUNCTION_CLIENTS[logical_id])
        target = TARGETS["cold_worker"] if logical_id == WORKER_FUNCTION else TARGETS["cold_webhook"]
        report.add(
            Row(
                "cold",
                f"{logical_id} init",
                median(r["init_ms"] for r in mine),
                median(r["init_ms"] for r in floor),
                "ms",
                target,
                note=f"floor: import boto3, create {services} clients",
            ),
            Row(
                "cold",
                f"{logical_id} peak RSS",
                median(r["rss_kb"] for r in mine) / 1024,
                median(r["rss_kb"] for r in floor) / 1024,
                "MB",
                TARGETS["rss"],
            ),
        )
        if logical_id == TRACED_FUNCTION:
            report.add(
                Row(
                    "cold",
                    f"{logical_id} init, Tracing On",
                    median(r["init_ms"] for r in runs[f"{logical_id}:tracing"]),
                    median(r["init_ms"] for r in mine),
                    "ms",
                    note="ratio against the same function with Tracing Off (Powertools Tracer + X-Ray SDK at init)",
                ),
            )
        if logical_id in WEBHOOK_FUNCTIONS:
            report.add(
                Row(
                    "cold",
                    f"{logical_id} first invocation",
                    median(r["first_ms"] for r in mine),
                    median(r["first_ms"] for r in floor),
                    "ms",
                    note="first seed event after init (secret fetched) vs the floor's first json.loads + put_item",
                ),
                Row(
                    "cold",
                    f"{logical_id} init + first invocation",
                    median(r["init_ms"] + r["first_ms"] for r in mine),
                    median(r["init_ms"] + r["first_ms"] for r in floor),
                    "ms",
                ),
            )
