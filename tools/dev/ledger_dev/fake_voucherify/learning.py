"""The redemptions a webhook Voucherify sent names (``webhook_redemptions``): what the fake must know to roll them
back as Voucherify would, read from the webhook's JSON (a v2024-01-01 envelope or the bare data object).

- a redemption event (``redemption.succeeded``, ``customer.redemption.succeeded``): its redemption, with its order,
  customer, voucher, amount and date; a stack's child names its parent (``redemption``), a stack's parent its
  children (its order entry's ``stacked``), and each of them is named too, so that ``/rollback`` on a child answers
  ``invalid_redemption_parent`` and ``/rollbacks`` on the parent rolls back every child;
- a rollback event: the redemption it undoes, rolled back (``rollback_id``) when the rollback succeeded;
- a failed redemption (``rf_…``) is none: the rollback endpoints never roll one back.

Anything the webhook does not say is left unset; a body that is not such a webhook names nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ledger_dev.fake_voucherify.documents import FakeRedemption
from voucherify_ledger.models.ids import is_rollback_id, is_succeeded_redemption_id


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _data(document: Any) -> Mapping[str, Any]:
    """The event's data object: an envelope's ``data``, or the bare (Raw payload) body itself."""
    document = _mapping(document)
    data = document.get("data")
    return data if isinstance(data, Mapping) and "event" in document else document


def _succeeded(rollback: Mapping[str, Any]) -> bool:
    """A rollback that succeeded (its ``result``, else its ``status``)."""
    result = rollback.get("result")
    return result == "SUCCESS" or (result is None and rollback.get("status") == "SUCCEEDED")


def webhook_redemptions(body: bytes | str | Mapping[str, Any]) -> list[FakeRedemption]:
    """The redemptions ``body`` names (see the module), the webhook's own first."""
    try:
        document = json.loads(body) if isinstance(body, (bytes, str)) else body
    except ValueError:
        return []
    data = _data(document)
    redemption = _mapping(data.get("redemption"))
    rollback = _mapping(data.get("redemption_rollback"))
    redemption_id = (_text(rollback.get("redemption")) if rollback else None) or _text(redemption.get("id"))
    if redemption_id is None or not is_succeeded_redemption_id(redemption_id):
        return []
    if redemption.get("id") not in (None, redemption_id):
        redemption = {}  # the rollback names another redemption than the data's: the rollback's id alone
    orders = [_mapping(redemption.get("order")), _mapping(data.get("order"))]  # the redemption's own first
    order = orders[0] or orders[1]
    voucher = _mapping(redemption.get("voucher")) or _mapping(data.get("voucher"))
    entries = [_mapping(_mapping(o.get("redemptions")).get(redemption_id)) for o in orders]
    stacked = next((e["stacked"] for e in entries if e.get("stacked")), None)
    children = [c for c in dict.fromkeys(stacked if isinstance(stacked, list) else []) if _other(c, redemption_id)]
    parent_id = _text(redemption.get("redemption"))
    parent_id = parent_id if not children and _other(parent_id, redemption_id) else None
    rollback_id = _text(rollback.get("id"))
    shared: dict[str, Any] = {
        "order_id": _text(order.get("id")),
        "customer_id": _text(redemption.get("customer_id")) or _text(_mapping(data.get("customer")).get("id")),
        "order_source_id": _text(order.get("source_id")),
    }
    if _text(redemption.get("date")):
        shared["date"] = redemption["date"]
    own: dict[str, Any] = {}
    if not children and _text(voucher.get("code")):
        own["voucher_code"] = voucher["code"]
    if not children and _text(voucher.get("id")):
        own["voucher_id"] = voucher["id"]
    amount = redemption.get("amount")
    if isinstance(amount, int) and not isinstance(amount, bool):
        own["amount"] = amount
    if is_rollback_id(rollback_id) and _succeeded(rollback):
        own["rollback_id"] = rollback_id
    named = [FakeRedemption(redemption_id, parent_id=parent_id, children=children, **shared, **own)]
    named += [FakeRedemption(child, parent_id=redemption_id, **shared) for child in children]
    if parent_id is not None:
        named.append(FakeRedemption(parent_id, children=[redemption_id], **shared))
    return named


def _other(value: Any, redemption_id: str) -> bool:
    """An ``r_…`` id other than ``redemption_id`` (a stack's parent or child)."""
    return is_succeeded_redemption_id(value) and value != redemption_id
