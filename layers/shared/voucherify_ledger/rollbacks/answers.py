"""What Voucherify's answers mean for a rollback request: ``classify``, the ``Problem`` a retry records, the ``Outcome``
of a message, what an attempt records of itself, the codec of an answer a claim keeps, and the rollback object read
from an answer.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from voucherify_ledger.ledger.dynamo import compress, decompress
from voucherify_ledger.models import ids
from voucherify_ledger.models.rollback_request import RollbackRequest
from voucherify_ledger.models.webhooks import SimpleRedemption
from voucherify_ledger.rollbacks.queue import QueueMessage
from voucherify_ledger.voucherify_api import ApiResponse

TRANSIENT_STATUSES = frozenset({408, 409, 425})


@dataclass(frozen=True)
class Outcome:
    """What became of one message (the record handler's result)."""

    state: str
    request_id: str
    redemption_id: str | None = None
    order_id: str | None = None
    rollback_id: str | None = None
    order_source_id: str | None = None
    error_key: str | None = None
    api_calls: int = 0
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


# What of an error answer the ledger keeps to name it to Voucherify's support: its request id (``v-…``) and the
# resource it names, by shape. A resource id of another shape (a customer's source_id may be an email address) is
# withheld, and so is its text in ``details``: the ledger holds ids, never personal data.
_VOUCHERIFY_REQUEST_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,99}")
_VOUCHERIFY_RESOURCE_ID = re.compile(rf"(?:r|rf|rr|rrf|ord|cust|v|camp|promo)_[0-9A-Za-z]{{1,{ids.MAX_ID_TAIL}}}")
_RESOURCE_TYPE = re.compile(r"[a-z][a-z_]{0,63}")
WITHHELD = "<withheld>"


@dataclass(frozen=True)
class VoucherifyErrorIds:
    """``request_id``, ``resource_id`` and ``resource_type`` of a Voucherify error answer, those of a known shape."""

    request_id: str | None = None
    resource_id: str | None = None
    resource_type: str | None = None
    withheld_resource_id: str | None = None  # the resource id not kept (never stored: only to scrub ``details``)

    def as_dict(self) -> dict[str, str]:
        found = {"request_id": self.request_id, "resource_id": self.resource_id, "resource_type": self.resource_type}
        return {k: v for k, v in found.items() if v}

    def scrub(self, text: str | None) -> str | None:
        """``text`` without the withheld resource id."""
        if text is None or not self.withheld_resource_id:
            return text
        return text.replace(self.withheld_resource_id, WITHHELD)


def _shaped(pattern: re.Pattern[str], value: object) -> str | None:
    return value if isinstance(value, str) and pattern.fullmatch(value) else None


def error_ids(response: ApiResponse) -> VoucherifyErrorIds:
    """The ids of an error answer (its body's ``request_id``, else the ``x-request-id`` header), by shape."""
    body = response.body if isinstance(response.body, dict) and not response.ok else {}
    resource_id = body.get("resource_id")
    kept = _shaped(_VOUCHERIFY_RESOURCE_ID, resource_id)
    return VoucherifyErrorIds(
        request_id=_shaped(_VOUCHERIFY_REQUEST_ID, body.get("request_id") or response.headers.get("x-request-id")),
        resource_id=kept,
        resource_type=_shaped(_RESOURCE_TYPE, body.get("resource_type")),
        withheld_resource_id=str(resource_id) if resource_id and not kept else None,
    )


@dataclass(frozen=True)
class Problem:
    """Why a request failed or is retried: the HTTP status (None without an answer), a key and a message; from an
    error answer of Voucherify also its ``details`` and the ids its support asks for (``VoucherifyErrorIds``)."""

    status: int | None
    key: str
    message: str
    details: str | None = None
    ids: VoucherifyErrorIds | None = None

    def as_dict(self) -> dict[str, Any]:
        """The request's ``error``: status, key, message, details, request_id, resource_id, resource_type (each when
        known)."""
        found = {"status": self.status, "key": self.key, "message": self.message, "details": self.details}
        return {k: v for k, v in {**found, **(self.ids.as_dict() if self.ids else {})}.items() if v}


class RetryLater(Exception):
    """The message stays on the queue; it was hidden for ``delay_seconds``."""

    def __init__(self, problem: Problem, delay_seconds: int) -> None:
        super().__init__(f"{problem.key}: {problem.message} (retry in {delay_seconds} s)")
        self.problem = problem
        self.delay_seconds = delay_seconds


