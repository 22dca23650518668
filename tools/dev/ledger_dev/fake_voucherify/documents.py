"""What the fake answers with: the redemptions it knows (``FakeRedemption``), rollback documents shaped like
Voucherify's OpenAPI examples, its error bodies, and the webhook it sends after a rollback."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ROLLBACK_EVENT = "redemption.rollback.succeeded"


def _iso(moment: float | None = None) -> str:
    when = datetime.fromtimestamp(time.time() if moment is None else moment, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _hex_id(prefix: str, length: int = 18) -> str:
    return prefix + secrets.token_hex(length // 2 + 1)[:length]


@dataclass
class FakeRedemption:
    id: str
    order_id: str | None = None
    customer_id: str | None = None
    voucher_code: str | None = None
    amount: int | None = None
    parent_id: str | None = None  # a stack child
    children: list[str] = field(default_factory=list)  # a stack parent
    rollback_id: str | None = None
    date: str = field(default_factory=_iso)
    order_source_id: str | None = None  # the merchant's own order id (the order's source_id)
    voucher_id: str = field(default_factory=lambda: "v_" + secrets.token_hex(16))  # the voucher it redeemed
    seeded: bool = False  # part of a seeded history (not listed one by one in ``state()``)


def error_body(code: int, key: str, message: str, details: str | None = None, **extra: str) -> dict[str, Any]:
    body = {"code": code, "key": key, "message": message, "request_id": _hex_id("v-")}
    if details:
        body["details"] = details
    return {**body, **extra}


def rollback_document(
    rollback_id: str,
    redemption: FakeRedemption,
    query: dict[str, str],
    body: Any,
    *,
    app_id: str,
    related: str = "voucher",
) -> dict[str, Any]:
    """A ``redemption_rollback`` shaped like the OpenAPI example (result SUCCESS) for ``redemption``."""
    body = body if isinstance(body, dict) else {}
    now = _iso()
    customer_id = redemption.customer_id or ((body.get("customer") or {}).get("id") if body else None)
    voucher_id = redemption.voucher_id
    order = None
    if redemption.order_id:
        order = {
            "id": redemption.order_id,
            "source_id": redemption.order_source_id,
            "created_at": redemption.date,
            "updated_at": now,
            "status": "CANCELED",
            "amount": redemption.amount,
            "total_amount": redemption.amount,
            "items": [],
            "metadata": {},
            "customer_id": customer_id,
            "referrer_id": None,
            "object": "order",
            "redemptions": {
                redemption.id: {
                    "date": redemption.date,
                    "rollback_id": rollback_id,
                    "rollback_date": now,
                    "related_object_type": related,
                    "related_object_id": voucher_id,
                }
            },
        }
    document: dict[str, Any] = {
        "id": rollback_id,
        "object": "redemption_rollback",
        "date": now,
        "customer_id": customer_id,
        "tracking_id": query.get("tracking_id") or body.get("tracking_id"),
        "metadata": body.get("metadata"),
        "redemption": redemption.id,
        "reason": query.get("reason") or body.get("reason"),
        "result": "SUCCESS",
        "status": "SUCCEEDED",
        "order": order,
        "channel": {"channel_id": app_id, "channel_type": "API"},
        "customer": {"id": customer_id, "object": "customer"} if customer_id else None,
        "related_object_type": related,
        "related_object_id": voucher_id if related == "voucher" else redemption.id,
    }
    if related == "voucher":
        document["voucher"] = {
            "id": voucher_id,
            "code": redemption.voucher_code or f"FAKE-{redemption.id[-8:].upper()}",
            "campaign": "Fake campaign",
            "campaign_id": "camp_fAkEcAmPaIgN",
            "object": "voucher",
        }
    if redemption.amount is not None:
        document["amount"] = -abs(redemption.amount)
    return document


def redemption_object(redemption: FakeRedemption) -> dict[str, Any]:
    return {
        "id": redemption.id,
        "object": "redemption",
        "date": redemption.date,
        "customer_id": redemption.customer_id,
        "tracking_id": None,
        "metadata": None,
        "amount": redemption.amount,
        "redemption": redemption.parent_id,
        "result": "SUCCESS",
        "status": "SUCCEEDED",
    }


def webhook_body(
    rollback: dict[str, Any], redemption: FakeRedemption, *, project_id: str, app_id: str, target_url: str | None
) -> bytes:
    """The signed-to-be ``redemption.rollback.succeeded`` webhook (v2024-01-01 envelope) of one rollback."""
    data = {
        "customer": rollback.get("customer"),
        "order": rollback.get("order"),
        "voucher": rollback.get("voucher"),
        "redemption": redemption_object(redemption),
        "redemption_rollback": rollback,
    }
    return envelope(
        ROLLBACK_EVENT, data, entity_id=rollback["id"], project_id=project_id, app_id=app_id, target_url=target_url
    )


def envelope(
    event_type: str,
    data: dict[str, Any],
    *,
    entity_id: str,
    project_id: str,
    app_id: str,
    target_url: str | None,
    created_at: str | None = None,
    new_id: Callable[[str], str] = _hex_id,
) -> bytes:
    """A webhook of ``event_type`` in the v2024-01-01 envelope, as JSON (``new_id(prefix)`` makes its ids)."""
    now = created_at or _iso()
    document = {
        "id": new_id("whs_"),
        "project_id": project_id,
        "created_at": now,
        "type": event_type,
        "data": data,
        "source": {"id": "wh_fAkEwEbHoOk", "object": "webhook", "target_url": target_url},
        "event": {
            "id": new_id("evcus_"),
            "type": event_type,
            "created_at": now,
            "entity_id": entity_id,
            "group_id": new_id("evgr_"),
            "event_source": {"channel": "API", "api_key": {"name": "fake", "app_id": app_id}},
        },
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
