"""The rollback worker: a batch of 10 against one rollback, and the drain of a queue under the budget.

The worker runs in the bench's process as in Lambda (its batch on threads); what it talks to runs in child processes
of its own (``programs/service.py``): moto's server (DynamoDB serialized as in ``make run``) in one, the fake
Voucherify in another. In Lambda those are network round trips that release the GIL; moto inside the bench's
interpreter would charge its own request processing (milliseconds of Python per DynamoDB call) to the worker's
threads. moto still handles one DynamoDB request at a time, so a batch waits for the emulator's work one record
after another: the figures report that work (the children's CPU time).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass
from typing import Any

from ledger_dev.bench.children import CHILD_TIMEOUT_SECONDS, PROGRAMS_DIR, aws_environment, child_environment
from ledger_dev.bench.report import TARGETS, Report, Row, median
from ledger_dev.bench.seeds import REGION, TABLE_NAME, WORKER_FUNCTION
from ledger_dev.harness.template import load_template

BATCH_LATENCY_SECONDS = 0.1
DRAIN_REQUESTS = 200
DRAIN_BUDGET_PER_MINUTE = 600


def _sqs_event(bodies: Sequence[str], start: int) -> dict[str, Any]:
    now = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": f"bench-{start + i}",
                "receiptHandle": f"bench-receipt-{start + i}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now,
                    "SenderId": "bench",
                    "ApproximateFirstReceiveTimestamp": now,
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:voucherify-ledger-rollback-queue",
                "awsRegion": REGION,
            }
            for i, body in enumerate(bodies)
        ]
    }


# The worker's figures run the worker as Lambda would (one process, its batch on threads) and everything it
# talks to in child processes of their own: moto's server (DynamoDB serialized as in ``make run``) in one, the
# fake Voucherify in another. In Lambda those are network round trips that release the GIL; moto inside the
# benchmark's interpreter would charge its own request processing (milliseconds of Python per DynamoDB call)
# to the worker's threads. moto still handles one DynamoDB request at a time, so a batch waits for the
# emulator's work one record after another: the figures report that work (the children's CPU time).


@dataclass(frozen=True)
class _RemoteRequest:
    redemption_id: str | None
    status: int | None


class _ServiceProcess:
    """One ``programs/service.py`` (``aws`` or ``fake``) in its own process, asked over its stdin."""

    def __init__(self, *args: str) -> None:
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._process = subprocess.Popen(
            [sys.executable, str(PROGRAMS_DIR / "service.py"), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            cwd=tempfile.gettempdir(),
            text=True,
        )
        self._lock = threading.Lock()
        try:
            self.url: str = json.loads(self._line())
        except BaseException:
            self.close()
            raise

    def _line(self) -> str:
        import select

        assert self._process.stdout is not None
        if not select.select([self._process.stdout], [], [], CHILD_TIMEOUT_SECONDS)[0]:
            self._process.kill()  # a child that hangs must not hang the benchmark
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(timeout=CHILD_TIMEOUT_SECONDS)
            self._errors.seek(0)
            detail = self._errors.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"benchmark service child failed ({self._process.returncode}):\n{detail}")
        return line

    def ask(self, command: str) -> Any:
        assert self._process.stdin is not None
        with self._lock:
            self._process.stdin.write(command + "\n")
            self._process.stdin.flush()
            return json.loads(self._line())

    def close(self) -> None:
        try:
            if self._process.stdin is not None:
                self._process.stdin.close()
            self._process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        finally:
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._errors.close()


@dataclass
class _Services:
    """moto's server and the fake Voucherify, each in its own process."""

    aws: _ServiceProcess
    fake: _ServiceProcess

    @property
    def url(self) -> str:
        return self.fake.url

    @property
    def requests(self) -> list[_RemoteRequest]:
        """The API requests the fake answered, in order."""
        return [_RemoteRequest(r, s) for r, s in self.fake.ask("requests")]

    def cpu(self) -> tuple[float, float]:
        """CPU seconds used so far by moto's process and by the fake's."""
        return float(self.aws.ask("cpu")), float(self.fake.ask("cpu"))


