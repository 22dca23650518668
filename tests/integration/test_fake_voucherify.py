"""The fake Voucherify: documented answers, faults, rate limit, call counts, the control endpoint, webhooks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ledger_dev.fake_voucherify import ERRORS, FakeVoucherify
from support.documents import SHARED_DIR
from support.receiver import Receiver, running_receiver
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData, SimpleRedemption, WebhookEnvelope
from voucherify_ledger.webhooks.auth import verify_signature

R = "r_0e2500291ae016adea"
KEYS = {"X-App-Id": "local-app-id", "X-App-Token": "local-app-token"}
REDEMPTIONS = json.loads((SHARED_DIR / "reference" / "voucherify" / "redemptions.json").read_text(encoding="utf-8"))


def call(
    url: str, path: str, body: Any = None, *, headers: dict[str, str] | None = KEYS, method: str = "POST"
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body if body is not None else {}).encode() if method != "GET" else None
    request = urllib.request.Request(url + path, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers.items()), json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), json.loads(exc.read() or b"null")


def rollback(fake: FakeVoucherify, redemption_id: str = R, endpoint: str = "rollback", **kw: Any) -> Any:
    return call(fake.url, f"/v1/redemptions/{redemption_id}/{endpoint}", **kw)


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeVoucherify]:
    with FakeVoucherify(webhook_delay=None) as fake:
        yield fake


@pytest.fixture
def fake(shared: FakeVoucherify) -> FakeVoucherify:
    """The shared fake, reset, knowing ``R`` (a fake knows only the redemptions it is given, as Voucherify does)."""
    shared.reset()
    shared.lenient = False
    shared.add_redemption(R)
    return shared


def test_a_rollback_answers_the_documented_object_then_already_rolled_back(fake: FakeVoucherify) -> None:
    status, _, first = rollback(fake)
    status_2, _, second = rollback(fake)

    schema = REDEMPTIONS["components"]["schemas"]["RedemptionRollback"]
    assert status == 200
    assert set(schema["required"]) <= set(first)
    assert first["id"].startswith("rr_") and first["redemption"] == R
    assert (first["object"], first["result"], first["status"]) == ("redemption_rollback", "SUCCESS", "SUCCEEDED")
    SimpleRedemption.model_validate(first)
    example = REDEMPTIONS["paths"]["/v1/redemptions/{redemptionId}/rollback"]["post"]["responses"]["400"]
    documented = example["content"]["application/json"]["examples"]["Already rolledback"]["value"]
    assert status_2 == 400
    assert {k: second[k] for k in ("code", "key", "message", "details", "resource_type")} == {
        k: documented[k] for k in ("code", "key", "message", "details", "resource_type")
    }
    assert fake.calls(R) == 2 and fake.rollback_id(R) == first["id"]


def test_keys_are_checked(fake: FakeVoucherify) -> None:
    assert rollback(fake, headers={})[0] == 401
    assert rollback(fake, headers={**KEYS, "X-App-Token": "wrong"})[0] == 401
    assert fake.rollback_id(R) is None and fake.calls(R) == 2


def test_the_default_fake_answers_404_not_found_for_a_redemption_it_does_not_know() -> None:
    unknown = "r_unknown00000000001"
    with FakeVoucherify(webhook_url="http://127.0.0.1:9/unused", webhook_delay=None) as fake:
        fake.add_redemption("r_known0000000000001")

        answers = [rollback(fake, unknown), rollback(fake, unknown, "rollbacks")]

        assert rollback(fake, "r_known0000000000001")[0] == 200
        assert fake.rollback_id(unknown) is None and fake.known(unknown) is None
        assert fake.calls(unknown) == 2 and fake.webhooks == [] and fake.state()["webhooks_pending"] == 1

    documented = REDEMPTIONS["paths"]["/v1/redemptions/{redemptionId}/rollback"]["post"]["responses"]["404"]
    example = documented["content"]["application/json"]["examples"]["Cannot find customer"]["value"]
    for status, _, body in answers:
        assert status == 404 and set(body) == set(example)  # code, key, message, details, request_id, resource_*
        assert (body["code"], body["key"], body["message"]) == (example["code"], example["key"], example["message"])
        assert (body["resource_id"], body["resource_type"]) == (unknown, "redemption")
        assert body["details"] == f"Cannot find redemption with id {unknown}"
        assert re.fullmatch(r"v-[0-9a-f]{18}", body["request_id"])


def test_a_lenient_fake_rolls_back_a_redemption_it_was_never_given() -> None:
    unknown = "r_unknown00000000001"
    with FakeVoucherify(lenient=True, webhook_delay=None) as fake:
        status, _, body = rollback(fake, unknown)

        assert (status, body["redemption"], body["id"]) == (200, unknown, fake.rollback_id(unknown))
        assert rollback(fake, unknown)[2]["key"] == "already_rolled_back"
        assert rollback(fake, "rf_unknown0000000001")[0] == 404  # a failed attempt is never rolled back


@pytest.mark.parametrize(("flags", "answer"), [((), 404), (("--strict",), 404), (("--lenient",), 200)])
def test_the_fake_alone_is_strict_unless_told_lenient(flags: tuple[str, ...], answer: int) -> None:
    command = [sys.executable, "-m", "ledger_dev.fake_voucherify", "--port", "0", *flags]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            url = re.search(r"on (http://127\.0\.0\.1:\d+) ", line)
            assert url, line
            assert call(url.group(1), "/v1/redemptions/r_unknown00000000001/rollback")[0] == answer
        finally:
            process.terminate()


def test_stacks(fake: FakeVoucherify) -> None:
    fake.add_stack("r_parent000000000001", ["r_child0000000000001", "r_child0000000000002"], order_id="ord_1")

    assert rollback(fake, "r_parent000000000001")[2]["key"] == "invalid_redemption"
    assert rollback(fake, "r_child0000000000001")[2]["key"] == "invalid_redemption_parent"
    assert rollback(fake, "r_child0000000000001", "rollbacks")[2]["key"] == "invalid_redemption_parent"
    status, _, stack = rollback(fake, "r_parent000000000001", "rollbacks")

    assert status == 200
    assert sorted(r["redemption"] for r in stack["rollbacks"]) == ["r_child0000000000001", "r_child0000000000002"]
    assert stack["parent_rollback"]["redemption"] == "r_parent000000000001"
    assert stack["order"]["id"] == "ord_1"
    assert rollback(fake, "r_parent000000000001", "rollbacks")[2]["key"] == "already_rolled_back"


def documented_error(path: str, example: str) -> dict[str, Any]:
    answers = REDEMPTIONS["paths"][path]["post"]["responses"]
    status = next(
        code for code, answer in answers.items() if example in answer["content"]["application/json"].get("examples", {})
    )
    return answers[status]["content"]["application/json"]["examples"][example]["value"]


STACK_ERRORS = [  # (redemption, endpoint, the example of redemptions.json it answers)
    ("r_child0000000000001", "rollback", "/v1/redemptions/{redemptionId}/rollback", "Invalid Redemption Parent"),
    ("r_parent000000000001", "rollback", "/v1/redemptions/{redemptionId}/rollback", "Invalid Redemption"),
    (
        "r_child0000000000001",
        "rollbacks",
        "/v1/redemptions/{parentRedemptionId}/rollbacks",
        "Invalid Redemption Parent",
    ),
]


@pytest.mark.parametrize(("redemption_id", "endpoint", "path", "example"), STACK_ERRORS)
def test_a_stacks_errors_are_the_documented_answers_with_a_request_id(
    fake: FakeVoucherify, redemption_id: str, endpoint: str, path: str, example: str
) -> None:
    fake.add_stack("r_parent000000000001", ["r_child0000000000001"], order_id="ord_1")
    documented = documented_error(path, example)

    status, _, body = rollback(fake, redemption_id, endpoint)

    assert status == documented["code"]
    assert set(body) == set(documented)  # request_id, and no resource_id where Voucherify's example has none
    assert {k: body[k] for k in ("code", "key", "message", "details")} == {
        k: documented[k] for k in ("code", "key", "message", "details")
    }
    assert re.fullmatch(r"v-[0-9a-f]{18}", body["request_id"]) and re.fullmatch(
        r"v-[0-9a-f]{18}", documented["request_id"]
    )
    assert fake.requests[-1].answer_request_id == body["request_id"]
    assert fake.rollback_id(redemption_id) is None  # nothing rolled back


def test_the_stack_endpoint_rolls_back_the_parent_and_every_child_with_the_orders_source_id(
    fake: FakeVoucherify,
) -> None:
    children = ["r_child0000000000001", "r_child0000000000002", "r_child0000000000003"]
    fake.add_stack("r_parent000000000001", children, order_id="ord_1", order_source_id="1001")

    status, _, stack = rollback(fake, "r_parent000000000001", "rollbacks")

    assert status == 200 and fake.calls() == 1
    assert {r["redemption"]: r["id"] for r in stack["rollbacks"]} == {c: fake.rollback_id(c) for c in children}
    assert stack["parent_rollback"]["id"] == fake.rollback_id("r_parent000000000001")
    assert {r["order"]["source_id"] for r in [*stack["rollbacks"], stack["parent_rollback"]]} == {"1001"}
    # after the stack: a child is still a child, the parent already rolled back (the documented example)
    assert rollback(fake, children[0])[2]["key"] == "invalid_redemption_parent"
    documented = documented_error("/v1/redemptions/{parentRedemptionId}/rollbacks", "Already rolled back")
    again = rollback(fake, "r_parent000000000001", "rollbacks")[2]
    assert (again["key"], again["resource_type"]) == (documented["key"], documented["resource_type"])
    assert again["resource_id"].startswith("rrf_") and again["request_id"].startswith("v-")


@pytest.mark.parametrize("key", sorted(ERRORS))
def test_each_documented_error_can_be_injected(fake: FakeVoucherify, key: str) -> None:
    fake.fail("error", key=key)

    status, _, body = rollback(fake)

    assert (status, body["code"], body["key"]) == (ERRORS[key][0], ERRORS[key][0], key)
    assert body["message"] == ERRORS[key][1]
    assert body["request_id"].startswith("v-")  # every error answer of Voucherify carries one
    assert rollback(fake)[0] == 200  # times=1: the next call is normal


def test_status_failure_and_429_faults(fake: FakeVoucherify) -> None:
    fake.fail("status", status=502)
    fake.fail("failure")
    fake.fail("rate_limit", retry_after=4)

    bad_gateway = rollback(fake)
    failed = rollback(fake)
    limited = rollback(fake)

    assert bad_gateway[0] == 502
    assert (failed[0], failed[2]["result"], failed[2]["status"], failed[2]["failure_code"]) == (
        200,
        "FAILURE",
        "FAILED",
        "customer_rules_violated",
    )
    assert fake.rollback_id(R) is None  # a failed rollback leaves the redemption
    assert limited[0] == 429
    assert limited[1]["Retry-After"] == "4" and limited[1]["X-Rate-Limit-Remaining"] == "0"
    assert int(limited[1]["X-Rate-Limit-Retry"]) > 1_700_000_000


def test_faults_can_target_one_redemption_and_a_seeded_share(fake: FakeVoucherify) -> None:
    fake.fail("status", status=500, redemption_id="r_other00000000000001", times=None)
    assert rollback(fake)[0] == 200
    assert rollback(fake, "r_other00000000000001")[0] == 500

    def statuses(seed: int) -> list[int]:
        with FakeVoucherify(seed=seed) as seeded:
            for i in range(16):
                seeded.add_redemption(f"r_share{i:015d}")
            seeded.fail("status", status=503, times=None, probability=0.5)
            return [rollback(seeded, f"r_share{i:015d}")[0] for i in range(16)]

    first, again = statuses(42), statuses(42)
    assert first == again  # seeded: the same share of the same requests fails
    assert set(first) == {200, 503}


def test_the_rate_limit_answers_429_with_headers(fake: FakeVoucherify) -> None:
    for i in range(3):
        fake.add_redemption(f"r_rate{i:016d}")
    fake.rate_limit_per_minute = 2
    try:
        answers = [rollback(fake, f"r_rate{i:016d}") for i in range(3)]
    finally:
        fake.rate_limit_per_minute = None

    assert [a[0] for a in answers] == [200, 200, 429]
    assert answers[0][1]["X-Rate-Limit-Limit"] == "2" and answers[1][1]["X-Rate-Limit-Remaining"] == "0"
    headers = answers[2][1]
    assert 0 < int(headers["Retry-After"]) <= 60 and headers["X-Rate-Limit-Type"]


def test_timeouts_and_dropped_connections_get_no_answer(fake: FakeVoucherify) -> None:
    import http.client

    fake.fail("timeout", seconds=5, apply=True)
    fake.fail("drop")
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(
            urllib.request.Request(f"{fake.url}/v1/redemptions/{R}/rollback", b"{}", KEYS, method="POST"), timeout=0.3
        )
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        rollback(fake, "r_dropped00000000001")

    assert fake.rollback_id(R) is not None  # apply=True: rolled back, the answer lost
    assert fake.rollback_id("r_dropped00000000001") is None


def test_the_control_endpoint(fake: FakeVoucherify) -> None:
    assert call(fake.url, "/_fake/faults", {"kind": "error", "key": "invalid_order"}, headers={})[0] == 201
    assert rollback(fake)[2]["key"] == "invalid_order"
    call(fake.url, "/_fake/faults", {"kind": "status", "status": 500, "times": None}, headers={})
    assert call(fake.url, "/_fake/faults", None, headers={}, method="DELETE")[0] == 200
    call(fake.url, "/_fake/redemptions", {"id": "r_ctl00000000000001", "order_id": "ord_c"}, headers={})
    assert rollback(fake, "r_ctl00000000000001")[2]["order"]["id"] == "ord_c"

    status, _, state = call(fake.url, "/_fake/state", headers={}, method="GET")

    assert status == 200 and state["calls"] == {R: 1, "r_ctl00000000000001": 1}
    assert list(state["rolled_back"]) == ["r_ctl00000000000001"] and state["faults"] == []
    assert call(fake.url, "/_fake/faults", {"kind": "nope"}, headers={})[0] == 400
    assert call(fake.url, "/_fake/reset", {}, headers={})[0] == 200 and fake.calls() == 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as server:
        yield server


def test_a_successful_rollback_sends_the_signed_webhook(receiver: Receiver) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}/webhooks/redemption-rollback-succeeded"
    with FakeVoucherify(webhook_url=url, webhook_secret="s3cret", webhook_delay=0.0) as fake:
        fake.add_redemption(R, order_id="ord_w", customer_id="cust_w", voucher_code="CODE-1", amount=500)
        _, _, answer = rollback(fake)
        assert fake.wait_for_webhooks(5)

    ((_, headers, raw),) = receiver.received
    assert verify_signature("s3cret", raw, headers["x-voucherify-signature"])
    envelope = WebhookEnvelope.model_validate_json(raw)
    assert (envelope.type, envelope.event.type) == ("redemption.rollback.succeeded", "redemption.rollback.succeeded")
    data = EventRedemptionRollbackSucceededData.model_validate(envelope.data)
    assert (data.redemption_id, data.redemption_rollback.id) == (R, answer["id"])
    assert data.order.id == "ord_w" and data.voucher.code == "CODE-1"
    assert [w.status for w in fake.webhooks] == [200]
