"""The operator CLI's arguments, read before any AWS call: one place at a time, usage errors, the console
script, the replay route and help, what `rollback --wait` follows, and reconcile's range, budget, keys and progress
bar."""

from __future__ import annotations

import pytest

from ledger_dev import local_stack
from redemption_ledger_cli import cli, local, reconcile, rollback
from support.cli import run_cli
from support.documents import SEED_ORDER_ID, SEED_REDEMPTION_ID
from voucherify_ledger.models.rollback_request import RollbackRequest


def test_only_one_place_at_a_time(capsys: pytest.CaptureFixture) -> None:
    assert run_cli(["show", SEED_REDEMPTION_ID, "--local", "--table", "t"])[0] == 2
    assert "use one of --local, --stack, --table (got --local and --table)" in capsys.readouterr().err


def test_local_with_a_bad_port_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(local_stack.AWS_PORT_ENV, "five-thousand")

    assert run_cli(["list", "--order", SEED_ORDER_ID, "--local"])[0] == 2
    assert "LOCAL_AWS_PORT must be a port number" in capsys.readouterr().err


def test_console_script_is_declared() -> None:
    import tomllib

    from ledger_dev.harness.template import PROJECT_ROOT

    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["redemption-ledger"] == "redemption_ledger_cli.cli:main"
    assert callable(cli.main)


# --- quarantine replay --route NAME -------------------------------------------------------------------------
def test_quarantine_replay_route_is_checked_before_the_ledger_is_looked_for(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from voucherify_ledger.webhooks.routes import ROUTES

    monkeypatch.delenv("LEDGER_TABLE_NAME", raising=False)

    code, out = run_cli(["quarantine", "replay", "q_1", "--route", "redemption-suceeded"])

    assert (code, out) == (2, "")
    err = capsys.readouterr().err
    assert f"--route 'redemption-suceeded' is not a route of this bundle: one of {', '.join(sorted(ROUTES))}" in err


def test_quarantine_replay_help_names_every_route(capsys: pytest.CaptureFixture) -> None:
    from voucherify_ledger.webhooks.routes import ROUTES

    with pytest.raises(SystemExit) as exited:
        cli.main(["quarantine", "replay", "--help"])

    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--route NAME" in text
    assert tuple(sorted(ROUTES)) == cli.ROUTE_NAMES  # the help's list is the bundle's
    assert all(name in text for name in ROUTES)


def test_rollback_wait_follows_the_child_ids_the_order_request_lists() -> None:
    """A long order request id makes hashed child ids (``sha256-…:<r_…>``): ``--wait`` reads them from the order
    request's ``child_request_ids`` instead of guessing ``<request id>:<r_…>``."""
    from types import SimpleNamespace

    parent = "p" * 250
    asked: list[tuple[str, str]] = []

    class Requests:
        def of_order(self, order_id: str, *, by: str = "order_id") -> list[dict[str, object]]:
            return [
                {
                    "request_id": parent,
                    "state": "FANNED_OUT",
                    "redemption_ids": ["r_1", "r_2"],
                    "child_request_ids": ["sha256-a:r_1", "sha256-a:r_2"],
                }
            ]

        def get(self, request_id: str, redemption_id: str) -> dict[str, object]:
            asked.append((request_id, redemption_id))
            return {"request_id": request_id, "state": "SUCCEEDED"}

    ledger = SimpleNamespace(requests=Requests())
    request = RollbackRequest(order_id="ord_1", request_id=parent)
    items = rollback.request_states(ledger, request, parent)

    assert asked == [("sha256-a:r_1", "r_1"), ("sha256-a:r_2", "r_2")]
    assert len(items) == 3 and rollback.finished(items)


# --- reconcile: its range, its budget and its keys, read before any AWS or API call ------------------------------
@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--since", "2026-08-10", "--until", "2026-08-01"], "--since 2026-08-10T00:00:00.000Z must be before --until"),
        (["--since", "2026-08-01", "--until", "2026-08-01T00:00:00Z"], "must be before --until 2026-08-01T00:00:00"),
        (["--since", "2999-01-01"], "must be before now (the default --until)"),
        (["--since", "last tuesday"], "--since 'last tuesday' is not a time: use ISO 8601"),
        (["--since", "2026-08-01", "--until", "2026-13-01"], "--until '2026-13-01' is not a time"),
        ([], "say what to reconcile: --since TIME [--until TIME], or --status"),
        (["--until", "2026-08-01"], "say what to reconcile"),
        (["--status", "--since", "2026-08-01"], "--status reads the ledger only: it takes no --since"),
        (["--status", "--dry-run"], "it takes no --dry-run"),
        (["--since", "2026-08-01", "--requests-per-minute", "0"], "--requests-per-minute must be 1-99,999"),
    ],
)
@pytest.mark.parametrize("where", [["--local"], ["--table", "t"], ["--stack", "s"]])
def test_reconcile_usage_errors_come_before_the_ledger_is_looked_for(
    argv: list[str], said: str, where: list[str], capsys: pytest.CaptureFixture
) -> None:
    code, out = run_cli(["reconcile", *argv, *where])

    assert (code, out) == (2, "")
    assert said in capsys.readouterr().err


