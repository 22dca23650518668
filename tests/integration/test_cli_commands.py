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

    order = json.loads(by_order[1])
    assert by_order[0] == 0 and (order["order_id"], order["redemption_count"]) == (SEED_ORDER_ID, 1)
    for code, listed in ((by_customer[0], json.loads(by_customer[1])), (by_code[0], json.loads(by_code[1]))):
        assert code == 0
        assert [(r["redemption_id"], r["status"]) for r in listed] == [(SEED_REDEMPTION_ID, "SUCCEEDED")]
    assert [(r["redemption_id"], r["status"]) for r in order["redemptions"]] == [(SEED_REDEMPTION_ID, "SUCCEEDED")]
    assert unknown[0] == 1
    assert json.loads(unknown[1]) == {
        "order_id": "ord_unknown",
        "order_source_ids": [],
        "redemption_count": 0,
        "total_discount_amount": 0,
        "rolled_back_discount_amount": 0,
        "redemptions": [],
    }
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


# --- an order: its stacks as trees, its true total discount; by the merchant's order id -----------------------------
TREE_ORDER, TREE_SOURCE = "ord_tree0000000000001", "T-1001"
LONE, ROLLED = "r_treelone0000000001", "r_treerolled000000001"
PARENT, CHILD_A, CHILD_B = "r_treeparent00000001", "r_treechild000000001", "r_treechild000000002"
UNLISTED_PARENT, ORPHAN = "r_treeparent00000002", "r_treechild000000003"  # a child whose parent the index lacks


@pytest.fixture
def stacked_order(aws) -> None:
    """Order T-1001: a lone redemption (500), one rolled back since (300), a stack of two (1,000 + 500 = its parent's
    1,500) with their promotion tiers, and a child (200) whose parent is not listed with the order."""
    from datetime import UTC, datetime

    from support.worker import record_redemption, set_stack_role, write_attributes
    from voucherify_ledger.ledger.deliveries import Delivery
    from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData

    ledger = aws.ledger
    for redemption_id, parent in (
        (LONE, None),
        (ROLLED, None),
        (PARENT, None),
        (CHILD_A, PARENT),
        (CHILD_B, PARENT),
        (ORPHAN, UNLISTED_PARENT),
    ):
        record_redemption(ledger, redemption_id, order_id=TREE_ORDER, order_source_id=TREE_SOURCE, parent_id=parent)

    def at(second: int) -> dict[str, str]:  # the indexes' sort key; amounts in the smallest currency unit
        return {"redeemed_at": f"2024-01-15T12:20:{second:02d}.000Z", "amount_unit": "currency"}

    write_attributes(ledger, LONE, discount_amount=500, **at(1))
    write_attributes(ledger, ROLLED, discount_amount=300, **at(2))
    set_stack_role(ledger, PARENT, "parent", discount_amount=1500, **at(3))
    set_stack_role(ledger, CHILD_A, "child", discount_amount=1000, promotion_tier_id="promo_tierA000000001", **at(4))
    set_stack_role(ledger, CHILD_B, "child", discount_amount=500, promotion_tier_id="promo_tierB000000001", **at(5))
    set_stack_role(ledger, ORPHAN, "child", discount_amount=200, **at(6))
    rolled = payload("redemption_rollback_succeeded")
    rolled["redemption"]["id"] = rolled["redemption_rollback"]["redemption"] = ROLLED
    ledger.redemptions.record_rollback(
        EventRedemptionRollbackSucceededData.model_validate(rolled),
        Delivery(b"{}", "redemption-rollback-succeeded", datetime.now(UTC)),
    )


def _tree(redemptions: list[dict]) -> list[tuple]:
    """The listing's shape: (id, status, promotion tier, [children's shapes])."""
    return [
        (
            r["redemption_id"],
            r.get("status"),
            r.get("promotion_tier_id"),
            _tree(r["children"]) if "children" in r else None,
        )
        for r in redemptions
    ]


EXPECTED_TREE = [
    (LONE, "SUCCEEDED", None, None),
    (ROLLED, "ROLLED_BACK", None, None),
    (
        PARENT,
        "SUCCEEDED",
        None,
        [(CHILD_A, "SUCCEEDED", "promo_tierA000000001", None), (CHILD_B, "SUCCEEDED", "promo_tierB000000001", None)],
    ),
    (UNLISTED_PARENT, None, None, [(ORPHAN, "SUCCEEDED", None, None)]),
]


