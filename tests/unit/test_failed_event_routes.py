"""The failed events belong to the routes of their families: by ``event.type`` in an envelope, by shape in a bare
body (``route_by_content``), and the event type must agree with the content (``Route.disagreement``); both read
paths give the same answer."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from support.documents import envelope, openapi_examples, seed_redemption, seed_rollback
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData, EventRedemptionSucceededData
from voucherify_ledger.webhooks.reading import EVENT_DISAGREES, DeliveryReader, Invalid, Read
from voucherify_ledger.webhooks.routes import REDEMPTION_ROLLBACK_SUCCEEDED, REDEMPTION_SUCCEEDED, route_by_content

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def example(webhook: str) -> dict[str, Any]:
    ((_, found),) = openapi_examples(webhook)
    return copy.deepcopy(found)


def raw(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("document", "route", "evidence"),
    [
        (envelope(example("EVENTS.REDEMPTION.FAILED"), "redemption.failed"), "redemption-succeeded", "event.type"),
        (
            envelope(example("EVENTS.REDEMPTION.ROLLBACK.FAILED"), "redemption.rollback.failed"),
            "redemption-rollback-succeeded",
            "event.type",
        ),
        (example("EVENTS.REDEMPTION.FAILED"), "redemption-succeeded", "a bare body with redemption"),
        (example("EVENTS.REDEMPTION.ROLLBACK.FAILED"), "redemption-rollback-succeeded", "a bare body with redemption_"),
    ],
    ids=["failed-envelope", "rollback-failed-envelope", "failed-bare", "rollback-failed-bare"],
)
def test_a_failed_event_is_routed_to_its_family(document: dict[str, Any], route: str, evidence: str) -> None:
    found = route_by_content(raw(document))
    assert found is not None and found.route == route and found.evidence.startswith(evidence)


def test_each_route_takes_its_familys_failed_event() -> None:
    assert "redemption.failed" in REDEMPTION_SUCCEEDED.event_types
    assert "redemption.rollback.failed" in REDEMPTION_ROLLBACK_SUCCEEDED.event_types
    assert REDEMPTION_SUCCEEDED.failed_event_types <= REDEMPTION_SUCCEEDED.event_types
    assert REDEMPTION_ROLLBACK_SUCCEEDED.failed_event_types <= REDEMPTION_ROLLBACK_SUCCEEDED.event_types
    assert not REDEMPTION_SUCCEEDED.event_types & REDEMPTION_ROLLBACK_SUCCEEDED.event_types


@pytest.mark.parametrize(
    ("route", "model", "event_type", "document", "disagrees"),
    [
        (REDEMPTION_SUCCEEDED, EventRedemptionSucceededData, "redemption.failed", "failed", False),
        (REDEMPTION_SUCCEEDED, EventRedemptionSucceededData, "redemption.succeeded", "failed", True),
        (REDEMPTION_SUCCEEDED, EventRedemptionSucceededData, "redemption.failed", "succeeded", True),
        (REDEMPTION_SUCCEEDED, EventRedemptionSucceededData, None, "failed", False),  # bare: the content says
        (
            REDEMPTION_ROLLBACK_SUCCEEDED,
            EventRedemptionRollbackSucceededData,
            "redemption.rollback.failed",
            "rollback failed",
            False,
        ),
        (
            REDEMPTION_ROLLBACK_SUCCEEDED,
            EventRedemptionRollbackSucceededData,
            "redemption.rollback.succeeded",
            "rollback failed",
            True,
        ),
        (
            REDEMPTION_ROLLBACK_SUCCEEDED,
            EventRedemptionRollbackSucceededData,
            "redemption.rollback.failed",
            "rollback",
            True,
        ),
    ],
)
def test_the_event_type_and_the_content_must_agree(
    route: Any, model: Any, event_type: str | None, document: str, disagrees: bool
) -> None:
    documents = {
        "failed": example("EVENTS.REDEMPTION.FAILED"),
        "succeeded": seed_redemption(),
        "rollback failed": example("EVENTS.REDEMPTION.ROLLBACK.FAILED"),
        "rollback": seed_rollback(),
    }
    data = model.model_validate(documents[document])
    problem = route.disagreement(event_type, data)
    assert (problem is not None) is disagrees
    if problem:
        assert problem.startswith(f"event.type: {event_type}, but ")


@pytest.mark.parametrize(
    ("route", "document", "event_type", "expected"),
    [
        (REDEMPTION_SUCCEEDED, "EVENTS.REDEMPTION.FAILED", "redemption.failed", Read),
        (REDEMPTION_SUCCEEDED, "EVENTS.REDEMPTION.FAILED", "redemption.succeeded", Invalid),
        (REDEMPTION_ROLLBACK_SUCCEEDED, "EVENTS.REDEMPTION.ROLLBACK.FAILED", "redemption.rollback.failed", Read),
        (REDEMPTION_ROLLBACK_SUCCEEDED, "EVENTS.REDEMPTION.ROLLBACK.FAILED", "redemption.rollback.succeeded", Invalid),
    ],
)
def test_both_read_paths_agree_on_failed_events(route: Any, document: str, event_type: str, expected: type) -> None:
    reader = DeliveryReader(route)
    text = raw(envelope(example(document), event_type)).decode()
    delivery = Delivery(raw=text.encode(), route=route.name, received_at=NOW)
    fast = reader.read_in_one_pass(text, delivery)
    slow = reader.read_step_by_step(text, delivery)
    assert isinstance(slow, expected)
    if expected is Read:
        assert fast is not None and fast.data == slow.data and fast.delivery == slow.delivery  # type: ignore[union-attr]
    else:
        assert fast is None  # declined: the step-by-step read says why
        assert slow.reason == EVENT_DISAGREES  # type: ignore[union-attr]
