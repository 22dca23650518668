"""No personal data and no secret in any log line or answer, with every function logging at DEBUG.

The seed payloads (and events/payloads) run through the real handlers, their customers given the phone and
address of the rollback API's seed page: recorded, duplicate, quarantined (damaged, wrong URL), rejected (wrong
signature or token, not an object, a lying base64 flag, too large, a caller outside the allow-list), and through
the rollback worker (valid and invalid requests that carry a customer). Everything the functions print (what
Lambda sends to CloudWatch) is searched for the customers' names, emails, phones and addresses.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ledger_dev.fake_voucherify import api_secret_value
from ledger_dev.harness.apigw import http_api_event
from ledger_dev.harness.template import load_template
from support.damage import envelope_body
from support.documents import PAYLOADS, compact, seed_documents
from support.functions import HEADER_TOKEN, ROUTES, SIGNING_SECRET, LambdaApp
from support.worker import R1, Harness, record_redemption
from voucherify_ledger.webhooks.auth import sign

PERSONAL_KEYS = {"name", "email", "phone", "birthdate", "birthday"}
CUSTOMER_KEYS = {"customer", "holder", "referrer"}
ROLLBACK_API_CUSTOMER = seed_documents("001")[0]["customer"]  # Annie Lemons, with phone and address


def personal_values(document: Any, in_customer: bool = False) -> set[str]:
    """Names, emails, phones, birth dates and address lines of every customer-like object."""
    found: set[str] = set()
    if isinstance(document, dict):
        customer = in_customer or document.get("object") == "customer"
        for key, value in document.items():
            if customer and key in PERSONAL_KEYS and isinstance(value, str):
                found.add(value)
            elif customer and key == "address" and isinstance(value, dict):
                found |= {v for v in value.values() if isinstance(v, str) and len(v) >= 4}
            else:
                found |= personal_values(value, key in CUSTOMER_KEYS)
    elif isinstance(document, list):
        for item in document:
            found |= personal_values(item, in_customer)
    return found


def with_contact_details(document: Any) -> Any:
    """The payload with every customer also carrying the rollback API seed's phone and address."""
    document = copy.deepcopy(document)

    def walk(node: Any, in_customer: bool = False) -> None:
        if isinstance(node, dict):
            if in_customer or node.get("object") == "customer":
                node.setdefault("phone", ROLLBACK_API_CUSTOMER["phone"])
                node.setdefault("address", ROLLBACK_API_CUSTOMER["address"])
            for key, value in list(node.items()):
                walk(value, key in CUSTOMER_KEYS and isinstance(value, dict))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(document)
    return document


PAYLOADS_BY_FUNCTION = {
    "RedemptionSucceededFunction": [
        seed_documents("002")[0],
        json.loads((PAYLOADS / "redemption_succeeded.json").read_text(encoding="utf-8")),
        envelope_body("redemption_succeeded_envelope"),
    ],
    "RedemptionRollbackSucceededFunction": [
        seed_documents("000")[0],
        json.loads((PAYLOADS / "redemption_rollback_succeeded.json").read_text(encoding="utf-8")),
        envelope_body("customer_redemption_rollback_succeeded_distribution"),
    ],
}


