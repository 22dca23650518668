"""`redemption-ledger events`, in-process: --local against moto's server (as make run's embedded AWS, found through
LOCAL_AWS_PORT) whose bus has the local stack's rule into the events' log group — every event one compact JSON line,
oldest first, the detail-type filter, none yet, no log group, nothing listening, --follow printing what comes until
Ctrl-C and nothing twice; --stack alone (moto in-process) names the bus and how to subscribe a log group, --log-group
reads one."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from ledger_dev.local_stack.streams import LEDGER_EVENTS_PATTERN, LEDGER_EVENTS_RULE
from redemption_ledger_cli import events, local
from support.cli import moto_server as support_moto_server
from support.cli import reset_moto, run_cli
from support.functions import Aws

BUS = "voucherify-ledger-local-ledger"
TYPES = ["Redemption Recorded", "Redemption Rolled Back", "Delivery Quarantined"]


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    with support_moto_server() as endpoint:
        yield endpoint


class Bus:
    """The local stack's bus with its rule into the events' log group, on the moto server."""

    def __init__(self, endpoint: str) -> None:
        self.events = local.aws_client("events", endpoint)
        self.logs = local.aws_client("logs", endpoint)
        self.events.create_event_bus(Name=BUS)
        self.events.create_event_bus(Name="another-bus")

    def keep(self) -> None:
        self.logs.create_log_group(logGroupName=local.LEDGER_EVENTS_LOG_GROUP)
        arn = f"arn:aws:logs:{local.REGION}:123456789012:log-group:{local.LEDGER_EVENTS_LOG_GROUP}"
        self.events.put_rule(Name=LEDGER_EVENTS_RULE, EventBusName=BUS, EventPattern=json.dumps(LEDGER_EVENTS_PATTERN))
        self.events.put_targets(Rule=LEDGER_EVENTS_RULE, EventBusName=BUS, Targets=[{"Id": "log", "Arn": arn}])

    def put(self, detail_type: str, event_id: str, *, source: str = local.LEDGER_EVENTS_SOURCE) -> None:
        entry = {"Source": source, "DetailType": detail_type, "Detail": json.dumps({"event_id": event_id})}
        answer = self.events.put_events(Entries=[{**entry, "EventBusName": BUS}])
        assert answer["FailedEntryCount"] == 0


@pytest.fixture
def bus(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bus]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", local.AWS_HOST_ENV):
        monkeypatch.delenv(name, raising=False)
    reset_moto(moto_server)
    monkeypatch.setenv(local.AWS_PORT_ENV, moto_server.rsplit(":", 1)[1])
    yield Bus(moto_server)
    reset_moto(moto_server)


def lines(out: str) -> list[dict[str, Any]]:
    printed = out.splitlines()
    assert all(line == json.dumps(json.loads(line), separators=(",", ":")) for line in printed)  # compact
    return [json.loads(line) for line in printed]


def test_local_prints_every_ledger_event_oldest_first_one_compact_line_each(bus: Bus) -> None:
    bus.keep()
    for n, kind in enumerate(TYPES * 2):
        bus.put(kind, f"ev_{n}")
    bus.put("Something Else", "ev_other", source="another.source")  # not the ledger's: the rule keeps it out

    code, out = run_cli(["events", "--local"])

    assert code == 0
    printed = lines(out)
    assert [e["detail"]["event_id"] for e in printed] == [f"ev_{n}" for n in range(6)]
    assert [e["detail-type"] for e in printed] == TYPES * 2
    for event in printed:
        assert event["source"] == local.LEDGER_EVENTS_SOURCE
        assert {"id", "time", "detail-type", "source", "detail"} <= set(event)
    assert len({e["id"] for e in printed}) == 6


def test_detail_type_keeps_only_those_and_none_yet_is_exit_1(bus: Bus, capsys: pytest.CaptureFixture) -> None:
    bus.keep()
    code, out = run_cli(["events", "--local"])
    assert (code, out) == (1, "")
    assert "no ledger events" in capsys.readouterr().err

    for n, kind in enumerate(TYPES):
        bus.put(kind, f"ev_{n}")
    code, out = run_cli(["events", "--local", "--detail-type", "Delivery Quarantined", "--detail-type", "Nope"])
    assert code == 0 and [e["detail-type"] for e in lines(out)] == ["Delivery Quarantined"]

    code, out = run_cli(["events", "--local", "--detail-type", "Reconciled Missing"])
    assert (code, out) == (1, "")
    assert "of detail type Reconciled Missing" in capsys.readouterr().err


def test_follow_prints_what_comes_until_ctrl_c_and_nothing_twice(bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    bus.keep()
    bus.put("Redemption Recorded", "ev_0")
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            bus.put("Redemption Rolled Back", "ev_1")
        elif len(naps) == 2:
            bus.put("Delivery Quarantined", "ev_2")
        elif len(naps) == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(events, "_sleep", nap)

    code, out = run_cli(["events", "--local", "--follow"])

    assert code == 0  # Ctrl-C ends a follow
    assert [e["detail"]["event_id"] for e in lines(out)] == ["ev_0", "ev_1", "ev_2"]
    assert naps == [events.FOLLOW_SECONDS] * 4


def test_follow_with_nothing_yet_waits_for_the_first(bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    bus.keep()
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            bus.put("Redemption Recorded", "ev_0")
        elif len(naps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(events, "_sleep", nap)

    code, out = run_cli(["events", "--local", "--follow"])

    assert code == 0 and [e["detail"]["event_id"] for e in lines(out)] == ["ev_0"]


def test_a_local_stack_without_the_events_log_group_or_none_at_all_is_exit_3(
    bus: Bus, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    code, out = run_cli(["events", "--local"])
    err = capsys.readouterr().err
    assert (code, out) == (3, "")
    assert f"no log group {local.LEDGER_EVENTS_LOG_GROUP}" in err and "LedgerEventsFunction" in err

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv(local.AWS_PORT_ENV, str(closed))
    code, _ = run_cli(["events", "--local"])
    assert code == 3 and "is `make run` running?" in capsys.readouterr().err


def test_local_takes_no_stack_or_log_group(capsys: pytest.CaptureFixture) -> None:
    code, _ = run_cli(["events", "--local", "--log-group", "/x"])
    assert code == 2 and "--local" in capsys.readouterr().err
    code, _ = run_cli(["events"])
    assert code == 2 and "--local" in capsys.readouterr().err


# --- a deployed stack ---------------------------------------------------------------------------------------------
def _create_stack(name: str, outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


def test_stack_alone_names_its_bus_and_how_to_keep_its_events_in_a_log_group(
    aws: Aws, capsys: pytest.CaptureFixture
) -> None:
    arn = "arn:aws:events:eu-west-1:210987654321:event-bus/ledger-prod-ledger"
    _create_stack("ledger-prod", {"LedgerEventBusName": "ledger-prod-ledger", "LedgerEventBusArn": arn})

    code, out = run_cli(["events", "--stack", "ledger-prod", "--region", "eu-west-1"])

    err = capsys.readouterr().err
    assert (code, out) == (2, "")
    assert "the bus ledger-prod-ledger" in err
    group_arn = "arn:aws:logs:eu-west-1:210987654321:log-group:/aws/events/ledger-prod-ledger"
    assert "aws logs create-log-group --log-group-name /aws/events/ledger-prod-ledger" in err
    assert f"--targets Id=log,Arn={group_arn}" in err
    assert '--event-pattern \'{"source":["voucherify.ledger"]}\'' in err
    assert "events --stack ledger-prod --log-group /aws/events/ledger-prod-ledger" in err
    policy = json.loads(err.split("--policy-document '", 1)[1].split("'", 1)[0])
    assert policy["Statement"][0]["Resource"] == f"{group_arn}:*"


def test_stack_with_a_log_group_reads_it(aws: Aws) -> None:
    _create_stack("ledger-prod", {"LedgerEventBusName": "ledger-prod-ledger"})
    logs = boto3.client("logs")
    logs.create_log_group(logGroupName="/aws/events/ledger-prod-ledger")
    logs.create_log_stream(logGroupName="/aws/events/ledger-prod-ledger", logStreamName="s")
    now = int(time.time() * 1000)
    kept = {"version": "0", "id": "e-1", "detail-type": "Redemption Recorded", "source": "voucherify.ledger"}
    logs.put_log_events(
        logGroupName="/aws/events/ledger-prod-ledger",
        logStreamName="s",
        logEvents=[
            {"timestamp": now - 1000, "message": json.dumps({**kept, "detail": {"event_id": "a"}})},
            {"timestamp": now, "message": "not an event"},
        ],
    )

    code, out = run_cli(
        ["events", "--stack", "ledger-prod", "--log-group", "/aws/events/ledger-prod-ledger", "--region", "eu-west-1"]
    )

    assert code == 0 and lines(out) == [{**kept, "detail": {"event_id": "a"}}]
