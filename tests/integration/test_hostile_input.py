"""Hostile input, property-based (hypothesis): the real handlers, loaded from template.yaml with moto behind them.

Webhooks (through API Gateway HTTP API v2 events): arbitrary bytes and JSON, the seed payloads with a wrong type,
a huge value or deep nesting in any field, duplicated keys, invalid UTF-8, base64 flags that lie, missing,
duplicated and oversized headers, signatures of the wrong length. Rollback worker (SQS events): arbitrary bodies
and RollbackRequests with the same damage.

Properties, storage being healthy:
- never a 5xx answer and never an exception out of a handler;
- an unauthenticated delivery writes nothing at all;
- an authentic one writes nothing but its quarantine record, unless it is a valid event (answered 200);
- a worker message that is not a RollbackRequest is recorded as rejected, calls no API and is not retried.

Every test runs a fixed number of derandomized examples (no example database), so ``make test`` tries the same
cases each run; the count is printed in the test summary ("hostile input: N cases").
"""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_dev.harness.apigw import LambdaContext, http_api_event, response_parts
from support.damage import (
    HOSTILE,
    MAX_BODY_BYTES,
    arbitrary_bodies,
    damaged_payloads,
    json_values,
    on_the_wire,
    paths,
    seeds,
    serialise,
    wrong_signatures,
    wrong_values,
)
from support.functions import HEADER_TOKEN, ROUTES, SIGNING_SECRET, LambdaApp
from support.worker import Harness
from voucherify_ledger.webhooks.auth import sign, strip_json_whitespace

WRITE_OPERATIONS = {"put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"}
WEBHOOKS = sorted(ROUTES)


# --- what the ledger was asked to write ---------------------------------------------------------------
class WriteRecorder:
    """Wraps a boto3 DynamoDB client; keeps the partition key of every write since ``reset``."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.written: list[str] = []

    def reset(self) -> None:
        self.written = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in WRITE_OPERATIONS:
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            self.written += _partition_keys(name, kwargs)
            return method(*args, **kwargs)

        return call


def _partition_keys(operation: str, kwargs: dict[str, Any]) -> list[str]:
    if operation == "transact_write_items":
        return [key for item in kwargs["TransactItems"] for body in item.values() for key in _partition_keys("", body)]
    if operation == "batch_write_item":
        return ["<batch>"]
    item = kwargs.get("Item") or kwargs.get("Key") or {}
    return [item.get("pk", {}).get("S", "<no pk>")]


def webhook_event(function: str, body: str, is_base64: bool, headers: list[tuple[str, str]]) -> dict[str, Any]:
    event = http_api_event("POST", ROUTES[function], b"", headers, base64_encoded=False)
    event["body"] = body
    event["isBase64Encoded"] = is_base64
    return event


def deliver(app: LambdaApp, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The handler's answer as API Gateway reads it; an exception out of the handler fails the property."""
    status, headers, body = response_parts(app.module.lambda_handler(event, LambdaContext(app.logical_id)))
    assert headers.get("content-type") == "application/json"
    return status, json.loads(body)


@pytest.fixture
def webhook(lambda_app: Callable[..., LambdaApp]) -> Callable[[str], tuple[LambdaApp, WriteRecorder]]:
    loaded: dict[tuple[str, str], tuple[LambdaApp, WriteRecorder]] = {}

    def load(function: str, allowed_source_cidrs: str = "") -> tuple[LambdaApp, WriteRecorder]:
        if (function, allowed_source_cidrs) not in loaded:  # once per test, not per example
            app = lambda_app(function, ALLOWED_SOURCE_CIDRS=allowed_source_cidrs)
            recorder = WriteRecorder(app.receiver.ledger.client)
            app.receiver.ledger.client = recorder
            loaded[function, allowed_source_cidrs] = (app, recorder)
        return loaded[function, allowed_source_cidrs]

    return load


