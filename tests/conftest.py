"""Shared fixtures: AWS emulated by moto (the table built from template.yaml), handlers loaded as Lambda loads them."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ledger_dev.harness.apigw import LambdaContext, http_api_event, response_parts
from ledger_dev.harness.functions import load_handler
from ledger_dev.harness.template import PROJECT_ROOT, create_table, function_environment
from voucherify_ledger.ledger import Ledger
from voucherify_ledger.webhooks.auth import sign

SHARED_DIR = Path(os.environ.get("VOUCHERIFY_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
PAYLOADS = PROJECT_ROOT / "events" / "payloads"

SIGNING_SECRET = "test-signing-secret"
HEADER_TOKEN = "test-header-token"
TABLE_NAME = "voucherify-ledger-test"
SECRET_ID = "voucherify-ledger/webhook"
ROUTES = {
    "RedemptionSucceededFunction": "/webhooks/redemption-succeeded",
    "RedemptionRollbackSucceededFunction": "/webhooks/redemption-rollback-succeeded",
}


def compact(document: Any) -> bytes:
    """JSON as Voucherify sends it: compact, UTF-8."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))


# --- Voucherify's published documents (the shared folder beside the repository) -------------------------
SEEDS_DIR = SHARED_DIR / "seeds"
OPENAPI_WEBHOOKS = SHARED_DIR / "reference" / "voucherify" / "OpenAPIWebhooks.json"
# OpenAPI webhook name → event name (event.type) and the function whose URL receives it.
WEBHOOK_EVENTS = {
    "EVENTS.REDEMPTION.SUCCEEDED": ("redemption.succeeded", "RedemptionSucceededFunction"),
    "EVENTS.CUSTOMER.REDEMPTION.SUCCEEDED": ("customer.redemption.succeeded", "RedemptionSucceededFunction"),
    "EVENTS.REDEMPTION.ROLLBACK.SUCCEEDED": ("redemption.rollback.succeeded", "RedemptionRollbackSucceededFunction"),
    "EVENTS.CUSTOMER.REDEMPTION.ROLLBACK.SUCCEEDED": (
        "customer.redemption.rollback.succeeded",
        "RedemptionRollbackSucceededFunction",
    ),
}


def seed_documents(prefix: str) -> list[Any]:
    """The JSON documents embedded in the text of seed page ``seeds/<prefix>_….txt``, in page order."""
    (path,) = SEEDS_DIR.glob(f"{prefix}_*.txt")
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    found: list[Any] = []
    start = text.find("{")
    while start >= 0:
        try:
            document, length = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        found.append(document)
        start = text.find("{", length)
    return found


@functools.cache
def _openapi_webhooks_text() -> str:
    return OPENAPI_WEBHOOKS.read_text(encoding="utf-8")


def openapi_webhooks() -> dict[str, Any]:
    """A fresh copy of ``OpenAPIWebhooks.json`` (callers may change it)."""
    return json.loads(_openapi_webhooks_text())


def openapi_examples(webhook: str) -> list[tuple[str, Any]]:
    """``(name, value)`` of every request-body example of ``webhooks[webhook]``."""
    content = openapi_webhooks()["webhooks"][webhook]["post"]["requestBody"]["content"]
    found = []
    for media in content.values():
        if "example" in media:
            found.append((f"{webhook}:example", media["example"]))
        for name, example in (media.get("examples") or {}).items():
            found.append((f"{webhook}:{name}", example["value"]))
    return found


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Aws:
    dynamodb: Any
    secrets: Any
    table_name: str
    ledger: Ledger

    def items(self) -> list[dict[str, Any]]:
        return self.dynamodb.scan(TableName=self.table_name, ConsistentRead=True)["Items"]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """moto in-process: the ledger table as template.yaml defines it, and the webhook secret."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SAM_LOCAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        create_table(dynamodb, table_name=TABLE_NAME)
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(
            Name=SECRET_ID, SecretString=json.dumps({"signing_secret": SIGNING_SECRET, "header_token": HEADER_TOKEN})
        )
        yield Aws(dynamodb, secrets, TABLE_NAME, Ledger(TABLE_NAME, dynamodb))


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, str]]:
    """Sets a function's environment from template.yaml (resources resolved to the test ones)."""

    def apply(logical_id: str, **overrides: str) -> dict[str, str]:
        env = function_environment(logical_id, {"LedgerTable": TABLE_NAME, "WebhookSecretId": SECRET_ID})
        env.update(POWERTOOLS_METRICS_NAMESPACE="VoucherifyLedgerTest", **overrides)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return env

    return apply


