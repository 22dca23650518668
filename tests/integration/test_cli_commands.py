"""`redemption-ledger`: show / list against moto (in-process), --stack through CloudFormation, --local errors."""

from __future__ import annotations

import json
import socket

import pytest

from ledger_dev import local_stack
from redemption_ledger_cli import cli
from support.cli import run_cli
from support.documents import SEED_ORDER_ID, SEED_REDEMPTION_ID, compact, payload
from support.functions import TABLE_NAME

TARGET = ["--table", TABLE_NAME, "--region", "eu-west-1"]


@pytest.fixture
def recorded(invoke) -> None:
    assert invoke("RedemptionSucceededFunction", compact(payload("redemption_succeeded"))).status == 200


def test_show_prints_the_redemption_as_json(recorded, capsys: pytest.CaptureFixture) -> None:
    code, out = run_cli(["show", SEED_REDEMPTION_ID, *TARGET])

    shown = json.loads(out)
    assert code == 0
    assert (shown["id"], shown["status"], shown["rollback_ids"], shown["rollbacks"]) == (
        SEED_REDEMPTION_ID,
        "SUCCEEDED",
        [],
        [],
    )
    assert shown["order_id"] == SEED_ORDER_ID and shown["voucher_code"] == "Always-add-prods-5"
    assert "jane@jane.io" not in out and "Jane Doe" not in out  # no personal data in the ledger's view


def test_show_a_rolled_back_redemption_lists_its_rollbacks(invoke) -> None:
    rollback = payload("customer_redemption_rollback_succeeded")
    assert invoke("RedemptionRollbackSucceededFunction", compact(rollback)).status == 200

    code, out = run_cli(["show", rollback["redemption"]["id"], *TARGET])

    shown = json.loads(out)
    assert code == 0 and shown["status"] == "ROLLED_BACK"
    assert shown["rollback_ids"] == [rollback["redemption_rollback"]["id"]]
    assert [r["rollback_id"] for r in shown["rollbacks"]] == shown["rollback_ids"]


def test_show_unknown_redemption_exits_1_with_a_message(aws, capsys: pytest.CaptureFixture) -> None:
    code, out = run_cli(["show", "r_x", *TARGET])

    assert (code, out) == (1, "")
    assert f"no redemption r_x in table {TABLE_NAME}" in capsys.readouterr().err


def test_list_by_order_customer_and_voucher_code(recorded, capsys: pytest.CaptureFixture) -> None:
    by_order = run_cli(["list", "--order", SEED_ORDER_ID, *TARGET])
    by_customer = run_cli(["list", "--customer", "cust_1g637SqVZnkdPNdAIZ7Ra879", *TARGET])
    by_code = run_cli(["list", "--voucher-code", "Always-add-prods-5", *TARGET])
    unknown = run_cli(["list", "--order", "ord_unknown", *TARGET])

    for code, out in (by_order, by_customer, by_code):
        assert code == 0
        assert [(r["redemption_id"], r["status"]) for r in json.loads(out)] == [(SEED_REDEMPTION_ID, "SUCCEEDED")]
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

    code, out = run_cli(["show", SEED_REDEMPTION_ID, "--stack", "ledger-prod", "--region", "eu-west-1"])

    assert code == 0 and json.loads(out)["status"] == "SUCCEEDED"


def test_stack_missing_or_without_the_output_is_a_clear_error(aws, capsys: pytest.CaptureFixture) -> None:
    _create_stack(aws, "something-else", {"Other": "x"})

    missing = run_cli(["show", SEED_REDEMPTION_ID, "--stack", "nope", "--region", "eu-west-1"])
    missing_err = capsys.readouterr().err
    no_output = run_cli(["show", SEED_REDEMPTION_ID, "--stack", "something-else", "--region", "eu-west-1"])
    no_output_err = capsys.readouterr().err

    assert missing[0] == no_output[0] == 3
    assert "no CloudFormation stack nope in region eu-west-1" in missing_err
    assert "stack something-else" in no_output_err and "has no output LedgerTableName" in no_output_err


def test_missing_table_is_named(aws, capsys: pytest.CaptureFixture) -> None:
    code, _ = run_cli(["show", SEED_REDEMPTION_ID, "--table", "no-such-table", "--region", "eu-west-1"])

    assert code == 3
    assert "table no-such-table does not exist" in capsys.readouterr().err


def test_table_defaults_to_ledger_table_name_and_is_required_otherwise(
    recorded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("LEDGER_TABLE_NAME", TABLE_NAME)
    from_env = run_cli(["show", SEED_REDEMPTION_ID, "--region", "eu-west-1"])
    monkeypatch.delenv("LEDGER_TABLE_NAME")
    nowhere = run_cli(["show", SEED_REDEMPTION_ID])

    assert from_env[0] == 0 and json.loads(from_env[1])["id"] == SEED_REDEMPTION_ID
    assert nowhere[0] == 2
    assert "--local, --stack NAME or --table NAME" in capsys.readouterr().err


def test_local_without_make_run_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(local_stack.AWS_PORT_ENV, str(port))

    code, out = run_cli(["show", SEED_REDEMPTION_ID, "--local"])

    err = capsys.readouterr().err
    assert code == 3 and out == ""
    assert f"nothing is listening on http://127.0.0.1:{port}" in err and "is `make run` running?" in err
