"""Voucherify's API objects as the ledger's writes take them: every redemption the redemptions API publishes (GET
list and GET by id examples, failed ones and a stack's parent included) and every rollback its rollback endpoint
answers becomes the webhook data of its kind, with the status its result implies; what cannot is named by field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from support.documents import SHARED_DIR
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData, EventRedemptionSucceededData
from voucherify_ledger.reconcile.objects import UnreadableObject, raw_copy, webhook_data

REDEMPTIONS_API = SHARED_DIR / "reference" / "voucherify" / "redemptions.json"


def _examples(path: str, method: str) -> list[tuple[str, Any]]:
    spec = json.loads(REDEMPTIONS_API.read_text(encoding="utf-8"))
    media = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    return [(name, example["value"]) for name, example in (media.get("examples") or {}).items()]


def api_redemptions() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, value in _examples("/v1/redemptions", "get") + _examples("/v1/redemptions/{redemptionId}", "get"):
        for obj in value.get("redemptions", [value]):
            found.append((f"{name}:{obj['id']}", obj))
    return found


def api_rollbacks() -> list[tuple[str, dict[str, Any]]]:
    return [(name, value) for name, value in _examples("/v1/redemptions/{redemptionId}/rollback", "post")]


@pytest.mark.parametrize(("name", "obj"), api_redemptions(), ids=[n for n, _ in api_redemptions()])
def test_every_published_redemption_becomes_its_webhook_data(name: str, obj: dict[str, Any]) -> None:
    data = webhook_data(obj)
    assert isinstance(data, EventRedemptionSucceededData)
    assert data.redemption.id == obj["id"]
    assert data.redemption.status == {"SUCCESS": "SUCCEEDED", "FAILURE": "FAILED"}[obj["result"]]
    if obj.get("order"):
        assert data.order is not None and data.order.id == obj["order"].get("id")
    assert json.loads(raw_copy(obj)) == obj


@pytest.mark.parametrize(("name", "obj"), api_rollbacks(), ids=[n for n, _ in api_rollbacks()])
def test_every_published_rollback_becomes_rollback_data_naming_its_redemption(name: str, obj: dict[str, Any]) -> None:
    data = webhook_data(obj)
    assert isinstance(data, EventRedemptionRollbackSucceededData)
    assert data.redemption_rollback.id == obj["id"]
    assert data.redemption_id == obj["redemption"]


def test_the_published_examples_cover_failed_attempts_stacks_and_rollbacks() -> None:
    ids = [obj["id"] for _, obj in api_redemptions()]
    assert any(i.startswith("rf_") for i in ids)
    assert any(obj.get("related_object_type") == "redemption" for _, obj in api_redemptions())
    assert len(api_rollbacks()) >= 4


def test_an_object_that_does_not_validate_is_named_by_field_never_by_value() -> None:
    (_, obj), *_ = api_redemptions()
    broken = {**obj, "id": "not-an-id annie@lemon.com"}
    with pytest.raises(UnreadableObject) as refused:
        webhook_data(broken)
    assert "annie@lemon.com" not in str(refused.value)
    assert refused.value.problems