@pytest.fixture
def invoke(aws: Aws, function_env: Callable[..., dict[str, str]]) -> Callable[..., Answer]:
    """POSTs a body to a webhook function through an API Gateway v2 event, as API Gateway would."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    loaded: dict[str, Any] = {}

    def call(
        logical_id: str,
        body: bytes | str,
        *,
        signed: bool = True,
        headers: dict[str, str] | None = None,
        base64_encoded: bool | None = None,
    ) -> Answer:
        if logical_id not in loaded:
            function_env(logical_id)
            loaded[logical_id] = load_handler(logical_id)
        raw = body.encode("utf-8") if isinstance(body, str) else body
        all_headers = {"content-type": "application/json", "user-agent": "Voucherify-Webhooks"}
        if signed:
            all_headers["x-voucherify-signature"] = sign(SIGNING_SECRET, raw)
        all_headers.update(headers or {})
        event = http_api_event("POST", ROUTES[logical_id], raw, all_headers, base64_encoded=base64_encoded)
        status, answer_headers, answer_body = response_parts(
            loaded[logical_id](event, LambdaContext(function_name=logical_id))
        )
        return Answer(status, answer_headers, json.loads(answer_body))

    return call


@dataclass
class LambdaApp:
    """One function imported as Lambda imports it, with its module (and so its receiver) within reach."""

    logical_id: str
    module: ModuleType

    @property
    def receiver(self) -> Any:
        return self.module.receiver

    def send(self, event: dict[str, Any]) -> Answer:
        result = self.module.lambda_handler(event, LambdaContext(function_name=self.logical_id))
        status, headers, body = response_parts(result)
        return Answer(status, headers, json.loads(body))

    def post(
        self,
        body: bytes | str,
        *,
        secret: str | None = SIGNING_SECRET,
        signed_body: bytes | None = None,
        headers: dict[str, str] | None = None,
        base64_encoded: bool | None = None,
    ) -> Answer:
        """POSTs ``body`` to the function's route, signed with ``secret`` over ``signed_body`` (default: body)."""
        raw = body.encode("utf-8") if isinstance(body, str) else body
        all_headers = {"content-type": "application/json", "user-agent": "Voucherify-Webhooks"}
        if secret is not None:
            all_headers["x-voucherify-signature"] = sign(secret, raw if signed_body is None else signed_body)
        all_headers.update(headers or {})
        return self.send(
            http_api_event("POST", ROUTES[self.logical_id], raw, all_headers, base64_encoded=base64_encoded)
        )


@pytest.fixture
def lambda_app(aws: Aws, function_env: Callable[..., dict[str, str]]) -> Iterator[Callable[..., LambdaApp]]:
    """Loads a function after setting its environment from template.yaml (plus keyword overrides)."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()

    def load(logical_id: str, **env: str) -> LambdaApp:
        function_env(logical_id, **env)
        load_handler(logical_id)
        return LambdaApp(logical_id, sys.modules[f"functions.{logical_id}.app"])

    yield load
    parameters.clear_caches()


# --- hostile-input case counts (tests/test_hostile.py), shown at the end of every run -------------------------
HOSTILE_CASES = pytest.StashKey[dict[str, int]]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    counts = config.stash.get(HOSTILE_CASES, {})
    if counts:
        terminalreporter.write_line(
            f"hostile input: {sum(counts.values())} cases tried in {len(counts)} property tests "
            f"({', '.join(f'{name} {n}' for name, n in sorted(counts.items()))})"
        )


def emitted_metrics(output: str) -> dict[str, float]:
    """The total of each metric in the Embedded Metric Format lines of a function's output."""
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(
                    value if isinstance(value, list) else [value]
                )
    return totals
