"""What of a Voucherify error answer a rollback request keeps for Voucherify's support (``rollbacks.answers``): the
request id and the resource it names, by shape; never a value that is not an id."""

from __future__ import annotations

import json
from typing import Any

import pytest

from voucherify_ledger.rollbacks.answers import error_ids, problem_of
from voucherify_ledger.voucherify_api import ApiResponse


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> ApiResponse:
    return ApiResponse(status, body, headers or {}, json.dumps(body).encode())


DOCUMENTED_404 = {  # redemptions.json, POST /v1/redemptions/{id}/rollback, 404 "Cannot find customer"
    "code": 404,
    "key": "not_found",
    "message": "Resource not found",
    "details": "Cannot find customer with id cust_eWgXlBBiY6THFRJwX45Iakv4s",
    "request_id": "v-0c5ebc5de80a2cf1a5",
    "resource_id": "cust_eWgXlBBiY6THFRJwX45Iakv4s",
    "resource_type": "customer",
}


def test_the_documented_error_is_kept_whole() -> None:
    assert problem_of(answer(404, DOCUMENTED_404)).as_dict() == {
        "status": 404,
        "key": "not_found",
        "message": "Resource not found",
        "details": "Cannot find customer with id cust_eWgXlBBiY6THFRJwX45Iakv4s",
        "request_id": "v-0c5ebc5de80a2cf1a5",
        "resource_id": "cust_eWgXlBBiY6THFRJwX45Iakv4s",
        "resource_type": "customer",
    }


@pytest.mark.parametrize("resource_id", ["annie@lemon.com", "Annie Lemons", "+1 933 222 3334", "src_annie", 42])
def test_a_resource_id_that_is_not_a_voucherify_id_is_withheld_everywhere(resource_id: object) -> None:
    body = {**DOCUMENTED_404, "resource_id": resource_id, "details": f"Cannot find customer with id {resource_id}"}
    body["message"] = f"No customer {resource_id}"

    error = problem_of(answer(404, body)).as_dict()

    assert "resource_id" not in error
    assert str(resource_id) not in json.dumps(error)
    assert error["details"] == "Cannot find customer with id <withheld>"
    assert error["request_id"] == "v-0c5ebc5de80a2cf1a5"


def test_the_request_id_header_stands_in_for_a_body_without_one() -> None:
    ids = error_ids(answer(502, None, {"x-request-id": "v-0c5e00000000000001"}))
    assert (ids.request_id, ids.resource_id) == ("v-0c5e00000000000001", None)


@pytest.mark.parametrize("request_id", ["v id with spaces", "x" * 101, "", {"nested": 1}, "v-<script>"])
def test_a_request_id_of_another_shape_is_not_kept(request_id: object) -> None:
    assert error_ids(answer(400, {"key": "invalid_order", "request_id": request_id})).request_id is None


def test_a_success_has_no_error_ids() -> None:
    ids = error_ids(answer(200, {"id": "rr_1", "request_id": "v-1", "resource_id": "r_1"}))
    assert ids.as_dict() == {}
