"""``make loadtest`` / ``make chaos``: a local stack on ephemeral ports, the phases in order, the report."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger_dev.loadtest.chaos import CHAOS_ENVIRONMENT, CHAOS_PARAMETERS, run_chaos_phase
from ledger_dev.loadtest.common import MAX_REPORTED_PROBLEMS, PhaseReport
from ledger_dev.loadtest.hooks import DynamoFaults, SdkRetries
from ledger_dev.loadtest.hostile import run_hostile_phase
from ledger_dev.loadtest.webhook_phase import run_webhook_phase
from ledger_dev.local_stack import LocalConfig, LocalStack
from ledger_dev.payloads.corpus import (
    Corpus,
    build_corpus,
)

PHASES = ("load", "faults", "hostile", "chaos")
QUIET_ENVIRONMENT = {"POWERTOOLS_METRICS_DISABLED": "true"}  # no EMF line per invocation on stdout


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Options:
    deliveries: int = 5000
    fault_deliveries: int = 1500
    fault_share: float = 0.15
    duplicate_share: float = 0.3
    senders: int = 16
    chaos_requests: int = 150
    hostile_deliveries: int = 1000  # per genuine stream: the quiet baseline, and the one under attack
    hostile_requests: int = 1500  # the attack's requests at most (every case is sent at least once)
    hostile_senders: int = 4
    attackers: int = 4
    seed: int = 2024
    phases: tuple[str, ...] = PHASES
    max_seconds: float = 600.0
    log_level: str = "CRITICAL"


def run(options: Options, *, out: Any = None) -> list[PhaseReport]:
    """Starts a local stack on ephemeral ports, runs the phases, stops it. Never longer than ``max_seconds``
    (plus the stack's start and stop)."""
    out = out or sys.stdout
    reports: list[PhaseReport] = []
    parameters = {**CHAOS_PARAMETERS, "LogLevel": options.log_level}
    config = LocalConfig(aws_port=0, api_port=0, voucherify_port=0, parameter_overrides=parameters)
    with contextlib.ExitStack() as context:
        context.enter_context(environment({**CHAOS_ENVIRONMENT, **QUIET_ENVIRONMENT}))
        stack = context.enter_context(LocalStack(config))
        deadline = time.monotonic() + options.max_seconds
        retries = SdkRetries()
        retries.install(stack)
        loaded: list[Corpus] = []
        if "load" in options.phases or "chaos" in options.phases:
            # Alone, the chaos run only needs redemptions in the ledger to roll back: a smaller corpus will do.
            deliveries = options.deliveries
            if "load" not in options.phases:
                deliveries = min(deliveries, max(300, options.chaos_requests * 4))
            corpus = build_corpus(deliveries, seed=options.seed, duplicate_share=options.duplicate_share)
            print(f"load: {len(corpus.deliveries)} deliveries, {options.senders} senders …", file=out, flush=True)
            reports.append(
                run_webhook_phase(
                    stack, "load", corpus, loaded, senders=options.senders, deadline=deadline, retries=retries
                )
            )
        if "faults" in options.phases:
            faults = DynamoFaults(options.fault_share, seed=options.seed + 1)
            faults.install(stack)
            corpus = build_corpus(
                options.fault_deliveries, seed=options.seed + 1, duplicate_share=options.duplicate_share
            )
            print(
                f"faults: {len(corpus.deliveries)} deliveries, {options.fault_share:.0%} of writes failing …",
                file=out,
                flush=True,
            )
            reports.append(
                run_webhook_phase(
                    stack,
                    "faults",
                    corpus,
                    loaded,
                    senders=options.senders,
                    deadline=deadline,
                    faults=faults,
                    retries=retries,
                )
            )
        if "hostile" in options.phases:
            # Before chaos: the ledger must still be exactly what the webhook deliveries say.
            print(
                f"hostile: 2 × {options.hostile_deliveries} genuine deliveries ({options.hostile_senders} senders), "
                f"up to {options.hostile_requests} attack requests ({options.attackers} attackers) …",
                file=out,
                flush=True,
            )
            reports.append(
                run_hostile_phase(
                    stack,
                    loaded,
                    deliveries=options.hostile_deliveries,
                    requests=options.hostile_requests,
                    attackers=options.attackers,
                    senders=options.hostile_senders,
                    seed=options.seed + 3,
                    deadline=deadline,
                    retries=retries,
                )
            )
        if "chaos" in options.phases:
            print(f"chaos: {options.chaos_requests} rollback requests …", file=out, flush=True)
            reports.append(
                run_chaos_phase(
                    stack, loaded, requests=options.chaos_requests, seed=options.seed + 2, deadline=deadline
                )
            )
    return reports


def render(reports: Sequence[PhaseReport]) -> str:
    lines = []
    for report in reports:
        lines.append(f"== {report.name}: {'OK' if report.ok else 'FAILED'}")
        for name, value in report.figures.items():
            lines.append(f"  {name}: {json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value}")
        for problem in report.problems[:MAX_REPORTED_PROBLEMS]:
            lines.append(f"  ! {problem}")
        if len(report.problems) > MAX_REPORTED_PROBLEMS:
            lines.append(f"  ! … and {len(report.problems) - MAX_REPORTED_PROBLEMS} more")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m ledger_dev.loadtest",
        description="Load, fault, hostile and chaos runs against the local stack (127.0.0.1, ephemeral ports).",
    )
    parser.add_argument("--deliveries", type=int, default=defaults.deliveries, help="deliveries of the load phase")
    parser.add_argument("--fault-deliveries", type=int, default=defaults.fault_deliveries)
    parser.add_argument("--fault-share", type=float, default=defaults.fault_share, help="share of writes failing")
    parser.add_argument("--duplicates", type=float, default=defaults.duplicate_share, help="share of duplicates")
    parser.add_argument("--senders", type=int, default=defaults.senders, help="concurrent HTTP senders")
    parser.add_argument("--chaos-requests", type=int, default=defaults.chaos_requests)
    parser.add_argument(
        "--hostile-deliveries",
        type=int,
        default=defaults.hostile_deliveries,
        help="genuine deliveries of each of the hostile phase's two streams (quiet, under attack)",
    )
    parser.add_argument(
        "--hostile-requests", type=int, default=defaults.hostile_requests, help="the attack's requests at most"
    )
    parser.add_argument("--hostile-senders", type=int, default=defaults.hostile_senders, help="genuine senders")
    parser.add_argument("--attackers", type=int, default=defaults.attackers, help="concurrent attacking connections")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)} (default: all)"
    )
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds, help="stop after this long")
    parser.add_argument("--log-level", default=defaults.log_level, help="the functions' log level (LogLevel)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    if not phases or set(phases) - set(PHASES):
        parser.error(f"--phases takes {', '.join(PHASES)}")
    if args.deliveries < 2 or args.fault_deliveries < 2 or args.senders < 1 or args.chaos_requests < 1:
        parser.error("--deliveries and --fault-deliveries must be at least 2, --senders and --chaos-requests 1")
    if args.hostile_deliveries < 20 or args.hostile_requests < 1 or args.hostile_senders < 1 or args.attackers < 1:
        parser.error("--hostile-deliveries must be at least 20, --hostile-requests, --hostile-senders, --attackers 1")
    options = Options(
        deliveries=args.deliveries,
        fault_deliveries=args.fault_deliveries,
        fault_share=args.fault_share,
        duplicate_share=args.duplicates,
        senders=args.senders,
        chaos_requests=args.chaos_requests,
        hostile_deliveries=args.hostile_deliveries,
        hostile_requests=args.hostile_requests,
        hostile_senders=args.hostile_senders,
        attackers=args.attackers,
        seed=args.seed,
        phases=phases,
        max_seconds=args.max_seconds,
        log_level=args.log_level,
    )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = sys.stdout
    with contextlib.ExitStack() as context:
        if options.log_level.upper() == "CRITICAL":
            # Powertools prints an EMF line per invocation on stdout, and its loggers keep the stream they were
            # made with: a process of its own (this one) can send them all to /dev/null.
            context.enter_context(contextlib.redirect_stdout(context.enter_context(open(os.devnull, "w"))))
            context.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore", UserWarning)
        reports = run(options, out=out)
    print(render(reports), file=out, flush=True)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            json.dump(
                [{"phase": r.name, "ok": r.ok, **r.figures, "problems": r.problems} for r in reports],
                handle,
                indent=2,
                ensure_ascii=False,
            )
    return 0 if reports and all(r.ok for r in reports) else 1
