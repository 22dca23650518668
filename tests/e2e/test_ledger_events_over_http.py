"""The ledger's events through `make run`'s stack: webhooks over HTTP and a rollback request through the queue write
the ledger, the table's stream goes to the real LedgerEventsFunction as the template's event source mapping says, its
events go on the stack's bus, and `redemption-ledger events --local` prints each of them once — none for a duplicate,
each detail valid against its schema in docs/events/ and free of the payloads' personal data."""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema

from ledger_dev.harness.template import PROJECT_ROOT
from ledger_dev.local_stack import LocalStack
from redemption_ledger_cli import cli
from support.cli import cli_json, run_cli
from support.documents import SEED_REDEMPTION_ID, compact, payload
from voucherify_ledger.webhooks.auth import sign

SCHEMAS = PROJECT_ROOT / "docs" / "events"
SUCCEEDED = "/webhooks/redemption-succeeded"
ROLLBACK = "/webhooks/redemption-rollback-succeeded"


def post(stack: LocalStack, path: str, document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A delivery as Voucherify sends it: compact JSON, signed; its answer."""
    raw = compact(document)
    request = urllib.request.Request(
        stack.api_url + path,
        data=raw,
        headers={"content-type": "application/json", "x-voucherify-signature": sign(stack.config.signing_secret, raw)},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def schemas() -> dict[str, dict[str, Any]]:
    """Each detail type's JSON Schema (its title is the detail-type)."""
    found = {}
    for path in sorted(Path(SCHEMAS).glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        found[schema["title"]] = schema
    return found


def personal_data(*documents: dict[str, Any]) -> set[str]:
    """The customers' names and e-mail addresses of the payloads."""
    found: set[str] = set()
    for document in documents:
        for holder in ("customer", "holder"):
            person = document.get(holder) or {}
            found |= {str(person[k]) for k in ("name", "email") if person.get(k)}
    return found


def test_each_ledger_change_is_one_event_none_for_a_duplicate_valid_and_without_personal_data(
    stack: LocalStack,
) -> None:
    fake, events = stack.fake_voucherify, stack.ledger_events
    assert fake is not None and events is not None and events.pollers, "make run polls the ledger's stream"
    started = time.monotonic()
    redemption, rollback = payload("redemption_succeeded"), payload("redemption_rollback_succeeded")
    invalid = copy.deepcopy(redemption)
    invalid["redemption"]["id"] = "not a redemption id"  # authentic, but not a redemption: quarantined

    assert post(stack, SUCCEEDED, redemption)[1]["status"] == "recorded"
    assert post(stack, SUCCEEDED, redemption)[1]["status"] == "duplicate"
    assert post(stack, ROLLBACK, rollback)[1]["status"] == "recorded"
    status, answer = post(stack, SUCCEEDED, invalid)
    assert (status, answer["status"]) == (202, "quarantined")
    fake.fail("error", key="not_found", redemption_id=SEED_REDEMPTION_ID)  # Voucherify refuses it for good
    code, queued = cli_json("rollback", SEED_REDEMPTION_ID, "--reason", "Order cancelled", "--local", "--wait", "15")
    assert code == cli.EXIT_ROLLBACK_FAILED and queued["requests"][0]["state"] == "FAILED", queued
    assert events.wait_idle(15), "the stream poller has not caught up"

    code, out = run_cli(["events", "--local"])

    assert code == cli.EXIT_OK
    printed = [json.loads(line) for line in out.splitlines()]
    kinds = [event["detail-type"] for event in printed]
    assert sorted(kinds) == sorted(
        ["Redemption Recorded", "Redemption Rolled Back", "Delivery Quarantined", "Rollback Request Failed"]
    ), kinds  # one each: nothing for the duplicate
    assert kinds.index("Redemption Recorded") < kinds.index("Rollback Request Failed")  # oldest first
    by_type = schemas()
    for event in printed:
        assert event["source"] == "voucherify.ledger" and event["id"]
        jsonschema.validate(event["detail"], by_type[event["detail-type"]])
    recorded = next(e for e in printed if e["detail-type"] == "Redemption Recorded")["detail"]
    assert recorded["redemption_id"] == SEED_REDEMPTION_ID
    rolled_back = next(e for e in printed if e["detail-type"] == "Redemption Rolled Back")["detail"]
    assert rolled_back["redemption_id"] == rollback["redemption_rollback"]["redemption"]
    failed = next(e for e in printed if e["detail-type"] == "Rollback Request Failed")["detail"]
    assert failed["redemption_id"] == SEED_REDEMPTION_ID
    assert len({e["detail"]["event_id"] for e in printed}) == 4
    secrets = personal_data(redemption, rollback)
    assert secrets and not [s for s in secrets if s in out]
    dead_letters = stack.aws_client("sqs").get_queue_attributes(
        QueueUrl=stack.queues["LedgerEventsDeadLetterQueue"].url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert dead_letters["Attributes"]["ApproximateNumberOfMessages"] == "0"
    banner = stack.banner().splitlines()  # what make run prints, to paste
    (line,) = [shown for shown in banner if shown.endswith("redemption-ledger events --local --follow")]
    assert f"LOCAL_AWS_PORT={stack.config.aws_port} " in line  # what --local reads, as this stack listens
    assert time.monotonic() - started < 20
