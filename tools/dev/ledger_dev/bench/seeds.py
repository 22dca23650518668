"""The seed deliveries every section measures (``events/*.json``) and the bench's fixed names."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger_dev.harness.template import PROJECT_ROOT, resources

LAYER_DIR = PROJECT_ROOT / "layers" / "shared"
EVENTS_DIR = PROJECT_ROOT / "events"
# Each run writes its report here (git-ignored); `make bench-publish` writes the committed docs/PERFORMANCE.md.
REPORT_PATH = PROJECT_ROOT / "build" / "bench" / "PERFORMANCE.md"
REGION = "eu-west-1"
TABLE_NAME = "voucherify-ledger"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/123456789012/voucherify-ledger-rollback-queue"
WEBHOOK_FUNCTIONS = ("RedemptionSucceededFunction", "RedemptionRollbackSucceededFunction")
WORKER_FUNCTION = "RollbackWorkerFunction"
RECONCILER_FUNCTION = "ReconcilerFunction"
LEDGER_EVENTS_FUNCTION = "LedgerEventsFunction"
EVENT_BUS_NAME = "voucherify-ledger-ledger"
# Every function whose cold start is measured, in the report's order.
COLD_FUNCTIONS = (*WEBHOOK_FUNCTIONS, WORKER_FUNCTION, RECONCILER_FUNCTION, LEDGER_EVENTS_FUNCTION)
# The AWS clients each function uses (the floor creates the same ones).
FUNCTION_CLIENTS: dict[str, tuple[str, ...]] = {
    "RedemptionSucceededFunction": ("dynamodb", "secretsmanager"),
    "RedemptionRollbackSucceededFunction": ("dynamodb", "secretsmanager"),
    WORKER_FUNCTION: ("dynamodb", "sqs", "secretsmanager"),
    RECONCILER_FUNCTION: ("dynamodb", "secretsmanager"),
    LEDGER_EVENTS_FUNCTION: ("events",),
}
# The DynamoDB call each webhook route makes for a new delivery, and what the stub answers.
WEBHOOK_WRITE: dict[str, tuple[str, dict[str, Any]]] = {
    "RedemptionSucceededFunction": ("update_item", {"Attributes": {"status": {"S": "SUCCEEDED"}}}),
    "RedemptionRollbackSucceededFunction": ("update_item", {"Attributes": {"status": {"S": "ROLLED_BACK"}}}),
}


@dataclass(frozen=True)
class SeedEvent:
    name: str  # events/<name>.json
    function: str  # logical id of the function whose route receives it
    event: dict[str, Any]


def seed_events() -> list[SeedEvent]:
    """Every API Gateway event of ``events/`` with the function its route belongs to."""
    from ledger_dev.harness.template import http_routes

    by_path = {route.path: route.function for route in http_routes()}
    found = []
    for path in sorted(EVENTS_DIR.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("version") != "2.0":
            continue
        function = by_path.get(document.get("rawPath", ""))
        if function:
            found.append(SeedEvent(path.stem, function, document))
    return found


def raw_body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


def webhook_secret() -> dict[str, str]:
    from ledger_dev.local_stack import config

    return {"signing_secret": config.DEFAULT_SIGNING_SECRET, "header_token": config.DEFAULT_HEADER_TOKEN}


def function_dir(logical_id: str) -> Path:
    return PROJECT_ROOT / resources("AWS::Serverless::Function")[logical_id]["Properties"]["CodeUri"]