@pytest.fixture
def printed(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    """Every line the functions printed (stdout, stderr) or logged through Python logging, so far."""
    caplog.set_level(logging.DEBUG, logger="voucherify-ledger")
    lines: list[str] = []

    def read() -> list[str]:
        captured = capsys.readouterr()
        lines.extend(captured.out.splitlines() + captured.err.splitlines())
        lines.extend(record.getMessage() + " " + json.dumps(record.__dict__, default=str) for record in caplog.records)
        caplog.clear()
        return lines

    yield read


def log_to_capture() -> None:
    """Points the functions' log handlers at this test's stdout. Powertools reuses the ``voucherify-ledger`` logger
    and its handler across loads, so after an earlier test it would still write to that test's (closed) capture."""
    import sys

    for handler in logging.getLogger("voucherify-ledger").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.stream = sys.stdout  # not setStream: it flushes the old, closed stream


def leaks(lines: list[str], secrets: set[str]) -> list[str]:
    return [f"{secret!r} in {line[:300]}" for line in lines for secret in secrets if secret in line]


def test_the_template_never_logs_events() -> None:
    """POWERTOOLS_LOGGER_LOG_EVENT would print every delivery (bodies with personal data, signature headers)."""
    variables = json.dumps(load_template())
    assert "POWERTOOLS_LOGGER_LOG_EVENT" not in variables and "log_event=True" not in variables


def test_the_personal_data_list_is_not_empty() -> None:
    values = set().union(
        *(personal_values(with_contact_details(p)) for ps in PAYLOADS_BY_FUNCTION.values() for p in ps)
    )
    assert {"Jane Doe", "jane@jane.io", "Jack Webhook", "+1 933 222 3334", "123 Main St.", "New York"} <= values


@pytest.mark.parametrize("function", sorted(ROUTES))
def test_webhook_logs_and_answers_carry_no_personal_data_or_secret(
    lambda_app: Callable[..., LambdaApp], printed: Callable[[], list[str]], function: str
) -> None:
    app = lambda_app(function, POWERTOOLS_LOG_LEVEL="DEBUG")
    log_to_capture()
    assert app.module.logger.log_level == logging.DEBUG
    other = next(f for f in ROUTES if f != function)
    personal: set[str] = set()
    answers: list[str] = []
    statuses: set[int] = set()

    def post(raw: bytes, headers: dict[str, str], *, base64_flag: bool | None = None, **event: Any) -> None:
        answer = app.send(http_api_event("POST", ROUTES[function], raw, headers, base64_encoded=base64_flag, **event))
        statuses.add(answer.status)
        answers.append(json.dumps(answer.body))

    for document in PAYLOADS_BY_FUNCTION[function] + PAYLOADS_BY_FUNCTION[other]:
        document = with_contact_details(document)
        personal |= personal_values(document)
        raw = compact(document)
        signed = {"x-voucherify-signature": sign(SIGNING_SECRET, raw)}
        post(raw, signed)  # recorded (or quarantined when it is the other route's event)
        post(raw, signed)  # duplicate
        post(raw, {"x-voucherify-token": HEADER_TOKEN})
        damaged = copy.deepcopy(document)
        (damaged.get("data") or damaged)["redemption"] = {"id": 42, "customer": damaged.get("customer")}
        post(compact(damaged), {"x-voucherify-signature": sign(SIGNING_SECRET, compact(damaged))})  # quarantined
        post(raw, {"x-voucherify-signature": sign("wrong-secret", raw)})  # 401
        post(raw, {"x-voucherify-token": "not-the-token"})  # 401
        post(compact([document]), {"x-voucherify-signature": sign(SIGNING_SECRET, compact([document]))})  # 400
        post(raw, signed, base64_flag=True)  # a flag that lies: 400
        padded = raw[:-1] + b"," + b'"pad":"' + b"x" * 262_144 + b'"}'
        post(padded, {"x-voucherify-signature": sign(SIGNING_SECRET, padded)})  # 413
    lines = printed()

    assert statuses >= {200, 202, 400, 401, 413}, statuses
    assert any(line.startswith('{"level":') for line in lines), "nothing was logged"
    assert any("delivery quarantined" in line for line in lines) and any("delivery rejected" in line for line in lines)
    assert len(personal) >= 5
    assert leaks(lines, personal) == []
    assert leaks(answers, personal) == []
    assert leaks(lines + answers, {SIGNING_SECRET, HEADER_TOKEN}) == []
    assert not [line for line in lines if "Logging error" in line]
    assert any('"level":"DEBUG"' in line for line in lines) or app.module.logger.log_level == logging.DEBUG


def test_a_refused_caller_is_logged_without_personal_data(
    lambda_app: Callable[..., LambdaApp], printed: Callable[[], list[str]]
) -> None:
    app = lambda_app("RedemptionSucceededFunction", POWERTOOLS_LOG_LEVEL="DEBUG", ALLOWED_SOURCE_CIDRS="34.247.197.22")
    log_to_capture()
    document = with_contact_details(PAYLOADS_BY_FUNCTION["RedemptionSucceededFunction"][0])
    raw = compact(document)
    answer = app.send(
        http_api_event(
            "POST",
            ROUTES["RedemptionSucceededFunction"],
            raw,
            {"x-voucherify-signature": sign(SIGNING_SECRET, raw)},
            source_ip="203.0.113.9",
        )
    )
    lines = printed()
    assert answer.status == 403
    assert any("203.0.113.9" in line for line in lines)  # the operator sees who was refused
    assert leaks([*lines, json.dumps(answer.body)], personal_values(document) | {SIGNING_SECRET}) == []


def test_worker_logs_carry_no_personal_data_or_api_key(
    make_harness: Callable[..., Harness],
    printed: Callable[[], list[str]],
) -> None:
    harness = make_harness(env={"POWERTOOLS_LOG_LEVEL": "DEBUG"})
    log_to_capture()
    record_redemption(harness.ledger, R1, order_id="ord_privacy")
    customer = ROLLBACK_API_CUSTOMER
    harness.send(redemption_id=R1, reason="Order cancelled", customer=customer, tracking_id="track-privacy")
    harness.send(order_id="ord_privacy", reason="Refund", customer=customer)
    harness.send_raw(json.dumps({"redemption_id": R1, "customer": customer, "email": customer["email"]}))  # extra
    harness.send_raw(json.dumps({"redemption_id": customer["name"], "reason": customer["address"]}))  # wrong types
    harness.send_raw(json.dumps({"order_id": "ord_privacy", "redemption_id": R1, "customer": customer}))  # both
    harness.send_raw(base64.b64encode(json.dumps({"customer": customer}).encode()).decode())  # not JSON
    harness.drain()
    lines = printed()

    assert any("rollback request rejected" in line for line in lines)
    api_key = json.loads(api_secret_value())["app_token"]
    personal = personal_values({"customer": customer})
    assert {customer["name"], customer["email"], customer["phone"], customer["address"]["line_1"]} <= personal
    assert leaks(lines, personal) == []
    assert leaks(lines, {api_key}) == []
    assert not [line for line in lines if "Logging error" in line]
