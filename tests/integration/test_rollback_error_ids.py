"""Every error answer of Voucherify leaves its ``request_id`` (and the ``resource_id`` it names) on the rollback
request's ``error``, for Voucherify's support: permanent failures, retries and the last, dead-lettered attempt. A
resource id that is not an id (a customer's source_id may be an email address) is never kept."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from support.worker import R1, Harness

EMAIL = "annie@lemon.com"


def answered_request_ids(harness: Harness) -> list[str | None]:
    """The ``request_id`` of each answer the fake sent, in order."""
    return [r.answer_request_id for r in harness.fake.requests]


@pytest.mark.parametrize(
    ("key", "status"),
    [("invalid_order", 400), ("invalid_customer", 400), ("invalid_redemption_parent", 400), ("forbidden", 403)],
)
def test_a_permanent_or_retried_error_keeps_voucherifys_request_id(harness: Harness, key: str, status: int) -> None:
    harness.fake.fail("error", key=key, times=None)
    harness.send(redemption_id=R1, request_id="req-id")

    harness.poll()

    error = harness.request(R1, "req-id")["error"]
    last = answered_request_ids(harness)[-1]
    assert last is not None and last.startswith("v-")
    assert (error["status"], error["key"], error["request_id"]) == (status, key, last)
    assert "resource_id" not in error  # these answers name no resource (redemptions.json's examples)


def test_not_found_keeps_the_resource_it_names(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(known=())  # the fake knows no redemption: 404 not_found
    harness.send(redemption_id=R1, request_id="req-404")

    harness.drain()

    request = harness.request(R1, "req-404")
    ((answer_id),) = answered_request_ids(harness)
    assert request["state"] == "FAILED"
    assert {k: request["error"][k] for k in ("status", "key", "request_id", "resource_id", "resource_type")} == {
        "status": 404,
        "key": "not_found",
        "request_id": answer_id,
        "resource_id": R1,
        "resource_type": "redemption",
    }
    assert request["error"]["details"] == f"Cannot find redemption with id {R1}"


def test_a_resource_id_that_is_not_an_id_is_withheld_and_left_out_of_the_details(harness: Harness) -> None:
    harness.fake.fail("error", key="not_found", resource_id=EMAIL, resource_type="customer")
    harness.send(redemption_id=R1, request_id="req-cust", customer={"source_id": EMAIL})

    harness.drain()

    request = harness.request(R1, "req-cust")
    error = request["error"]
    assert (error["key"], error["resource_type"], error["request_id"]) == (
        "not_found",
        "customer",
        answered_request_ids(harness)[0],
    )
    assert "resource_id" not in error
    assert error["details"] == "Cannot find customer with id <withheld>"
    assert EMAIL not in json.dumps(harness.ledger.redemptions.get(R1), default=str)


def test_a_5xx_retry_and_the_dead_lettered_attempt_keep_the_last_answers_request_id(harness: Harness) -> None:
    harness.fake.fail("status", status=503, times=None)
    harness.send(redemption_id=R1, request_id="req-5xx")

    first = harness.poll()

    assert first.failed
    retrying = harness.request(R1, "req-5xx")
    assert (retrying["state"], retrying["error"]["status"]) == ("RETRYING", 503)
    assert retrying["error"]["request_id"] == answered_request_ids(harness)[-1]

    harness.drain()

    dead = harness.request(R1, "req-5xx")
    ids = answered_request_ids(harness)
    assert (dead["state"], dead["dead_lettered"]) == ("FAILED", True)
    assert dead["error"]["request_id"] == ids[-1] and len(set(ids)) == len(ids) > 1  # each answer its own id


def test_a_429_keeps_its_request_id_while_it_waits(harness: Harness) -> None:
    harness.fake.fail("rate_limit", retry_after=30)
    harness.send(redemption_id=R1, request_id="req-429")

    harness.poll()

    error = harness.request(R1, "req-429")["error"]
    assert (error["status"], error["key"], error["request_id"]) == (
        429,
        "too_many_requests",
        answered_request_ids(harness)[0],
    )


def test_an_answer_without_a_request_id_records_none(harness: Harness) -> None:
    """A timeout has no answer: the error says so and names no request of Voucherify's."""
    harness.fake.fail("drop", times=None)
    harness.send(redemption_id=R1, request_id="req-drop")

    harness.poll()

    error = harness.request(R1, "req-drop")["error"]
    assert error["key"] == "connection" and "request_id" not in error