def assert_only_quarantine_written(status: int, answer: dict[str, Any], written: list[str], honest: bool) -> None:
    """An authentic delivery; when the base64 flag lies, the handler sees other bytes than were signed (401)."""
    assert status < 500, answer
    if status == 401 and not honest:
        assert written == [], written
        return
    if status == 200:  # the damage left a valid event: recorded (or a duplicate of one)
        assert answer["status"] in ("recorded", "duplicate"), answer
    elif status == 202:
        assert answer["status"] == "quarantined" and answer["quarantine_id"].startswith("q_"), answer
        assert written and all(pk.startswith("QUARANTINE#") for pk in written), written
    else:
        assert status in (400, 413) and written == [], (status, answer, written)


@pytest.mark.parametrize("function", WEBHOOKS)
@settings(HOSTILE, max_examples=250)
@given(data=st.data())
def test_signed_damaged_seed_payloads_are_quarantined_never_a_5xx(
    webhook: Callable[..., tuple[LambdaApp, WriteRecorder]],
    count_cases: Callable[[], None],
    function: str,
    data: st.DataObject,
) -> None:
    app, recorder = webhook(function)
    raw = data.draw(damaged_payloads(function))
    body, is_base64, honest = data.draw(on_the_wire(raw))
    recorder.reset()
    count_cases()
    headers = [("content-type", "application/json"), ("x-voucherify-signature", sign(SIGNING_SECRET, raw))]
    status, answer = deliver(app, webhook_event(function, body, is_base64, headers))
    assert_only_quarantine_written(status, answer, recorder.written, honest)
    if len(raw) > MAX_BODY_BYTES:
        assert status == 413
    if status == 200:
        # Valid after all (the damage hit a free-form or optional field): a ledger record, nothing else.
        assert all(pk.startswith("REDEMPTION#") for pk in recorder.written), recorder.written


@pytest.mark.parametrize("function", WEBHOOKS)
@settings(HOSTILE, max_examples=300)
@given(data=st.data())
def test_authentic_arbitrary_bodies_never_a_5xx(
    webhook: Callable[..., tuple[LambdaApp, WriteRecorder]],
    count_cases: Callable[[], None],
    function: str,
    data: st.DataObject,
) -> None:
    app, recorder = webhook(function)
    raw = data.draw(arbitrary_bodies)
    body, is_base64, honest = data.draw(on_the_wire(raw))
    # The redemption URL accepts signed deliveries only (RedemptionWebhookAuth); the rollback URL the token too.
    credentials = (
        ["signature", "SIGNATURE", "token"]
        if function == "RedemptionRollbackSucceededFunction"
        else ["signature", "SIGNATURE"]
    )
    authenticate = data.draw(st.sampled_from(credentials))
    headers = [("content-type", data.draw(st.sampled_from(["application/json", "text/plain", ""])))]
    if authenticate == "token":
        headers.append(("x-voucherify-token", HEADER_TOKEN))
    else:
        signature = sign(SIGNING_SECRET, raw)
        headers.append(("x-voucherify-signature", signature.upper() if authenticate == "SIGNATURE" else signature))
    recorder.reset()
    count_cases()
    status, answer = deliver(app, webhook_event(function, body, is_base64, headers))
    assert_only_quarantine_written(status, answer, recorder.written, honest)
    assert status != 200 or recorder.written, answer


@pytest.mark.parametrize("function", WEBHOOKS)
@settings(HOSTILE, max_examples=300)
@given(data=st.data())
def test_unauthenticated_deliveries_write_nothing(
    webhook: Callable[..., tuple[LambdaApp, WriteRecorder]],
    count_cases: Callable[[], None],
    function: str,
    data: st.DataObject,
) -> None:
    app, recorder = webhook(function)
    raw = data.draw(
        st.one_of(
            arbitrary_bodies,
            damaged_payloads(function),
            st.sampled_from(seeds(function)).map(lambda d: json.dumps(d).encode("utf-8")),
        )
    )
    body, is_base64, _honest = data.draw(on_the_wire(raw))
    headers: list[tuple[str, str]] = [("content-type", "application/json")]
    for _ in range(data.draw(st.integers(0, 3))):  # missing, once, or repeated (API Gateway joins with commas)
        name = data.draw(st.sampled_from(["x-voucherify-signature", "X-Voucherify-Signature", "x-voucherify-token"]))
        value = data.draw(wrong_signatures)
        if name.lower() == "x-voucherify-signature" and data.draw(st.booleans()):
            value = sign(SIGNING_SECRET, raw)  # a right signature, repeated or beside a wrong one
        headers.append((name, value))
    joined = http_api_event("POST", "/", b"", headers)["headers"]
    if joined.get("x-voucherify-signature", "").strip().lower() == sign(SIGNING_SECRET, raw):
        headers = [("content-type", "application/json")]  # the draw produced one genuine signature: not this test's
    recorder.reset()
    count_cases()
    status, answer = deliver(app, webhook_event(function, body, is_base64, headers))
    assert status in (400, 401, 413), (status, answer)
    assert recorder.written == []
    assert answer["status"] in ("bad_request", "unauthorized", "too_large")
    assert SIGNING_SECRET not in json.dumps(answer) and HEADER_TOKEN not in json.dumps(answer)


