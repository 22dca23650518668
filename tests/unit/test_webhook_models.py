"""Contract tests of the payload models against Voucherify's published payloads and schemas."""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from ledger_dev.payloads.schema_payloads import EVENT_SCHEMAS, SchemaPayloads, json_schema
from support.documents import PAYLOADS, WEBHOOK_EVENTS, openapi_examples, openapi_webhooks, seed_documents
from voucherify_ledger.errors import describe_errors
from voucherify_ledger.models.objects import (
    DiscountAmount,
    DiscountFixed,
    DiscountPercent,
    DiscountUnit,
    DiscountUnitMultiple,
    DiscountUnitMultipleOneUnit,
    SimpleCampaignVoucher,
    SimpleVoucher,
)
from voucherify_ledger.models.webhooks import (
    EventCustomerRedemptionRollbackSucceededData,
    EventRedemptionFailedData,
    EventRedemptionRollbackFailedData,
    EventRedemptionRollbackSucceededData,
    EventRedemptionSucceededData,
    WebhookEnvelope,
    is_envelope,
)

MODEL_OF_WEBHOOK: dict[str, type[BaseModel]] = {
    "EVENTS.REDEMPTION.SUCCEEDED": EventRedemptionSucceededData,
    "EVENTS.CUSTOMER.REDEMPTION.SUCCEEDED": EventRedemptionSucceededData,
    "EVENTS.REDEMPTION.FAILED": EventRedemptionFailedData,
    "EVENTS.REDEMPTION.ROLLBACK.SUCCEEDED": EventRedemptionRollbackSucceededData,
    "EVENTS.CUSTOMER.REDEMPTION.ROLLBACK.SUCCEEDED": EventCustomerRedemptionRollbackSucceededData,
    "EVENTS.REDEMPTION.ROLLBACK.FAILED": EventRedemptionRollbackFailedData,
}
ISO_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _seed(prefix: str) -> dict[str, Any]:
    documents = seed_documents(prefix)
    assert documents, f"no JSON in seed page {prefix}"
    return copy.deepcopy(documents[0])


def seed_redemption() -> dict[str, Any]:
    return _seed("002")


def seed_rollback() -> dict[str, Any]:
    return _seed("000")


