"""Fixtures every tier may use: AWS emulated by moto in-process (the table built from template.yaml), the functions
loaded as Lambda loads them, the rollback worker's harness. Helpers that are not fixtures live in ``tests/support``;
each tier's own fixtures in its own conftest.py."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from ledger_dev.fake_voucherify import FakeVoucherify, api_secret_value
from ledger_dev.harness.apigw import LambdaContext, http_api_event, response_parts
from ledger_dev.harness.functions import load_handler
from ledger_dev.harness.moto_patches import linear_update_validation
from ledger_dev.harness.queues import create_queues
from ledger_dev.harness.sqs_poller import SqsPoller
from ledger_dev.harness.template import create_table, function_environment, resources
from support.functions import (
    API_SECRET_ID,
    HEADER_TOKEN,
    ROUTES,
    SECRET_ID,
    SIGNING_SECRET,
    TABLE_NAME,
    Answer,
    Aws,
    LambdaApp,
)
from support.worker import R1, R2, Harness, redemption_document, template_refs
from voucherify_ledger.ledger import Ledger
from voucherify_ledger.webhooks.auth import sign


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """moto in-process: the ledger table as template.yaml defines it, and the webhook secret."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SAM_LOCAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    linear_update_validation()  # moto's own check is quadratic in an update's actions (moto_patches)
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


# --- the rollback worker ---------------------------------------------------------------------------
@pytest.fixture
def serialized_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies each request atomically (a conditional write is a compare-and-set); moto does not
    lock, so concurrency tests serialise its backend calls to get DynamoDB's guarantee, not moto's races."""
    lock = threading.RLock()
    for name in ("put_item", "get_item", "update_item", "delete_item", "transact_write_items", "query"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture
def make_harness(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, serialized_dynamodb: None
) -> Iterator[Callable[..., Harness]]:
    """Builds the queues from template.yaml, the API secret, a fake Voucherify and the worker. The fake knows ``R1``
    and ``R2`` as Voucherify does the redemptions it sent a webhook of (``known``; ``known=()``: none); a test adds any
    other redemption it rolls back (``fake.add_redemption``, ``add_stack``): the fake answers 404 for the rest."""
    from aws_lambda_powertools.utilities import parameters

    fakes: list[FakeVoucherify] = []

    def build(*, env: dict[str, str] | None = None, known: Iterable[str] = (R1, R2), **fake_options: Any) -> Harness:
        parameters.clear_caches()
        sqs = boto3.client("sqs")
        aws.secrets.create_secret(Name=API_SECRET_ID, SecretString=api_secret_value())
        refs = template_refs(LedgerTable=TABLE_NAME)
        queues = {q.logical_id: q for q in create_queues(sqs, resources("AWS::SQS::Queue"), refs)}
        fake = FakeVoucherify(**{"webhook_delay": None, **fake_options}).start()
        fakes.append(fake)
        for redemption_id in known:
            fake.know_webhook(redemption_document(redemption_id))
        environment = function_environment("RollbackWorkerFunction", refs)
        environment.update(
            VOUCHERIFY_API_URL=fake.url,
            ROLLBACK_RETRY_BASE_SECONDS="0",  # a retried message is visible again at once
            VOUCHERIFY_READ_TIMEOUT_SECONDS="0.5",
            VOUCHERIFY_REQUESTS_PER_MINUTE="6000",  # pacing has its own test
            POWERTOOLS_METRICS_NAMESPACE="VoucherifyLedger",
        )
        environment.update(env or {})
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        handler = load_handler("RollbackWorkerFunction")
        poller = SqsPoller(sqs, queues["RollbackQueue"].url, handler, wait_time_seconds=0, timeout_seconds=30)
        return Harness(
            aws,
            sqs,
            queues["RollbackQueue"].url,
            queues["RollbackDeadLetterQueue"].url,
            fake,
            handler,
            poller,
            environment,
        )

    yield build
    for fake in fakes:
        fake.stop()


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()


# --- hostile-input case counts (the property tests), shown at the end of every run ----------------------------
HOSTILE_CASES = pytest.StashKey[dict[str, int]]()


@pytest.fixture
def count_cases(request: pytest.FixtureRequest) -> Callable[[], None]:
    """Counts the examples a test tried, for the summary line of ``pytest_terminal_summary``."""
    counts = request.config.stash.setdefault(HOSTILE_CASES, {})
    name = request.node.name

    def tried() -> None:
        counts[name] = counts.get(name, 0) + 1

    return tried


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    counts = config.stash.get(HOSTILE_CASES, {})
    if counts:
        terminalreporter.write_line(
            f"hostile input: {sum(counts.values())} cases tried in {len(counts)} property tests "
            f"({', '.join(f'{name} {n}' for name, n in sorted(counts.items()))})"
        )
