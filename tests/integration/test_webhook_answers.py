"""The two webhook functions end to end: API Gateway HTTP API (payload 2.0) events into the handlers loaded
as Lambda loads them, AWS emulated in-process by moto with the table built from template.yaml."""

from __future__ import annotations

import copy
import json
import random
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from ledger_dev.harness.apigw import http_api_event
from ledger_dev.harness.functions import load_handler
from ledger_dev.harness.template import http_routes
from ledger_dev.payloads.schema_payloads import SchemaPayloads, dumps
from support.documents import (
    FAILED_EVENTS,
    WEBHOOK_EVENTS,
    compact,
    envelope,
    openapi_examples,
    openapi_webhooks,
    seed_redemption,
    seed_rollback,
)
from support.functions import (
    HEADER_TOKEN,
    REDEMPTION_FN,
    ROLLBACK_FN,
    ROUTES,
    SECRET_ID,
    SIGNING_SECRET,
    Answer,
    Aws,
    LambdaApp,
    emitted_metrics,
)
from voucherify_ledger.settings import SettingsError
from voucherify_ledger.webhooks.auth import sign

SEED_REDEMPTION_ID = "r_0e2500291ae016adea"
SPRING_REDEMPTION_ID = "r_0e6ff48b91cfa02e97"
SPRING_ROLLBACK_ID = "rr_0e70cac29fee95aa7b"
# Personal data and other values of the seed payloads that no answer may repeat.
PAYLOAD_VALUES = ("Jane Doe", "jane@jane.io", "Jack Webhook", "Always-add-prods-5", "SPRING-2024-hOg", "jck-wbhk")


def assert_nothing_leaks(answer: Answer) -> None:
    text = json.dumps(answer.body)
    for value in (SIGNING_SECRET, HEADER_TOKEN, *PAYLOAD_VALUES):
        assert value not in text, f"the answer repeats {value!r}"
    assert answer.headers["content-type"] == "application/json"


# --- routes --------------------------------------------------------------------------------------------
def test_template_routes_are_the_ones_the_tests_post_to() -> None:
    routes = {(r.method, r.path): (r.function, r.payload_format) for r in http_routes()}
    assert routes[("POST", "/webhooks/redemption-succeeded")] == (REDEMPTION_FN, "2.0")
    assert routes[("POST", "/webhooks/redemption-rollback-succeeded")] == (ROLLBACK_FN, "2.0")
    assert {fn: path for (_, path), (fn, _) in routes.items() if fn in ROUTES} == ROUTES


def published_deliveries() -> list[Any]:
    cases = [
        pytest.param(REDEMPTION_FN, "redemption.succeeded", seed_redemption(), id="seed-002"),
        pytest.param(ROLLBACK_FN, "customer.redemption.rollback.succeeded", seed_rollback(), id="seed-000"),
    ]
    for webhook, (event_type, function) in WEBHOOK_EVENTS.items():
        if event_type == "customer.redemption.succeeded":
            continue  # a distribution event the redemption-succeeded URL does not subscribe to
        for name, example in openapi_examples(webhook):
            cases.append(pytest.param(function, event_type, example, id=name))
    return cases


@pytest.mark.parametrize("enveloped", [False, True], ids=["bare", "v2024-envelope"])
@pytest.mark.parametrize(("function", "event_type", "data"), published_deliveries())
def test_published_payloads_are_recorded_on_their_route(
    lambda_app: Callable[..., LambdaApp], aws: Aws, function: str, event_type: str, data: dict, enveloped: bool
) -> None:
    body = envelope(data, event_type) if enveloped else data
    answer = lambda_app(function).post(compact(body))
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "recorded"
    assert_nothing_leaks(answer)
    failed = event_type in FAILED_EVENTS
    if function == REDEMPTION_FN:
        redemption_id = data["redemption"]["id"]
        assert answer.body["redemption_id"] == redemption_id
        status = "FAILED" if failed else "SUCCEEDED"
        assert (answer.body["ledger_status"], aws.ledger.redemptions.get(redemption_id)["status"]) == (status, status)
    else:
        redemption_id = data["redemption_rollback"]["redemption"]
        rollback_id = data["redemption_rollback"]["id"]
        assert answer.body["rollback_id"] == rollback_id
        view = aws.ledger.redemptions.get(redemption_id)
        if failed:  # noted on the redemption, whose status it does not change (none is known yet)
            assert (view["status"], view["rollback_ids"], view["failed_rollback_ids"]) == (None, [], [rollback_id])
            assert "ledger_status" not in answer.body
        else:
            assert view["status"] == "ROLLED_BACK"
            assert view["rollback_ids"] == [rollback_id]
    if enveloped:
        assert answer.body["event_type"] == event_type