@contextmanager
def worker_stack(budget_per_minute: int, latency: float) -> Iterator[tuple[_Services, Any, Callable[[], Any]]]:
    """moto's server (table, queue, API secret) and the fake Voucherify (``latency`` per call, 429 beyond the
    budget), each in a child process; yields (them, sqs client and queue url, a loader of fresh worker
    handlers), the handlers' AWS clients pointing at the child's moto."""
    import boto3

    from ledger_dev.fake_voucherify import api_secret_value
    from ledger_dev.harness.functions import load_handler
    from ledger_dev.harness.template import create_table

    with ExitStack() as stack:
        aws = _ServiceProcess("aws")
        stack.callback(aws.close)
        fake = _ServiceProcess("fake", str(budget_per_minute), str(latency))
        stack.callback(fake.close)
        services = _Services(aws, fake)
        loopback = ",".join(filter(None, (os.environ.get("NO_PROXY") or os.environ.get("no_proxy"), "127.0.0.1")))
        stack.enter_context(aws_environment({"AWS_ENDPOINT_URL": aws.url, "NO_PROXY": loopback, "no_proxy": loopback}))
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, table_name=TABLE_NAME)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="bench-rollback-queue", Attributes={"VisibilityTimeout": "180"})[
            "QueueUrl"
        ]
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="voucherify-ledger/api", SecretString=api_secret_value()
        )
        env = child_environment(
            WORKER_FUNCTION,
            {
                "ROLLBACK_QUEUE_URL": queue_url,
                "VOUCHERIFY_API_URL": fake.url,
                "VOUCHERIFY_REQUESTS_PER_MINUTE": str(budget_per_minute),
                "AWS_ENDPOINT_URL": aws.url,
            },
        )
        os.environ.update({k: v for k, v in env.items() if k.startswith(("AWS_", "POWERTOOLS_")) or k.isupper()})

        def loader() -> Any:
            with redirect_stdout(io.StringIO()):
                return load_handler(WORKER_FUNCTION)

        yield services, (sqs, queue_url), loader


def measure_batch(report: Report, repeat: int) -> None:
    """A batch of 10 rollbacks vs one rollback, the fake answering every call in 100 ms; moto and the fake in
    processes of their own (``worker_stack``), and the CPU time each side spent on every run."""
    from ledger_dev.harness.apigw import LambdaContext

    with worker_stack(DRAIN_BUDGET_PER_MINUTE, BATCH_LATENCY_SECONDS) as (services, _, loader):
        handler = loader()
        counter = 0
        failures: list[Any] = []
        cpu: dict[int, list[tuple[float, float]]] = {1: [], 10: []}  # (worker, moto) CPU seconds per run

        def run(size: int) -> float:
            nonlocal counter
            bodies = [json.dumps({"redemption_id": f"r_bench{counter + i:012d}"}) for i in range(size)]
            event = _sqs_event(bodies, counter)
            counter += size
            context = LambdaContext(function_name=WORKER_FUNCTION, timeout_seconds=30)
            moto_before, _ = services.cpu()
            worker_before = time.process_time()
            started = time.perf_counter()
            with redirect_stdout(io.StringIO()):
                answer = handler(event, context)
            elapsed = time.perf_counter() - started
            worker = time.process_time() - worker_before
            cpu.setdefault(size, []).append((worker, services.cpu()[0] - moto_before))
            failures.extend(answer.get("batchItemFailures") or [])  # left on the queue (retried): reported
            # The pacer refills before the next run, so that the figures are the batch's, not the budget's.
            pacer = sys.modules[handler.__module__].worker.pacer
            time.sleep(min(10.0, size / pacer.rate + 0.2))
            return elapsed

        run(1)  # first invocation (secret, idempotency table) outside the figures
        cpu[1].clear()
        ones, tens = [], []
        for _ in range(repeat):
            ones.append(run(1))
            tens.append(run(10))
        calls = len(services.requests)

    def cpu_ms(size: int, side: int) -> float:
        return median(run[side] for run in cpu[size]) * 1000

    report.add(
        Row(
            "worker",
            "batch of 10 rollbacks vs 1",
            median(tens) * 1000,
            median(ones) * 1000,
            "ms",
            TARGETS["batch"],
            note=f"fake Voucherify latency {BATCH_LATENCY_SECONDS * 1000:.0f} ms; CPU for 10 vs 1: worker "
            f"{cpu_ms(10, 0):.0f} vs {cpu_ms(1, 0):.0f} ms, moto (serial, own process) {cpu_ms(10, 1):.0f} vs "
            f"{cpu_ms(1, 1):.0f} ms; {calls} API calls; {len(failures)} record(s) left for a retry",
        )
    )


