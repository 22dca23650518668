"""`make run` end to end: no message crashes the rollback worker, and every message that ends leaves a record.

The local stack runs as `make run` does (moto server, the template's queues, the SQS poller invoking the real
worker, the fake Voucherify, the real webhook API). The webhooks refuse a redemption id of the wrong shape, so
the ones an earlier version stored are written straight into the table, as that version left them.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from ledger_dev.local_stack import LocalStack
from redemption_ledger_cli import cli
from support.cli import cli_json
from support.documents import SEED_REDEMPTION_ID
from support.local import deliver_seed
from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.claims import RedemptionClaims

SEED_ORDER = "ord_3VYCHwdV0YOOch2nm1RsTKNI"  # the order of the seed redemption.succeeded payload
DOTTED = "r_a5.dot"
TOO_LONG = "r_" + "a" * 170


def _ledger(stack: LocalStack) -> Ledger:
    return Ledger(stack.config.table_name, stack.aws_client("dynamodb"))


def _store_as_an_earlier_version_did(stack: LocalStack, redemption_id: str, *, like: str) -> None:
    """The stored item of ``like`` copied under ``redemption_id`` (same order, SUCCEEDED)."""
    dynamodb = stack.aws_client("dynamodb")
    key = {"pk": {"S": f"REDEMPTION#{like}"}, "sk": {"S": "REDEMPTION"}}
    item = dynamodb.get_item(TableName=stack.config.table_name, Key=key, ConsistentRead=True)["Item"]
    item.update(pk={"S": f"REDEMPTION#{redemption_id}"}, redemption_id={"S": redemption_id})
    dynamodb.put_item(TableName=stack.config.table_name, Item=item)


def _dead_letters(stack: LocalStack) -> list[str]:
    sqs = stack.aws_client("sqs")
    url = stack.queues["RollbackDeadLetterQueue"].url
    return [m["MessageId"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]


def test_an_order_holding_malformed_redemption_ids_rolls_back_the_valid_one_once_and_lists_the_others(
    stack: LocalStack,
) -> None:
    fake = stack.fake_voucherify
    assert fake is not None and stack.rollback_poller is not None
    deliver_seed(stack)
    for bad in (DOTTED, TOO_LONG):
        _store_as_an_earlier_version_did(stack, bad, like=SEED_REDEMPTION_ID)
    ledger = _ledger(stack)
    assert sorted(r["redemption_id"] for r in ledger.redemptions.list_by("order", SEED_ORDER)) == sorted(
        [SEED_REDEMPTION_ID, DOTTED, TOO_LONG]
    )

    code, queued = cli_json("rollback", "--order", SEED_ORDER, "--reason", "Order cancelled", "--local", "--wait", "30")

    assert queued["finished"] is True, (code, queued)
    order_request, child = queued["requests"]
    assert order_request["request_id"] == queued["request_id"] == queued["message_id"]
    assert {k: order_request.get(k) for k in ("state", "redemption_ids", "child_request_ids")} == {
        "state": "FANNED_OUT",
        "redemption_ids": [SEED_REDEMPTION_ID],
        "child_request_ids": [f"{queued['request_id']}:{SEED_REDEMPTION_ID}"],
    }
    assert order_request["invalid_redemption_ids"] == sorted([DOTTED, TOO_LONG])
    assert order_request["invalid_redemption_count"] == 2
    assert order_request["error"]["key"] == "invalid_redemption_ids"
    assert (child["state"], child["redemption_id"], child["parent_request_id"]) == (
        "SUCCEEDED",
        SEED_REDEMPTION_ID,
        queued["request_id"],
    )
    assert child["rollback_id"] == fake.rollback_id(SEED_REDEMPTION_ID)
    assert fake.calls(SEED_REDEMPTION_ID) == 1 and fake.calls() == 1  # nothing sent for the malformed ids
    for bad in (DOTTED, TOO_LONG):
        view = ledger.redemptions.get(bad) or {}
        assert (view.get("status"), "rollback_requests" in view) == ("SUCCEEDED", False)
    assert fake.wait_for_webhooks(10) and [w.status for w in fake.webhooks] == [200]
    code, view = cli_json("show", SEED_REDEMPTION_ID, "--local")
    assert (code, view["status"], view["rollback_ids"]) == (cli.EXIT_OK, "ROLLED_BACK", [child["rollback_id"]])
    assert _dead_letters(stack) == []


def test_a_bug_on_every_receive_ends_the_request_failed_and_dead_lettered_with_its_record(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: RedemptionClaims, *args: Any, **kwargs: Any) -> Any:
        raise KeyError("annie@lemon.com")  # a bug whose message carries data

    deliver_seed(stack)
    monkeypatch.setattr(RedemptionClaims, "claim", broken)  # the worker runs in this process
    started = time.monotonic()

    code, queued = cli_json("rollback", SEED_REDEMPTION_ID, "--request-id", "cancel-bug", "--local", "--wait", "60")

    assert code == cli.EXIT_ROLLBACK_FAILED, queued
    (request,) = queued["requests"]
    max_receive = int(stack.function("RollbackWorkerFunction").environment["ROLLBACK_MAX_RECEIVE_COUNT"])
    assert {k: request.get(k) for k in ("state", "dead_lettered", "attempts", "receive_count", "error")} == {
        "state": "FAILED",
        "dead_lettered": True,
        "attempts": max_receive,
        "receive_count": max_receive,
        "error": {
            "key": "worker_error",
            "message": "unexpected KeyError in the worker; attempts exhausted, moved to the dead-letter queue",
        },
    }
    assert "annie" not in str(request)
    assert stack.fake_voucherify is not None and stack.fake_voucherify.calls() == 0
    # SQS moves the message to the dead-letter queue when it would be received once more
    while not (dead := _dead_letters(stack)) and time.monotonic() - started < 60:
        time.sleep(0.2)
    assert dead == [queued["message_id"]]
