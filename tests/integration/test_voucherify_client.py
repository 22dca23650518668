"""The urllib3 Voucherify client, against the fake over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from ledger_dev.fake_voucherify import FakeVoucherify, api_secret_value
from ledger_dev.harness.template import PROJECT_ROOT
from support.functions import Aws
from voucherify_ledger.voucherify_api import (
    CLIENT_VERSION,
    USER_AGENT,
    ApiCredentials,
    ApiResponse,
    CredentialsUnavailableError,
    RollbackBody,
    SecretCredentials,
    StaticCredentials,
    VoucherifyClient,
    VoucherifyUnavailableError,
)

TOKEN = "secret-token-value"
R = "r_0e2500291ae016adea"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeVoucherify]:
    with FakeVoucherify(app_id="app-1", app_token=TOKEN, webhook_delay=None) as server:
        yield server


@pytest.fixture
def client(fake: FakeVoucherify) -> VoucherifyClient:
    fake.reset()
    fake.add_redemption(R)  # the fake answers 404 for any other redemption, as Voucherify does
    return VoucherifyClient(fake.url, StaticCredentials("app-1", TOKEN), connect_timeout=1, read_timeout=0.5)


def test_the_version_in_the_user_agent_is_the_projects() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["version"] == CLIENT_VERSION
    assert f"voucherify-redemption-ledger/{project['version']}" == USER_AGENT


def test_a_rollback_request_as_the_api_documents_it(client: VoucherifyClient, fake: FakeVoucherify) -> None:
    body = RollbackBody(
        reason="Zwrot – anulowano & co",
        tracking_id="track/1",
        customer={"id": "cust_1"},
        order={"source_id": "o-1"},
        metadata={"k": [1]},
    )

    answer = client.rollback_redemption(R, body)

    assert (answer.status, answer.ok, answer.endpoint) == (200, True, "rollback")
    assert answer.body["object"] == "redemption_rollback" and answer.body["redemption"] == R
    assert answer.body["reason"] == "Zwrot – anulowano & co"
    (sent,) = fake.requests
    assert sent.path == f"/v1/redemptions/{R}/rollback"
    assert sent.query == {"reason": "Zwrot – anulowano & co", "tracking_id": "track/1"}
    assert sent.body == {"customer": {"id": "cust_1"}, "order": {"source_id": "o-1"}, "metadata": {"k": [1]}}
    assert (sent.app_id, sent.user_agent) == ("app-1", USER_AGENT)


def test_errors_come_back_typed(client: VoucherifyClient, fake: FakeVoucherify) -> None:
    client.rollback_redemption(R)

    again = client.rollback_redemption(R)
    missing = client.rollback_redemption("r_0000000000000000ff")

    assert (again.status, again.error_key, again.error_message) == (400, "already_rolled_back", "Already rolled back")
    assert again.error_details == "Redemption has been already rolled back." and again.request_id.startswith("v-")
    assert (missing.status, missing.error_key) == (404, "not_found")


def test_the_stack_endpoint(client: VoucherifyClient, fake: FakeVoucherify) -> None:
    fake.add_stack("r_parent000000000001", ["r_child0000000000001"])

    single = client.rollback_redemption("r_parent000000000001")
    stack = client.rollback_stacked_redemptions("r_parent000000000001")

    assert (single.status, single.error_key) == (400, "invalid_redemption")
    assert (stack.status, stack.endpoint) == (200, "rollbacks")
    assert [r["redemption"] for r in stack.body["rollbacks"]] == ["r_child0000000000001"]
    assert stack.body["parent_rollback"]["redemption"] == "r_parent000000000001"


def test_a_429_tells_when_to_retry(client: VoucherifyClient, fake: FakeVoucherify) -> None:
    fake.fail("rate_limit", retry_after=7)

    answer = client.rollback_redemption(R)

    assert answer.status == 429
    assert answer.headers["retry-after"] == "7" and answer.rate_limit_remaining == 0
    retry_at = int(answer.headers["x-rate-limit-retry"])
    assert answer.retry_after(now=retry_at - 7) == pytest.approx(7, abs=1)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3),
        ({"x-rate-limit-retry": "1700000060"}, 60),  # epoch seconds
        ({"x-rate-limit-retry": "1700000060000"}, 60),  # epoch milliseconds
        ({"x-rate-limit-retry": "12"}, 12),  # a delay
        ({"retry-after": "2", "x-rate-limit-retry": "1700000030"}, 30),  # the longer wins
        ({"retry-after": format_datetime(datetime.fromtimestamp(1700000045, UTC), usegmt=True)}, 45),
        ({}, None),
    ],
)
def test_retry_after_reads_every_header_form(headers: dict[str, str], expected: float | None) -> None:
    answer = ApiResponse(429, None, headers, b"")
    assert answer.retry_after(now=1700000000) == expected


def test_a_hung_answer_is_a_timeout(client: VoucherifyClient, fake: FakeVoucherify) -> None:
    fake.fail("timeout", seconds=2)
    with pytest.raises(VoucherifyUnavailableError) as caught:
        client.rollback_redemption(R)
    assert caught.value.kind == "timeout"


def test_a_dropped_connection_and_a_refused_one_are_connection_errors(
    client: VoucherifyClient, fake: FakeVoucherify
) -> None:
    fake.fail("drop")
    with pytest.raises(VoucherifyUnavailableError) as dropped:
        client.rollback_redemption(R)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    refused = VoucherifyClient(f"http://127.0.0.1:{port}", StaticCredentials("a", "b"), connect_timeout=0.5)
    with pytest.raises(VoucherifyUnavailableError) as not_listening:
        refused.rollback_redemption(R)

    assert (dropped.value.kind, not_listening.value.kind) == ("connection", "connection")


def test_wrong_keys_get_401(fake: FakeVoucherify) -> None:
    fake.reset()
    wrong = VoucherifyClient(fake.url, StaticCredentials("app-1", "not-the-token"))
    answer = wrong.rollback_redemption(R)
    assert (answer.status, answer.error_key) == (401, "unauthorized")
    assert fake.rollback_id(R) is None


def test_tokens_never_reach_logs_or_reprs(
    client: VoucherifyClient, fake: FakeVoucherify, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.rollback_redemption(R, RollbackBody(reason="r"))
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(ApiCredentials("app-1", TOKEN))


def test_credentials_from_secrets_manager(aws: Aws) -> None:
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    aws.secrets.create_secret(Name="api/good", SecretString=api_secret_value("app-9", "tok-9"))
    aws.secrets.create_secret(Name="api/bad", SecretString=json.dumps({"app_id": "x"}))

    assert SecretCredentials("api/good").get() == ApiCredentials("app-9", "tok-9")
    with pytest.raises(CredentialsUnavailableError, match="app_token"):
        SecretCredentials("api/bad").get()
    with pytest.raises(CredentialsUnavailableError, match="cannot read"):
        SecretCredentials("api/missing").get()


def test_a_refused_key_re_reads_the_secret_at_most_once_a_minute() -> None:
    secret = {"app_id": "a", "app_token": "old"}  # what Secrets Manager holds
    cached = dict(secret)  # what Powertools has cached
    forced_reads = []
    now = [0.0]

    def fetch(secret_id: str, force: bool) -> dict[str, str]:
        nonlocal cached
        if force:
            forced_reads.append(now[0])
            cached = dict(secret)
        return cached

    credentials = SecretCredentials("api", fetch=fetch, clock=lambda: now[0])
    secret["app_token"] = "new"  # rotated

    assert credentials.refresh() is True and credentials.get().app_token == "new"
    assert credentials.refresh() is False  # within the minute: not read again
    now[0] = 61.0
    assert credentials.refresh() is False  # read again, unchanged
    assert forced_reads == [0.0, 61.0]