def test_reconcile_times_are_utc_a_date_its_midnight() -> None:
    from datetime import UTC, datetime

    assert reconcile.parse_time("--since", "2026-08-01") == datetime(2026, 8, 1, tzinfo=UTC)
    assert reconcile.parse_time("--since", "2026-08-01T02:30:00+02:00") == datetime(2026, 8, 1, 0, 30, tzinfo=UTC)
    assert reconcile.parse_time("--since", " 2026-08-01T00:00:00.250Z ") == datetime(2026, 8, 1, 0, 0, 0, 250_000, UTC)


def test_a_reconcile_dry_run_against_a_stack_needs_the_keys_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for name in ("VOUCHERIFY_APP_ID", "VOUCHERIFY_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    dry_run = ["reconcile", "--since", "2026-08-01", "--dry-run", "--stack", "s"]

    assert run_cli(dry_run) == (2, "")
    assert (
        "calls Voucherify from this machine: set VOUCHERIFY_APP_ID and VOUCHERIFY_APP_TOKEN" in capsys.readouterr().err
    )
    monkeypatch.setenv("VOUCHERIFY_APP_ID", "app-1")
    assert run_cli(dry_run) == (2, "")
    assert "set both VOUCHERIFY_APP_ID and VOUCHERIFY_APP_TOKEN" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "local_target", "expected"),
    [({}, True, 60), ({}, False, 10), ({"RECONCILE_REQUESTS_PER_MINUTE": "25"}, True, 25)],
)
def test_reconcile_budget_defaults(
    env: dict[str, str], local_target: bool, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from argparse import Namespace

    monkeypatch.delenv("RECONCILE_REQUESTS_PER_MINUTE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert reconcile.requests_per_minute(Namespace(requests_per_minute=None, local=local_target)) == expected
    assert reconcile.requests_per_minute(Namespace(requests_per_minute=7, local=local_target)) == 7


def test_reconcile_a_bad_budget_in_the_environment_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("RECONCILE_REQUESTS_PER_MINUTE", "lots")

    assert run_cli(["reconcile", "--since", "2026-08-01", "--dry-run", "--local"]) == (2, "")
    assert "RECONCILE_REQUESTS_PER_MINUTE must be a number of requests" in capsys.readouterr().err


def test_the_local_voucherify_and_its_api_secret_are_the_templates() -> None:
    # the local stack takes its fake's port and the API secret's name from redemption_ledger_cli.local
    from ledger_dev.harness.template import parameter_default

    assert parameter_default("VoucherifyApiSecretId") == local.API_SECRET_ID
    assert local.voucherify_url({}) == "http://127.0.0.1:8787"
    assert (
        local.voucherify_url({"LOCAL_VOUCHERIFY_PORT": "9999", "LOCAL_AWS_HOST": "0.0.0.0"}) == "http://127.0.0.1:9999"
    )
    with pytest.raises(ValueError, match="LOCAL_VOUCHERIFY_PORT must be a port number"):
        local.voucherify_url({"LOCAL_VOUCHERIFY_PORT": "http"})


def test_the_reconcile_progress_bar_shows_how_far_into_the_range_the_walk_is() -> None:
    import io
    from datetime import UTC, datetime, timedelta

    since = datetime(2026, 8, 1, tzinfo=UTC)
    stream = io.StringIO()
    bar = reconcile.ProgressBar(since, since + timedelta(days=10), stream)

    bar.show({"listed": 1200, "recorded": 20, "corrected": 10}, since + timedelta(days=4))
    bar.show({"listed": 1300, "recorded": 20, "corrected": 10}, since + timedelta(days=3))  # never backwards
    bar.finish({"listed": 2500, "recorded": 40, "corrected": 10})
    bar.close()

    frames = stream.getvalue().split("\r")[1:]
    assert frames[0] == "[" + "#" * 12 + "." * 18 + "]  40%  listed 1,200  recorded 30"
    assert frames[1].startswith("[" + "#" * 12 + "." * 18 + "]  40%  listed 1,300")
    assert frames[2] == "[" + "#" * 30 + "] 100%  listed 2,500  recorded 50\n"
