"""End to end through the local API emulation: deliveries a second from concurrent senders, over real HTTP on
127.0.0.1, through ``ledger_dev.local_stack`` (the template's routes, moto's server as AWS, the ledger's stream and
the worker's poller running, as ``make run`` and ``ledger_dev.loadtest`` run them), for the bundle and for the
textbook webhook behind the same routes, in alternating rounds.

The senders run in a process of their own (``programs/senders.py``), so the bench's process holds the stack alone:
moto's server, the API emulation, the pollers and the functions. Each handler call is timed on its thread's CPU
clock (``time.thread_time``), so the process's CPU time splits into the function's and the rest (moto, the emulation,
the pollers): the note gives both per delivery.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack, redirect_stdout
from dataclasses import dataclass, field
from typing import Any

from ledger_dev.bench.children import ChildScript, run_child
from ledger_dev.bench.report import Report, Row, median
from ledger_dev.bench.seeds import WEBHOOK_FUNCTIONS
from ledger_dev.loadtest.run import environment

SENDERS = 8
ROUND_SECONDS = 1.5
ROUNDS = 2
CORPUS_DELIVERIES = 3000
TEXTBOOK_TABLE = "textbook-ledger"


class _Discard(io.TextIOBase):
    """Where the stack's log lines go during the run (Logger and EMF, as in Lambda, but not to the terminal)."""

    def write(self, text: str) -> int:
        return len(text)


@dataclass
class _Meter:
    """The CPU time handler calls spend on their own threads."""

    seconds: float = 0.0
    calls: int = 0

    def wrap(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        def timed(event: Any, context: Any) -> Any:
            started = time.thread_time()
            try:
                return handler(event, context)
            finally:
                self.seconds += time.thread_time() - started
                self.calls += 1

        return timed


@dataclass
class EndToEnd:
    side: str
    rates: list[float] = field(default_factory=list)  # deliveries a second, one per round
    sent: int = 0
    ok: int = 0
    function_cpu: float = 0.0  # seconds
    stack_cpu: float = 0.0  # the bench process's CPU seconds over the rounds (function included)
    sender_cpu: float = 0.0


def measure_end_to_end(report: Report, rounds: int = ROUNDS, seconds: float = ROUND_SECONDS) -> dict[str, EndToEnd]:
    """``rounds`` rounds of ``seconds`` each for the bundle and the textbook, alternated, 8 senders each."""
    from ledger_dev.bench.textbook import load_textbook
    from ledger_dev.harness.template import create_table
    from ledger_dev.loadtest.sending import route_paths
    from ledger_dev.local_stack import LocalConfig, LocalStack
    from ledger_dev.payloads.corpus import build_corpus
    from voucherify_ledger.webhooks.auth import sign

    corpus = build_corpus(CORPUS_DELIVERIES, seed=11, duplicate_share=0.0)
    sides = {"bundle": EndToEnd("bundle"), "textbook": EndToEnd("textbook")}
    with ExitStack() as context:
        context.enter_context(redirect_stdout(_Discard()))
        # No stream: the textbook has no ledger events, and the rate compares the webhook paths alone (the ledger
        # events are priced from the capacity rows).
        config = LocalConfig(aws_port=0, api_port=0, voucherify_port=0, streams=False)
        stack = context.enter_context(LocalStack(config))
        paths = route_paths(stack)
        meters = {name: _Meter() for name in sides}
        functions = {logical_id: stack.function(logical_id) for logical_id in WEBHOOK_FUNCTIONS}
        # Each module's handler itself, without the local stack's teaching of the fake (the textbook has none).
        modules = {lid: sys.modules[f.handler.__module__] for lid, f in functions.items()}
        handlers: dict[str, dict[str, Callable[..., Any]]] = {
            "bundle": {lid: meters["bundle"].wrap(module.lambda_handler) for lid, module in modules.items()}
        }
        create_table(stack.aws_client("dynamodb"), table_name=TEXTBOOK_TABLE)
        textbook_env = {
            **functions[WEBHOOK_FUNCTIONS[0]].environment,
            "LEDGER_TABLE_NAME": TEXTBOOK_TABLE,
            "POWERTOOLS_SERVICE_NAME": "voucherify-ledger-textbook",
        }
        with environment(textbook_env):
            textbook, _ = load_textbook(WEBHOOK_FUNCTIONS[0])
        handlers["textbook"] = dict.fromkeys(functions, meters["textbook"].wrap(textbook))
        secret = stack.config.signing_secret
        planned = [[paths[d.route], d.signed_body.decode(), sign(secret, d.signed_body)] for d in corpus.deliveries]
        share = len(planned) // (2 * rounds)
        for number in range(rounds * 2):
            name = "bundle" if number % 2 == 0 else "textbook"
            for logical_id, function in functions.items():
                function.handler = handlers[name][logical_id]
            batch = planned[number * share : (number + 1) * share]  # every delivery new, on either side
            spec = {"url": stack.api_url, "senders": SENDERS, "seconds": seconds, "deliveries": batch}
            before_cpu, before_function = time.process_time(), meters[name].seconds
            answer = run_child(ChildScript("senders.py", spec=spec), dict(os.environ))
            side = sides[name]
            side.stack_cpu += time.process_time() - before_cpu
            side.function_cpu += meters[name].seconds - before_function
            side.sender_cpu += answer["cpu_seconds"]
            side.sent += answer["sent"]
            side.ok += answer["statuses"].get("200", 0)
            side.rates.append(answer["statuses"].get("200", 0) / answer["seconds"])
            if answer["sent"] >= len(batch):
                raise RuntimeError(f"end-to-end: {name} sent every planned delivery in a round; plan more")
    mine, theirs = sides["bundle"], sides["textbook"]

    def per_delivery(side: EndToEnd) -> str:
        sent = max(1, side.sent)
        moto = side.stack_cpu - side.function_cpu
        return (
            f"function {side.function_cpu / sent * 1000:.1f} ms, moto + emulation + pollers {moto / sent * 1000:.1f} ms"
            f" ({moto / max(side.stack_cpu, 1e-9):.0%} of the stack's CPU), senders {side.sender_cpu / sent * 1000:.1f}"
            f" ms; {side.ok}/{side.sent} answered 200"
        )

    report.add(
        Row(
            "e2e",
            f"deliveries a second (200s), {SENDERS} senders, through moto's server",
            median(mine.rates),
            None,
            "/s",
            minimum=True,
            note=f"{rounds} × {seconds:g} s rounds each, alternated; CPU a delivery: bundle {per_delivery(mine)}; "
            f"textbook {per_delivery(theirs)}",
            textbook=median(theirs.rates),
        ),
        Row(
            "e2e",
            "function CPU a delivery, through moto's server",
            mine.function_cpu / max(1, mine.sent) * 1000,
            None,
            "ms",
            note="the handler's own thread CPU time, moto's and the emulation's apart",
            textbook=theirs.function_cpu / max(1, theirs.sent) * 1000,
        ),
    )
    report.notes.append(
        "End to end, moto's share: of the stack process's CPU time during the rounds, moto's server, the API "
        f"emulation and the pollers took {1 - mine.function_cpu / max(mine.stack_cpu, 1e-9):.0%} with the bundle and "
        f"{1 - theirs.function_cpu / max(theirs.stack_cpu, 1e-9):.0%} with the textbook; the rate is moto's more than "
        "the function's (moto serves one DynamoDB request at a time, with milliseconds of Python each)."
    )
    return sides
