"""The history's API objects, shaped like the ``GET /v1/redemptions`` and ``GET /v1/redemptions/{id}`` examples of
``redemptions.json`` — redemptions (``object: redemption``; ``r_…``, a failed attempt ``rf_…``) and rollbacks
(``object: redemption_rollback``; ``rr_…``, a failed one ``rrf_…``) — and the webhook Voucherify sends for each.

A redemption carries its ``order``, ``customer``, ``voucher`` or ``promotion_tier`` nested, ``date`` (its creation
time: the list's ``created_at``), ``result`` and ``status`` (``SUCCEEDED``, ``FAILED``, ``ROLLED_BACK`` once rolled
back, with the rollback in ``related_redemptions.rollbacks``), ``redemption`` (its parent, for a stack's child), the
``related_object_type`` / ``related_object_id`` it redeemed (``redemption`` and itself for a stack's parent, whose
order entry lists the children in ``stacked``). A rollback names the redemption it undoes in ``redemption``.

The webhook of an object (``webhook_of``) is the object as the event's data: the redemption (or rollback) as
``SimpleRedemption`` with its status at the time of the event, and the order, customer, voucher and promotion tier
beside it, as ``voucherify_ledger.reconcile.objects.webhook_data`` reads an API object the other way round.
"""

from __future__ import annotations

from typing import Any

from ledger_dev.fake_voucherify.documents import FakeRedemption

REDEMPTION, ROLLBACK = "redemption", "redemption_rollback"
# (event, the bundle's route) of each kind of history object
SUCCEEDED_ROUTE = "/webhooks/redemption-succeeded"
ROLLBACK_ROUTE = "/webhooks/redemption-rollback-succeeded"
EVENTS = {
    (REDEMPTION, "SUCCESS"): ("redemption.succeeded", SUCCEEDED_ROUTE),
    (REDEMPTION, "FAILURE"): ("redemption.failed", SUCCEEDED_ROUTE),
    (ROLLBACK, "SUCCESS"): ("redemption.rollback.succeeded", ROLLBACK_ROUTE),
    (ROLLBACK, "FAILURE"): ("redemption.rollback.failed", ROLLBACK_ROUTE),
}
# What the webhook data carries beside its redemption (or rollback) rather than only inside it.
BESIDE = ("customer", "voucher", "promotion_tier")
# What an API object has that the webhook's SimpleRedemption does not.
API_ONLY = ("related_redemptions",)


def is_rollback(obj: dict[str, Any]) -> bool:
    return obj.get("object") == ROLLBACK


def event_of(obj: dict[str, Any]) -> tuple[str, str]:
    """(the event Voucherify sends for ``obj``, the bundle route it goes to)."""
    return EVENTS[(ROLLBACK if is_rollback(obj) else REDEMPTION, obj.get("result") or "SUCCESS")]


def mark_rolled_back(redemption: dict[str, Any], rollback: dict[str, Any]) -> None:
    """``redemption`` after ``rollback`` succeeded: ``ROLLED_BACK``, the rollback in ``related_redemptions``. New
    values are assigned, never changed in place, so a copy handed out before keeps what it said."""
    related = redemption.get("related_redemptions") or {}
    rollbacks = [*related.get("rollbacks", []), {"id": rollback["id"], "date": rollback["date"]}]
    redemption["related_redemptions"] = {**related, "rollbacks": rollbacks}
    redemption["status"] = "ROLLED_BACK"


def redemption_of(fake: FakeRedemption, *, channel_id: str) -> dict[str, Any]:
    """The API object of a redemption added with ``add_redemption`` / ``add_stack``."""
    if fake.children:
        related_type, related_id = "redemption", fake.id
    else:
        related_type, related_id = "voucher", fake.voucher_id
    customer = {"id": fake.customer_id, "object": "customer"} if fake.customer_id else None
    order = None
    if fake.order_id:
        # the order's map is keyed by the top redemption: a stack's parent, listing its children in ``stacked``
        key = fake.parent_id or fake.id
        entry: dict[str, Any] = {
            "date": fake.date,
            "related_object_type": related_type,
            "related_object_id": related_id,
        }
        if fake.children:
            entry["stacked"] = list(fake.children)
        if fake.parent_id:
            entry = {"date": fake.date, "related_object_type": "redemption", "related_object_id": fake.parent_id}
        order = {
            "id": fake.order_id,
            "source_id": fake.order_source_id,
            "created_at": fake.date,
            "updated_at": None,
            "status": "PAID",
            "amount": fake.amount,
            "metadata": {},
            "customer": customer,
            "customer_id": fake.customer_id,
            "referrer_id": None,
            "object": "order",
            "redemptions": {key: entry},
        }
    obj: dict[str, Any] = {
        "id": fake.id,
        "object": REDEMPTION,
        "date": fake.date,
        "customer_id": fake.customer_id,
        "tracking_id": None,
        "metadata": {},
        "redemption": fake.parent_id,
        "result": "SUCCESS",
        "status": "SUCCEEDED",
        "order": order,
        "channel": {"channel_id": channel_id, "channel_type": "API"},
        "customer": customer,
        "related_object_type": related_type,
        "related_object_id": related_id,
        "voucher": None,
    }
    if fake.amount is not None and not fake.children:
        obj["amount"] = fake.amount
    if not fake.children:
        obj["voucher"] = {
            "id": fake.voucher_id,
            "code": fake.voucher_code or f"FAKE-{fake.id[-8:].upper()}",
            "campaign": "Fake campaign",
            "campaign_id": "camp_fAkEcAmPaIgN",
            "object": "voucher",
        }
    return obj


def _simple(obj: dict[str, Any], status: str | None) -> dict[str, Any]:
    """``obj`` as the webhook's ``SimpleRedemption``, with the status it had when the event was sent."""
    inner = {k: v for k, v in obj.items() if k not in API_ONLY}
    inner["status"] = status
    return inner


def webhook_data_of(obj: dict[str, Any], redemption: dict[str, Any] | None) -> dict[str, Any]:
    """The event data of ``obj`` (``redemption``: for a rollback, the redemption it undoes, when known)."""
    beside = {k: obj.get(k) for k in BESIDE}
    if not is_rollback(obj):
        status = "FAILED" if obj.get("result") == "FAILURE" else "SUCCEEDED"
        return {
            **beside,
            "order": obj.get("order"),
            "campaign": None,
            "holder": None,
            "redemption": _simple(obj, status),
            "created_at": obj["date"],
        }
    data = {**beside, "order": obj.get("order"), "redemption_rollback": _simple(obj, obj.get("status"))}
    if redemption is not None:
        data["redemption"] = _simple(redemption, status_when(redemption, obj))
    return data


def status_when(redemption: dict[str, Any], rollback: dict[str, Any]) -> str:
    """The redemption's status as ``rollback``'s webhook tells it: ``ROLLED_BACK`` after this rollback or an earlier
    one, else what it was before any rollback."""
    if rollback.get("result") == "SUCCESS":
        return "ROLLED_BACK"
    earlier = (redemption.get("related_redemptions") or {}).get("rollbacks", [])
    if any(r["date"] <= rollback["date"] for r in earlier):
        return "ROLLED_BACK"
    return "FAILED" if redemption.get("result") == "FAILURE" else "SUCCEEDED"
