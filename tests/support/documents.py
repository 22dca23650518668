"""Voucherify's published documents (the shared folder beside the repository) and the project's payload files."""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

from ledger_dev.harness.template import PROJECT_ROOT
from ledger_dev.payloads.schema_payloads import SchemaPayloads

SHARED_DIR = Path(os.environ.get("VOUCHERIFY_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
PAYLOADS = PROJECT_ROOT / "events" / "payloads"
# The seed redemption (events/payloads/redemption_succeeded.json) and its order.
SEED_REDEMPTION_ID = "r_0e2500291ae016adea"
SEED_ORDER_ID = "ord_3VYCHwdV0YOOch2nm1RsTKNI"


def compact(document: Any) -> bytes:
    """JSON as Voucherify sends it: compact, UTF-8."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))


# --- Voucherify's published documents (the shared folder beside the repository) -------------------------
SEEDS_DIR = SHARED_DIR / "seeds"
OPENAPI_WEBHOOKS = SHARED_DIR / "reference" / "voucherify" / "OpenAPIWebhooks.json"
# OpenAPI webhook name → event name (event.type) and the function whose URL receives it.
WEBHOOK_EVENTS = {
    "EVENTS.REDEMPTION.SUCCEEDED": ("redemption.succeeded", "RedemptionSucceededFunction"),
    "EVENTS.CUSTOMER.REDEMPTION.SUCCEEDED": ("customer.redemption.succeeded", "RedemptionSucceededFunction"),
    "EVENTS.REDEMPTION.ROLLBACK.SUCCEEDED": ("redemption.rollback.succeeded", "RedemptionRollbackSucceededFunction"),
    "EVENTS.CUSTOMER.REDEMPTION.ROLLBACK.SUCCEEDED": (
        "customer.redemption.rollback.succeeded",
        "RedemptionRollbackSucceededFunction",
    ),
    # the failed events arrive at the same two URLs
    "EVENTS.REDEMPTION.FAILED": ("redemption.failed", "RedemptionSucceededFunction"),
    "EVENTS.REDEMPTION.ROLLBACK.FAILED": ("redemption.rollback.failed", "RedemptionRollbackSucceededFunction"),
}
FAILED_EVENTS = frozenset({"redemption.failed", "redemption.rollback.failed"})


def seed_documents(prefix: str) -> list[Any]:
    """The JSON documents embedded in the text of seed page ``seeds/<prefix>_….txt``, in page order."""
    (path,) = SEEDS_DIR.glob(f"{prefix}_*.txt")
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    found: list[Any] = []
    start = text.find("{")
    while start >= 0:
        try:
            document, length = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        found.append(document)
        start = text.find("{", length)
    return found


@functools.cache
def _openapi_webhooks_text() -> str:
    return OPENAPI_WEBHOOKS.read_text(encoding="utf-8")


def openapi_webhooks() -> dict[str, Any]:
    """A fresh copy of ``OpenAPIWebhooks.json`` (callers may change it)."""
    return json.loads(_openapi_webhooks_text())


def openapi_examples(webhook: str) -> list[tuple[str, Any]]:
    """``(name, value)`` of every request-body example of ``webhooks[webhook]``."""
    content = openapi_webhooks()["webhooks"][webhook]["post"]["requestBody"]["content"]
    found = []
    for media in content.values():
        if "example" in media:
            found.append((f"{webhook}:example", media["example"]))
        for name, example in (media.get("examples") or {}).items():
            found.append((f"{webhook}:{name}", example["value"]))
    return found


def seed_redemption() -> dict[str, Any]:
    """The redemption.succeeded payload of the webhooks seed page."""
    return copy.deepcopy(seed_documents("002")[0])


def seed_rollback() -> dict[str, Any]:
    """The redemption.rollback.succeeded payload of the webhooks seed page."""
    return copy.deepcopy(seed_documents("000")[0])


def envelope(data: dict[str, Any], event_type: str, seed: int = 1, **kwargs: Any) -> dict[str, Any]:
    """``data`` in a v2024 webhook envelope of ``event_type``, as OpenAPIWebhooks.json describes it."""
    return SchemaPayloads(openapi_webhooks(), seed).envelope(data, event_type, **kwargs)


def with_redemption_id(redemption_id: str) -> dict[str, Any]:
    """The seed redemption, re-identified."""
    data = seed_redemption()
    data["redemption"]["id"] = redemption_id
    return data
