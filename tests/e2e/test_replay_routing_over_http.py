"""`make run` end to end (issue 10, defect 3): a delivery sent to the wrong webhook URL, over HTTP, is quarantined,
then `redemption-ledger quarantine replay --local` records it on the route it belongs to, and `show --local` sees it.

The local stack runs in-process as `make run` runs it (moto's server as the embedded AWS, the real handlers behind
the HTTP API emulator on loopback); the CLI reaches it with ``--local`` through ``LOCAL_AWS_PORT``.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from ledger_dev.harness.template import PROJECT_ROOT
from ledger_dev.local_stack import LocalStack
from redemption_ledger_cli import cli
from support.documents import compact, payload
from voucherify_ledger.webhooks.auth import sign

REDEMPTION_PATH = "/webhooks/redemption-succeeded"
ROLLBACK_PATH = "/webhooks/redemption-rollback-succeeded"
REDEMPTION_ROUTE = "redemption-succeeded"
ROLLBACK_ROUTE = "redemption-rollback-succeeded"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def event_body(name: str) -> bytes:
    """The body of ``events/<name>.json``, byte for byte (the envelopes of the documentation payloads)."""
    event = json.loads((PROJECT_ROOT / "events" / f"{name}.json").read_text(encoding="utf-8"))
    return base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode("utf-8")


def deliver(stack: LocalStack, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    """POSTs ``raw`` to the local API as Voucherify does: signed with the stack's webhook secret."""
    request = urllib.request.Request(
        stack.api_url + path,
        data=raw,
        headers={
            "content-type": "application/json",
            "user-agent": "Voucherify-Webhooks",
            "x-voucherify-signature": sign(stack.config.signing_secret, raw),
        },
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def quarantined_at(stack: LocalStack, path: str, raw: bytes) -> str:
    status, body = deliver(stack, path, raw)
    assert (status, body["status"]) == (202, "quarantined"), body
    return str(body["quarantine_id"])


def ledger_cli(*argv: str) -> tuple[int, Any]:
    out = io.StringIO()
    code = cli.main([*argv, "--local"], out=out)
    return code, json.loads(out.getvalue() or "null")


def test_wrong_url_deliveries_are_quarantined_then_replayed_onto_their_routes(stack: LocalStack) -> None:
    sent = {
        # a bare redemption and a redemption envelope at the rollback URL
        quarantined_at(stack, ROLLBACK_PATH, compact(payload("redemption_succeeded"))): (
            REDEMPTION_ROUTE,
            "a bare body with redemption",
        ),
        # a bare rollback and a rollback envelope at the redemption URL
        quarantined_at(stack, REDEMPTION_PATH, compact(payload("customer_redemption_rollback_succeeded"))): (
            ROLLBACK_ROUTE,
            "a bare body with redemption_rollback",
        ),
        quarantined_at(stack, REDEMPTION_PATH, event_body("redemption_rollback_succeeded_envelope")): (
            ROLLBACK_ROUTE,
            "event.type redemption.rollback.succeeded",
        ),
    }
    code, listed = ledger_cli("quarantine", "list")
    assert code == cli.EXIT_OK
    assert {r["quarantine_id"]: r["route"] for r in listed} == {
        q: REDEMPTION_ROUTE if route == ROLLBACK_ROUTE else ROLLBACK_ROUTE for q, (route, _) in sent.items()
    }

    code, summary = ledger_cli("quarantine", "replay", "--all")

    assert code == cli.EXIT_OK, summary
    assert (summary["replayed"], summary["recorded"], summary["still_invalid"]) == (3, 3, 0)
    for quarantine_id, (route, evidence) in sent.items():
        result = summary["results"][quarantine_id]
        assert (result["status"], result["route"], result["routed_by"], result["route_evidence"]) == (
            "recorded",
            route,
            "content",
            evidence,
        ), result
        assert result["received_route"] != route and result["quarantine_removed"] is True
    assert ledger_cli("quarantine", "list")[0] == cli.EXIT_NOT_FOUND

    code, redemption = ledger_cli("show", "r_0e2500291ae016adea")
    assert (code, redemption["status"], redemption["rollback_ids"]) == (cli.EXIT_OK, "SUCCEEDED", [])
    code, rolled_back = ledger_cli("show", "r_0e6ff48b91cfa02e97")
    assert (code, rolled_back["status"], rolled_back["rollback_ids"]) == (
        cli.EXIT_OK,
        "ROLLED_BACK",
        ["rr_0e70cac29fee95aa7b"],
    )
    code, envelope_rollback = ledger_cli("show", "r_0e3ab1f3fb99fee4b9")
    assert (code, envelope_rollback["status"], envelope_rollback["rollback_ids"]) == (
        cli.EXIT_OK,
        "ROLLED_BACK",
        ["rr_0e3ac8762299fef1e3"],
    )

    # Voucherify's retry of the same bytes, now at the right URL: a duplicate, nothing twice
    status, answer = deliver(stack, REDEMPTION_PATH, compact(payload("redemption_succeeded")))
    assert (status, answer["status"]) == (200, "duplicate")


def test_an_operator_route_overrides_the_content_and_a_bad_route_is_refused(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    quarantine_id = quarantined_at(stack, ROLLBACK_PATH, event_body("redemption_succeeded_envelope"))

    code, summary = ledger_cli("quarantine", "replay", quarantine_id, "--route", "redemption")
    assert (code, summary) == (cli.EXIT_USAGE, None)
    assert "--route 'redemption' is not a route of this bundle" in capsys.readouterr().err

    # the route it arrived at, named by the operator: that route's checks, so it stays, with the reason
    code, summary = ledger_cli("quarantine", "replay", quarantine_id, "--route", ROLLBACK_ROUTE)
    assert code == cli.EXIT_STILL_INVALID
    kept = summary["results"][quarantine_id]
    assert (kept["status"], kept["route"], kept["routed_by"], kept["reason"]) == (
        "still_invalid",
        ROLLBACK_ROUTE,
        "operator",
        "wrong event type for this webhook URL",
    )
    (listed,) = ledger_cli("quarantine", "list")[1]
    assert (listed["quarantine_id"], listed["replay_attempts"]) == (quarantine_id, 1)
    assert ledger_cli("show", "r_0e2500291ae016adea")[0] == cli.EXIT_NOT_FOUND

    # the route it belongs to, named by the operator: recorded there
    code, summary = ledger_cli("quarantine", "replay", quarantine_id, "--route", REDEMPTION_ROUTE)
    assert code == cli.EXIT_OK
    recorded = summary["results"][quarantine_id]
    assert (recorded["status"], recorded["route"], recorded["routed_by"], recorded["received_route"]) == (
        "recorded",
        REDEMPTION_ROUTE,
        "operator",
        ROLLBACK_ROUTE,
    )
    code, shown = ledger_cli("show", "r_0e2500291ae016adea")
    assert (code, shown["status"]) == (cli.EXIT_OK, "SUCCEEDED")
    assert ledger_cli("quarantine", "list")[0] == cli.EXIT_NOT_FOUND