# --- the source-IP allow-list --------------------------------------------------------------------------
ALLOWED = "34.247.197.22,63.32.191.141,52.215.148.84,2001:db8::/32"

addresses = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["34.247.197.22", "63.32.191.141", "::ffff:34.247.197.22", "2001:db8::1", "34.247.197.23"]),
    st.text(max_size=60),
    st.sampled_from(["", " ", "34.247.197.22, 1.2.3.4", "34.247.197.22/32", "localhost", "0x22f7c516"]),
)


@settings(HOSTILE, max_examples=200)
@given(data=st.data())
def test_callers_outside_the_allow_list_get_403_before_anything_else(
    webhook: Callable[..., tuple[LambdaApp, WriteRecorder]], count_cases: Callable[[], None], data: st.DataObject
) -> None:
    import ipaddress

    function = data.draw(st.sampled_from(WEBHOOKS))
    app, recorder = webhook(function, ALLOWED)
    source_ip = data.draw(addresses)
    raw = json.dumps(seeds(function)[0]).encode("utf-8")
    event = http_api_event(
        "POST", ROUTES[function], raw, {"x-voucherify-signature": sign(SIGNING_SECRET, raw)}, source_ip=source_ip
    )
    if data.draw(st.booleans()):
        event["headers"]["x-forwarded-for"] = "34.247.197.22"  # a header anyone can set: never trusted
    recorder.reset()
    count_cases()
    status, answer = deliver(app, event)
    try:
        address = ipaddress.ip_address(source_ip)
        mapped = getattr(address, "ipv4_mapped", None) or address
        allowed = any(mapped in ipaddress.ip_network(n) for n in ALLOWED.split(","))
    except ValueError:
        allowed = False
    if allowed:
        assert status == 200, answer
    else:
        # the same answer whatever the address (it is logged for the operator, never echoed)
        assert (status, answer) == (
            403,
            {"status": "forbidden", "error": "the caller's address is not an allowed webhook sender"},
        )
        assert recorder.written == []


# --- the rollback worker -------------------------------------------------------------------------------
VALID_REQUESTS = [
    {"redemption_id": "r_0e2500291ae016adea", "reason": "Order cancelled", "request_id": "cancel-1001"},
    {"order_id": "ord_p6B1A0y805yUQQaCw4bC6Fbk", "reason": "Refund"},
    {
        "redemption_id": "r_0e6ff48b91cfa02e97",
        "tracking_id": "track-1",
        "customer": {"source_id": "c-1"},
        "order": {"source_id": "o-1"},
        "metadata": {"k": "v"},
    },
]


@st.composite
def damaged_requests(draw: st.DrawFn) -> str:
    document = copy.deepcopy(draw(st.sampled_from(VALID_REQUESTS)))
    path = draw(st.sampled_from(list(paths(document))))
    *parents, last = path
    parent = document
    for part in parents:
        parent = parent[part]
    if draw(st.booleans()):
        del parent[last]
    else:
        parent[last] = draw(wrong_values())
    return serialise(document, draw(st.sampled_from([50, 5_000, 60_000]))).decode("utf-8", "replace")


message_bodies = st.one_of(
    damaged_requests(),
    damaged_requests(),
    st.text(max_size=300),
    json_values.map(json.dumps),
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace")),
    st.integers(1, 60_000).map(lambda n: "[" * n + "]" * n),
    st.sampled_from(["", "{}", "null", "[]", '{"redemption_id": "r_1", "order_id": "ord_1"}', "x" * 262_144]),
)


