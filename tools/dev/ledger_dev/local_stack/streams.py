"""The ledger's stream and its events, locally: what the template's ``Type: DynamoDB`` events and event bus do in AWS.

- ``stream_events()`` reads every ``DynamoDB`` event of every function in the template, ``stream_mapping()`` one
  event's properties as a ``StreamMapping`` (``BatchSize``, ``MaximumBatchingWindowInSeconds``, ``StartingPosition``,
  ``FunctionResponseTypes``, ``BisectBatchOnFunctionError``, ``MaximumRetryAttempts``, ``MaximumRecordAgeInSeconds``,
  ``DestinationConfig.OnFailure.Destination``, ``FilterCriteria.Filters[].Pattern``, ``Enabled``), intrinsic
  functions resolved with the stack's parameters (overrides included) and conditions;
- ``create_event_buses()`` creates every ``AWS::Events::EventBus`` whose ``Condition`` holds, named as the template
  names it (``Ref`` gives its name, ``Fn::GetAtt`` its ``Arn`` and ``Name``);
- ``LedgerEvents``, the background service: the bus each stream function publishes to (its ``EVENT_BUS_NAME``; one
  that only exists outside the stack, a ``LedgerEventBusName`` given, is created here) gets a rule of the local stack's
  own, ``{"source": ["voucherify.ledger"]}``, whose target is the log group ``/voucherify-ledger/local/ledger-events``
  (every event kept, as a team watching a bus in AWS keeps them; ``redemption-ledger events --local`` reads it); and a
  ``StreamPoller`` per stream event invokes the function's real handler (``stack.function()``: the module loaded with
  its template environment) with the table's stream records, as Lambda's event source mapping does, discarded
  batches going to the template's on-failure queue.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledger_dev.harness.event_filters import FilterPattern
from ledger_dev.harness.functions import function_setting
from ledger_dev.harness.stream_poller import StreamMapping, StreamPoller
from ledger_dev.harness.template import (
    PROJECT_ROOT,
    condition_holds,
    resolve_value,
    resources,
    template_values,
)
from ledger_dev.local_stack.config import ACCOUNT_ID, STACK_NAME
from ledger_dev.local_stack.services import SHUTDOWN_TIMEOUT_SECONDS
from redemption_ledger_cli.local import LEDGER_EVENTS_LOG_GROUP, LEDGER_EVENTS_SOURCE

if TYPE_CHECKING:
    from ledger_dev.local_stack.stack import LocalStack

log = logging.getLogger("ledger_dev.local_stack")

STREAM_EVENT_TYPE = "DynamoDB"
EVENT_BUS_ENV = "EVENT_BUS_NAME"  # what a publishing function reads its bus from
LEDGER_EVENTS_RULE = f"{STACK_NAME}-ledger-events-to-log"  # the local stack's own rule (not the template's)
LEDGER_EVENTS_PATTERN = {"source": [LEDGER_EVENTS_SOURCE]}


@dataclass(frozen=True)
class StreamEvent:
    """A function's ``Type: DynamoDB`` event in the template."""

    function: str
    event: str
    properties: Mapping[str, Any]

    @property
    def stream_ref(self) -> Any:
        return self.properties.get("Stream")


