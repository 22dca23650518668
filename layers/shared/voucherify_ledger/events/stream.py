"""A batch of the ledger table's stream records through Powertools' batch utility: the events of the records are put
in order (``publisher``), and the records whose events were not all put are reported (ReportBatchItemFailures).

Stream records are ordered: once a record fails, every later record of the batch is reported failed too, without
putting its events. (Powertools' ``BatchProcessor`` goes on with the next record after a failure, and Lambda then
retries from the lowest sequence number reported: the later records would be put now and again on the retry.) The
first record's turn maps and puts the events of as many records as it can, in requests of up to 10 entries; the
records after it are answered from what came of theirs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voucherify_ledger.events.changes import LedgerEvent, events_of
from voucherify_ledger.events.publisher import EventPublisher, events_client

# An EventBridge bus by name or ARN, as PutEvents takes it.
EVENT_BUS_PATTERN = r"^(arn:aws[\w-]*:events:[a-z0-9-]+:[0-9]{12}:event-bus/)?[/.\-_A-Za-z0-9]{1,256}$"

Mapper = Callable[[DynamoDBRecord], list[LedgerEvent]]


class LedgerEventsSettings(BaseModel):
    """Settings of ``LedgerEventsFunction``, from the environment (the variable is the field in upper case)."""

    model_config = ConfigDict(frozen=True)

    event_bus_name: str = Field(pattern=EVENT_BUS_PATTERN, max_length=1600)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LedgerEventsSettings:
        env = os.environ if env is None else env
        values = {name: env[name.upper()] for name in cls.model_fields if env.get(name.upper(), "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            # Imported only here: the function's other settings models are no business of a valid configuration.
            from voucherify_ledger.settings import SettingsError

            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']).upper() or 'settings'}: {e['msg']}" for e in exc.errors()
            )
            raise SettingsError(f"invalid function configuration: {problems}") from None


class RecordFailed(Exception):
    """A record whose events were not all put, or that follows one: reported, and retried from the stream."""


class StreamBatch:
    """One invocation's records; ``handle`` is Powertools' record handler, called for each record in order."""

    def __init__(
        self,
        records: Sequence[Mapping[str, Any]],
        publisher: EventPublisher,
        mapper: Mapper,
        time_left: Callable[[], float] | None = None,
    ) -> None:
        self.records = list(records)
        self.publisher, self.mapper, self.time_left = publisher, mapper, time_left
        self.positions = {_sequence_number(r): i for i, r in enumerate(self.records) if _sequence_number(r)}
        self.results: dict[int, int] = {}  # record position → events put
        self.failed_from: int | None = None  # the first record that failed: it and every later one are reported
        self.reason = ""
        self.published = 0
        self.failure: dict[str, Any] = {}  # what the log says of the failed record: ids and codes, never content

    def handle(self, record: DynamoDBRecord) -> int:
        """The number of events the record gave, all put; RecordFailed otherwise."""
        position = self.positions.get(record.dynamodb.sequence_number if record.dynamodb else None)
        if position is None:
            raise RecordFailed("a stream record without a sequence number of this batch")
        if position not in self.results and self.failed_from is None:
            self._run(position)
        if position in self.results:
            return self.results[position]
        assert self.failed_from is not None
        if position == self.failed_from:
            raise RecordFailed(self.reason)
        raise RecordFailed("an earlier record of the batch failed")

    def _run(self, start: int) -> None:
        """Maps the records from ``start`` (up to one that cannot be mapped) and puts their events."""
        mapped: list[tuple[int, list[LedgerEvent]]] = []
        unmapped: tuple[int, str] | None = None
        for position in range(start, len(self.records)):
            try:
                mapped.append((position, self.mapper(DynamoDBRecord(dict(self.records[position])))))
            except Exception as exc:  # a bug or an image the mapping does not know: the record fails, not the batch
                unmapped = (position, f"its change could not be read ({type(exc).__name__})")
                break
        events = [event for _, found in mapped for event in found]
        try:
            put = self.publisher.put(events, self.time_left)
        except Exception as exc:
            self._fail(start, f"its events could not be put ({type(exc).__name__})", mapped[0][1] if mapped else [])
            return
        self.published += put.published
        first_unput = put.first_failed()
        offset = 0
        for position, found in mapped:
            if first_unput is not None and offset + len(found) > first_unput:
                codes = sorted({code for code in put.errors[offset : offset + len(found)] if code})
                self._fail(position, f"its events were not put ({', '.join(codes) or 'not sent'})", found, codes)
                return
            self.results[position] = len(found)
            offset += len(found)
        if unmapped is not None:
            self._fail(*unmapped, [])

    def _fail(self, position: int, reason: str, events: Sequence[LedgerEvent], codes: Sequence[str] = ()) -> None:
        self.failed_from, self.reason = position, reason
        record = self.records[position]
        self.failure = {
            "sequence_number": _sequence_number(record),
            "event_name": record.get("eventName"),
            "reason": reason,
            "error_codes": list(codes),
            "detail_types": [event.detail_type for event in events],
            "event_ids": [event.detail.event_id for event in events],
            "records_failed": len(self.records) - position,
        }


def _sequence_number(record: Mapping[str, Any]) -> str | None:
    found = (record.get("dynamodb") or {}).get("SequenceNumber")
    return str(found) if found else None


class LedgerEventsStream:
    """Turns stream batches into events on the bus: its metrics ``LedgerEventsPublished`` (entries put) and
    ``LedgerEventsFailed`` (stream records reported failed) on ``metrics``, a line per batch on ``logger``."""

    def __init__(self, publisher: EventPublisher, *, logger: Any, metrics: Any, mapper: Mapper = events_of) -> None:
        self.publisher, self.logger, self.metrics, self.mapper = publisher, logger, metrics, mapper
        # Not raising on a batch whose every record failed: its batchItemFailures say so, and Lambda retries (and
        # bisects) from the first of them just the same.
        self.processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)

    @classmethod
    def from_env(
        cls, *, logger: Any, metrics: Any, client: Any = None, env: Mapping[str, str] | None = None
    ) -> LedgerEventsStream:
        settings = LedgerEventsSettings.from_env(env)
        return cls(
            EventPublisher(client if client is not None else events_client(), settings.event_bus_name),
            logger=logger,
            metrics=metrics,
        )

    def process(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The batch's partial response: ``batchItemFailures`` names the records to retry, the first failed on."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        time_left = (lambda: remaining() / 1000) if callable(remaining) else None
        batch = StreamBatch(event.get("Records") or [], self.publisher, self.mapper, time_left)
        response = process_partial_response(
            event=event, record_handler=batch.handle, processor=self.processor, context=context
        )
        failed = len(response.get("batchItemFailures") or [])
        self.metrics.add_metric(name="LedgerEventsPublished", unit="Count", value=batch.published)
        self.metrics.add_metric(name="LedgerEventsFailed", unit="Count", value=failed)
        summary = {"records": len(batch.records), "published": batch.published, "records_failed": failed}
        if batch.failure:
            self.logger.warning("ledger events not put", **summary, failed_record=batch.failure)
        else:
            self.logger.info("ledger events put", **summary)
        return dict(response)
