"""The message contract: RollbackRequest, its published JSON Schema, and enqueueing."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError

from ledger_dev.harness.template import PROJECT_ROOT
from voucherify_ledger.models import ids
from voucherify_ledger.models.rollback_request import (
    RollbackRequest,
    is_rollback_target,
    rollback_request_schema,
    schema_document,
    validation_errors,
)

SCHEMA_FILE = PROJECT_ROOT / "docs" / "rollback-request.schema.json"


VALID = [
    {"redemption_id": "r_0e2500291ae016adea"},
    {"order_id": "ord_p6B1A0y805yUQQaCw4bC6Fbk", "reason": "Refund", "request_id": "refund-1"},
    {
        "redemption_id": "r_0e2500291ae016adea",
        "reason": "Order cancelled",
        "tracking_id": "track_x",
        "customer": {"id": "cust_1"},
        "order": {"source_id": "o-1"},
        "metadata": {"location_id": ["L2"]},
        "order_id": None,
    },
    {"redemption_id": "r_" + "a" * 100},  # the ids' generous bound (voucherify_ledger.models.ids.MAX_ID_TAIL)
    {"order_id": "ord_" + "A1" * 50},
    {"redemption_id": "r_0e2500291ae016adea", "request_id": "x" * 256},
]


INVALID = [
    {},
    {"redemption_id": "r_0e2500291ae016adea", "order_id": "ord_p6B1A0y805yUQQaCw4bC6Fbk"},
    {"redemption_id": "0e2500291ae016adea"},
    {"order_id": "r_0e2500291ae016adea"},
    {"redemption_id": "r_0e2500291ae016adea", "redemptionId": "r_x"},
    {"redemption_id": "r_0e2500291ae016adea", "customer": "annie@lemon.com"},
    {"redemption_id": "r_0e2500291ae016adea", "request_id": "has spaces"},
    {"redemption_id": "r_0e2500291ae016adea", "request_id": "x" * 257},
    # the shapes of voucherify_ledger.models.ids, as the webhooks have them: a prefix, then 1–100 letters and digits
    {"redemption_id": "r_a5.dot"},
    {"redemption_id": "r_" + "a" * 101},
    {"redemption_id": "r_" + "a" * 170},
    {"redemption_id": "r_under_score"},
    {"redemption_id": "r_hy-phen"},
    {"redemption_id": "r_"},
    {"redemption_id": "rf_0e2500291ae016adea"},  # a failed redemption: nothing to roll back
    {"order_id": "ord_dot.ted"},
    {"order_id": "ord_" + "x" * 101},
]


def test_the_published_schema_is_the_models() -> None:
    published = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert published == rollback_request_schema(), (
        "docs/rollback-request.schema.json is stale: `make schema` writes it from the model"
    )
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_document()


def test_the_model_takes_its_id_shapes_from_the_ids_module() -> None:
    properties = rollback_request_schema()["properties"]
    patterns = {name: [a.get("pattern") for a in properties[name]["anyOf"]] for name in ("redemption_id", "order_id")}
    assert patterns == {
        "redemption_id": [ids.SUCCEEDED_REDEMPTION_ID_PATTERN, None],
        "order_id": [ids.ORDER_ID_PATTERN, None],
    }


@pytest.mark.parametrize(
    "value", ["r_0e2500291ae016adea", "r_" + "a" * 100, "r_a5.dot", "r_" + "a" * 101, "r_abc\n", "rf_1", "", 5, None]
)
def test_is_rollback_target_is_the_models_own_check(value: object) -> None:
    try:
        RollbackRequest.model_validate({"redemption_id": value})
        accepted = value is not None
    except ValidationError:
        accepted = False
    assert is_rollback_target(value) is accepted


@pytest.mark.parametrize("document", VALID)
def test_valid_requests_pass_the_model_and_the_schema(document: dict) -> None:
    RollbackRequest.model_validate(document)
    jsonschema.Draft202012Validator(rollback_request_schema()).validate(document)


@pytest.mark.parametrize("document", INVALID)
def test_invalid_requests_fail_the_model_and_the_schema(document: dict) -> None:
    with pytest.raises(ValidationError):
        RollbackRequest.model_validate(document)
    assert list(jsonschema.Draft202012Validator(rollback_request_schema()).iter_errors(document))


def test_validation_errors_name_fields_never_values() -> None:
    with pytest.raises(ValidationError) as caught:
        RollbackRequest.model_validate({"redemption_id": "r_1x", "customer": "annie@lemon.com", "phone": "+1 933"})

    errors = validation_errors(caught.value)

    assert any(e.startswith("customer:") for e in errors) and any(e.startswith("phone:") for e in errors)
    assert "annie" not in " ".join(errors) and "933" not in " ".join(errors)
    with pytest.raises(ValidationError) as keyed:
        RollbackRequest.model_validate({"redemption_id": "r_1x", "annie@lemon.com": True})
    assert validation_errors(keyed.value) == ["<key>: Extra inputs are not permitted"]


def test_the_message_and_the_api_body() -> None:
    request = RollbackRequest(
        redemption_id="r_0e2500291ae016adea", reason="Refund", tracking_id="t", customer={"id": "c"}, metadata={"a": 1}
    )

    assert json.loads(request.to_message()) == {
        "redemption_id": "r_0e2500291ae016adea",
        "reason": "Refund",
        "tracking_id": "t",
        "customer": {"id": "c"},
        "metadata": {"a": 1},
    }
    body = request.api_body()
    assert body.query() == "reason=Refund&tracking_id=t"
    assert json.loads(body.json()) == {"customer": {"id": "c"}, "metadata": {"a": 1}}