@pytest.mark.parametrize(
    ("option", "value", "asked", "others"),
    [
        ("--order", TREE_ORDER, "order_id", {"order_source_ids": [TREE_SOURCE]}),
        ("--order-source-id", TREE_SOURCE, "order_source_id", {"order_ids": [TREE_ORDER]}),
    ],
)
def test_list_an_order_shows_its_stacks_as_trees_and_its_true_total_discount(
    stacked_order, option: str, value: str, asked: str, others: dict
) -> None:
    code, out = run_cli(["list", option, value, *TARGET])

    shown = json.loads(out)
    assert code == 0
    assert {k: v for k, v in shown.items() if k != "redemptions"} == {
        asked: value,
        **others,
        "redemption_count": 6,
        # every redemption once: the stack's parent (1,500) is its children's sum and is not added again
        "total_discount_amount": 500 + 300 + 1000 + 500 + 200,
        "rolled_back_discount_amount": 300,
        "amount_unit": "currency",
    }
    assert _tree(shown["redemptions"]) == EXPECTED_TREE
    (parent,) = [r for r in shown["redemptions"] if r["redemption_id"] == PARENT]
    assert (parent["stack_role"], parent["discount_amount"]) == ("parent", 1500)
    assert [c["parent_redemption_id"] for c in parent["children"]] == [PARENT, PARENT]
    assert shown["redemptions"][-1]["listed"] is False  # the orphan's parent stands in, by id alone


def test_list_by_an_order_source_id_the_ledger_does_not_know_exits_1(stacked_order, capsys) -> None:
    code, out = run_cli(["list", "--order-source-id", "T-9999", *TARGET])

    assert code == 1 and json.loads(out)["redemptions"] == [] and json.loads(out)["order_ids"] == []
    assert "no redemptions of order source id T-9999" in capsys.readouterr().err


def test_rollback_by_order_source_id_queues_it_and_waits_for_every_redemption(stacked_order, make_harness, aws) -> None:
    import threading

    harness = make_harness()
    harness.fake.add_stack(PARENT, [CHILD_A, CHILD_B], order_id=TREE_ORDER)
    harness.fake.add_stack(UNLISTED_PARENT, [ORPHAN], order_id=TREE_ORDER)
    harness.fake.add_redemption(LONE, order_id=TREE_ORDER, order_source_id=TREE_SOURCE)
    stop = threading.Event()

    def worker() -> None:  # the event source mapping: polls the queue while the CLI waits
        while not stop.is_set():
            if not harness.poll().received:
                stop.wait(0.05)

    polling = threading.Thread(target=worker, daemon=True)
    polling.start()
    try:
        request = ["--order-source-id", TREE_SOURCE, "--reason", "Order cancelled", "--request-id", "cancel-t"]
        code, out = run_cli(["rollback", *request, "--queue-url", harness.queue_url, *TARGET, "--wait", "20"])
    finally:
        stop.set()
        polling.join(5)

    answer = json.loads(out)
    assert code == 0, answer
    assert (answer["order_source_id"], answer["request_id"], answer["finished"]) == (TREE_SOURCE, "cancel-t", True)
    order_request, *children = answer["requests"]
    assert (order_request["state"], order_request["source_order_source_id"]) == ("FANNED_OUT", TREE_SOURCE)
    assert order_request["already_rolled_back_ids"] == [ROLLED]
    assert sorted(c["redemption_id"] for c in children) == sorted([LONE, PARENT, UNLISTED_PARENT])
    assert {c["state"] for c in children} == {"SUCCEEDED"}
    assert {r: harness.fake.calls(r) for r in (LONE, ROLLED, CHILD_A, CHILD_B, ORPHAN)} == {
        LONE: 1,
        ROLLED: 0,
        CHILD_A: 0,
        CHILD_B: 0,
        ORPHAN: 0,
    }
    assert [r.endpoint for r in harness.fake.requests if r.redemption_id == PARENT] == ["rollbacks"]  # known parent
    listed = json.loads(run_cli(["list", "--order-source-id", TREE_SOURCE, *TARGET])[1])
    statuses = {r["redemption_id"]: r.get("status") for r in listed["redemptions"]}
    assert statuses == {LONE: "ROLLED_BACK", ROLLED: "ROLLED_BACK", PARENT: "ROLLED_BACK", UNLISTED_PARENT: None}
    assert listed["rolled_back_discount_amount"] == listed["total_discount_amount"] == 2500