def measure_drain(report: Report, requests: int = DRAIN_REQUESTS, budget: int = DRAIN_BUDGET_PER_MINUTE) -> None:
    """``requests`` rollback requests on the queue, drained by ``ROLLBACK_MAX_CONCURRENCY`` pollers (each its
    own execution environment, so its own pacer) under ``budget`` calls a minute, which the fake enforces."""
    from ledger_dev.harness.sqs_poller import SqsPoller

    concurrency = int(load_template()["Parameters"]["RollbackWorkerMaxConcurrency"]["Default"])
    with worker_stack(budget, BATCH_LATENCY_SECONDS) as (fake, (sqs, queue_url), loader):
        handlers = [loader() for _ in range(concurrency)]
        for start in range(0, requests, 10):
            sqs.send_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "MessageBody": json.dumps({"redemption_id": f"r_drain{start + i:012d}"})}
                    for i in range(min(10, requests - start))
                ],
            )
        pollers = [SqsPoller(sqs, queue_url, h, wait_time_seconds=0, timeout_seconds=30) for h in handlers]
        stop = threading.Event()
        deadline = time.monotonic() + 120

        def succeeded() -> int:
            return sum(1 for r in fake.requests if r.status == 200)

        def poll(poller: SqsPoller) -> None:
            while not stop.is_set() and time.monotonic() < deadline:
                result = poller.poll_once(wait_time_seconds=0)
                if not result.received:
                    time.sleep(0.05)

        # Each execution's pacer lets its bucket's burst go at once; the sustained rate is measured from the moment
        # those calls are answered (and at least 1 s in), so that it is the refill rate the budget allows.
        initial_burst = sum(int(sys.modules[h.__module__].worker.pacer.capacity) for h in handlers)
        started = time.monotonic()
        threads = [threading.Thread(target=poll, args=(p,), daemon=True) for p in pollers]
        # One redirect for the whole phase: redirect_stdout swaps sys.stdout process-wide, so entering and leaving it
        # on several threads at once can leave it pointing at a discarded buffer.
        with redirect_stdout(io.StringIO()):
            for thread in threads:
                thread.start()
            burst_done: float | None = None
            burst = 0
            while time.monotonic() < deadline and succeeded() < requests:
                time.sleep(0.02)
                if burst_done is None and time.monotonic() - started >= 1.0 and succeeded() >= initial_burst:
                    burst_done, burst = time.monotonic(), succeeded()
            finished = time.monotonic()
            stop.set()
            for thread in threads:
                thread.join(timeout=35)
        statuses = [r.status for r in fake.requests]
    done = statuses.count(200)
    limited = statuses.count(429)
    elapsed = finished - started
    overall = done / elapsed * 60
    sustained = (done - burst) / (finished - burst_done) * 60 if burst_done and finished > burst_done else None
    report.add(
        Row(
            "worker",
            f"drain of {requests}: sustained rate vs budget",
            sustained,
            budget,
            "/min",
            TARGETS["drain_rate"],
            minimum=True,
            note=f"after the initial burst ({initial_burst} calls) is answered; {concurrency} executions × "
            f"{budget // concurrency}/min each",
        ),
        Row(
            "worker",
            f"drain of {requests}: overall rate vs budget",
            overall,
            budget,
            "/min",
            note=f"{done} rollbacks in {elapsed:.1f} s, initial burst included ({burst} calls)",
        ),
        Row("worker", f"drain of {requests}: 429 answers", limited, None, "", 0, note=f"{len(statuses)} API calls"),
    )


