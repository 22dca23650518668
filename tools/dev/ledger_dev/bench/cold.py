"""Cold init, peak RSS and first invocation of every function against its floor and the textbook, each in a fresh
interpreter (``programs/cold_start.py``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ledger_dev.bench.children import ChildScript, child_environment, run_child
from ledger_dev.bench.report import TARGETS, Report, Row, median
from ledger_dev.bench.seeds import (
    COLD_FUNCTIONS,
    FUNCTION_CLIENTS,
    LAYER_DIR,
    REGION,
    WEBHOOK_FUNCTIONS,
    WEBHOOK_WRITE,
    SeedEvent,
    function_dir,
    webhook_secret,
)
from ledger_dev.bench.textbook import TEXTBOOK_OF, textbook_dir

TRACED_FUNCTION = "RedemptionSucceededFunction"  # what Tracing On costs at init, measured on one webhook function


def secret_answer() -> dict[str, Any]:
    """The webhook secret as Secrets Manager's GetSecretValue answers it."""
    return {
        "ARN": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:voucherify-ledger/webhook-AbCdEf",
        "Name": "voucherify-ledger/webhook",
        "SecretString": json.dumps(webhook_secret()),
    }


def first_answers(logical_id: str) -> dict[str, dict[str, Any]]:
    """What the in-process AWS answers on a first invocation: the route's ledger write, the webhook secret."""
    operation, answer = WEBHOOK_WRITE.get(logical_id, ("put_item", {}))
    return {"dynamodb": {operation: answer}, "secretsmanager": {"get_secret_value": secret_answer()}}


def child_script(
    logical_id: str, *, floor: bool, first_event: Mapping[str, Any] | None = None, textbook: bool = False
) -> ChildScript:
    """One cold-start child (``programs/cold_start.py``): the function's handler module, its floor, or the textbook
    program standing beside it."""
    if floor:
        init = ("floor", ",".join(FUNCTION_CLIENTS[logical_id]))
    else:
        code = textbook_dir(logical_id) if textbook else function_dir(logical_id)
        init = ("function", os.pathsep.join([str(LAYER_DIR), str(code)]))
    if first_event is None:
        return ChildScript("cold_start.py", init)
    spec = {"event": dict(first_event), "answers": first_answers(logical_id), "function": logical_id}
    return ChildScript("cold_start.py", init, spec)


def measure_cold(report: Report, repeat: int, events: Sequence[SeedEvent]) -> None:
    """Cold init, peak RSS and first invocation of every function vs its floor and the textbook, interleaved."""
    first_of: dict[str, dict[str, Any]] = {}
    for seed in events:
        first_of.setdefault(seed.function, seed.event)
    runs: dict[str, list[dict[str, Any]]] = {}
    plans = []
    for logical_id in COLD_FUNCTIONS:
        event = first_of.get(logical_id) if logical_id in WEBHOOK_FUNCTIONS else None
        env = child_environment(logical_id)
        plans.append((f"{logical_id}", child_script(logical_id, floor=False, first_event=event), env))
        plans.append((f"{logical_id}:floor", child_script(logical_id, floor=True, first_event=event), env))
        if logical_id in TEXTBOOK_OF:
            script = child_script(logical_id, floor=False, first_event=event, textbook=True)
            plans.append((f"{logical_id}:textbook", script, env))
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

    def figure(name: str, key: str) -> float | None:
        found = runs.get(name)
        if not found:
            return None
        if key == "init+first":
            return float(median(r["init_ms"] + r["first_ms"] for r in found))
        return float(median(r[key] for r in found)) / (1024 if key == "rss_kb" else 1)

    for logical_id in COLD_FUNCTIONS:
        mine, floor, textbook = logical_id, f"{logical_id}:floor", f"{logical_id}:textbook"
        services = " + ".join(FUNCTION_CLIENTS[logical_id])
        target = TARGETS["cold_webhook"] if logical_id in WEBHOOK_FUNCTIONS else TARGETS["cold_other"]
        textbook_note = f"; textbook: textbook/{TEXTBOOK_OF[logical_id]}" if logical_id in TEXTBOOK_OF else ""
        report.add(
            Row(
                "cold",
                f"{logical_id} init",
                figure(mine, "init_ms"),
                figure(floor, "init_ms"),
                "ms",
                target,
                note=f"floor: import boto3, create {services} clients{textbook_note}",
                textbook=figure(textbook, "init_ms"),
            ),
            Row(
                "cold",
                f"{logical_id} peak RSS",
                figure(mine, "rss_kb"),
                figure(floor, "rss_kb"),
                "MB",
                TARGETS["rss"],
                textbook=figure(textbook, "rss_kb"),
            ),
        )
        if logical_id == TRACED_FUNCTION:
            report.add(
                Row(
                    "cold",
                    f"{logical_id} init, Tracing On",
                    figure(f"{logical_id}:tracing", "init_ms"),
                    figure(mine, "init_ms"),
                    "ms",
                    note="ratio against the same function with Tracing Off (Powertools Tracer + X-Ray SDK at init)",
                ),
            )
        if logical_id in WEBHOOK_FUNCTIONS:
            report.add(
                Row(
                    "cold",
                    f"{logical_id} first invocation",
                    figure(mine, "first_ms"),
                    figure(floor, "first_ms"),
                    "ms",
                    note="first seed event after init (secret fetched) vs the floor's first json.loads + put_item",
                    textbook=figure(textbook, "first_ms"),
                ),
                Row(
                    "cold",
                    f"{logical_id} init + first invocation",
                    figure(mine, "init+first"),
                    figure(floor, "init+first"),
                    "ms",
                    textbook=figure(textbook, "init+first"),
                ),
            )