def test_redemption_then_duplicate(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    redemptions = lambda_app(REDEMPTION_FN)
    body = compact(seed_redemption())
    first = redemptions.post(body)
    before = aws.table()
    second = redemptions.post(body)
    assert (first.status, first.body["status"], first.body["ledger_status"]) == (200, "recorded", "SUCCEEDED")
    assert (second.status, second.body["status"], second.body["ledger_status"]) == (200, "duplicate", "SUCCEEDED")
    assert aws.table() == before


def test_rollback_before_redemption_over_http(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    rollback = lambda_app(ROLLBACK_FN).post(
        compact(envelope(seed_rollback(), "customer.redemption.rollback.succeeded"))
    )
    assert (rollback.status, rollback.body["status"], rollback.body["ledger_status"]) == (
        200,
        "recorded",
        "ROLLED_BACK",
    )
    ((_, spring),) = openapi_examples("EVENTS.CUSTOMER.REDEMPTION.SUCCEEDED")
    late = lambda_app(REDEMPTION_FN).post(compact(envelope(spring, "redemption.succeeded")))
    assert (late.status, late.body["status"]) == (200, "recorded")
    view = aws.ledger.redemptions.get(SPRING_REDEMPTION_ID)
    assert (view["status"], view["voucher_code"], view["rollback_ids"]) == (
        "ROLLED_BACK",
        "SPRING-2024-hOg",
        [SPRING_ROLLBACK_ID],
    )
    duplicate = lambda_app(ROLLBACK_FN).post(compact(seed_rollback()))
    assert (duplicate.status, duplicate.body["status"]) == (200, "duplicate")


def test_distribution_envelope_dispatches_on_event_type_and_audits_the_send_out(
    lambda_app: Callable[..., LambdaApp], aws: Aws
) -> None:
    body = envelope(seed_rollback(), "customer.redemption.rollback.succeeded", distribution=True)
    body["type"] = "redemption.succeeded"  # a user-chosen distribution name, even a misleading one
    answer = lambda_app(ROLLBACK_FN).post(compact(body))
    assert (answer.status, answer.body["status"]) == (200, "recorded")
    (item,) = aws.table()  # the redemption, with the rollback as its attribute rollback#<rr_…>
    audit = item[f"rollback#{SPRING_ROLLBACK_ID}"]["M"]["delivery"]["M"]
    assert audit["delivery_id"]["S"] == body["id"]
    assert audit["event_id"]["S"] == body["event"]["id"]
    assert audit["event_type"]["S"] == "customer.redemption.rollback.succeeded"
    assert zlib.decompress(audit["raw_zlib"]["B"]) == compact(body)


# --- bodies --------------------------------------------------------------------------------------------
def test_base64_body_is_decoded(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    answer = lambda_app(REDEMPTION_FN).post(
        compact(envelope(seed_redemption(), "redemption.succeeded")), base64_encoded=True
    )
    assert (answer.status, answer.body["status"]) == (200, "recorded")
    assert aws.ledger.redemptions.get(SEED_REDEMPTION_ID)["status"] == "SUCCEEDED"


def test_base64_flag_that_lies_is_a_bad_request(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    redemptions = lambda_app(REDEMPTION_FN)
    body = compact(seed_redemption())
    event = http_api_event(
        "POST",
        ROUTES[REDEMPTION_FN],
        body,
        {"x-voucherify-signature": sign(SIGNING_SECRET, body)},
        base64_encoded=False,
    )
    event["isBase64Encoded"] = True
    answer = redemptions.send(event)
    assert answer.status == 400
    assert "base64" in answer.body["error"]
    assert_nothing_leaks(answer)
    assert aws.table() == []


def test_pretty_printed_body_signed_as_its_compact_form(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    data = seed_redemption()
    data["customer"]["name"] = 'Jane  "JD"  Doe'  # whitespace and escaped quotes inside strings stay signed
    pretty = json.dumps(data, indent=4).encode()
    answer = lambda_app(REDEMPTION_FN).post(pretty, signed_body=compact(data))
    assert (answer.status, answer.body["status"]) == (200, "recorded")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"redemption": ', "body is not valid JSON"),
        (b"", "body is not valid JSON"),
        (b'{"customer": {"name": "J\xe9r\xf4me"}}', "not valid UTF-8"),
        ('{"customer": {"name": "Jane Doe"}}'.encode("utf-16"), "not valid UTF-8"),
        (b'[{"redemption": {"id": "r_1"}}]', "must be a JSON object"),
        (b'"redemption"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"42", "must be a JSON object"),
    ],
    ids=["truncated", "empty", "latin-1", "utf-16", "array", "string", "null", "number"],
)
def test_body_that_is_not_a_json_object_is_a_bad_request(
    lambda_app: Callable[..., LambdaApp], aws: Aws, body: bytes, problem: str
) -> None:
    answer = lambda_app(REDEMPTION_FN).post(body)
    assert answer.status == 400
    assert answer.body["status"] == "bad_request"
    assert problem in answer.body["error"]
    assert "Jane" not in answer.body["error"] and "list" not in answer.body["error"]
    assert aws.table() == []


def test_body_over_the_limit_is_refused_before_anything_else(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    redemptions = lambda_app(REDEMPTION_FN, MAX_BODY_BYTES="8192")
    padded = {"x_padding": "", **seed_redemption()}
    body = compact(padded)
    padded["x_padding"] = "." * (8193 - len(body))
    too_large = compact(padded)
    assert len(too_large) == 8193
    answer = redemptions.post(too_large)
    assert answer.status == 413
    assert "8193 bytes exceeds the limit of 8192 bytes" in answer.body["error"]
    assert redemptions.post(too_large, secret=None).status == 413
    padded["x_padding"] = padded["x_padding"][:-1]
    at_limit = redemptions.post(compact(padded))
    assert (at_limit.status, at_limit.body["status"]) == (200, "recorded")


# --- authentication ------------------------------------------------------------------------------------
UNAUTHENTICATED = [
    ({}, "missing x-voucherify-signature header"),
    ({"x-voucherify-signature": "0" * 64}, "x-voucherify-signature does not match"),
    ({"x-voucherify-signature": sign(SIGNING_SECRET, b"another body")}, "does not match"),
    ({"x-voucherify-signature": sign("an old secret", compact(seed_redemption()))}, "does not match"),
    ({"x-voucherify-signature": "not hex at all"}, "does not match"),
    ({"x-voucherify-token": "guess"}, "x-voucherify-token token does not match"),
    ({"x-voucherify-token": HEADER_TOKEN + "x"}, "does not match"),
    ({"x-other-token": HEADER_TOKEN}, "missing"),
    ({"authorization": f"Bearer {HEADER_TOKEN}"}, "missing"),
]


@pytest.mark.parametrize("function", [REDEMPTION_FN, ROLLBACK_FN])
def test_unauthenticated_delivery_is_refused_and_nothing_is_written(
    lambda_app: Callable[..., LambdaApp], aws: Aws, function: str
) -> None:
    webhook = lambda_app(function)
    for headers, problem in UNAUTHENTICATED:
        if function == REDEMPTION_FN and "x-voucherify-token" in headers:  # signed deliveries only (WEBHOOK_AUTH)
            problem = "missing x-voucherify-signature header (this URL accepts signed deliveries only)"
        answer = webhook.post(compact(seed_redemption()), secret=None, headers=headers)
        assert (answer.status, answer.body["status"]) == (401, "unauthorized"), headers
        assert problem in answer.body["error"], headers
        assert_nothing_leaks(answer)
        for value in headers.values():
            assert value not in answer.body["error"]
    assert aws.table() == []


@pytest.mark.parametrize(
    "body",
    [b"not json at all", b"[1, 2]", compact({"redemption": {"id": "r_1"}})],
    ids=["invalid-json", "array", "invalid-payload"],
)
def test_authentication_comes_before_parsing(lambda_app: Callable[..., LambdaApp], aws: Aws, body: bytes) -> None:
    answer = lambda_app(REDEMPTION_FN).post(body, secret="not the secret")
    assert answer.status == 401
    assert aws.table() == []


def test_shared_token_authenticates_unsigned_distribution_webhooks(
    lambda_app: Callable[..., LambdaApp], aws: Aws
) -> None:
    body = compact(envelope(seed_rollback(), "customer.redemption.rollback.succeeded"))
    answer = lambda_app(ROLLBACK_FN).post(body, secret=None, headers={"x-voucherify-token": HEADER_TOKEN})
    assert (answer.status, answer.body["status"]) == (200, "recorded")


def test_the_redemption_url_accepts_signed_deliveries_only(
    lambda_app: Callable[..., LambdaApp], aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    """Project-settings webhooks are always signed: a leaked distribution token opens no redemption URL (the
    template's RedemptionWebhookAuth default, ``signature``)."""
    redemptions = lambda_app(REDEMPTION_FN)
    body = compact(seed_redemption())
    token_only = redemptions.post(body, secret=None, headers={"x-voucherify-token": HEADER_TOKEN})
    forged = redemptions.post(body, secret="forged", headers={"x-voucherify-token": HEADER_TOKEN})
    assert (token_only.status, token_only.body["error"]) == (
        401,
        "missing x-voucherify-signature header (this URL accepts signed deliveries only)",
    )
    assert (forged.status, forged.body["error"]) == (401, "x-voucherify-signature does not match the webhook secret")
    assert aws.table() == []
    assert emitted_metrics(capsys.readouterr().out)["Unauthorized"] == 2
    assert redemptions.post(body).status == 200


def test_a_forged_signature_beside_the_right_token_is_refused_on_the_rollback_url(
    lambda_app: Callable[..., LambdaApp], aws: Aws
) -> None:
    """The rollback URL takes either credential (distribution webhooks may be unsigned), but a signature that is
    sent must be right: the token does not rescue a forged one."""
    rollbacks = lambda_app(ROLLBACK_FN)
    body = compact(seed_rollback())
    forged = rollbacks.post(body, secret="forged", headers={"x-voucherify-token": HEADER_TOKEN})
    assert (forged.status, forged.body["error"]) == (401, "x-voucherify-signature does not match the webhook secret")
    assert aws.table() == []


@pytest.mark.parametrize(
    ("function", "mode", "token_status", "signature_status"),
    [(REDEMPTION_FN, "either", 200, 200), (ROLLBACK_FN, "signature", 401, 200), (ROLLBACK_FN, "token", 200, 401)],
)
def test_the_accepted_authentication_is_a_setting_per_route(
    lambda_app: Callable[..., LambdaApp], aws: Aws, function: str, mode: str, token_status: int, signature_status: int
) -> None:
    webhook = lambda_app(function, WEBHOOK_AUTH=mode)
    first = seed_redemption() if function == REDEMPTION_FN else seed_rollback()
    by_token = webhook.post(compact(first), secret=None, headers={"x-voucherify-token": HEADER_TOKEN})
    assert by_token.status == token_status
    second = copy.deepcopy(first)
    second["x_other"] = "a second delivery"
    assert webhook.post(compact(second)).status == signature_status


def test_token_header_name_is_configurable(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    rollbacks = lambda_app(ROLLBACK_FN, WEBHOOK_TOKEN_HEADER="X-Ledger-Token")
    body = compact(seed_rollback())
    refused = rollbacks.post(body, secret=None, headers={"x-voucherify-token": HEADER_TOKEN})
    assert refused.status == 401 and "x-ledger-token" in refused.body["error"]
    accepted = rollbacks.post(body, secret=None, headers={"X-Ledger-Token": HEADER_TOKEN})
    assert (accepted.status, accepted.body["status"]) == (200, "recorded")


def test_rotated_secret_is_picked_up_on_the_first_failed_check(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    redemptions = lambda_app(REDEMPTION_FN)
    assert redemptions.post(compact({"warm": "cache"})).status == 202  # the old secret is now cached
    aws.secrets.put_secret_value(
        SecretId=SECRET_ID, SecretString=json.dumps({"signing_secret": "rotated-secret", "header_token": "t2"})
    )
    answer = redemptions.post(compact(seed_redemption()), secret="rotated-secret")
    assert (answer.status, answer.body["status"]) == (200, "recorded")
    assert redemptions.post(compact(seed_rollback()), secret=SIGNING_SECRET).status == 401


def test_unreadable_secret_answers_503_so_voucherify_retries(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    redemptions = lambda_app(REDEMPTION_FN)
    aws.secrets.delete_secret(SecretId=SECRET_ID, ForceDeleteWithoutRecovery=True)
    answer = redemptions.post(compact(seed_redemption()))
    assert answer.status == 503
    assert "cannot authenticate the delivery now" in answer.body["error"]
    assert "retry later" in answer.body["error"]
    assert_nothing_leaks(answer)
    assert aws.table() == []


def test_unauthenticated_mode_is_refused_outside_local_emulation(
    aws: Aws, function_env: Callable[..., dict[str, str]]
) -> None:
    function_env(REDEMPTION_FN, ALLOW_UNAUTHENTICATED_WEBHOOKS="true")
    with pytest.raises(SettingsError, match="local-only"):
        load_handler(REDEMPTION_FN)


def test_unauthenticated_mode_under_sam_local(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    local = lambda_app(REDEMPTION_FN, ALLOW_UNAUTHENTICATED_WEBHOOKS="true", AWS_SAM_LOCAL="true")
    answer = local.post(compact(seed_redemption()), secret=None)
    assert (answer.status, answer.body["status"]) == (200, "recorded")


# --- quarantine ----------------------------------------------------------------------------------------
def _only_quarantine(aws: Aws) -> dict[str, Any]:
    (item,) = aws.table()
    assert item["pk"]["S"].startswith("QUARANTINE#q_") and item["sk"]["S"] == "QUARANTINE"
    return item


def test_invalid_payload_is_quarantined_whole(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    data = seed_redemption()
    del data["redemption"]["date"]
    data["redemption"]["amount"] = "Jane Doe"
    body = compact(data)
    answer = lambda_app(REDEMPTION_FN).post(body)
    assert answer.status == 202
    assert answer.body["status"] == "quarantined"
    assert "does not match the redemption.succeeded schema" in answer.body["reason"]
    errors = answer.body["errors"]
    assert any(e.startswith("redemption.date: Field required") for e in errors), errors
    assert any(e.startswith("redemption.amount: Input should be a valid integer") for e in errors), errors
    assert_nothing_leaks(answer)
    item = _only_quarantine(aws)
    assert item["pk"]["S"] == f"QUARANTINE#{answer.body['quarantine_id']}"
    assert zlib.decompress(item["raw_zlib"]["B"]) == body
    assert [e["S"] for e in item["errors"]["L"]] == errors
    assert item["route"]["S"] == "redemption-succeeded"
    again = lambda_app(REDEMPTION_FN).post(body)
    assert (again.status, again.body["quarantine_id"]) == (202, answer.body["quarantine_id"])
    assert _only_quarantine(aws)["deliveries"]["N"] == "2"


@pytest.mark.parametrize(
    ("function", "event_type"),
    [
        (ROLLBACK_FN, "redemption.succeeded"),
        (REDEMPTION_FN, "customer.redemption.rollback.succeeded"),
        (REDEMPTION_FN, "redemption.rollback.succeeded"),
        (ROLLBACK_FN, "redemption.failed"),
        (REDEMPTION_FN, "redemption.rollback.failed"),
    ],
)
def test_wrong_event_type_for_the_route_is_quarantined(
    lambda_app: Callable[..., LambdaApp], aws: Aws, function: str, event_type: str
) -> None:
    data = seed_rollback() if "rollback" in event_type else seed_redemption()
    body = compact(envelope(data, event_type))
    answer = lambda_app(function).post(body)
    assert answer.status == 202
    assert answer.body["reason"] == "wrong event type for this webhook URL"
    assert any(e.startswith("event.type") for e in answer.body["errors"])
    item = _only_quarantine(aws)
    assert item["event_type"]["S"] == event_type
    assert item["delivery_id"]["S"] == json.loads(body)["id"]
    assert zlib.decompress(item["raw_zlib"]["B"]) == body


@pytest.mark.parametrize(
    ("function", "data"),
    [(ROLLBACK_FN, seed_redemption()), (REDEMPTION_FN, seed_rollback())],
    ids=["redemption-on-rollback-url", "rollback-on-redemption-url"],
)
def test_bare_payload_of_the_other_event_is_quarantined(
    lambda_app: Callable[..., LambdaApp], aws: Aws, function: str, data: dict[str, Any]
) -> None:
    answer = lambda_app(function).post(compact(data))
    assert answer.status == 202, answer.body
    assert any("redemption_rollback" in e for e in answer.body["errors"])
    _only_quarantine(aws)
    assert aws.ledger.redemptions.get(data["redemption"]["id"]) is None


def test_invalid_envelope_is_quarantined(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    body = envelope(seed_redemption(), "redemption.succeeded")
    del body["event"]["group_id"]
    body["created_at"] = "when it was sent"
    answer = lambda_app(REDEMPTION_FN).post(compact(body))
    assert answer.status == 202
    assert answer.body["reason"] == "the v2024-01-01 envelope is invalid"
    assert "event.group_id: Field required" in answer.body["errors"]
    assert any(e.startswith("created_at: Input should be a valid datetime") for e in answer.body["errors"])
    _only_quarantine(aws)


def test_invalid_data_inside_an_envelope_names_the_data_path(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    data = seed_rollback()
    data["redemption_rollback"]["date"] = "not a date"
    answer = lambda_app(ROLLBACK_FN).post(compact(envelope(data, "redemption.rollback.succeeded")))
    assert answer.status == 202
    assert any(e.startswith("data.redemption_rollback.date:") for e in answer.body["errors"])
    assert_nothing_leaks(answer)


# --- storage failures ----------------------------------------------------------------------------------
def _fail(error_code: str, message: str = "injected", **extra: Any) -> Callable[..., Any]:
    def raise_error(*args: Any, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": error_code, "Message": message}, **extra}, "operation")

    return raise_error


@pytest.mark.parametrize(
    ("function", "payload", "operation", "failure"),
    [
        (REDEMPTION_FN, seed_redemption, "update_item", _fail("ProvisionedThroughputExceededException")),
        (REDEMPTION_FN, seed_redemption, "update_item", _fail("InternalServerError")),
        # a rollback is one UpdateItem of its redemption's item (the worker's, with its request, a transaction)
        (ROLLBACK_FN, seed_rollback, "update_item", _fail("ThrottlingException")),
        (ROLLBACK_FN, seed_rollback, "update_item", _fail("TransactionConflictException")),
        (ROLLBACK_FN, seed_rollback, "update_item", _fail("ProvisionedThroughputExceededException")),
    ],
    ids=["redemption-throttled", "redemption-500", "rollback-throttled", "rollback-conflict", "rollback-capacity"],
)
def test_storage_failure_answers_503_then_the_retry_is_recorded(
    lambda_app: Callable[..., LambdaApp],
    aws: Aws,
    monkeypatch: pytest.MonkeyPatch,
    function: str,
    payload: Callable[[], dict],
    operation: str,
    failure: Callable[..., Any],
) -> None:
    webhook = lambda_app(function)
    client = webhook.receiver.ledger.client
    before = aws.table()
    body = compact(payload())
    with monkeypatch.context() as patch:
        patch.setattr(client, operation, failure)
        answer = webhook.post(body)
    assert answer.status == 503
    assert answer.body["status"] == "error"
    assert "the ledger could not be written" in answer.body["error"]
    assert "retry later" in answer.body["error"]
    assert_nothing_leaks(answer)
    assert aws.table() == before
    retried = webhook.post(body)  # Voucherify retries; DynamoDB is back
    assert (retried.status, retried.body["status"]) == (200, "recorded")


def test_unreachable_dynamodb_answers_503(
    lambda_app: Callable[..., LambdaApp], aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    webhook = lambda_app(REDEMPTION_FN)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com")

    monkeypatch.setattr(webhook.receiver.ledger.client, "update_item", unreachable)
    answer = webhook.post(compact(seed_redemption()))
    assert answer.status == 503
    assert "EndpointConnectionError" in answer.body["error"]
    assert aws.table() == []


def test_quarantine_write_failure_answers_503(
    lambda_app: Callable[..., LambdaApp], aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    webhook = lambda_app(REDEMPTION_FN)
    monkeypatch.setattr(webhook.receiver.ledger.client, "update_item", _fail("ProvisionedThroughputExceededException"))
    answer = webhook.post(compact({"redemption": {"id": "r_1"}}))
    assert answer.status == 503
    assert "could not be quarantined" in answer.body["error"]
    assert aws.table() == []


# --- payloads generated from the OpenAPI schemas -------------------------------------------------------
def test_generated_payloads_are_all_recorded(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    """Schema-valid deliveries (half bare, half enveloped, some base64, some pretty-printed and signed as
    their compact form; succeeded and failed, redemptions and rollbacks) in random order: every one is recorded,
    then every redemption has the right status, and every failed rollback is noted without changing one."""
    generator = SchemaPayloads(openapi_webhooks(), seed=2024)
    events = list(generator.batch(160, rollback_share=0.7))[:200]
    random.Random(5).shuffle(events)
    webhooks = {REDEMPTION_FN: lambda_app(REDEMPTION_FN), ROLLBACK_FN: lambda_app(ROLLBACK_FN)}
    expected: dict[str, str] = {}
    codes: dict[str, str] = {}
    failed_rollbacks: dict[str, set[str]] = {}
    for n, (event_type, data) in enumerate(events):
        body = generator.envelope(data, event_type) if n % 2 else data
        raw = dumps(body, pretty=n % 5 == 0)
        function = ROLLBACK_FN if "rollback" in event_type else REDEMPTION_FN
        answer = webhooks[function].post(raw, signed_body=dumps(body), base64_encoded=n % 3 == 0)
        assert (answer.status, answer.body.get("status")) == (200, "recorded"), (n, event_type, answer.body)
        if function == REDEMPTION_FN:
            redemption = data["redemption"]
            expected.setdefault(redemption["id"], "FAILED" if event_type == "redemption.failed" else "SUCCEEDED")
            voucher = redemption.get("voucher") or data.get("voucher")
            if voucher and voucher.get("code"):
                codes[redemption["id"]] = voucher["code"]
        elif event_type == "redemption.rollback.failed":
            redemption_id = data["redemption_rollback"]["redemption"]
            failed_rollbacks.setdefault(redemption_id, set()).add(data["redemption_rollback"]["id"])
        else:
            expected[data["redemption_rollback"]["redemption"]] = "ROLLED_BACK"
    assert len(events) == 200 and set(expected.values()) == {"SUCCEEDED", "FAILED", "ROLLED_BACK"}
    assert failed_rollbacks
    for redemption_id, status in expected.items():
        view = aws.ledger.redemptions.get(redemption_id)
        assert view is not None and view["status"] == status, redemption_id
        if status == "FAILED":  # a failed attempt gave nothing
            assert "discount_amount" not in view and "amount" not in view and view["failure_code"], redemption_id
        if redemption_id in codes:
            assert view["voucher_code"] == codes[redemption_id]
    for redemption_id, rollback_ids in failed_rollbacks.items():
        view = aws.ledger.redemptions.get(redemption_id)
        assert set(view["failed_rollback_ids"]) == rollback_ids
        assert view["status"] == expected.get(redemption_id, "SUCCEEDED")


# --- the same redemption id with other content -----------------------------------------------------------
def test_a_redemption_delivered_again_with_other_content_is_kept_as_a_conflict(
    lambda_app: Callable[..., LambdaApp], aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first record stands; the delivery that says otherwise is counted (ConflictingDuplicates, alarmed) and
    kept beside it, where ``redemption-ledger show`` lists it. A plain redelivery is no conflict."""
    import io

    from redemption_ledger_cli import cli
    from support.functions import TABLE_NAME

    redemptions = lambda_app(REDEMPTION_FN)
    first = seed_redemption()
    assert redemptions.post(compact(first)).status == 200
    changed = copy.deepcopy(first)
    for order in (changed["order"], changed["redemption"]["order"]):
        order["amount"] += 1000
    changed["redemption"]["voucher"]["code"] = "ANOTHER-CODE"
    capsys.readouterr()

    answers = [redemptions.post(compact(changed)), redemptions.post(compact(changed)), redemptions.post(compact(first))]

    assert [(a.status, a.body["status"]) for a in answers] == [(200, "duplicate")] * 3
    conflict_id = answers[0].body["conflict_id"]
    assert answers[1].body["conflict_id"] == conflict_id and "conflict_id" not in answers[2].body
    assert emitted_metrics(capsys.readouterr().out)["ConflictingDuplicates"] == 2
    out = io.StringIO()
    assert cli.main(["show", SEED_REDEMPTION_ID, "--table", TABLE_NAME, "--region", "eu-west-1"], out=out) == 0
    shown = json.loads(out.getvalue())
    assert shown["order_amount"] == first["redemption"]["order"]["amount"]  # the first record stands
    assert shown["voucher_code"] == first["redemption"]["voucher"]["code"]
    (conflict,) = shown["conflicting_deliveries"]
    assert (conflict["conflict_id"], conflict["deliveries"]) == (conflict_id, 2)
    assert conflict["conflicting_fields"] == ["order_amount", "voucher_code"]
    assert conflict["summary"]["order_amount"] == changed["redemption"]["order"]["amount"]
    assert "redemption_digest" not in shown and "delivery" not in conflict
    assert aws.ledger.redemptions.list_by("voucher_code", "ANOTHER-CODE") == []  # never indexed as a redemption
