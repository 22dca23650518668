"""``redemption-ledger events``: the ledger's events (what ``LedgerEventsFunction`` puts on the event bus, source
``voucherify.ledger``), one compact JSON line each — the whole EventBridge event: ``id``, ``detail-type``, ``source``,
``time``, ``detail`` … —, oldest first; ``--follow`` goes on printing new ones until Ctrl-C.

A bus keeps no events: they are read from a CloudWatch Logs log group a rule on the bus sends them to.

- ``--local``: ``make run``'s stack, whose own rule keeps every ledger event in the log group
  ``/voucherify-ledger/local/ledger-events`` (``redemption_ledger_cli.local``).
- ``--log-group NAME`` (with ``--stack NAME`` or alone; ``--region``): a log group you had a rule on the stack's bus
  send the events to.
- ``--stack NAME`` alone: names the stack's bus (its ``LedgerEventBusName`` output) and prints the commands that
  subscribe a log group to it (exit 2: nothing to read yet).

Exit codes: 0 events printed (``--follow``: stopped with Ctrl-C), 1 none (yet, or of the ``--detail-type`` asked
for), 2 wrong usage (``--stack`` without ``--log-group``), 3 the log group cannot be reached or read. Imports boto3 and
the standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from redemption_ledger_cli import local, where
from redemption_ledger_cli.where import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, PROG, CliError, aws_problem

BUS_OUTPUT = "LedgerEventBusName"
BUS_ARN_OUTPUT = "LedgerEventBusArn"
FOLLOW_SECONDS = 1.0  # --follow reads the log group again this often
# --follow reads again from this long before the newest event seen (CloudWatch Logs may show an event late); what it
# printed already is not printed again.
LOOKBACK_MS = 60_000

_sleep: Callable[[float], None] = time.sleep


@dataclass
class EventLog:
    """The log group the events are read from, and how it was found (for messages)."""

    client: Any
    log_group: str
    where: str
    local: bool = False


@dataclass(frozen=True)
class Event:
    timestamp: float  # the log event's, in ms
    key: str  # the EventBridge event's id (else the log event's)
    event: dict[str, Any]


def resolve_log(args: argparse.Namespace) -> EventLog:
    if args.local and (args.stack or args.log_group):
        given = " and ".join(name for name, on in (("--stack", args.stack), ("--log-group", args.log_group)) if on)
        raise CliError(f"--local reads the local stack's own log group: it takes no {given}", EXIT_USAGE)
    if args.local:
        config = where._local_aws()
        if not where._listening(*config.host_and_port):
            raise CliError(
                f"nothing is listening on {config.endpoint} (the local stack's embedded AWS): is `make run` running? "
                f"(if it uses another port, set {local.AWS_PORT_ENV})"
            )
        client = local.aws_client("logs", config.endpoint, args.region or config.region)
        return EventLog(client, config.events_log_group, f"the local stack ({config.endpoint})", local=True)
    if args.stack and not args.log_group:
        raise CliError(subscribe_hint(args.stack, args.region), EXIT_USAGE)
    if not args.log_group:
        raise CliError("say where the events are: --local, or --log-group NAME (see --stack NAME)", EXIT_USAGE)
    where_from = f"stack {args.stack}'s region" if args.stack else ""
    if args.stack:
        where._stack_output(args.stack, args.region, BUS_OUTPUT)  # the stack exists and publishes events
    return EventLog(where._aws_client("logs", args.region), args.log_group, where_from)


def subscribe_hint(stack: str, region: str | None) -> str:
    """What ``--stack`` alone answers: the stack's bus, and how to keep its events in a log group to read here."""
    bus = where._stack_output(stack, region, BUS_OUTPUT)
    try:
        bus_arn = where._stack_output(stack, region, BUS_ARN_OUTPUT)
    except CliError:
        bus_arn = ""
    parts = bus_arn.split(":")
    region_name, account = (parts[3], parts[4]) if len(parts) > 5 else (region or "<region>", "<account-id>")
    group = f"/aws/events/{bus}"
    group_arn = f"arn:aws:logs:{region_name}:{account}:log-group:{group}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "delivery.logs.amazonaws.com"]},
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"{group_arn}:*",
            }
        ],
    }
    pattern = json.dumps({"source": [local.LEDGER_EVENTS_SOURCE]}, separators=(",", ":"))
    rule = f"{stack}-ledger-events-to-log"[:64]
    return "\n".join(
        [
            f"stack {stack} puts its events on the bus {bus} (output {BUS_OUTPUT}); a bus keeps none to read. Keep "
            "them in a log group (once; then add --log-group):",
            f"  aws logs create-log-group --log-group-name {group} --region {region_name}",
            f"  aws logs put-resource-policy --policy-name {rule} --region {region_name} "
            f"--policy-document '{json.dumps(policy, separators=(',', ':'))}'",
            f"  aws events put-rule --name {rule} --event-bus-name {bus} --region {region_name} "
            f"--event-pattern '{pattern}'",
            f"  aws events put-targets --rule {rule} --event-bus-name {bus} --region {region_name} "
            f"--targets Id=log,Arn={group_arn}",
            f"then: {PROG} events --stack {stack} --log-group {group} [--follow]  (events from then on; the log "
            "group's retention is yours to set)",
        ]
    )


