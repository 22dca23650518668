"""The fake's control endpoint (no authentication; loopback only), under ``/_fake``:

- ``GET /state`` — ``FakeVoucherify.state()``;
- ``POST /faults`` (a ``Fault``'s fields) / ``DELETE /faults``;
- ``POST /redemptions`` — ``{id, order_id?, customer_id?, …}``, or with ``children`` a stack;
- ``POST /history`` — ``{count, days?, seed?, end?, rollback_share?, stack_share?, failed_share?}``: seeds a history
  (``end``: ISO 8601, default now), answers its counts;
- ``POST /history/webhooks`` — ``{share?, seed?}``: sends the history's webhooks (signed, less the drop share),
  answers how many were sent, dropped and refused;
- ``POST /webhooks/deliver`` — sends the held rollback webhooks now;
- ``POST /reset``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger_dev.fake_voucherify.fake import FakeVoucherify
    from ledger_dev.fake_voucherify.server import _Handler

CONTROL_PREFIX = "/_fake"


def control(fake: FakeVoucherify, handler: _Handler, method: str, path: str, raw: bytes) -> None:
    try:
        payload = json.loads(raw) if raw else {}
    except ValueError:
        handler.answer(400, {"error": "body must be JSON"})
        return
    try:
        status, body = _answer(fake, method, path, payload)
    except (TypeError, ValueError, KeyError) as exc:
        status, body = 400, {"error": f"{type(exc).__name__}: {exc}"}
    handler.answer(status, body)


def _answer(fake: FakeVoucherify, method: str, path: str, payload: dict[str, Any]) -> tuple[int, Any]:
    if method == "GET" and path == "/state":
        return 200, fake.state()
    if method == "POST" and path == "/faults":
        return 201, fake.fail(**payload).as_dict()
    if method == "DELETE" and path == "/faults":
        fake.clear_faults()
        return 200, {"faults": []}
    if method == "POST" and path == "/redemptions":
        children = payload.pop("children", None)
        if children:
            fake.add_stack(payload.pop("id"), children, **payload)
        else:
            fake.add_redemption(payload.pop("id"), **payload)
        return 201, {"redemptions": fake.state()["redemptions"]}
    if method == "POST" and path == "/history":
        if isinstance(payload.get("end"), str):
            payload["end"] = datetime.fromisoformat(payload["end"])
        fake.seed_history(payload.pop("count"), **payload)
        return 201, {"history": fake.state()["history"]}
    if method == "POST" and path == "/history/webhooks":
        deliveries = fake.send_history_webhooks(**payload)
        outcomes = Counter("refused" if d.status is None or d.status >= 300 else "sent" for d in deliveries)
        return 200, {
            "sent": outcomes["sent"],
            "refused": outcomes["refused"],
            "dropped": fake.state()["webhooks_dropped"],
        }
    if method == "POST" and path == "/webhooks/deliver":
        return 200, {"delivered": [asdict(d) for d in fake.deliver_webhooks()]}
    if method == "POST" and path == "/reset":
        fake.reset()
        return 200, {"reset": True}
    return 404, {"error": f"no control {method} {CONTROL_PREFIX}{path}"}
