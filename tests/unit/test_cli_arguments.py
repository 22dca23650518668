"""The operator CLI's arguments, read before any AWS call: one place at a time, usage errors, the console
script, the replay route and help, and what `rollback --wait` follows."""

from __future__ import annotations

import pytest

from ledger_dev import local_stack
from redemption_ledger_cli import cli, rollback
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
