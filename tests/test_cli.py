"""`redemption-ledger`: show / list against moto (in-process), --stack through CloudFormation, --local errors."""

from __future__ import annotations

import io
import json
import socket

import pytest
from support.documents import compact, payload
from support.functions import TABLE_NAME

from ledger_dev import local_stack
from redemption_ledger_cli import cli

REDEMPTION = "r_0e2500291ae016adea"
ORDER = "ord_3VYCHwdV0YOOch2nm1RsTKNI"
TARGET = ["--table", TABLE_NAME, "--region", "eu-west-1"]


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(argv, out=out), out.getvalue()


@pytest.fixture
def recorded(invoke) -> None:
    assert invoke("RedemptionSucceededFunction", compact(payload("redemption_succeeded"))).status == 200


def test_show_prints_the_redemption_as_json(recorded, capsys: pytest.CaptureFixture) -> None:
    code, out = run(["show", REDEMPTION, *TARGET])

    shown = json.loads(out)
    assert code == 0
    assert (shown["id"], shown["status"], shown["rollback_ids"], shown["rollbacks"]) == (
        REDEMPTION,
        "SUCCEEDED",
        [],
        [],
    )
    assert shown["order_id"] == ORDER and shown["voucher_code"] == "Always-add-prods-5"
    assert "jane@jane.io" not in out and "Jane Doe" not in out  # no personal data in the ledger's view


def test_show_a_rolled_back_redemption_lists_its_rollbacks(invoke) -> None:
    rollback = payload("customer_redemption_rollback_succeeded")
    assert invoke("RedemptionRollbackSucceededFunction", compact(rollback)).status == 200

    code, out = run(["show", rollback["redemption"]["id"], *TARGET])

    shown = json.loads(out)
    assert code == 0 and shown["status"] == "ROLLED_BACK"
    assert shown["rollback_ids"] == [rollback["redemption_rollback"]["id"]]
    assert [r["rollback_id"] for r in shown["rollbacks"]] == shown["rollback_ids"]


def test_show_unknown_redemption_exits_1_with_a_message(aws, capsys: pytest.CaptureFixture) -> None:
    code, out = run(["show", "r_x", *TARGET])

    assert (code, out) == (1, "")
    assert f"no redemption r_x in table {TABLE_NAME}" in capsys.readouterr().err


def test_list_by_order_customer_and_voucher_code(recorded, capsys: pytest.CaptureFixture) -> None:
    by_order = run(["list", "--order", ORDER, *TARGET])
    by_customer = run(["list", "--customer", "cust_1g637SqVZnkdPNdAIZ7Ra879", *TARGET])
    by_code = run(["list", "--voucher-code", "Always-add-prods-5", *TARGET])
    unknown = run(["list", "--order", "ord_unknown", *TARGET])

    for code, out in (by_order, by_customer, by_code):
        assert code == 0
        assert [(r["redemption_id"], r["status"]) for r in json.loads(out)] == [(REDEMPTION, "SUCCEEDED")]
    assert unknown[0] == 1 and json.loads(unknown[1]) == []
    assert "no redemptions of order ord_unknown" in capsys.readouterr().err


def test_list_needs_exactly_one_key(aws) -> None:
    with pytest.raises(SystemExit) as none:
        cli.main(["list", *TARGET])
    with pytest.raises(SystemExit) as two:
        cli.main(["list", "--order", "a", "--customer", "b", *TARGET])
    assert none.value.code == two.value.code == 2


def _create_stack(aws, name: str, outputs: dict[str, str]) -> None:
    import boto3

    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


def test_stack_reads_the_table_name_from_the_stack_output(recorded, aws) -> None:
    _create_stack(aws, "ledger-prod", {"LedgerTableName": TABLE_NAME})

    code, out = run(["show", REDEMPTION, "--stack", "ledger-prod", "--region", "eu-west-1"])

    assert code == 0 and json.loads(out)["status"] == "SUCCEEDED"


def test_stack_missing_or_without_the_output_is_a_clear_error(aws, capsys: pytest.CaptureFixture) -> None:
    _create_stack(aws, "something-else", {"Other": "x"})

    missing = run(["show", REDEMPTION, "--stack", "nope", "--region", "eu-west-1"])
    missing_err = capsys.readouterr().err
    no_output = run(["show", REDEMPTION, "--stack", "something-else", "--region", "eu-west-1"])
    no_output_err = capsys.readouterr().err

    assert missing[0] == no_output[0] == 3
    assert "no CloudFormation stack nope in region eu-west-1" in missing_err
    assert "stack something-else" in no_output_err and "has no output LedgerTableName" in no_output_err


def test_missing_table_is_named(aws, capsys: pytest.CaptureFixture) -> None:
    code, _ = run(["show", REDEMPTION, "--table", "no-such-table", "--region", "eu-west-1"])

    assert code == 3
    assert "table no-such-table does not exist" in capsys.readouterr().err


def test_table_defaults_to_ledger_table_name_and_is_required_otherwise(
    recorded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("LEDGER_TABLE_NAME", TABLE_NAME)
    from_env = run(["show", REDEMPTION, "--region", "eu-west-1"])
    monkeypatch.delenv("LEDGER_TABLE_NAME")
    nowhere = run(["show", REDEMPTION])

    assert from_env[0] == 0 and json.loads(from_env[1])["id"] == REDEMPTION
    assert nowhere[0] == 2
    assert "--local, --stack NAME or --table NAME" in capsys.readouterr().err


def test_only_one_place_at_a_time(capsys: pytest.CaptureFixture) -> None:
    assert run(["show", REDEMPTION, "--local", "--table", "t"])[0] == 2
    assert "use one of --local, --stack, --table (got --local and --table)" in capsys.readouterr().err


def test_local_without_make_run_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(local_stack.AWS_PORT_ENV, str(port))

    code, out = run(["show", REDEMPTION, "--local"])

    err = capsys.readouterr().err
    assert code == 3 and out == ""
    assert f"nothing is listening on http://127.0.0.1:{port}" in err and "is `make run` running?" in err


def test_local_with_a_bad_port_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(local_stack.AWS_PORT_ENV, "five-thousand")

    assert run(["list", "--order", ORDER, "--local"])[0] == 2
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

    code, out = run(["quarantine", "replay", "q_1", "--route", "redemption-suceeded"])

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
        def of_order(self, order_id: str) -> list[dict[str, object]]:
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
    items = cli._request_states(ledger, SimpleNamespace(redemption_id=None, order_id="ord_1"), parent)

    assert asked == [("sha256-a:r_1", "r_1"), ("sha256-a:r_2", "r_2")]
    assert len(items) == 3 and cli._finished(items)