def normalized(value: Any) -> Any:
    """Timestamps as ``datetime`` (``.636Z`` and ``.636000+00:00`` are the same instant); the rest as is."""
    if isinstance(value, dict):
        return {key: normalized(item) for key, item in value.items()}
    if isinstance(value, list):
        return [normalized(item) for item in value]
    if isinstance(value, str) and ISO_TIMESTAMP.fullmatch(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def assert_round_trip(model: type[BaseModel], document: dict[str, Any]) -> BaseModel:
    """Validates ``document`` and checks that every field, known or unknown, survives with its value."""
    parsed = model.model_validate(document)
    assert normalized(parsed.model_dump(exclude_unset=True)) == normalized(document)
    again = model.model_validate_json(parsed.model_dump_json(exclude_unset=True))
    assert normalized(again.model_dump(exclude_unset=True)) == normalized(document)
    return parsed


def contract_documents() -> list[Any]:
    cases = [
        pytest.param(EventRedemptionSucceededData, seed_redemption(), id="seed-002-redemption.succeeded"),
        pytest.param(
            EventCustomerRedemptionRollbackSucceededData, seed_rollback(), id="seed-000-customer.redemption.rollback"
        ),
    ]
    for webhook, model in MODEL_OF_WEBHOOK.items():
        for name, example in openapi_examples(webhook):
            cases.append(pytest.param(model, example, id=name))
    return cases


# --- the published payloads ----------------------------------------------------------------------------
def test_every_webhook_of_the_bundle_has_published_examples() -> None:
    for webhook in WEBHOOK_EVENTS:
        assert openapi_examples(webhook), f"{webhook} has no example in OpenAPIWebhooks.json"


@pytest.mark.parametrize(("model", "document"), contract_documents())
def test_published_payload_validates_and_every_field_survives(model: type[BaseModel], document: dict) -> None:
    assert_round_trip(model, document)


def test_seed_pages_repeat_the_same_payload() -> None:
    for prefix in ("000", "002"):
        documents = seed_documents(prefix)
        assert all(doc == documents[0] for doc in documents), f"seed {prefix} shows two different payloads"


def test_event_files_are_the_published_payloads() -> None:
    published = [seed_redemption(), seed_rollback()]
    published += [example for webhook in WEBHOOK_EVENTS for _, example in openapi_examples(webhook)]
    files = sorted(PAYLOADS.glob("*.json"))
    assert {"redemption_succeeded.json", "customer_redemption_rollback_succeeded.json"} <= {f.name for f in files}
    for path in files:
        assert json.loads(path.read_text(encoding="utf-8")) in published, f"{path.name} is not a published payload"
    assert json.loads((PAYLOADS / "redemption_succeeded.json").read_text()) == seed_redemption()
    assert json.loads((PAYLOADS / "customer_redemption_rollback_succeeded.json").read_text()) == seed_rollback()


def test_seed_rollback_names_its_redemption_in_both_places() -> None:
    data = EventCustomerRedemptionRollbackSucceededData.model_validate(seed_rollback())
    assert data.redemption is not None
    assert data.redemption.id == data.redemption_rollback.redemption == data.redemption_id == "r_0e6ff48b91cfa02e97"
    assert data.redemption_rollback.id == "rr_0e70cac29fee95aa7b"
    assert data.redemption_rollback.object == "redemption_rollback"


def test_amounts_are_integers_and_timestamps_are_aware_datetimes() -> None:
    data = EventRedemptionSucceededData.model_validate(seed_redemption())
    order = data.redemption.order
    assert order is not None
    for amount in (order.amount, order.total_amount, order.total_discount_amount, order.items[0].price):
        assert type(amount) is int
    assert (order.amount, order.total_discount_amount, order.total_amount) == (7000, 1000, 6000)
    for moment in (data.created_at, data.redemption.date, order.created_at, data.campaign.created_at):
        assert isinstance(moment, datetime)
        assert moment.utcoffset() == timedelta(0)
    assert data.redemption.date == datetime.fromisoformat("2024-01-15T12:20:38.635000+00:00")

    rollback = EventRedemptionRollbackSucceededData.model_validate(seed_rollback())
    assert isinstance(rollback.redemption_rollback.date, datetime)


def test_unknown_fields_are_kept_at_every_level() -> None:
    document = seed_redemption()
    document["x_new_top_level"] = {"nested": [1, 2]}
    document["redemption"]["x_channel_hint"] = "pos"
    document["order"]["items"][0]["x_tax_code"] = "A1"
    document["voucher"]["discount"]["x_rounding"] = "HALF_UP"
    data = assert_round_trip(EventRedemptionSucceededData, document)
    assert data.model_extra == {"x_new_top_level": {"nested": [1, 2]}}
    assert data.redemption.model_extra == {"x_channel_hint": "pos"}
    assert data.voucher.discount.model_extra == {"x_rounding": "HALF_UP"}


# --- discounts -------------------------------------------------------------------------------------------
PERCENT = {
    "type": "PERCENT",
    "percent_off": 10,
    "percent_off_formula": "IF(ORDER_AMOUNT > 150;15;10)",
    "amount_limit": 3000,
    "effect": "APPLY_TO_ORDER",
}
AMOUNT = {"type": "AMOUNT", "amount_off": 2000, "effect": "APPLY_TO_ITEMS_PROPORTIONALLY"}
UNIT_NEW = {"type": "UNIT", "unit_off": 1, "unit_type": "prod_0df14b3a6ad8f282a8", "effect": "ADD_NEW_ITEMS"}
UNIT_SINGLE_MANY = {"type": "UNIT", "unit_off": 2, "unit_type": "prod_0df14b3a6ad8f282a8", "effect": "ADD_MANY_ITEMS"}
UNIT_MANY = {
    "type": "UNIT",
    "effect": "ADD_MANY_ITEMS",
    "units": [
        {"unit_off": 1, "unit_type": "prod_0b0a3bb2b2e5c9fa2a", "effect": "ADD_NEW_ITEMS"},
        {
            "unit_off": 2,
            "unit_type": "sku_0b7d7dfb090be5c619",
            "effect": "ADD_MISSING_ITEMS",
            "sku": {"id": "sku_0b7d7dfb090be5c619", "name": "Mug, blue"},
        },
    ],
}
FIXED = {"type": "FIXED", "fixed_amount": 1500, "effect": "APPLY_TO_ITEMS"}


@pytest.mark.parametrize(
    ("discount", "expected"),
    [
        (PERCENT, DiscountPercent),
        (AMOUNT, DiscountAmount),
        (UNIT_NEW, DiscountUnit),
        (UNIT_SINGLE_MANY, DiscountUnit),
        (UNIT_MANY, DiscountUnitMultiple),
        (FIXED, DiscountFixed),
        ({**UNIT_NEW, "units": None}, DiscountUnit),  # the seed campaigns send "units": null
    ],
    ids=["percent", "amount", "unit-add-new", "unit-single-add-many", "unit-multiple", "fixed", "unit-units-null"],
)
def test_each_discount_shape_parses_to_its_class(discount: dict, expected: type[BaseModel]) -> None:
    voucher = assert_round_trip(SimpleVoucher, {"code": "SPRING-2024-hOg", "discount": discount})
    assert type(voucher.discount) is expected
    campaign_voucher = SimpleCampaignVoucher.model_validate(
        {
            "type": "DISCOUNT_VOUCHER",
            "discount": discount,
            "redemption": {"quantity": None, "redeemed_quantity": 0},
            "code_config": {"length": 3, "charset": "0123", "prefix": "S-", "postfix": "", "pattern": "###"},
        }
    )
    assert type(campaign_voucher.discount) is expected


def test_discount_details_are_typed() -> None:
    percent = SimpleVoucher.model_validate({"code": "C", "discount": PERCENT}).discount
    assert isinstance(percent, DiscountPercent)
    assert (percent.percent_off, percent.amount_limit, percent.percent_off_formula) == (
        10,
        3000,
        "IF(ORDER_AMOUNT > 150;15;10)",
    )
    assert type(percent.amount_limit) is int
    many = SimpleVoucher.model_validate({"code": "C", "discount": UNIT_MANY}).discount
    assert isinstance(many, DiscountUnitMultiple)
    assert [type(unit) for unit in many.units] == [DiscountUnitMultipleOneUnit] * 2
    assert many.units[1].sku is not None and many.units[1].sku.id == "sku_0b7d7dfb090be5c619"


@pytest.mark.parametrize(
    ("discount", "problem"),
    [
        ({"type": ["AMOUNT"], "amount_off": 1}, "discount.type must be a string"),
        ({"amount_off": 1}, "discount.type must be a string"),
        ({"type": "AMOUNT"}, "amount_off"),
        ({"type": "AMOUNT", "amount_off": "a lot"}, "amount_off"),
        ({"type": "PERCENT", "percent_off": 10, "amount_limit": "12.5 off"}, "amount_limit"),
        ({"type": "UNIT", "effect": "ADD_NEW_ITEMS"}, "unit_type"),
        ({"type": "UNIT", "effect": "ADD_MANY_ITEMS"}, "units"),
        ({"type": "UNIT", "units": [{"unit_type": "prod_1"}]}, "effect"),
        ({"type": "FIXED"}, "fixed_amount"),
    ],
)
def test_malformed_discount_is_rejected(discount: dict, problem: str) -> None:
    with pytest.raises(ValidationError) as raised:
        SimpleVoucher.model_validate({"code": "C", "discount": discount})
    assert problem in str(raised.value)


# --- wrong types -----------------------------------------------------------------------------------------
def _set(document: dict, path: str, value: Any) -> dict:
    target: Any = document
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return document


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "location"),
    [
        ("redemption.id", 12345, "redemption.id"),
        ("redemption.id", "", "redemption.id"),
        ("redemption.date", "yesterday", "redemption.date"),
        ("redemption.date", _DELETE, "redemption.date"),
        ("redemption.status", "MAYBE", "redemption.status"),
        ("redemption.amount", 10.5, "redemption.amount"),
        ("redemption", _DELETE, "redemption"),
        ("redemption", None, "redemption"),
        ("redemption", ["r_1"], "redemption"),
        ("order.amount", "seven thousand", "order.amount"),
        ("order.amount", 70.25, "order.amount"),
        ("order.total_applied_discount_amount", 10.5, "order.total_applied_discount_amount"),
        ("order.items.0.applied_discount_amount", 10**38, "order.items.0.applied_discount_amount"),
        ("redemption.result", "PARTIAL", "redemption.result"),
        ("order.items", {"object": "order_item"}, "order.items"),
        ("order.items.0.quantity", [2], "order.items.0.quantity"),
        ("voucher.code", 5, "voucher.code"),
        ("voucher.code", _DELETE, "voucher.code"),
        ("voucher.created_at", "2024-13-45T99:00:00Z", "voucher.created_at"),
        ("customer", "cust_1g637SqVZnkdPNdAIZ7Ra879", "customer"),
        ("customer.metadata", ["lang"], "customer.metadata"),
        ("campaign.voucher.redemption.redeemed_quantity", "none", "campaign.voucher.redemption.redeemed_quantity"),
        ("campaign.voucher.code_config", _DELETE, "campaign.voucher.code_config"),
        ("created_at", "soon", "created_at"),
    ],
)
def test_wrong_types_are_rejected_with_their_location(path: str, value: Any, location: str) -> None:
    document = _set(seed_redemption(), path, value)
    with pytest.raises(ValidationError) as raised:
        EventRedemptionSucceededData.model_validate(document)
    locations = {".".join(str(part) for part in error["loc"]) for error in raised.value.errors()}
    assert any(loc == location or loc.startswith(location + ".") for loc in locations), locations


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("redemption_rollback", _DELETE, "redemption_rollback"),
        ("redemption_rollback.id", None, "redemption_rollback.id"),
        ("redemption_rollback.redemption", "r_000000000000000000", "name different redemptions"),
        ("redemption_rollback.result", "PARTIAL", "redemption_rollback.result"),
    ],
)
def test_rollback_rules(path: str, value: Any, problem: str) -> None:
    document = _set(seed_rollback(), path, value)
    with pytest.raises(ValidationError) as raised:
        EventRedemptionRollbackSucceededData.model_validate(document)
    message = str(raised.value)
    assert problem in message or any(".".join(map(str, e["loc"])).startswith(problem) for e in raised.value.errors()), (
        message
    )


