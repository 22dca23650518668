"""Voucherify's API objects (``GET /v1/redemptions``, ``GET /v1/redemptions/{id}``) as the ledger's writes take them.

The list holds redemptions (``object: redemption``: ``r_…``, or ``rf_…`` for a failed attempt) and rollbacks
(``object: redemption_rollback``: ``rr_…`` / ``rrf_…``). They are not the webhooks' data objects: a redemption's
order, customer, voucher and promotion tier are nested in it rather than beside it, and the API leaves out what the
webhook schema requires (``status``, which follows from ``result``). ``webhook_data`` puts an object in the webhook
data's shape and validates it with the same models, so it is recorded through the same idempotent writes as a
delivery; the object's JSON is kept as its raw copy, for audit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from voucherify_ledger.errors import describe_errors
from voucherify_ledger.models import ids
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData, EventRedemptionSucceededData

# What the webhook data carries beside the redemption rather than inside it.
BESIDE = ("order", "customer", "voucher", "promotion_tier", "promotion_stack", "campaign", "holder")
# The API's result, as the webhook schema's status spells it.
STATUS_OF_RESULT = {"SUCCESS": "SUCCEEDED", "FAILURE": "FAILED"}

ApiData = EventRedemptionSucceededData | EventRedemptionRollbackSucceededData
# The models ``webhook_data`` validates with (``models.base.build`` them during init).
API_DATA_MODELS = (EventRedemptionSucceededData, EventRedemptionRollbackSucceededData)


class UnreadableObject(ValueError):
    """An API object the ledger cannot record: what is wrong, by field, never the values."""

    def __init__(self, object_id: str | None, problems: list[str]) -> None:
        super().__init__(f"{object_id or 'an object without an id'}: {'; '.join(problems)}")
        self.object_id = object_id
        self.problems = problems


def raw_copy(obj: Mapping[str, Any]) -> bytes:
    """The object as the ledger keeps it for audit: compact JSON, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def is_rollback(obj: Mapping[str, Any]) -> bool:
    return obj.get("object") == "redemption_rollback"


def data_redemption_id(data: ApiData) -> str:
    """The redemption an object is about: its own id, or the one a rollback undoes."""
    if isinstance(data, EventRedemptionRollbackSucceededData):
        return data.redemption_id
    return data.redemption.id


def webhook_data(obj: Mapping[str, Any]) -> ApiData:
    """The webhook data an API object would have come as; UnreadableObject when it does not validate."""
    inner = {k: v for k, v in obj.items() if k not in BESIDE}
    if "order" in obj:
        inner["order"] = obj["order"]  # the webhook's redemption carries its order too
    if not inner.get("status") and isinstance(obj.get("result"), str):
        inner["status"] = STATUS_OF_RESULT.get(obj["result"], obj["result"])
    beside = {k: obj[k] for k in BESIDE if obj.get(k) is not None}
    try:
        data: ApiData
        if is_rollback(obj):
            data = EventRedemptionRollbackSucceededData.model_validate({"redemption_rollback": inner, **beside})
        else:
            data = EventRedemptionSucceededData.model_validate({"redemption": inner, **beside})
    except ValidationError as exc:
        found = obj.get("id")
        object_id = found if ids.is_redemption_id(found) or ids.is_rollback_id(found) else None  # else: a value
        raise UnreadableObject(object_id, describe_errors(exc, whole="object")) from None
    return data