def read_events(log: EventLog, *, start_ms: int | None = None) -> list[Event]:
    """Every event of the log group (from ``start_ms``), oldest first."""
    from botocore.exceptions import BotoCoreError, ClientError

    found: list[Event] = []
    kwargs: dict[str, Any] = {"logGroupName": log.log_group}
    if start_ms is not None:
        kwargs["startTime"] = max(0, int(start_ms))
    try:
        while True:
            page = log.client.filter_log_events(**kwargs)
            found += list(_events(page.get("events") or []))
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            hint = (
                ": does this `make run` publish the ledger's events (LedgerEventsFunction in template.yaml)?"
                if log.local
                else " (check --log-group and --region)"
            )
            raise CliError(f"no log group {log.log_group}{_at(log.where)}{hint}") from None
        raise CliError(aws_problem(exc)) from None
    except BotoCoreError as exc:
        raise CliError(aws_problem(exc)) from None
    return sorted(found, key=lambda e: e.timestamp)  # stable: a page's order within one millisecond


def _events(entries: list[dict[str, Any]]) -> Iterator[Event]:
    for entry in entries:
        try:
            event = json.loads(entry.get("message") or "")
        except ValueError:
            continue  # not an event (a line someone else wrote to the group)
        if isinstance(event, dict):
            key = str(event.get("id") or entry.get("eventId") or "")
            yield Event(float(entry.get("timestamp") or 0), key, event)


def _at(place: str) -> str:
    return f" in {place}" if place else ""


def line(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str)


def run_events(args: argparse.Namespace, out: TextIO) -> int:
    log = resolve_log(args)
    kinds = set(args.detail_types or [])
    seen: dict[str, float] = {}  # event id → timestamp: nothing printed twice

    def show(events: list[Event]) -> int:
        shown = 0
        for found in events:
            if found.key in seen:
                continue
            seen[found.key] = found.timestamp
            if kinds and found.event.get("detail-type") not in kinds:
                continue
            out.write(line(found.event) + "\n")
            shown += 1
        out.flush()
        return shown

    printed = show(read_events(log))
    if not args.follow:
        if not printed:
            what = f" of detail type {', '.join(sorted(kinds))}" if kinds else ""
            print(f"{PROG}: no ledger events{what} in log group {log.log_group}{_at(log.where)} yet", file=sys.stderr)
            return EXIT_NOT_FOUND
        return EXIT_OK
    try:
        while True:
            _sleep(FOLLOW_SECONDS)
            newest = max(seen.values(), default=None)
            start = None if newest is None else newest - LOOKBACK_MS
            if start is not None:
                for key in [k for k, ts in seen.items() if ts < start - LOOKBACK_MS]:
                    del seen[key]  # older than anything read again
            show(read_events(log, start_ms=None if start is None else int(start)))
    except KeyboardInterrupt:
        return EXIT_OK


def register_events(commands: Any, parent: argparse.ArgumentParser) -> None:
    events = commands.add_parser(
        "events",
        help="the ledger's events (EventBridge, source voucherify.ledger), oldest first; --follow for new ones",
        description="Prints the events LedgerEventsFunction put on the stack's event bus, one compact JSON line each "
        "(the whole EventBridge event: id, detail-type, source, time, detail), oldest first, read from the log group "
        "a rule on the bus keeps them in: make run's own (--local), or one you subscribed (--log-group; --stack alone "
        "prints how). With --follow, goes on printing new ones as they come until Ctrl-C.",
        epilog="Exit codes: 0 events printed (--follow: stopped with Ctrl-C), 1 none yet (or none of the detail "
        "types asked for), 2 wrong usage (--stack without --log-group: the commands to subscribe one are printed), "
        "3 the log group cannot be reached or read.",
    )
    place = events.add_argument_group("where the events are, one of")
    place.add_argument(
        "--local",
        action="store_true",
        help=f"the `make run` stack: log group {local.LEDGER_EVENTS_LOG_GROUP} on {local.HOST}:${local.AWS_PORT_ENV}",
    )
    place.add_argument(
        "--stack",
        metavar="NAME",
        help=f"a deployed stack (its {BUS_OUTPUT} output): with --log-group, read it; alone, how to subscribe one",
    )
    place.add_argument("--log-group", metavar="NAME", help="a CloudWatch Logs log group a rule on the bus writes to")
    place.add_argument("--region", metavar="R", help="AWS region (default: your AWS configuration)")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    events.add_argument(
        "--detail-type",
        dest="detail_types",
        action="append",
        metavar="TYPE",
        help='only events of this detail-type (e.g. "Redemption Recorded"); may be given more than once',
    )
    events.set_defaults(run=run_events)
