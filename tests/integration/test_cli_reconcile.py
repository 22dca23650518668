"""`redemption-ledger reconcile`, in-process: --local against moto's server (as make run's embedded AWS, found through
LOCAL_AWS_PORT) and the fake Voucherify (on LOCAL_VOUCHERIFY_PORT) listing a seeded history; --stack / --table /
--status against moto in-process (the `aws` fixture), the reconciler's invocation stubbed. A backfill records what
the ledger lacked and prints its summary last; a second one walks it all again and records nothing; a dry run writes
nothing; the lease held, a refused key, another job running; the progress bar only on a terminal."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
import pytest

from ledger_dev.fake_voucherify import FakeVoucherify
from ledger_dev.harness.template import create_table
from redemption_ledger_cli import local, reconcile, where
from support.cli import moto_server as support_moto_server
from support.cli import reset_moto, run_cli
from support.functions import TABLE_NAME, Aws
from support.listing import T0, ListEndpoint, history, stamp
from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.keys import iso, parse_iso
from voucherify_ledger.ledger.reconciliation import job_id_for
from voucherify_ledger.reconcile.objects import webhook_data
from voucherify_ledger.reconcile.run import Reconciler
from voucherify_ledger.reconcile.windows import EDGE

APP_ID, APP_TOKEN = "app-reconcile-1", "tok-reconcile-s3cr3t"
END = T0 + timedelta(days=60)  # the seeded history's last day
SINCE, UNTIL = T0 - timedelta(days=1), END + timedelta(minutes=1)
RANGE = ["--since", stamp(SINCE), "--until", stamp(UNTIL)]
FAST = ["--requests-per-minute", "6000"]
ENV = ("VOUCHERIFY_API_URL", "VOUCHERIFY_APP_ID", "VOUCHERIFY_APP_TOKEN", "RECONCILE_REQUESTS_PER_MINUTE")


# --- the history Voucherify lists, and what the webhooks delivered of it -----------------------------------------
@dataclass
class History:
    objects: list[dict[str, Any]]  # oldest first, as the fake lists them
    delivered: set[str]  # the ids the webhooks did deliver
    fake: FakeVoucherify

    @property
    def redemptions(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["object"] == "redemption"]

    @property
    def rollbacks(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["object"] == "redemption_rollback"]

    @property
    def missing_redemptions(self) -> list[str]:
        return [o["id"] for o in self.redemptions if o["id"] not in self.delivered]

    @property
    def missing_rollbacks(self) -> list[str]:
        return [o["id"] for o in self.rollbacks if o["id"] not in self.delivered]

    def list_calls(self) -> list[dict[str, str]]:
        return [r.query for r in self.fake.requests if r.endpoint == "list"]


def deliver(ledger: Ledger, objects: list[dict[str, Any]], every: int) -> set[str]:
    """What the webhooks did deliver: every ``every``-th redemption, and one in two rollbacks of those it delivered —
    so each kind of gap is there: a redemption lacking, a rollback lacking on a redemption held."""
    delivered: set[str] = set()
    for i, obj in enumerate(o for o in objects if o["object"] == "redemption"):
        if i % every == 0:
            ledger.redemptions.record(webhook_data(obj), Delivery(raw=b"{}", route="webhook", received_at=T0))  # type: ignore[arg-type]
            delivered.add(obj["id"])
    rollbacks = [o for o in objects if o["object"] == "redemption_rollback" and o["redemption"] in delivered]
    for i, obj in enumerate(rollbacks):
        if i % 2 == 0:
            ledger.redemptions.record_rollback(webhook_data(obj), Delivery(raw=b"{}", route="webhook", received_at=T0))  # type: ignore[arg-type]
            delivered.add(obj["id"])
    return delivered


@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeVoucherify]:
    with FakeVoucherify(app_id=APP_ID, app_token=APP_TOKEN, webhook_delay=None) as fake:
        yield fake


@pytest.fixture
def fake(shared_fake: FakeVoucherify) -> FakeVoucherify:
    shared_fake.reset()
    shared_fake.app_id, shared_fake.app_token = APP_ID, APP_TOKEN
    return shared_fake


# --- make run's embedded AWS, as --local finds it -------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    with support_moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*ENV, "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SAM_LOCAL", "LEDGER_TABLE_NAME", local.AWS_HOST_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def local_ledger(moto_server: str, monkeypatch: pytest.MonkeyPatch, clean_env: None) -> Iterator[Ledger]:
    """The local stack's table and API secret on a clean moto server, found by --local through LOCAL_AWS_PORT."""
    reset_moto(moto_server)
    monkeypatch.setenv(local.AWS_PORT_ENV, moto_server.rsplit(":", 1)[1])
    dynamodb = local.aws_client("dynamodb", moto_server)
    create_table(dynamodb, table_name=local.TABLE_NAME)
    local.aws_client("secretsmanager", moto_server).create_secret(
        Name=local.API_SECRET_ID, SecretString=json.dumps({"app_id": APP_ID, "app_token": APP_TOKEN})
    )
    yield Ledger(local.TABLE_NAME, dynamodb)
    reset_moto(moto_server)


