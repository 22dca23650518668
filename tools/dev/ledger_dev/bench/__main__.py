"""``make bench`` (``python -m ledger_dev.bench``): every section, the table printed, the report written to
build/bench/PERFORMANCE.md (``make bench-publish``: to the committed docs/PERFORMANCE.md)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ledger_dev.bench import __doc__ as BENCH_DOC
from ledger_dev.bench.capacity import measure_capacity
from ledger_dev.bench.cold import measure_cold
from ledger_dev.bench.cost import cost_text, measure_cost
from ledger_dev.bench.e2e import measure_end_to_end
from ledger_dev.bench.report import HEADER, Report, machine, markdown
from ledger_dev.bench.seeds import REPORT_PATH, seed_events
from ledger_dev.bench.size import measure_size
from ledger_dev.bench.warm import measure_warm
from ledger_dev.bench.worker import measure_batch, measure_drain, measure_worker_capacity
from ledger_dev.harness.template import PROJECT_ROOT


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger_dev.bench", description=(BENCH_DOC or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="repetitions of every measurement (default 7)")
    parser.add_argument("--skip-size", action="store_true", help="do not build the layer (needs pip's index)")
    parser.add_argument("--skip-drain", action="store_true", help="skip the ~20 s drain of 200 requests")
    parser.add_argument(
        "--skip-e2e", action="store_true", help="skip the ~10 s end-to-end rounds through moto's server"
    )
    parser.add_argument("--no-write", action="store_true", help=f"do not write {REPORT_PATH.relative_to(PROJECT_ROOT)}")
    parser.add_argument("--output", type=Path, default=REPORT_PATH, help="where to write the report")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    started = time.monotonic()
    report = Report(args.repeat)
    events = seed_events()
    print(f"bench: {args.repeat} repetitions; {machine()}", flush=True)
    print(HEADER, flush=True)
    measure_cold(report, args.repeat, events)
    measure_warm(report, args.repeat, events)
    deliveries = measure_capacity(report, events)
    rollbacks = measure_worker_capacity(report, args.repeat)
    measure_batch(report, args.repeat)
    if not args.skip_drain:
        measure_drain(report)
    if not args.skip_e2e:
        measure_end_to_end(report)
    if not args.skip_size:
        measure_size(report)
    measure_cost(report, deliveries, rollbacks)
    for text in cost_text(report.costs):
        print(text, flush=True)
    report.seconds = time.monotonic() - started
    missed = [row for row in report.rows if row.met is False]
    print(f"bench: {report.seconds:.0f} s; {len(missed)} target(s) missed", flush=True)
    if not args.no_write:
        command = "python -m ledger_dev.bench " + " ".join(argv if argv is not None else sys.argv[1:])
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(markdown(report, command.strip()), encoding="utf-8")
        print(f"bench: wrote {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