def test_rollback_needs_to_know_its_redemption() -> None:
    document = seed_rollback()
    del document["redemption_rollback"]["redemption"]
    assert EventRedemptionRollbackSucceededData.model_validate(document).redemption_id == "r_0e6ff48b91cfa02e97"
    document["redemption"] = None
    with pytest.raises(ValidationError, match="a rollback must name its redemption"):
        EventRedemptionRollbackSucceededData.model_validate(document)
    document["redemption_rollback"]["redemption"] = "r_0e6ff48b91cfa02e97"
    assert EventRedemptionRollbackSucceededData.model_validate(document).redemption_id == "r_0e6ff48b91cfa02e97"


def test_described_errors_name_fields_not_values() -> None:
    document = seed_redemption()
    document["redemption"]["amount"] = "Jane Doe jane@jane.io"
    document["redemption"]["status"] = "jane@jane.io"
    document["customer"] = "jane@jane.io"
    document["voucher"]["discount"] = {"type": ["Jane Doe"]}
    with pytest.raises(ValidationError) as raised:
        EventRedemptionSucceededData.model_validate(document)
    described = describe_errors(raised.value, "data")
    assert {line.split(":")[0] for line in described} == {
        "data.redemption.amount",
        "data.redemption.status",
        "data.customer",
        "data.voucher.discount",
    }
    assert all(": " in line and len(line.split(": ", 1)[1]) > 5 for line in described)
    assert "jane" not in json.dumps(described).lower()


