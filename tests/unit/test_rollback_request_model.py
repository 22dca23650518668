"""The message contract: RollbackRequest, its published JSON Schema, and enqueueing."""

from __future__ import annotations

import itertools
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
    # the merchant's own order id (Voucherify's order.source_id): free text without control characters, 1–500
    {"order_source_id": "1001", "reason": "Order cancelled"},
    {"order_source_id": "#1001 / shop-DE", "request_id": "cancel-1001"},
    {"order_source_id": "ord_looks_like_an_id"},  # a key of its own (ORDER_SOURCE#…), never an ORDER#ord_… one
    {"order_source_id": "Bestellung-Müller-ÄÖÜ-注文"},
    {"order_source_id": "9" * 500},
    {"order_source_id": "€" * 500},  # 1,500 UTF-8 bytes: still within a DynamoDB key
    {"order_source_id": "1001", "order_id": None, "redemption_id": None},
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
    # exactly one of redemption_id, order_id and order_source_id
    {"redemption_id": "r_0e2500291ae016adea", "order_source_id": "1001"},
    {"order_id": "ord_p6B1A0y805yUQQaCw4bC6Fbk", "order_source_id": "1001"},
    {"redemption_id": "r_0e2500291ae016adea", "order_id": "ord_p6B1A0y805yUQQaCw4bC6Fbk", "order_source_id": "1"},
    {"order_source_id": None},
    # the merchant's order id: 1–500 characters, no control characters, a string
    {"order_source_id": ""},
    {"order_source_id": "9" * 501},
    {"order_source_id": "10\n01"},
    {"order_source_id": "1001\u0000"},
    {"order_source_id": "\u0085"},  # a C1 control character (NEL)
    {"order_source_id": 1001},
    {"orderSourceId": "1001"},
]


def test_the_published_schema_is_the_models() -> None:
    published = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert published == rollback_request_schema(), (
        "docs/rollback-request.schema.json is stale: `make schema` writes it from the model"
    )
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_document()


def test_the_model_takes_its_id_shapes_from_the_ids_module() -> None:
    properties = rollback_request_schema()["properties"]
    names = ("redemption_id", "order_id", "order_source_id")
    patterns = {name: [a.get("pattern") for a in properties[name]["anyOf"]] for name in names}
    assert patterns == {
        "redemption_id": [ids.SUCCEEDED_REDEMPTION_ID_PATTERN, None],
        "order_id": [ids.ORDER_ID_PATTERN, None],
        "order_source_id": [ids.ORDER_SOURCE_ID_PATTERN, None],
    }


def test_exactly_one_target_in_the_model_and_in_the_schema() -> None:
    """Each of the three targets alone passes; any two, or none, fail both the model and the published schema."""
    targets = {
        "redemption_id": "r_0e2500291ae016adea",
        "order_id": "ord_p6B1A0y805yUQQaCw4bC6Fbk",
        "order_source_id": "1",
    }
    validator = jsonschema.Draft202012Validator(rollback_request_schema())
    for count in range(4):
        for chosen in itertools.combinations(targets, count):
            document = {name: targets[name] for name in chosen}
            assert validator.is_valid(document) is (count == 1), document
            if count == 1:
                assert RollbackRequest.model_validate(document).order_target() == (
                    None if chosen == ("redemption_id",) else (chosen[0], targets[chosen[0]])
                )
                continue
            with pytest.raises(ValidationError, match="exactly one of redemption_id, order_id and order_source_id"):
                RollbackRequest.model_validate(document)


def test_the_longest_order_source_id_always_fits_its_request_key() -> None:
    """500 characters of the widest UTF-8 (4 bytes) with the request key's prefix stay within DynamoDB's 2,048 bytes
    for a partition key, and within what an index key holds."""
    from voucherify_ledger.ledger.dynamo import MAX_PARTITION_KEY_BYTES
    from voucherify_ledger.ledger.keys import order_request_key

    widest = "\U0001f600" * ids.MAX_ORDER_SOURCE_ID
    request = RollbackRequest(order_source_id=widest)
    key = order_request_key(request.order_source_id or "", "r" * 256, by="order_source_id")
    assert len(widest.encode("utf-8")) == 2000
    assert len(key["pk"]["S"].encode("utf-8")) <= MAX_PARTITION_KEY_BYTES
    assert key["pk"]["S"].startswith("ORDER_SOURCE#") and not key["pk"]["S"].startswith("ORDER#")
    with pytest.raises(ValidationError):
        RollbackRequest(order_source_id=widest + "x")


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
