"""Every sample event (events/, what `sam local invoke -e` takes) is recorded by its handler."""

from __future__ import annotations

import json

import pytest

from ledger_dev.harness.apigw import LambdaContext, response_parts
from ledger_dev.harness.functions import load_handler
from ledger_dev.payloads import make_events
from support.events import DEV_SECRET, SPECS, committed
from support.functions import SECRET_ID


@pytest.mark.parametrize("name", list(SPECS))
def test_event_is_recorded_by_its_handler(name: str, aws, function_env) -> None:
    from aws_lambda_powertools.utilities import parameters

    spec = SPECS[name]
    aws.secrets.put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps({"signing_secret": DEV_SECRET}))
    parameters.clear_caches()
    function_env(spec.function)
    handler = load_handler(spec.function)

    status, _, body = response_parts(handler(committed(f"{name}.json"), LambdaContext(function_name=spec.function)))

    answer = json.loads(body)
    data = make_events.load_payload(spec.payload)
    rollback = data.get("redemption_rollback")
    expected_id = rollback["redemption"] if rollback else data["redemption"]["id"]
    assert (status, answer["status"], answer["redemption_id"]) == (200, "recorded", expected_id)
    if spec.wrap != "bare":
        assert answer["event_type"] == spec.event_type
    view = aws.ledger.redemptions.get(expected_id)
    if spec.event_type == "redemption.rollback.failed":  # noted on its redemption, whose status it leaves alone
        assert (view["status"], view["failed_rollback_ids"]) == (None, [rollback["id"]])
    elif spec.event_type == "redemption.failed":
        assert (answer["ledger_status"], view["status"], view["failure_code"]) == (
            "FAILED",
            "FAILED",
            data["redemption"]["failure_code"],
        )
    else:
        assert view["status"] == ("ROLLED_BACK" if rollback else "SUCCEEDED")
