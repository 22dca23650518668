"""`make run` end to end: a rollback queued with the CLI goes queue → worker → Voucherify → ledger.

The local stack runs as `make run` does (moto server, the template's queues, the SQS poller invoking the
real worker, the real webhook API), once with its own fake Voucherify and once with ``VOUCHERIFY_API_URL``
pointing at another server that behaves as Voucherify's API documents (a separately started fake, with
its own keys). Retry delays are shortened through the worker's settings so that each case ends in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ledger_dev import local_stack
from ledger_dev.fake_voucherify import FakeVoucherify
from ledger_dev.local_stack import LocalStack
from redemption_ledger_cli import cli
from support.cli import cli_json
from support.documents import SEED_REDEMPTION_ID, payload
from support.local import deliver_seed, start_stack

APP_ID, APP_TOKEN = "0b9f3c1e-e2e-app", "e2e-secret-token"


@pytest.fixture
def external_api() -> Iterator[FakeVoucherify]:
    with FakeVoucherify(app_id=APP_ID, app_token=APP_TOKEN, webhook_url=None) as api:
        api.know_webhook(payload("redemption_succeeded"))  # the redemption whose webhook deliver_seed sends
        yield api


@pytest.fixture
def with_api_url(monkeypatch: pytest.MonkeyPatch, external_api: FakeVoucherify) -> Iterator[LocalStack]:
    stack = start_stack(
        monkeypatch, voucherify_api_url=external_api.url, voucherify_app_id=APP_ID, voucherify_app_token=APP_TOKEN
    )
    try:
        yield stack
    finally:
        stack.stop()


def test_make_run_rolls_back_through_its_fake_and_the_webhook_closes_the_loop(stack: LocalStack) -> None:
    fake = stack.fake_voucherify
    assert fake is not None and stack.rollback_poller is not None
    deliver_seed(stack)

    code, queued = cli_json("rollback", SEED_REDEMPTION_ID, "--reason", "Order cancelled", "--local", "--wait", "30")

    assert code == cli.EXIT_OK, queued
    (request,) = queued["requests"]
    rollback_id = fake.rollback_id(SEED_REDEMPTION_ID)
    assert rollback_id and rollback_id.startswith("rr_")
    assert (request["state"], request["rollback_id"]) == ("SUCCEEDED", rollback_id)
    (call,) = [r for r in fake.requests if r.redemption_id == SEED_REDEMPTION_ID]
    assert call.path == f"/v1/redemptions/{SEED_REDEMPTION_ID}/rollback" and call.method == "POST"
    assert call.query.get("reason") == "Order cancelled" and call.status == 200

    assert fake.wait_for_webhooks(10)  # Voucherify's redemption.rollback.succeeded webhook, signed, to the API
    assert [w.status for w in fake.webhooks] == [200]
    code, view = cli_json("show", SEED_REDEMPTION_ID, "--local")
    assert code == cli.EXIT_OK
    assert (view["status"], view["rollback_ids"]) == ("ROLLED_BACK", [rollback_id])
    assert [r["state"] for r in view["rollback_requests"]] == ["SUCCEEDED"]
    assert fake.calls(SEED_REDEMPTION_ID) == 1


@pytest.mark.parametrize(
    ("fault", "exit_code", "state", "error_key", "calls", "attempts"),
    [
        (None, cli.EXIT_OK, "SUCCEEDED", None, 1, 1),
        ({"kind": "error", "key": "already_rolled_back"}, cli.EXIT_OK, "ALREADY_ROLLED_BACK", None, 1, 1),
        ({"kind": "error", "key": "not_found"}, cli.EXIT_ROLLBACK_FAILED, "FAILED", "not_found", 1, 1),
        # 429: no quick retry in-process; SQS delivers it again no sooner than Retry-After
        ({"kind": "rate_limit", "retry_after": 1, "times": 1}, cli.EXIT_OK, "SUCCEEDED", None, 2, 2),
        # 5xx: two quick retries in the invocation, then the message's visibility
        ({"kind": "status", "status": 503, "times": 3}, cli.EXIT_OK, "SUCCEEDED", None, 4, 2),
    ],
    ids=["success", "already_rolled_back", "not_found", "429", "transient_5xx"],
)
def test_with_voucherify_api_url_each_answer_ends_in_its_state_within_a_minute(
    with_api_url: LocalStack,
    external_api: FakeVoucherify,
    fault: dict[str, Any] | None,
    exit_code: int,
    state: str,
    error_key: str | None,
    calls: int,
    attempts: int,
) -> None:
    assert with_api_url.fake_voucherify is None  # the worker calls VOUCHERIFY_API_URL, not a fake of its own
    deliver_seed(with_api_url)
    if fault is not None:
        external_api.fail(**fault)
    started = time.monotonic()

    code, queued = cli_json("rollback", SEED_REDEMPTION_ID, "--reason", "Refund 1842", "--local", "--wait", "60")

    took = time.monotonic() - started
    assert code == exit_code, queued
    assert took < 60
    (request,) = queued["requests"]
    assert request["state"] == state
    assert (request.get("error") or {}).get("key") == error_key
    assert external_api.calls(SEED_REDEMPTION_ID) == calls  # retried what was transient, nothing twice
    assert {r.app_id for r in external_api.requests} == {APP_ID}  # the keys given to make run (401 otherwise)
    assert all(r.query.get("reason") == "Refund 1842" for r in external_api.requests)
    successes = [r for r in external_api.requests if r.status == 200]
    assert len(successes) == (1 if state == "SUCCEEDED" else 0)
    _, view = cli_json("show", SEED_REDEMPTION_ID, "--local")
    rolled_back = state in ("SUCCEEDED", "ALREADY_ROLLED_BACK")
    assert view["status"] == ("ROLLED_BACK" if rolled_back else "SUCCEEDED")
    if state == "SUCCEEDED":
        assert view["rollback_ids"] == [external_api.rollback_id(SEED_REDEMPTION_ID)]
    (kept,) = view["rollback_requests"]
    assert (kept["api_calls"], kept["attempts"]) == (calls, attempts)  # 429 and 5xx: retried through SQS


def test_a_second_request_for_a_rolled_back_redemption_makes_no_call(
    with_api_url: LocalStack, external_api: FakeVoucherify
) -> None:
    deliver_seed(with_api_url)
    assert cli_json("rollback", SEED_REDEMPTION_ID, "--local", "--wait", "30")[0] == cli.EXIT_OK

    code, again = cli_json("rollback", SEED_REDEMPTION_ID, "--local", "--wait", "30")

    assert code == cli.EXIT_OK
    assert again["requests"][0]["state"] == "ALREADY_ROLLED_BACK"
    assert external_api.calls(SEED_REDEMPTION_ID) == 1


def test_rollback_cli_usage_errors(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_TABLE_NAME", raising=False)
    monkeypatch.delenv("ROLLBACK_QUEUE_URL", raising=False)
    assert cli.main(["rollback", SEED_REDEMPTION_ID]) == cli.EXIT_USAGE
    assert "say where the rollback queue is" in capsys.readouterr().err
    assert cli.main(["rollback", "not-a-redemption", "--queue-url", "http://127.0.0.1:9/q"]) == cli.EXIT_USAGE
    assert "redemption_id" in capsys.readouterr().err
    assert cli.main(["rollback", SEED_REDEMPTION_ID, "--queue-url", "http://127.0.0.1:9/q", "--wait", "5"]) == 2
    assert "--wait reads the ledger" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["rollback", SEED_REDEMPTION_ID, "--order", "ord_1"])  # one or the other


def test_the_banner_says_where_rollbacks_go_and_never_prints_the_token(
    with_api_url: LocalStack, external_api: FakeVoucherify
) -> None:
    banner = with_api_url.banner()

    assert f"Voucherify API {external_api.url}" in banner and APP_ID in banner
    assert APP_TOKEN not in banner
    assert "queue poller" in banner and "RollbackWorkerFunction" in banner
    assert f"redemption-ledger rollback {SEED_REDEMPTION_ID} --reason" in banner


def test_api_url_without_keys_is_a_clear_startup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(local_stack.StartupError, match="also set VOUCHERIFY_APP_ID and VOUCHERIFY_APP_TOKEN"):
        start_stack(monkeypatch, voucherify_api_url="http://127.0.0.1:9")
