"""What a write costs downstream: the ledger events it publishes (``LedgerEventsFunction``'s real handler fed the
stream records the write makes), and the log bytes a handler writes per invocation."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger_dev.bench.children import child_environment
from ledger_dev.bench.seeds import LEDGER_EVENTS_FUNCTION, REGION

STREAM_ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/voucherify-ledger/stream/2026-01-01T00:00:00.000"


def clients_of(module: Any, service: str) -> list[Any]:
    """The clients of ``service`` a loaded handler module holds (its attributes and theirs, a few levels deep)."""
    from botocore.client import BaseClient

    found: dict[int, Any] = {}
    seen: set[int] = set()
    frontier: list[Any] = [module]
    for _ in range(4):
        following: list[Any] = []
        for holder in frontier:
            if id(holder) in seen or not hasattr(holder, "__dict__"):
                continue
            seen.add(id(holder))
            for value in list(vars(holder).values()):
                if isinstance(value, BaseClient):
                    if value.meta.service_model.service_name == service:
                        found[id(value)] = value
                elif not isinstance(value, type) and hasattr(value, "__dict__") and not callable(value):
                    following.append(value)
        frontier = following
    return list(found.values())


class LogMeter:
    """The bytes a handler module writes to its log per call: its Powertools Logger's stream (the buffer it was
    loaded under) and stdout (Metrics' EMF lines), as Lambda sends both to CloudWatch Logs."""

    def __init__(self, module: Any) -> None:
        logger = getattr(module, "logger", None)
        handler = getattr(logger, "registered_handler", None)
        self._stream = getattr(handler, "stream", None)

    def _logged(self) -> int:
        getvalue = getattr(self._stream, "getvalue", None)
        return len(getvalue().encode("utf-8")) if getvalue else 0

    @contextmanager
    def measure(self) -> Iterator[list[int]]:
        """Yields a list that holds, once the block ends, the bytes written inside it."""
        result: list[int] = []
        start = self._logged()
        out = io.StringIO()
        with redirect_stdout(out):
            yield result
        result.append(self._logged() - start + len(out.getvalue().encode("utf-8")))


def _filters() -> list[Any]:
    from ledger_dev.harness.event_filters import FilterPattern
    from ledger_dev.harness.template import resources

    props = resources("AWS::Serverless::Function")[LEDGER_EVENTS_FUNCTION]["Properties"]
    stream = next(e for e in props["Events"].values() if e["Type"] == "DynamoDB")["Properties"]
    return [FilterPattern.parse(f["Pattern"]) for f in (stream.get("FilterCriteria") or {}).get("Filters") or []]


@dataclass
class Published:
    records: int  # stream records the function is sent (after the template's filter)
    events: int  # entries it put on the bus
    cpu_ms: float  # its CPU time for them
    log_bytes: int


class LedgerEventsProbe:
    """``LedgerEventsFunction``'s handler, loaded in this process with its template environment, handed the stream
    records a change of the table makes (INSERT / MODIFY / REMOVE with both images, the template's FilterCriteria
    applied, as Lambda hands them); its PutEvents answered in-process, every entry accepted and counted."""

    def __init__(self) -> None:
        from ledger_dev.harness.functions import load_handler

        saved = dict(os.environ)
        os.environ.update({k: v for k, v in child_environment(LEDGER_EVENTS_FUNCTION).items() if k.isupper()})
        if not os.environ.get("AWS_ENDPOINT_URL"):
            os.environ.pop("AWS_ENDPOINT_URL", None)
        try:
            with redirect_stdout(io.StringIO()):
                self.handler: Callable[..., Any] = load_handler(LEDGER_EVENTS_FUNCTION)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        module = sys.modules[self.handler.__module__]
        self.meter = LogMeter(module)
        self.filters = _filters()
        self.entries = 0
        self._sequence = 0
        for client in clients_of(module, "events"):
            client.meta.events.register("before-call.events.PutEvents", self._put, unique_id="bench-put-events")

    def _put(self, params: Mapping[str, Any], **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        entries = json.loads(params["body"])["Entries"] if isinstance(params.get("body"), str | bytes) else []
        self.entries += len(entries)
        answer = {"FailedEntryCount": 0, "Entries": [{"EventId": f"bench-{i}"} for i in range(len(entries))]}
        return AWSResponse(None, 200, {}, None), answer

    def records(
        self, before: Mapping[tuple[str, str], Mapping[str, Any]], after: Mapping[tuple[str, str], Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """The stream records (as Lambda hands them, filtered) of the change from ``before`` to ``after``."""
        from ledger_dev.harness.event_filters import matches_any
        from ledger_dev.harness.stream_poller import lambda_record

        found = []
        for key in sorted(set(before) | set(after)):
            old, new = before.get(key), after.get(key)
            if old == new:
                continue
            self._sequence += 1
            name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
            image = new or old or {}
            stream: dict[str, Any] = {
                "ApproximateCreationDateTime": datetime.now(UTC),
                "Keys": {"pk": image["pk"], "sk": image["sk"]},
                "SequenceNumber": f"{self._sequence:021d}",
                "SizeBytes": 100,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            }
            if new is not None:
                stream["NewImage"] = dict(new)
            if old is not None:
                stream["OldImage"] = dict(old)
            record = lambda_record(
                {"eventID": str(self._sequence), "eventName": name, "dynamodb": stream},
                stream_arn=STREAM_ARN,
                region=REGION,
            )
            if not self.filters or matches_any(self.filters, record):
                found.append(record)
        return found

    def publish(
        self, before: Mapping[tuple[str, str], Mapping[str, Any]], after: Mapping[tuple[str, str], Mapping[str, Any]]
    ) -> Published:
        from ledger_dev.harness.apigw import LambdaContext

        records = self.records(before, after)
        if not records:
            return Published(0, 0, 0.0, 0)
        self.entries = 0
        context = LambdaContext(function_name=LEDGER_EVENTS_FUNCTION, timeout_seconds=30)
        started = time.process_time()
        with self.meter.measure() as logged:
            answer = self.handler({"Records": records}, context)
        cpu_ms = (time.process_time() - started) * 1000
        assert not (answer or {}).get("batchItemFailures"), answer
        return Published(len(records), self.entries, cpu_ms, logged[0])
