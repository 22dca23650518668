"""events/: the committed `sam local invoke` events are fresh, signed with the development secret, and give every
function its template environment (tests/integration/test_sample_events_are_recorded.py runs them through the
handlers)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger_dev.harness.apigw import http_api_event
from ledger_dev.harness.template import function_environment, http_routes, resources
from ledger_dev.harness.template import parameter_default as template_parameter_default
from ledger_dev.payloads import make_events
from support.events import DEV_SECRET, SPECS, committed, raw_body
from support.functions import SIGNING_SECRET
from voucherify_ledger.models.webhooks import is_envelope
from voucherify_ledger.settings import ReconcilerSettings, WebhookSettings, WorkerSettings
from voucherify_ledger.webhooks.auth import SIGNATURE_HEADER, verify_signature


def keys(value: Any, prefix: str = "") -> set[str]:
    if not isinstance(value, dict):
        return set()
    return {f"{prefix}{k}" for k in value} | {p for k, v in value.items() for p in keys(v, f"{prefix}{k}.")}


def test_committed_files_equal_freshly_generated_ones() -> None:
    fresh = make_events.build_all()

    stale = [name for name, text in fresh.items() if (make_events.EVENTS_DIR / name).read_text("utf-8") != text]

    assert not stale, f"run `python -m ledger_dev.payloads.make_events`: {stale} differ"
    assert make_events.build_all() == fresh  # generation is deterministic
    assert make_events.main(["--check"]) == 0


def test_the_expected_variants_exist() -> None:
    kinds = {(s.function, s.event_type, s.wrap, s.base64) for s in make_events.EVENT_FILES}

    assert {
        ("RedemptionSucceededFunction", "redemption.succeeded", "bare", False),
        ("RedemptionSucceededFunction", "redemption.succeeded", "webhook", False),
        ("RedemptionSucceededFunction", "redemption.succeeded", "bare", True),
        ("RedemptionRollbackSucceededFunction", "customer.redemption.rollback.succeeded", "bare", False),
        ("RedemptionRollbackSucceededFunction", "customer.redemption.rollback.succeeded", "distribution", False),
        ("RedemptionRollbackSucceededFunction", "redemption.rollback.succeeded", "webhook", False),
    } <= kinds


@pytest.mark.parametrize("name", list(SPECS))
def test_event_is_an_http_api_event_signed_with_the_dev_secret(name: str) -> None:
    spec = SPECS[name]
    event = committed(f"{name}.json")
    raw = raw_body(event)
    (route,) = [r for r in http_routes() if r.function == spec.function]
    reference = http_api_event("POST", route.path, raw, event["headers"], base64_encoded=spec.base64)

    assert keys(event) == keys(reference)  # the full shape API Gateway sends
    assert event["routeKey"] == f"POST {route.path}" and event["rawPath"] == route.path
    assert event["isBase64Encoded"] is spec.base64
    assert verify_signature(DEV_SECRET, raw, event["headers"][SIGNATURE_HEADER])
    assert not verify_signature(SIGNING_SECRET, raw, event["headers"][SIGNATURE_HEADER])
    assert event["headers"]["content-length"] == str(len(raw))
    body = json.loads(raw)
    assert is_envelope(body) is (spec.wrap != "bare")
    if spec.wrap != "bare":
        assert body["id"].startswith("whs_") and body["event"]["type"] == spec.event_type
        assert body["event"]["event_source"] == {"channel": "API"}
        assert body["source"]["object"] == ("distribution" if spec.wrap == "distribution" else "webhook")
        expected_type = spec.event_type if spec.wrap == "webhook" else make_events.DISTRIBUTION_TYPE
        assert body["type"] == expected_type
        assert body["data"] == make_events.load_payload(spec.payload)
    else:
        assert body == make_events.load_payload(spec.payload)


def test_env_json_gives_every_function_its_template_environment_for_make_run() -> None:
    env_file = committed(make_events.ENV_FILE)

    assert set(env_file) == set(resources("AWS::Serverless::Function"))
    for logical_id, env in env_file.items():
        template_names = set(function_environment(logical_id, make_events.local_refs("http://x")))
        assert template_names <= set(env)
        assert env["LEDGER_TABLE_NAME"] == "voucherify-ledger"
        assert env["AWS_ENDPOINT_URL"] == "http://host.docker.internal:5000"
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("testing", "testing")
        assert env["AWS_DEFAULT_REGION"] == "eu-west-1"
        if logical_id == "RollbackWorkerFunction":
            assert env["VOUCHERIFY_API_URL"] == "http://host.docker.internal:8787"  # make run's fake Voucherify
            assert env["ROLLBACK_QUEUE_URL"].startswith("http://host.docker.internal:5000/")
            WorkerSettings.from_env({**env, "AWS_SAM_LOCAL": "true"})  # a valid configuration
        elif logical_id == "ReconcilerFunction":
            assert env["VOUCHERIFY_API_URL"] == "http://host.docker.internal:8787"
            ReconcilerSettings.from_env({**env, "AWS_SAM_LOCAL": "true"})
        elif logical_id == "LedgerEventsFunction":
            assert env["EVENT_BUS_NAME"] == "voucherify-ledger-local-ledger"  # make run's bus
        else:
            assert env["WEBHOOK_SECRET_ID"] == template_parameter_default("WebhookSecretId")
            WebhookSettings.from_env({**env, "AWS_SAM_LOCAL": "true"})