def worker_problem(exc: BaseException) -> Problem:
    """An unexpected exception as a problem to record: its type only (its message may carry data)."""
    return Problem(None, "worker_error", f"unexpected {type(exc).__name__} in the worker")


def problem_of(response: ApiResponse) -> Problem:
    """An error answer as the request records it, with Voucherify's ``details`` and ids (``error_ids``)."""
    key = response.error_key
    if key is None:
        key = {401: "unauthorized", 403: "forbidden", 429: "rate_limited"}.get(response.status)
        key = key or ("server_error" if response.status >= 500 else f"http_{response.status}")
    ids_of = error_ids(response)
    message = ids_of.scrub(response.error_message) or f"Voucherify answered HTTP {response.status}"
    return Problem(response.status, key, message, ids_of.scrub(response.error_details), ids_of)


def classify(response: ApiResponse) -> Literal["goal", "permanent", "transient", "auth", "rate_limited"]:
    """What an answer means for the request (the worker's outcome table: ``docs/ARCHITECTURE.md``)."""
    status = response.status
    if status == 200:
        body = response.body if isinstance(response.body, dict) else {}
        rollback = body if response.endpoint == "rollback" else body.get("parent_rollback")
        if not isinstance(rollback, dict) or not rollback.get("id"):
            return "transient"  # not a rollback object: ask again (a repeat answers already_rolled_back)
        if response.endpoint == "rollbacks" and not isinstance(body.get("rollbacks", []), list):
            return "transient"
        failed = rollback.get("result") == "FAILURE" or rollback.get("status") == "FAILED"
        return "permanent" if failed else "goal"
    if status == 400 and response.error_key == "already_rolled_back":
        return "goal"
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    if status >= 500 or status in TRANSIENT_STATUSES or status < 400:
        return "transient"
    return "permanent"


def attempt_fields(message: QueueMessage, request: RollbackRequest) -> dict[str, Any]:
    """What every write that ends an attempt of a redemption's request records of it: the attempt counted, the
    message that carried it, and the request's reason and parent."""
    return {
        k: v
        for k, v in {
            "attempts": 1,
            "message_id": message.message_id,
            "receive_count": message.receive_count,
            "reason": request.reason,
            "parent_request_id": request.parent_request_id,
        }.items()
        if v is not None
    }


def encode_answer(response: ApiResponse) -> dict[str, Any]:
    """An answer as the worker's claim keeps it when it could not be recorded (``ledger.claims``; the raw body
    compressed: it holds customer data)."""
    return {
        "endpoint": response.endpoint,
        "status": response.status,
        "headers": dict(response.headers),
        "raw_zlib_b64": base64.b64encode(compress(response.raw)).decode("ascii"),
    }


def decode_answer(record: Mapping[str, Any]) -> ApiResponse:
    raw = decompress(base64.b64decode(record["raw_zlib_b64"]))
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        body = None
    return ApiResponse(int(record["status"]), body, dict(record.get("headers") or {}), raw, record["endpoint"])


_ROLLBACK_CORE_FIELDS = (
    "id",
    "date",
    "status",
    "result",
    "redemption",
    "reason",
    "amount",
    "failure_code",
    "failure_message",
    "customer_id",
    "tracking_id",
    "metadata",
    "object",
)


def parse_rollback(document: Mapping[str, Any], redemption_id: str, now: datetime) -> SimpleRedemption:
    """A ``redemption_rollback`` object of an answer. Should Voucherify send a shape the webhook models do not
    know, the core fields (id, date, result, status, redemption, failure…) are enough to record it."""
    try:
        rollback = SimpleRedemption.model_validate(document)
    except ValidationError:
        core = {k: document.get(k) for k in _ROLLBACK_CORE_FIELDS if document.get(k) is not None}
        core.setdefault("date", now)
        core.setdefault("metadata", None)
        core["status"] = core.get("status") if core.get("status") in ("SUCCEEDED", "FAILED") else None
        if core.get("result") not in ("SUCCESS", "FAILURE"):
            core.pop("result", None)
        if not isinstance(core.get("metadata"), dict):
            core["metadata"] = None
        try:
            rollback = SimpleRedemption.model_validate(core)
        except ValidationError:
            rollback = SimpleRedemption.model_validate(
                {"id": str(document.get("id")), "date": now, "status": None, "metadata": None}
            )
    if not rollback.redemption:
        rollback = rollback.model_copy(update={"redemption": redemption_id})
    return rollback