def _recorded_redemption(ledger: Any, redemption_id: str) -> None:
    """The sample redemption.succeeded payload under ``redemption_id``, recorded as its webhook would record it."""
    from datetime import UTC, datetime

    from ledger_dev.harness.template import PROJECT_ROOT
    from voucherify_ledger.ledger.deliveries import Delivery
    from voucherify_ledger.models.webhooks import EventRedemptionSucceededData

    data = json.loads((PROJECT_ROOT / "events" / "payloads" / "redemption_succeeded.json").read_text("utf-8"))
    data["redemption"]["id"] = redemption_id
    delivery = Delivery(raw=json.dumps(data).encode(), route="redemption-succeeded", received_at=datetime.now(UTC))
    outcome = ledger.redemptions.record(EventRedemptionSucceededData.model_validate(data), delivery)
    assert outcome.status == "recorded", outcome


@dataclass
class WorkerCapacity:
    """One side's DynamoDB use for a rollback of a recorded redemption and for the same message redelivered."""

    rollback: Any  # capacity.Capacity
    redelivery: Any
    api_calls: int
    cpu_ms: float  # the worker's own CPU time for the rollback (moto and the fake in their own processes)


def measure_worker_capacity(report: Report, repeat: int = 1) -> dict[str, WorkerCapacity]:
    """The real RollbackWorkerFunction handler and the textbook worker against moto's server and the fake (each in
    its own process), each for one new rollback of a redemption its ledger holds and then for the very same SQS
    message redelivered (its request already finished); every DynamoDB call of the function's clients counted with
    its write and read units (``capacity``: failed conditions billed by the existing item, transactions double); the
    worker's own CPU time per rollback is the median of ``repeat`` new ones."""
    import boto3

    from ledger_dev.bench.capacity import (
        TEXTBOOK_TABLE_NAME,
        CallRecorder,
        dynamodb_clients,
        item_reader,
        snapshot,
        table_indexes,
    )
    from ledger_dev.bench.ledger_events import LedgerEventsProbe, LogMeter
    from ledger_dev.bench.textbook import load_textbook
    from ledger_dev.harness.apigw import LambdaContext
    from ledger_dev.harness.template import create_table
    from voucherify_ledger.ledger import Ledger

    indexes = table_indexes()
    found: dict[str, WorkerCapacity] = {}
    with worker_stack(DRAIN_BUDGET_PER_MINUTE, 0.0) as (services, _, loader):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, table_name=TEXTBOOK_TABLE_NAME)
        sides: dict[str, tuple[Callable[..., Any], str, CallRecorder, LogMeter]] = {}
        recorder = CallRecorder(item_reader(dynamodb, TABLE_NAME))
        handler = loader()
        for client in dynamodb_clients(sys.modules[handler.__module__]):
            recorder.attach(client)
        sides["bundle"] = (handler, TABLE_NAME, recorder, LogMeter(sys.modules[handler.__module__]))
        saved = {name: os.environ.get(name, "") for name in ("LEDGER_TABLE_NAME", "POWERTOOLS_SERVICE_NAME")}
        os.environ.update(LEDGER_TABLE_NAME=TEXTBOOK_TABLE_NAME, POWERTOOLS_SERVICE_NAME="voucherify-ledger-textbook")
        try:
            with redirect_stdout(io.StringIO()):
                textbook_handler, textbook_module = load_textbook(WORKER_FUNCTION)
        finally:
            os.environ.update(saved)
        recorder = CallRecorder(item_reader(dynamodb, TEXTBOOK_TABLE_NAME))
        for client in dynamodb_clients(textbook_module):
            recorder.attach(client)
        sides["textbook"] = (textbook_handler, TEXTBOOK_TABLE_NAME, recorder, LogMeter(textbook_module))
        probe = LedgerEventsProbe()
        ledgers = {name: Ledger(table_name, dynamodb) for name, (_, table_name, _, _) in sides.items()}
        context = LambdaContext(function_name=WORKER_FUNCTION, timeout_seconds=30)
        # A first rollback each, outside the figures (the secrets fetched and cached, lazy paths taken), then
        # ``repeat`` new rollbacks each, the sides alternated, then the last one's message redelivered.
        phases = ["warm-up", *(f"rollback {i}" for i in range(repeat)), "redelivery"]
        events: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in sides}
        for position, name in enumerate(sides):
            for run, what in enumerate(phases[:-1]):
                redemption_id = f"r_benchcap{position}{run:03d}{'0' * 6}"
                _recorded_redemption(ledgers[name], redemption_id)
                body = json.dumps({"redemption_id": redemption_id, "reason": "Order cancelled"})
                events[name][what] = _sqs_event([body], 1000 * position + run)
        runs: dict[str, dict[str, Any]] = {name: {} for name in sides}
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        api_calls: dict[str, int] = {}
        for what in phases:
            for name, (side_handler, table_name, recorder, meter) in sides.items():
                if what == "redelivery":
                    event = json.loads(json.dumps(events[name][phases[-2]]))
                    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"
                else:
                    event = events[name][what]
                before = snapshot(dynamodb, table_name)
                recorder.clear()
                calls_before = len(services.requests)
                started, reading = time.process_time(), recorder.read_seconds
                with meter.measure() as logged:
                    answer = side_handler(event, context)
                # The bench's own reads of the written items, made on the worker's thread, are not the worker's.
                elapsed = (time.process_time() - started - (recorder.read_seconds - reading)) * 1000
                assert not (answer or {}).get("batchItemFailures"), (name, what, answer)
                kind = what.split()[0]
                if kind == "rollback":
                    cpu[name].append(elapsed)
                api_calls[f"{name} {kind}"] = len(services.requests) - calls_before
                after = snapshot(dynamodb, table_name)
                capacity = recorder.capacity(f"{name} {what}", before, after, indexes)
                capacity.log_bytes = logged[0]
                if name == "bundle":
                    published = probe.publish(before, after)
                    capacity.events, capacity.events_cpu_ms = published.events, published.cpu_ms
                    capacity.events_log_bytes = published.log_bytes
                runs[name][kind] = capacity
    for name in sides:
        found[name] = WorkerCapacity(
            runs[name]["rollback"], runs[name]["redelivery"], api_calls[f"{name} rollback"], median(cpu[name])
        )
    mine, theirs = found["bundle"], found["textbook"]
    report.add(
        Row(
            "capacity",
            "worker rollback: DynamoDB calls",
            mine.rollback.call_count,
            None,
            "calls",
            TARGETS["worker_calls"],
            note=f"a new rollback of a recorded redemption: {mine.rollback.operations()}, {mine.rollback.events} "
            f"ledger event(s); textbook: {theirs.rollback.operations()}",
            textbook=theirs.rollback.call_count,
        ),
        Row(
            "capacity",
            "worker rollback: write units",
            mine.rollback.write_units,
            None,
            "WU",
            TARGETS["worker_write_units"],
            note=f"+{mine.rollback.index_write_units} index WU (textbook +{theirs.rollback.index_write_units})",
            textbook=theirs.rollback.write_units,
        ),
        Row(
            "capacity",
            "worker rollback: read units",
            mine.rollback.read_units,
            None,
            "RRU",
            textbook=theirs.rollback.read_units,
        ),
        Row(
            "capacity",
            "worker rollback: the worker's CPU",
            mine.cpu_ms,
            None,
            "ms",
            note=f"one message a run, median of {repeat} (moto and the fake in their own processes); "
            f"{mine.api_calls} API call(s) a rollback (textbook {theirs.api_calls})",
            textbook=theirs.cpu_ms,
        ),
        Row(
            "capacity",
            "redelivered rollback request: DynamoDB calls",
            mine.redelivery.call_count,
            None,
            "calls",
            TARGETS["redelivery_calls"],
            note=f"the same SQS message again, its request finished: {mine.redelivery.operations()}; textbook: "
            f"{theirs.redelivery.operations()}; API calls {api_calls['bundle redelivery']} (textbook "
            f"{api_calls['textbook redelivery']})",
            textbook=theirs.redelivery.call_count,
        ),
        Row(
            "capacity",
            "redelivered rollback request: write units",
            mine.redelivery.write_units,
            None,
            "WU",
            textbook=theirs.redelivery.write_units,
        ),
        Row(
            "capacity",
            "redelivered rollback request: read units",
            mine.redelivery.read_units,
            None,
            "RRU",
            textbook=theirs.redelivery.read_units,
        ),
    )
    return found