def stream_events() -> list[StreamEvent]:
    """Every ``DynamoDB`` event of every ``AWS::Serverless::Function``, in template order."""
    found = []
    for logical_id, function in resources("AWS::Serverless::Function").items():
        for name, event in (function["Properties"].get("Events") or {}).items():
            if event.get("Type") == STREAM_EVENT_TYPE:
                found.append(StreamEvent(logical_id, name, dict(event.get("Properties") or {})))
    return found


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def stream_mapping(event: StreamEvent, values: Mapping[str, str]) -> StreamMapping:
    """The event's ``StreamMapping`` (Lambda's defaults where the template says nothing), resolved with ``values``
    (``template.template_values``). A filter pattern the emulation does not understand is a ValueError."""

    def prop(name: str, default: Any = None) -> Any:
        value = resolve_value(event.properties.get(name), values) if name in event.properties else None
        return default if value is None else value

    destination = ((prop("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    try:
        filters = tuple(
            FilterPattern.parse(entry["Pattern"])
            for entry in (prop("FilterCriteria") or {}).get("Filters") or []
            if entry.get("Pattern") is not None
        )
        return StreamMapping(
            function=event.function,
            event=event.event,
            batch_size=int(prop("BatchSize", 100)),
            batching_window_seconds=float(prop("MaximumBatchingWindowInSeconds", 0)),
            starting_position=str(prop("StartingPosition", "TRIM_HORIZON")),
            report_batch_item_failures="ReportBatchItemFailures" in (prop("FunctionResponseTypes") or []),
            bisect_batch_on_function_error=_flag(prop("BisectBatchOnFunctionError", False)),
            maximum_retry_attempts=int(prop("MaximumRetryAttempts", -1)),
            maximum_record_age_seconds=int(prop("MaximumRecordAgeInSeconds", -1)),
            on_failure_arn=str(destination) if destination else None,
            filters=filters,
            enabled=_flag(prop("Enabled", True)),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{event.function}'s {event.event} event: {exc}") from None


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def create_event_buses(events: Any, refs: dict[str, str]) -> list[str]:
    """Creates every ``AWS::Events::EventBus`` whose ``Condition`` holds (with ``refs``' parameters), its ``Name``
    resolved (else ``<stack name>-<logical-id>``); adds ``Id`` (the name), ``Id.Arn`` and ``Id.Name`` to ``refs``.
    Returns the names created."""
    values = template_values(refs)
    created = []
    for logical_id, bus in resources("AWS::Events::EventBus").items():
        condition = bus.get("Condition")
        if condition and not condition_holds(condition, values):
            continue
        props = bus.get("Properties") or {}
        name = str(resolve_value(props.get("Name"), values) or f"{STACK_NAME}-{_kebab(logical_id)}")
        arn = str(events.create_event_bus(Name=name)["EventBusArn"])
        refs.update({logical_id: name, f"{logical_id}.Arn": arn, f"{logical_id}.Name": name})
        created.append(name)
    return created


def _bus_name(value: str) -> str:
    """An ``EventBusName`` as a name (it may be given as an ARN)."""
    return value.rsplit("event-bus/", 1)[1] if value.startswith("arn:") and "event-bus/" in value else value


class LedgerEvents:
    """The stream pollers of the template's ``DynamoDB`` events and the rule that keeps the ledger's events in a log
    group. Attributes once started: ``pollers`` (function → ``StreamPoller``), ``buses`` (the buses the rule is on),
    ``log_group``, ``skipped`` (why a stream event is not polled: disabled, no code yet, another table)."""

    name = "ledger-events"

    def __init__(self, *, log_group: str = LEDGER_EVENTS_LOG_GROUP, rule: str = LEDGER_EVENTS_RULE) -> None:
        self.log_group, self.rule = log_group, rule
        self.pollers: dict[str, StreamPoller] = {}
        self.buses: list[str] = []
        self.skipped: dict[str, str] = {}

    # --- service --------------------------------------------------------------------------------------------
    def start(self, stack: LocalStack) -> None:
        values = template_values(stack.refs)
        mappings: list[tuple[StreamEvent, StreamMapping, str]] = []
        for event in stream_events():
            mapping = stream_mapping(event, values)
            try:
                stream_arn = str(resolve_value(event.stream_ref, values))
            except KeyError as unknown:
                self.skipped[event.function] = f"its stream {unknown} is not one of the local stack's tables"
                continue
            if not mapping.enabled:
                self.skipped[event.function] = f"its {event.event} event is disabled (Enabled: false)"
                continue
            if not self._has_code(event.function):
                self.skipped[event.function] = "its code is not there yet"
                continue
            mappings.append((event, mapping, stream_arn))
        for reason in (f"{fn}: {why}; its stream is not polled" for fn, why in self.skipped.items()):
            log.warning("%s", reason)
        buses = [name for lid, name in stack.refs.items() if lid in resources("AWS::Events::EventBus")]
        for event, _mapping, _arn in mappings:
            function = stack.function(event.function)  # loaded now: a configuration error stops start-up
            bus = function.environment.get(EVENT_BUS_ENV)
            if bus:
                buses.append(_bus_name(bus))
        self.buses = list(dict.fromkeys(buses))
        if self.buses:
            self._keep_events(stack)
        for event, mapping, stream_arn in mappings:
            poller = StreamPoller(
                stack.aws_client("dynamodbstreams"),
                stream_arn,
                lambda records, _context, fn=event.function: stack.function(fn).invoke(records),
                mapping,
                sqs=stack.aws_client("sqs"),
                on_failure_queue_url=self._on_failure_queue(stack, mapping),
                region=stack.config.region,
                account_id=ACCOUNT_ID,
                timeout_seconds=float(function_setting(event.function, "Timeout", 3)),
                memory_mb=int(function_setting(event.function, "MemorySize", 128)),
                max_consecutive_errors=1_000_000,  # make run keeps polling through a flaky moment
            )
            poller.start(stack)
            self.pollers[event.function] = poller

    def stop(self) -> None:
        for poller in self.pollers.values():
            poller.stop(SHUTDOWN_TIMEOUT_SECONDS)

    def describe(self) -> list[str]:
        lines = [line for poller in self.pollers.values() for line in poller.describe()]
        if self.buses:
            lines.append(
                f"event bus     {', '.join(self.buses)}: rule {self.rule} ({LEDGER_EVENTS_SOURCE}) -> log group "
                f"{self.log_group}"
            )
        lines += [f"stream        {fn}: not polled ({why})" for fn, why in self.skipped.items()]
        return lines

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once every poller has handed over what the stream held when this was called."""
        deadline = time.monotonic() + timeout
        return all(poller.wait_idle(max(0.0, deadline - time.monotonic())) for poller in self.pollers.values())

    # --- pieces ---------------------------------------------------------------------------------------------
    @staticmethod
    def _has_code(logical_id: str) -> bool:
        props = resources("AWS::Serverless::Function")[logical_id]["Properties"]
        module = str(props["Handler"]).rpartition(".")[0]
        return (PROJECT_ROOT / props["CodeUri"] / (module.replace(".", "/") + ".py")).is_file()

    def _keep_events(self, stack: LocalStack) -> None:
        """Every bus the functions publish to: created if the stack did not create it, and a rule sending the
        ledger's events to the log group."""
        events, logs = stack.aws_client("events"), stack.aws_client("logs")
        logs.create_log_group(logGroupName=self.log_group)
        log_group_arn = f"arn:aws:logs:{stack.config.region}:{ACCOUNT_ID}:log-group:{self.log_group}"
        known = {bus["Name"] for bus in events.list_event_buses().get("EventBuses") or []}
        for bus in self.buses:
            if bus not in known:
                log.info("event bus %s: not the stack's own (LedgerEventBusName?); created locally", bus)
                events.create_event_bus(Name=bus)
            events.put_rule(Name=self.rule, EventBusName=bus, EventPattern=json.dumps(LEDGER_EVENTS_PATTERN))
            events.put_targets(
                Rule=self.rule, EventBusName=bus, Targets=[{"Id": "ledger-events-log", "Arn": log_group_arn}]
            )

    @staticmethod
    def _on_failure_queue(stack: LocalStack, mapping: StreamMapping) -> str | None:
        if not mapping.on_failure_arn:
            return None
        for queue in stack.queues.values():
            if queue.arn == mapping.on_failure_arn:
                return queue.url
        log.warning(
            "%s: its on-failure destination %s is not one of the stack's queues: discarded batches are only logged",
            mapping.function,
            mapping.on_failure_arn,
        )
        return None
