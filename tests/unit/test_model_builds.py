"""The payload models' validators are built when a function asks for them (``models.base.build``), once each."""

from __future__ import annotations

import threading

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
    for model in (WebhookEnvelope, route.model, route.envelope_model):  # as at init: no adapter made before
        CACHE_TYPE_ADAPTER.pop(id(model), None)
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


def test_threads_that_first_use_a_model_together_build_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic._internal import _model_construction

    class Inner(VoucherifyModel):
        code: str

    class Outer(VoucherifyModel):
        id: str
        inner: Inner | None = None
        tags: list[str] | None = None

    built: list[str] = []
    complete = _model_construction.complete_model_class

    def counted(cls: type, *args: object, **kwargs: object) -> bool:
        built.append(cls.__name__)
        return complete(cls, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_model_construction, "complete_model_class", counted)
    start = threading.Barrier(8)
    results: list[Outer] = []

    def first_use() -> None:
        start.wait()
        results.append(Outer.model_validate({"id": "x", "inner": {"code": "c"}, "tags": ["a"]}))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and all(r.inner is not None and r.inner.code == "c" for r in results)
    assert built.count("Outer") == 1
