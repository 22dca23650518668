"""The fake Voucherify's read endpoints over HTTP: ``GET /v1/redemptions`` and ``GET /v1/redemptions/{id}`` behind
the same keys, rate limit and faults as the rollback endpoints, documented error bodies, the rollbacks the endpoints
make listed, the history seeded over the control endpoint, and its webhooks sent signed with a share dropped."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from ledger_dev.fake_voucherify import FakeVoucherify
from support.receiver import Receiver, running_receiver
from voucherify_ledger.webhooks.auth import verify_signature

KEYS = {"X-App-Id": "local-app-id", "X-App-Token": "local-app-token"}
END = datetime(2025, 3, 1, tzinfo=UTC)


def get(fake: FakeVoucherify, path: str, params: Any = (), headers: dict[str, str] = KEYS) -> tuple[int, Any]:
    url = fake.url + path + (f"?{urlencode(params)}" if params else "")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def post(fake: FakeVoucherify, path: str, body: Any, headers: dict[str, str] = KEYS) -> tuple[int, Any]:
    request = urllib.request.Request(fake.url + path, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeVoucherify]:
    with FakeVoucherify(webhook_delay=None) as fake:
        yield fake


@pytest.fixture
def fake(shared: FakeVoucherify) -> FakeVoucherify:
    shared.reset()
    shared.seed_history(500, end=END, seed=5)
    return shared


def test_the_list_pages_the_history_with_its_total(fake: FakeVoucherify) -> None:
    status, first = get(fake, "/v1/redemptions", {"limit": 100, "page": 1, "order": "created_at"})
    _, last = get(fake, "/v1/redemptions", {"limit": 100, "page": 5, "order": "created_at"})
    _, beyond = get(fake, "/v1/redemptions", {"limit": 100, "page": 6})

    oldest = [o["id"] for o in fake.history()]
    assert status == 200 and set(first) == {"object", "data_ref", "redemptions", "total"}
    assert (first["object"], first["data_ref"], first["total"]) == ("list", "redemptions", 500)
    assert [o["id"] for o in first["redemptions"]] == oldest[:100]
    assert [o["id"] for o in last["redemptions"]] == oldest[400:]
    assert beyond["redemptions"] == [] and beyond["total"] == 500
    assert get(fake, "/v1/redemptions")[1]["redemptions"][0]["id"] == oldest[-1]  # default: newest first, 10
    assert fake.state()["history"]["listed"] == 210


@pytest.mark.parametrize("params", [{"limit": 101}, {"limit": 0}, {"page": 100}, {"created_at[before]": "soon"}])
def test_a_query_out_of_bounds_is_a_documented_400(fake: FakeVoucherify, params: dict[str, Any]) -> None:
    status, body = get(fake, "/v1/redemptions", params)

    assert status == 400
    assert set(body) == {"code", "key", "message", "details", "request_id"} and body["code"] == 400
    assert next(iter(params)) in body["details"] and body["request_id"].startswith("v-")
    assert get(fake, "/v1/redemptions", {"page": 99})[0] == 200


def test_the_read_endpoints_need_the_keys_and_get_answers_one_object_or_404(fake: FakeVoucherify) -> None:
    some = fake.history()[42]
    assert get(fake, "/v1/redemptions", headers={})[0] == 401
    assert get(fake, f"/v1/redemptions/{some['id']}", headers={**KEYS, "X-App-Token": "no"})[0] == 401

    status, found = get(fake, f"/v1/redemptions/{some['id']}")
    missing_status, missing = get(fake, "/v1/redemptions/r_0000000000nothere")

    assert (status, found) == (200, some)
    assert (missing_status, missing["key"], missing["resource_id"]) == (404, "not_found", "r_0000000000nothere")
    assert [r.endpoint for r in fake.requests] == ["list", "get", "get", "get"]


def test_rollbacks_the_endpoints_make_are_listed_and_seeded_rollbacks_are_known(fake: FakeVoucherify) -> None:
    objects = fake.history()
    rolled = next(
        o
        for o in objects
        if o["id"].startswith("r_")
        and o["status"] == "ROLLED_BACK"
        and not o["redemption"]
        and o["related_object_type"] != "redemption"
    )
    lone = next(
        o
        for o in objects
        if o["id"].startswith("r_")
        and o["status"] == "SUCCEEDED"
        and not o["redemption"]
        and o["related_object_type"] != "redemption"
    )

    again = post(fake, f"/v1/redemptions/{rolled['id']}/rollback", {})
    status, rollback = post(fake, f"/v1/redemptions/{lone['id']}/rollback", {"reason": "cancelled"})
    fake.add_redemption("r_added000000000001", order_id="ord_added")

    assert (again[0], again[1]["key"]) == (400, "already_rolled_back")
    assert status == 200
    _, newest = get(fake, "/v1/redemptions", {"limit": 2})
    assert [o["id"] for o in newest["redemptions"]] == ["r_added000000000001", rollback["id"]]
    assert newest["total"] == 502
    _, redemption = get(fake, f"/v1/redemptions/{lone['id']}")
    assert redemption["status"] == "ROLLED_BACK"
    assert [r["id"] for r in redemption["related_redemptions"]["rollbacks"]] == [rollback["id"]]
    listed = get(fake, "/v1/redemptions", {"filters[object][conditions][$is]": "redemption_rollback", "limit": 100})[1]
    assert listed["total"] == sum(1 for o in objects if o["object"] == "redemption_rollback") + 1


def test_faults_and_the_rate_limit_apply_to_the_list(fake: FakeVoucherify) -> None:
    fake.fail("status", status=503)
    assert get(fake, "/v1/redemptions")[0] == 503
    some = fake.history()[0]["id"]
    fake.fail("error", key="not_found", redemption_id=some)
    assert get(fake, f"/v1/redemptions/{some}")[0] == 404 and get(fake, f"/v1/redemptions/{some}")[0] == 200
    fake.add_redemption("r_rate0000000001")
    fake.rate_limit_per_minute = 2
    try:
        answers = [get(fake, "/v1/redemptions")[0], post(fake, "/v1/redemptions/r_rate0000000001/rollback", {})[0]]
        answers.append(get(fake, "/v1/redemptions")[0])
    finally:
        fake.rate_limit_per_minute = None
    assert answers == [200, 200, 429]


def test_the_control_endpoint_seeds_a_history(shared: FakeVoucherify) -> None:
    shared.reset()
    status, answer = post(
        shared, "/_fake/history", {"count": 300, "days": 30, "seed": 2, "end": "2025-03-01T00:00:00Z"}, headers={}
    )
    _, state = get(shared, "/_fake/state", headers={})

    assert status == 201 and answer["history"]["objects"] == 300
    history = state["history"]
    assert (
        history["redemptions"] + history["failed_redemptions"] + history["rollbacks"] + history["failed_rollbacks"]
        == 300
    )
    assert history["rollbacks"] >= 30 and state["redemptions"] == []
    assert min(o["date"] for o in shared.history()) >= "2025-01-30"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as server:
        yield server


def test_the_historys_webhooks_go_signed_to_their_routes_with_a_seeded_share_dropped(receiver: Receiver) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}/webhooks/redemption-rollback-succeeded"
    with FakeVoucherify(webhook_url=url, webhook_secret="s3cret", drop_share=0.25, seed=3) as fake:
        fake.seed_history(200, end=END)
        expected = fake.history_webhooks()
        deliveries = fake.send_history_webhooks()
        dropped = fake.state()["webhooks_dropped"]

    assert 20 < dropped < 80 and len(receiver.received) == len(deliveries) == 200 - dropped
    assert {d.status for d in deliveries} == {200}
    sent = {(path, raw) for path, _, raw in receiver.received}
    assert sent < set(expected)
    assert all(
        verify_signature("s3cret", raw, headers["x-voucherify-signature"]) for _, headers, raw in receiver.received
    )
    assert {path for path, _ in sent} == {"/webhooks/redemption-succeeded", "/webhooks/redemption-rollback-succeeded"}