# --- the v2024-01-01 envelope ----------------------------------------------------------------------------
def test_envelope_is_told_apart_from_bare_data() -> None:
    generator = SchemaPayloads(openapi_webhooks(), seed=7)
    data = generator.redemption_succeeded()
    project = generator.envelope(data, "redemption.succeeded")
    distribution = generator.envelope(seed_rollback(), "customer.redemption.rollback.succeeded")
    assert is_envelope(project) and is_envelope(distribution)
    assert not is_envelope(data) and not is_envelope(seed_rollback()) and not is_envelope(seed_redemption())
    parsed = WebhookEnvelope.model_validate(distribution)
    assert parsed.event.type == "customer.redemption.rollback.succeeded"
    assert parsed.type != parsed.event.type  # a distribution's type is the name the user typed
    assert parsed.source.object == "distribution"
    assert parsed.data == seed_rollback()
    assert WebhookEnvelope.model_validate(project).type == "redemption.succeeded"


@pytest.mark.parametrize("missing", ["id", "project_id", "created_at", "type", "data", "source", "event"])
def test_envelope_requires_every_part(missing: str) -> None:
    generator = SchemaPayloads(openapi_webhooks(), seed=8)
    envelope = generator.envelope(seed_redemption(), "redemption.succeeded")
    del envelope[missing]
    with pytest.raises(ValidationError) as raised:
        WebhookEnvelope.model_validate(envelope)
    assert missing in {e["loc"][0] for e in raised.value.errors()}