def sqs_event(bodies: list[str], receive_count: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"00000000-0000-4000-8000-{index:012d}",
                "receiptHandle": f"handle-{index}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": receive_count,
                    "SentTimestamp": "1763791200000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1763791200012",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:rollback-test-RollbackQueue",
                "awsRegion": "eu-west-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


@settings(HOSTILE, max_examples=300)
@given(data=st.data())
def test_worker_survives_hostile_messages_and_rejects_what_is_not_a_request(
    harness: Harness,
    count_cases: Callable[[], None],
    data: st.DataObject,
) -> None:
    import sys

    from pydantic import ValidationError

    from voucherify_ledger.models.rollback_request import RollbackRequest

    module = sys.modules["functions.RollbackWorkerFunction.app"]
    recorder = WriteRecorder(module.worker.ledger.client)
    module.worker.ledger.client = recorder
    crashes: list[str] = []
    logger_exception = module.worker.logger.exception
    module.worker.logger.exception = lambda message, **kw: crashes.append(message)
    try:
        bodies = data.draw(st.lists(message_bodies, min_size=1, max_size=4))
        valid = []
        for body in bodies:
            try:
                RollbackRequest.model_validate_json(body)
                valid.append(True)
            except ValidationError:
                valid.append(False)
        calls_before = harness.fake.calls()
        count_cases()
        answer = harness.handler(sqs_event(bodies, "1"), LambdaContext("RollbackWorkerFunction", timeout_seconds=30))
    finally:
        module.worker.ledger.client = recorder._client
        module.worker.logger.exception = logger_exception
    assert crashes == []
    assert isinstance(answer, dict) and isinstance(answer.get("batchItemFailures"), list)
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    for index, ok in enumerate(valid):
        message_id = f"00000000-0000-4000-8000-{index:012d}"
        if not ok:
            assert message_id not in failed  # rejected for good, not retried
            assert f"REQUEST#{message_id}" in recorder.written
    if not any(valid):
        assert harness.fake.calls() == calls_before
        assert all(pk.startswith("REQUEST#") for pk in recorder.written), recorder.written


# --- crafted bodies aimed at the signature check, which runs before authentication --------------------------
def crafted_bodies(size: int) -> dict[str, bytes]:
    """Bodies of ``size`` bytes built to make a string scan backtrack or restart at every quote."""
    return {
        "escaped-quotes": (b'"' + b'\\"' * size)[:size],
        "backslashes": b'"' + b"\\" * (size - 1),
        "escaped-quotes-and-spaces": (b'{"a":"' + b'\\" ' * size)[:size],
        "empty-strings": b'""' * (size // 2),
        "quote-space": b'" ' * (size // 2),
    }


def signature_check_seconds(app: LambdaApp, function: str, raw: bytes, repeat: int = 5) -> float:
    """The best of ``repeat`` handler runs for ``raw`` with a wrong signature of the right length (answered 401)."""
    event = webhook_event(function, raw.decode("latin-1"), False, [("x-voucherify-signature", "0" * 64)])
    event["body"] = base64.b64encode(raw).decode("ascii")
    event["isBase64Encoded"] = True
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        status, answer = deliver(app, event)
        best = min(best, time.perf_counter() - started)
        assert (status, answer["status"]) == (401, "unauthorized")
    return best


@pytest.mark.parametrize("kind", sorted(crafted_bodies(64)))
@pytest.mark.parametrize("function", WEBHOOKS)
def test_crafted_bodies_are_refused_or_read_without_a_write(
    webhook: Callable[..., tuple[LambdaApp, WriteRecorder]], function: str, kind: str
) -> None:
    """At the 256 KB limit: a wrong signature is a 401 and a right one (it is not JSON, or not an event) a 400 or a
    quarantine; nothing but a quarantine record is written."""
    app, recorder = webhook(function)
    raw = crafted_bodies(MAX_BODY_BYTES)[kind]
    assert len(raw) == MAX_BODY_BYTES or kind in ("empty-strings", "quote-space")
    signature_check_seconds(app, function, raw, repeat=1)  # asserts the 401
    assert recorder.written == []
    body = base64.b64encode(raw).decode("ascii")
    status, answer = deliver(
        app, webhook_event(function, body, True, [("x-voucherify-signature", sign(SIGNING_SECRET, raw))])
    )
    assert status in (400, 202), (status, answer)
    assert all(pk.startswith("QUARANTINE#") for pk in recorder.written), recorder.written


@pytest.mark.parametrize("kind", ["escaped-quotes", "escaped-quotes-and-spaces", "backslashes"])
def test_the_signature_check_grows_linearly_with_a_crafted_body(
    webhook: Callable[..., tuple[LambdaApp, WriteRecorder]], kind: str
) -> None:
    """A 256 KB crafted body against a 16 KB one, measured in the same run: 16× the bytes. Linear work takes about
    16× as long (less, the handler's fixed cost shared); the substitution this replaced took 256× (minutes at
    256 KB). Sizes 4 KB and 256 KB through the whole handler are compared the same way (64× the bytes)."""
    app, _ = webhook("RedemptionSucceededFunction")
    small, large = crafted_bodies(16_384)[kind], crafted_bodies(MAX_BODY_BYTES)[kind]
    strip_json_whitespace(small)  # warm
    small_seconds = min(_timed(strip_json_whitespace, small) for _ in range(7))
    large_seconds = min(_timed(strip_json_whitespace, large) for _ in range(7))
    assert large_seconds / small_seconds < 64, (small_seconds, large_seconds)  # quadratic: 256
    tiny_handler = signature_check_seconds(app, "RedemptionSucceededFunction", crafted_bodies(4_096)[kind], repeat=7)
    large_handler = signature_check_seconds(app, "RedemptionSucceededFunction", large, repeat=7)
    assert large_handler / tiny_handler < 64, (tiny_handler, large_handler)  # quadratic: 4,096


def _timed(function: Callable[[bytes], Any], value: bytes) -> float:
    started = time.perf_counter()
    function(value)
    return time.perf_counter() - started


# --- regressions found by the properties above, pinned -------------------------------------------------
@pytest.mark.parametrize("function", WEBHOOKS)
def test_a_signed_body_nested_too_deeply_for_the_parser_is_a_400(
    webhook: Callable[..., tuple[LambdaApp, WriteRecorder]], function: str
) -> None:
    """json.loads raises RecursionError (not ValueError) past ~1,000 levels: it escaped as a crash (API Gateway 502,
    retried by Voucherify for a day) until the handler caught it."""
    app, recorder = webhook(function)
    raw = b'{"data":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    status, answer = deliver(
        app, webhook_event(function, raw.decode(), False, [("x-voucherify-signature", sign(SIGNING_SECRET, raw))])
    )
    assert (status, answer["status"]) == (400, "bad_request")
    assert "nested too deeply" in answer["error"]
    assert recorder.written == []


def test_allowed_source_cidrs_setting() -> None:
    from voucherify_ledger.settings import SettingsError, WebhookSettings

    base = {"LEDGER_TABLE_NAME": "ledger", "WEBHOOK_SECRET_ID": "voucherify-ledger/webhook"}
    assert WebhookSettings.from_env(base).source_allowed("198.51.100.7")  # empty: any caller
    settings = WebhookSettings.from_env({**base, "ALLOWED_SOURCE_CIDRS": " 34.247.197.22, 10.0.0.0/8 ,2001:db8::/32,"})
    assert [str(n) for n in settings.allowed_source_cidrs] == ["34.247.197.22/32", "10.0.0.0/8", "2001:db8::/32"]
    assert settings.source_allowed("34.247.197.22") and settings.source_allowed("10.200.0.1")
    assert settings.source_allowed("::ffff:34.247.197.22") and settings.source_allowed("2001:db8::5")
    for refused in ("34.247.197.23", "", None, "not an address", "34.247.197.22, 1.2.3.4", 3, "34.247.197.22/32"):
        assert not settings.source_allowed(refused), refused
    for wrong in ("10.0.0.1/8", "34.247.197.0/33", "*", "any"):
        with pytest.raises(SettingsError, match="ALLOWED_SOURCE_CIDRS"):
            WebhookSettings.from_env({**base, "ALLOWED_SOURCE_CIDRS": wrong})