@pytest.fixture
def local_history(local_ledger: Ledger, fake: FakeVoucherify, monkeypatch: pytest.MonkeyPatch) -> History:
    """The fake Voucherify seeded with 300 objects over 60 days (redemptions, stacks, failed attempts, rollbacks)
    on LOCAL_VOUCHERIFY_PORT, where --local finds make run's; a third of the redemptions delivered."""
    fake.seed_history(300, days=60, end=END, seed=11)
    objects = fake.history()
    assert all(SINCE <= parse_iso(o["date"]) < UNTIL for o in objects)  # type: ignore[operator]
    monkeypatch.setenv(local.VOUCHERIFY_PORT_ENV, fake.url.rsplit(":", 1)[1])
    return History(objects, deliver(local_ledger, objects, every=3), fake)


def summary_of(out: str) -> dict[str, Any]:
    """The JSON object stdout ends with — all it holds."""
    found = json.loads(out)
    assert isinstance(found, dict)
    return found


# --- --local ---------------------------------------------------------------------------------------------------
def test_a_local_backfill_records_what_the_ledger_lacked_and_prints_the_summary_last(
    local_history: History, local_ledger: Ledger, capsys: pytest.CaptureFixture
) -> None:
    code, out = run_cli(["reconcile", *RANGE, "--local", *FAST])

    summary = summary_of(out)
    err = capsys.readouterr().err
    assert code == 0, err
    assert (summary["done"], summary["error"], summary["dry_run"]) == (True, None, False)
    assert summary["job_id"] == job_id_for(SINCE, UNTIL) and summary["runs"] >= 1
    assert summary["listed"] == len(local_history.objects)
    assert summary["recorded"] == len(local_history.missing_redemptions) > 0
    assert summary["corrected"] == len(local_history.missing_rollbacks) > 0
    assert summary["unchanged"] == len(local_history.delivered)
    assert summary["unreadable"] == 0 and 0 < summary["api_calls"] == len(local_history.list_calls())
    assert APP_TOKEN not in out + err  # the keys come from the local stack's secret, and are never printed
    # the ledger now holds every redemption as Voucherify has it: its status, its rollbacks (failed ones apart)
    states = local_ledger.redemptions.states(o["id"] for o in local_history.redemptions)
    assert len(states) == len(local_history.redemptions)
    for redemption in local_history.redemptions:
        undone = [r for r in local_history.rollbacks if r["redemption"] == redemption["id"]]
        state = states[redemption["id"]]
        assert state["status"] == redemption["status"], redemption["id"]
        assert sorted(state.get("rollback_ids") or []) == sorted(r["id"] for r in undone if r["result"] == "SUCCESS")
        assert sorted(state.get("failed_rollback_ids") or []) == sorted(
            r["id"] for r in undone if r["result"] != "SUCCESS"
        )
    # and `show` reports one the webhooks never delivered as rolled back
    lost = next(r for r in local_history.rollbacks if r["redemption"] in local_history.missing_redemptions)
    shown_code, shown = run_cli(["show", lost["redemption"], "--local"])
    assert shown_code == 0
    assert (json.loads(shown)["status"], json.loads(shown)["rollback_ids"]) == ("ROLLED_BACK", [lost["id"]])
    assert local_ledger.reconciliation.running_job() is None
    assert local_ledger.reconciliation.job(summary["job_id"]).state == "DONE"  # type: ignore[union-attr]


