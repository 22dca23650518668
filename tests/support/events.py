"""events/: the committed `sam local invoke` events, and the development secret they are signed with."""

from __future__ import annotations

import base64
import json
from typing import Any

from ledger_dev.payloads import make_events

DEV_SECRET = "local-dev-webhook-secret"  # the documented one, written out: a change must be deliberate
SPECS = {spec.name: spec for spec in make_events.EVENT_FILES}


def committed(name: str) -> Any:
    return json.loads((make_events.EVENTS_DIR / name).read_text(encoding="utf-8"))


def raw_body(event: dict[str, Any]) -> bytes:
    body = event["body"]
    return base64.b64decode(body) if event["isBase64Encoded"] else body.encode("utf-8")
