"""The payload models' validators are built when a function asks for them (``models.base.build``), once each."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.functions import CACHE_TYPE_ADAPTER

from voucherify_ledger.models.base import VoucherifyModel, build
from voucherify_ledger.models.webhooks import WebhookEnvelope
from voucherify_ledger.webhooks.reading import DeliveryReader
from voucherify_ledger.webhooks.routes import REDEMPTION_ROLLBACK_SUCCEEDED, REDEMPTION_SUCCEEDED, Route


def test_payload_models_defer_their_build() -> None:
    assert VoucherifyModel.model_config.get("defer_build") is True


@pytest.mark.parametrize("route", [REDEMPTION_SUCCEEDED, REDEMPTION_ROLLBACK_SUCCEEDED], ids=lambda r: r.name)
def test_a_reader_builds_its_route_models_and_the_parser_uses_their_validators(route: Route) -> None:
    DeliveryReader(route).prepare()
    for model in (WebhookEnvelope, route.model, route.envelope_model):
        assert model.__pydantic_complete__
        adapter = CACHE_TYPE_ADAPTER[id(model)]
        with pytest.raises(ValidationError):
            parse(event={}, model=model)
        assert adapter.validator is model.__pydantic_validator__  # one validator per model, not a second


def test_build_leaves_a_built_model_as_it_is() -> None:
    build(REDEMPTION_SUCCEEDED.model)
    validator = REDEMPTION_SUCCEEDED.model.__pydantic_validator__
    build(REDEMPTION_SUCCEEDED.model)
    assert REDEMPTION_SUCCEEDED.model.__pydantic_validator__ is validator