def test_a_second_identical_backfill_records_nothing(local_history: History, local_ledger: Ledger) -> None:
    first = summary_of(run_cli(["reconcile", *RANGE, "--local", *FAST])[1])
    code, out = run_cli(["reconcile", *RANGE, "--local", *FAST])

    second = summary_of(out)
    assert first["recorded"] > 0
    assert code == 0 and second["done"] and second["job_id"] == first["job_id"]
    # the range walked again from its start: all of it listed, all of it already in the ledger
    assert second["listed"] == second["unchanged"] == len(local_history.objects)
    assert (second["recorded"], second["corrected"], second["unreadable"]) == (0, 0, 0)


def test_a_dry_run_counts_what_a_backfill_would_record_and_writes_nothing(
    local_history: History, local_ledger: Ledger, moto_server: str
) -> None:
    def table() -> list[dict[str, Any]]:
        return local.aws_client("dynamodb", moto_server).scan(TableName=local.TABLE_NAME, ConsistentRead=True)["Items"]

    before = table()

    code, out = run_cli(["reconcile", *RANGE, "--dry-run", "--local", *FAST])

    summary = summary_of(out)
    assert code == 0
    assert (summary["dry_run"], summary["done"], summary["job_id"], summary["runs"]) == (True, True, None, 1)
    assert summary["listed"] == len(local_history.objects)
    assert summary["recorded"] == len(local_history.missing_redemptions)
    assert summary["corrected"] == len(local_history.missing_rollbacks)
    assert table() == before  # no redemption, no job, no state, no lease
    assert local_ledger.reconciliation.state() is None


def test_a_dry_run_walks_only_the_range_asked_for(local_history: History) -> None:
    since, until = SINCE + timedelta(days=10), SINCE + timedelta(days=20)
    in_range = [o for o in local_history.objects if since <= parse_iso(o["date"]) < until]  # type: ignore[operator]

    code, out = run_cli(["reconcile", "--since", iso(since), "--until", iso(until), "--dry-run", "--local", *FAST])

    assert code == 0 and 0 < summary_of(out)["listed"] == len(in_range) < len(local_history.objects)
    assert {(q["created_at[after]"], q["created_at[before]"]) for q in local_history.list_calls()} == {
        (iso(since - EDGE), iso(until))
    }