# --- payloads generated from the schemas -----------------------------------------------------------------
def generated(seed: int, redemptions: int = 40, **rates: float) -> list[tuple[str, dict]]:
    return list(SchemaPayloads(openapi_webhooks(), seed, **rates).batch(redemptions))


def test_generator_is_deterministic() -> None:
    assert generated(3, 10) == generated(3, 10)
    assert generated(3, 10) != generated(4, 10)


def test_generated_payloads_follow_the_schema() -> None:
    spec = openapi_webhooks()
    validators = {name: Draft202012Validator(json_schema(spec, name)) for name in set(EVENT_SCHEMAS.values())}
    seen = set()
    for event_type, data in generated(11, 80):
        errors = [
            f"{list(e.absolute_path)}: {e.message}" for e in validators[EVENT_SCHEMAS[event_type]].iter_errors(data)
        ]
        assert errors == [], errors[:3]
        seen.add(event_type)
        if "rollback" in event_type:
            failed = event_type == "redemption.rollback.failed"
            assert data["redemption_rollback"]["id"].startswith("rrf_" if failed else "rr_")
            assert (data["redemption_rollback"]["result"] == "FAILURE") is failed
            assert data["redemption_rollback"]["redemption"].startswith("r_")
        else:
            failed = event_type == "redemption.failed"
            assert re.fullmatch(r"rf_[0-9a-f]{18}" if failed else r"r_[0-9a-f]{18}", data["redemption"]["id"])
            assert (data["redemption"]["status"] == "FAILED") is failed
    assert seen == {
        "redemption.succeeded",
        "redemption.failed",
        "customer.redemption.rollback.succeeded",
        "redemption.rollback.succeeded",
        "redemption.rollback.failed",
    }


@pytest.mark.parametrize(
    "rates",
    [
        {},
        {"optional_rate": 0.95, "null_rate": 0.05, "extra_rate": 0.3},
        {"optional_rate": 0.95, "null_rate": 0.6},
        {"optional_rate": 0.1, "null_rate": 0.3},
    ],
    ids=["default", "everything", "many-nulls", "sparse"],
)
def test_generated_payloads_validate_and_round_trip(rates: dict[str, float]) -> None:
    for event_type, data in generated(21, 60, **rates):
        model = EventRedemptionRollbackSucceededData if "rollback" in event_type else EventRedemptionSucceededData
        try:
            assert_round_trip(model, data)
        except ValidationError as exc:  # a schema-valid payload the models refuse is a model bug
            pytest.fail(f"{event_type} payload refused: {exc.errors(include_input=False)[:3]}")
