"""The rollback queue's message contract: ``RollbackRequest``, its published JSON Schema
(``docs/rollback-request.schema.json``, written by ``make schema`` from this module) and the ids of the requests an
order request queues.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, model_validator
from pydantic.config import JsonDict

from voucherify_ledger.errors import describe_errors
from voucherify_ledger.ledger.keys import OrderField
from voucherify_ledger.models import ids
from voucherify_ledger.voucherify_api import RollbackBody

SCHEMA_ID = "rollback-request.schema.json"
# The redemption and order ids (and the merchant's order id) are the shapes of voucherify_ledger.models.ids.
MAX_REQUEST_ID = 256
REQUEST_ID_PATTERN = rf"^[0-9A-Za-z._:@+=-]{{1,{MAX_REQUEST_ID}}}$"
RequestId = Annotated[str, StringConstraints(pattern=REQUEST_ID_PATTERN)]

TARGETS = ("redemption_id", "order_id", "order_source_id")  # exactly one of them names what to roll back
_EXACTLY_ONE_TARGET: JsonDict = {
    "oneOf": [{"required": [name], "properties": {name: {"type": "string"}}} for name in TARGETS],
}


class RollbackRequest(BaseModel):
    """A request to roll back one redemption, or every redemption of an order, in Voucherify.

    Exactly one of ``redemption_id``, ``order_id`` (Voucherify's ``ord_…``) and ``order_source_id`` (the merchant's
    own order id, Voucherify's ``order.source_id``). ``reason``, ``tracking_id``, ``customer``, ``order`` and
    ``metadata`` are passed to Voucherify's rollback API as they are.
    """

    model_config = ConfigDict(
        extra="forbid",
        title="RollbackRequest",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_ID,
            **_EXACTLY_ONE_TARGET,
            "examples": [
                {"redemption_id": "r_0e2500291ae016adea", "reason": "Order cancelled"},
                {"order_id": "ord_3VYCHwdV0YOOch2nm1RsTKNI", "reason": "Refund", "request_id": "refund-1842"},
                {"order_source_id": "1001", "reason": "Order cancelled", "request_id": "cancel-1001"},
            ],
        },
    )

    redemption_id: ids.SucceededRedemptionId | None = Field(
        default=None,
        description="The redemption to roll back (r_…). A stacked (parent) redemption rolls back its whole stack.",
    )
    order_id: ids.OrderId | None = Field(
        default=None,
        description="Roll back every redemption of this order (ord_…) that the ledger holds as SUCCEEDED.",
    )
    order_source_id: ids.OrderSourceId | None = Field(
        default=None,
        description="The same by your own order id (Voucherify's order.source_id, e.g. 1001): 1-"
        f"{ids.MAX_ORDER_SOURCE_ID} characters, no control characters. An order number, never personal data: the "
        "ledger keys and logs it.",
    )
    reason: str | None = Field(default=None, max_length=1024, description="Reason for the rollback.")
    tracking_id: str | None = Field(default=None, max_length=256, description="Customer's source_id.")
    customer: dict[str, Any] | None = Field(
        default=None, description="The rollback API's customer object (id or source_id; other fields update it)."
    )
    order: dict[str, Any] | None = Field(
        default=None, description='The rollback API\'s order object, e.g. {"source_id": "..."}.'
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="Key/value pairs that update the redemption's metadata in Voucherify."
    )
    request_id: RequestId | None = Field(
        default=None,
        description="Your id of this request (idempotency and lookup); defaults to the SQS message id.",
    )
    parent_request_id: RequestId | None = Field(
        default=None, description="Set by the worker on the per-redemption requests it queues for an order request."
    )

    @model_validator(mode="after")
    def _exactly_one_target(self) -> RollbackRequest:
        if sum(getattr(self, name) is not None for name in TARGETS) != 1:
            raise ValueError("exactly one of redemption_id, order_id and order_source_id is required")
        return self

    def order_target(self) -> tuple[OrderField, str] | None:
        """The order an order-level request names, by ``order_id`` or ``order_source_id``; None for a redemption."""
        if self.order_id is not None:
            return "order_id", self.order_id
        if self.order_source_id is not None:
            return "order_source_id", self.order_source_id
        return None

    def to_message(self) -> str:
        """The SQS message body."""
        return self.model_dump_json(exclude_none=True)

    def api_body(self) -> RollbackBody:
        return RollbackBody(
            reason=self.reason,
            tracking_id=self.tracking_id,
            customer=self.customer,
            order=self.order,
            metadata=self.metadata,
        )


def rollback_request_schema() -> dict[str, Any]:
    """The JSON Schema published as ``rollback-request.schema.json``."""
    return RollbackRequest.model_json_schema()


def schema_document() -> str:
    return json.dumps(rollback_request_schema(), indent=2, ensure_ascii=False) + "\n"


_ROLLBACK_TARGET: TypeAdapter[str] = TypeAdapter(ids.SucceededRedemptionId)
_REQUEST_ID: TypeAdapter[str] = TypeAdapter(RequestId)
CHILD_ID_DIGEST_PREFIX = "sha256-"  # a child request id derived from a parent id too long to repeat in it


def _accepts(adapter: TypeAdapter[str], value: object) -> bool:
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


def is_request_id(value: object) -> bool:
    """True for a ``request_id`` a ``RollbackRequest`` accepts."""
    return _accepts(_REQUEST_ID, value)


def is_rollback_target(value: object) -> bool:
    """True for a redemption id a ``RollbackRequest`` accepts, by the model's own check (``ids`` shapes)."""
    return _accepts(_ROLLBACK_TARGET, value)


def child_request_id(parent_request_id: str, redemption_id: str) -> str:
    """The id of the request an order request queues for one of its redemptions: ``<parent>:<r_…>`` when that
    is a valid request id (at most 256 characters), otherwise ``sha256-<32 hex digits of the parent's SHA-256>:
    <r_…>``, which always fits. Deterministic: the same order message delivered again queues the same ids.
    The child carries the parent's id in ``parent_request_id``, and the order request lists its children's ids
    (``child_request_ids``), so either way a person can follow one to the other."""
    plain = f"{parent_request_id}:{redemption_id}"
    if is_request_id(plain):
        return plain
    digest = hashlib.sha256(parent_request_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{CHILD_ID_DIGEST_PREFIX}{digest}:{redemption_id}"


def validation_errors(exc: ValidationError) -> list[str]:
    """What is wrong with a message that is not a ``RollbackRequest``, as the ledger records it: ``field.path: what
    was expected``, never the values, nor an unexpected key that does not look like a field name
    (``{"annie@lemon.com": …}``)."""
    return describe_errors(exc, whole="message", mask_keys=True)


if __name__ == "__main__":  # make schema (> docs/rollback-request.schema.json)
    print(schema_document(), end="")