def test_a_run_that_stops_with_an_error_stops_the_backfill_and_exits_3(
    local_history: History, local_ledger: Ledger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("VOUCHERIFY_APP_ID", APP_ID)
    monkeypatch.setenv("VOUCHERIFY_APP_TOKEN", "a-wrong-token-xyz")  # the environment's keys before the secret's

    code, out = run_cli(["reconcile", *RANGE, "--local", *FAST])

    summary = summary_of(out)
    err = capsys.readouterr().err
    assert code == 3
    assert summary["done"] is False and "401" in summary["error"] and summary["runs"] == 1
    assert summary["recorded"] == 0 and "the walk stopped early" in err
    assert "a-wrong-token-xyz" not in out + err and APP_TOKEN not in out + err
    assert local_ledger.reconciliation.running_job().job_id == summary["job_id"]  # type: ignore[union-attr]


def test_a_backfill_longer_than_a_run_goes_on_run_after_run_until_done(
    local_history: History, local_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run has RUN_SECONDS; on a clock that moves a second each time it is read, a run lists a page or two and
    its lister then refuses a call there is no time left for (an ``error``): the job goes on in the next run."""
    ticks = iter(range(10**9))
    monkeypatch.setattr(reconcile, "_clock", lambda: float(next(ticks)))
    monkeypatch.setattr(reconcile, "RUN_SECONDS", 20.0)

    code, out = run_cli(["reconcile", *RANGE, "--local", *FAST])

    summary = summary_of(out)
    assert code == 0 and (summary["done"], summary["error"]) == (True, None)
    assert summary["runs"] > 1 and summary["runs"] == local_ledger.reconciliation.job(summary["job_id"]).runs  # type: ignore[union-attr]
    assert summary["recorded"] == len(local_history.missing_redemptions)
    assert summary["corrected"] == len(local_history.missing_rollbacks)
    assert summary["listed"] >= len(local_history.objects)  # a run resumes at the last object the previous one saw


def test_a_run_kept_out_by_the_lease_waits_then_says_so(
    local_history: History, local_ledger: Ledger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from datetime import UTC, datetime

    monkeypatch.setattr(reconcile, "LEASE_WAIT_SECONDS", 0.3)
    monkeypatch.setattr(reconcile, "LEASE_RETRY_SECONDS", 0.05)
    assert local_ledger.reconciliation.acquire("make-run-scheduled", datetime.now(UTC), 900)

    code, out = run_cli(["reconcile", *RANGE, "--local", *FAST])

    assert (code, out) == (5, "")
    err = capsys.readouterr().err
    assert "another reconciler run has held the ledger's lease for over 0.3 s" in err
    assert local_history.list_calls() == []
    assert local_ledger.reconciliation.running_job().job_id == job_id_for(SINCE, UNTIL)  # type: ignore[union-attr]

    local_ledger.reconciliation.release("make-run-scheduled")  # the scheduled run ends: the next call finishes
    code, out = run_cli(["reconcile", *RANGE, "--local", *FAST])
    assert code == 0 and summary_of(out)["recorded"] == len(local_history.missing_redemptions)


def test_another_backfill_running_is_named_and_left_alone(
    local_history: History, local_ledger: Ledger, capsys: pytest.CaptureFixture
) -> None:
    from datetime import UTC, datetime

    other, _ = local_ledger.reconciliation.start_job(SINCE, SINCE + timedelta(days=1), datetime.now(UTC))

    code, out = run_cli(["reconcile", *RANGE, "--local", *FAST])

    assert (code, out) == (5, "")
    err = capsys.readouterr().err
    assert f"another backfill is running in table {local.TABLE_NAME}" in err and other.job_id in err
    assert local_history.list_calls() == []


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_is_drawn_on_a_terminal_only(
    local_history: History, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    code, _ = run_cli(["reconcile", *RANGE, "--dry-run", "--local", *FAST])
    piped = capsys.readouterr().err
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    tty_code, tty_out = run_cli(["reconcile", *RANGE, "--local", *FAST])

    assert code == tty_code == 0
    assert "\r" not in piped and "[#" not in piped and "%" not in piped
    drawn = terminal.getvalue()
    frames = [frame for frame in drawn.split("\r") if frame.startswith("[")]
    assert len(frames) >= 2 and drawn.endswith("\n")
    assert frames[-1].startswith("[" + "#" * reconcile.ProgressBar.WIDTH + "] 100%")
    summary = summary_of(tty_out)  # stdout holds the summary alone, whatever stderr shows
    assert f"listed {summary['listed']:,}" in frames[-1]
    assert f"recorded {summary['recorded'] + summary['corrected']:,}" in frames[-1]


def test_local_without_the_api_secret_or_keys_says_where_it_looked(
    local_history: History, moto_server: str, capsys: pytest.CaptureFixture
) -> None:
    local.aws_client("secretsmanager", moto_server).delete_secret(
        SecretId=local.API_SECRET_ID, ForceDeleteWithoutRecovery=True
    )

    code, out = run_cli(["reconcile", *RANGE, "--local", *FAST])

    assert (code, out) == (3, "")
    err = capsys.readouterr().err
    assert f"the secret {local.API_SECRET_ID}" in err and "VOUCHERIFY_APP_ID" in err
    assert local_history.list_calls() == []


# --- --stack, --table, --status (moto in-process) -------------------------------------------------------------
def _create_stack(name: str, outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


class LambdaStub:
    def __init__(self) -> None:
        self.invocations: list[dict[str, Any]] = []

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.invocations.append(request)
        return {"StatusCode": 202}


@pytest.fixture
def lambdas(monkeypatch: pytest.MonkeyPatch) -> LambdaStub:
    stub = LambdaStub()
    real = where._aws_client
    monkeypatch.setattr(
        where, "_aws_client", lambda service, region: stub if service == "lambda" else real(service, region)
    )
    return stub


def test_stack_starts_the_job_and_invokes_the_reconciler_now(aws: Aws, lambdas: LambdaStub, clean_env: None) -> None:
    _create_stack("ledger-prod", {"LedgerTableName": TABLE_NAME, "ReconcilerFunctionName": "ledger-prod-Reconciler-1"})
    stack = ["--stack", "ledger-prod", "--region", "eu-west-1"]

    code, out = run_cli(["reconcile", *RANGE, *stack])
    again_code, again = run_cli(["reconcile", *RANGE, *stack])

    job = summary_of(out)
    assert code == again_code == 0
    assert (job["job_id"], job["since"], job["until"], job["state"]) == (
        job_id_for(SINCE, UNTIL),
        iso(SINCE),
        iso(UNTIL),
        "RUNNING",
    )
    assert (job["started"], job["invoked"], job["function_name"]) == (True, True, "ledger-prod-Reconciler-1")
    assert (summary_of(again)["job_id"], summary_of(again)["started"]) == (job["job_id"], False)
    assert [(i["FunctionName"], i["InvocationType"]) for i in lambdas.invocations] == [
        ("ledger-prod-Reconciler-1", "Event")
    ] * 2
    assert json.loads(lambdas.invocations[0]["Payload"])["job_id"] == job["job_id"]
    assert aws.ledger.reconciliation.running_job().job_id == job["job_id"]  # type: ignore[union-attr]


def test_stack_reports_a_refused_invocation_and_keeps_the_job(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, clean_env: None, capsys: pytest.CaptureFixture
) -> None:
    from botocore.exceptions import ClientError

    class Refusing:
        def invoke(self, **request: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Invoke")

    real = where._aws_client
    monkeypatch.setattr(where, "_aws_client", lambda s, r: Refusing() if s == "lambda" else real(s, r))
    _create_stack("ledger-prod", {"LedgerTableName": TABLE_NAME, "ReconcilerFunctionName": "fn"})

    code, out = run_cli(["reconcile", *RANGE, "--stack", "ledger-prod", "--region", "eu-west-1"])

    job = summary_of(out)
    assert code == 3 and job["invoked"] is False and "AccessDeniedException" in job["error"]
    assert "the job stays started" in capsys.readouterr().err
    assert aws.ledger.reconciliation.running_job().job_id == job["job_id"]  # type: ignore[union-attr]


def test_a_stack_without_the_reconciler_gets_no_job(
    aws: Aws, lambdas: LambdaStub, clean_env: None, capsys: pytest.CaptureFixture
) -> None:
    _create_stack("ledger-old", {"LedgerTableName": TABLE_NAME})

    code, out = run_cli(["reconcile", *RANGE, "--stack", "ledger-old", "--region", "eu-west-1"])

    assert (code, out) == (3, "")
    assert "has no output ReconcilerFunctionName" in capsys.readouterr().err
    assert aws.ledger.reconciliation.running_job() is None and lambdas.invocations == []


def test_table_starts_the_job_for_the_schedule_and_status_shows_checkpoint_job_and_last_run(
    aws: Aws, clean_env: None
) -> None:
    objects, _ = history(120, seed=5, days=10)
    scheduled_at = T0 + timedelta(days=9)
    Reconciler(aws.ledger, ListEndpoint(objects), overlap=timedelta(days=30)).run(scheduled_at, time_left=lambda: 60)
    table = ["--table", TABLE_NAME, "--region", "eu-west-1"]

    code, out = run_cli(["reconcile", "--since", stamp(T0), "--until", stamp(T0 + timedelta(days=1)), *table])
    status_code, status_out = run_cli(["reconcile", "--status", *table])

    job = summary_of(out)
    assert code == 0 and (job["started"], job["invoked"]) == (True, False)
    assert "next scheduled run" in job["note"]
    status = summary_of(status_out)
    assert status_code == 0
    assert status["checkpoint"] == iso(scheduled_at)
    assert status["running_job"]["job_id"] == job["job_id"] and status["running_job"]["state"] == "RUNNING"
    listed = len([o for o in objects if parse_iso(o["date"]) < scheduled_at])  # type: ignore[operator]
    assert status["last_run"]["listed"] == listed > 0
    assert status["last_run"]["recorded"] + status["last_run"]["corrected"] == listed
    assert status["lease_until"] is None and status["last_job"] is None


def test_status_has_the_keys_of_the_service_status_less_the_functions_settings(aws: Aws, clean_env: None) -> None:
    from voucherify_ledger.reconcile.service import ReconcileService
    from voucherify_ledger.settings import ReconcilerSettings
    from voucherify_ledger.voucherify_api import StaticCredentials, VoucherifyClient

    settings = ReconcilerSettings.model_validate({"ledger_table_name": TABLE_NAME, "voucherify_api_secret_id": "x"})
    service = ReconcileService(settings, aws.ledger, VoucherifyClient(credentials=StaticCredentials("a", "b")))
    expected = {k: v for k, v in service.status().items() if k not in ("requests_per_minute", "overlap_minutes")}

    code, out = run_cli(["reconcile", "--status", "--table", TABLE_NAME, "--region", "eu-west-1"])

    assert code == 0 and summary_of(out) == {**expected, "table": TABLE_NAME}


def test_a_dry_run_against_a_table_calls_voucherify_from_here_with_the_environments_keys(
    aws: Aws, fake: FakeVoucherify, clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    fake.seed_history(150, days=5, end=END, seed=7)
    table = ["--table", TABLE_NAME, "--region", "eu-west-1"]

    no_keys = run_cli(["reconcile", *RANGE, "--dry-run", *table, "--api-url", fake.url])
    no_keys_err = capsys.readouterr().err
    monkeypatch.setenv("VOUCHERIFY_APP_ID", APP_ID)
    monkeypatch.setenv("VOUCHERIFY_APP_TOKEN", APP_TOKEN)
    code, out = run_cli(["reconcile", *RANGE, "--dry-run", *table, "--api-url", fake.url, *FAST])

    assert no_keys == (2, "") and "set VOUCHERIFY_APP_ID and VOUCHERIFY_APP_TOKEN" in no_keys_err
    summary = summary_of(out)
    assert code == 0 and (summary["dry_run"], summary["done"]) == (True, True)
    assert summary["listed"] == 150 and summary["recorded"] + summary["corrected"] == 150
    calls = [r for r in fake.requests if r.endpoint == "list"]
    assert summary["api_calls"] == len(calls) > 0 and {r.app_id for r in calls} == {APP_ID}
    assert aws.items() == []  # nothing written: no redemption, no job


def test_a_dry_run_against_a_stack_refuses_plain_http_to_another_host(
    aws: Aws, clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("VOUCHERIFY_APP_ID", APP_ID)
    monkeypatch.setenv("VOUCHERIFY_APP_TOKEN", APP_TOKEN)

    code, out = run_cli(
        ["reconcile", *RANGE, "--dry-run", "--table", TABLE_NAME, "--api-url", "http://api.example.com"]
    )

    assert (code, out) == (2, "")
    assert "must use https" in capsys.readouterr().err
