"""The bundle's functions as the tests load and call them: test resource names, secrets and routes, the answer of a
webhook function, one function imported as Lambda imports it, and the metrics a function printed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ledger_dev.harness.apigw import LambdaContext, http_api_event, response_parts
from voucherify_ledger.ledger import Ledger
from voucherify_ledger.webhooks.auth import sign

SIGNING_SECRET = "test-signing-secret"
HEADER_TOKEN = "test-header-token"
TABLE_NAME = "voucherify-ledger-test"
SECRET_ID = "voucherify-ledger/webhook"
API_SECRET_ID = "voucherify-ledger/api"
ROUTES = {
    "RedemptionSucceededFunction": "/webhooks/redemption-succeeded",
    "RedemptionRollbackSucceededFunction": "/webhooks/redemption-rollback-succeeded",
}
REDEMPTION_FN = "RedemptionSucceededFunction"
ROLLBACK_FN = "RedemptionRollbackSucceededFunction"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Aws:
    """moto's clients, the ledger table's name and the ledger on it."""

    dynamodb: Any
    secrets: Any
    table_name: str
    ledger: Ledger

    def items(self) -> list[dict[str, Any]]:
        return self.dynamodb.scan(TableName=self.table_name, ConsistentRead=True)["Items"]

    def table(self) -> list[dict[str, Any]]:
        """Every item, in key order."""
        return sorted(self.items(), key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


@dataclass
class LambdaApp:
    """One function imported as Lambda imports it, with its module (and so its receiver) within reach."""

    logical_id: str
    module: ModuleType

    @property
    def receiver(self) -> Any:
        return self.module.receiver

    def send(self, event: dict[str, Any]) -> Answer:
        result = self.module.lambda_handler(event, LambdaContext(function_name=self.logical_id))
        status, headers, body = response_parts(result)
        return Answer(status, headers, json.loads(body))

    def post(
        self,
        body: bytes | str,
        *,
        secret: str | None = SIGNING_SECRET,
        signed_body: bytes | None = None,
        headers: dict[str, str] | None = None,
        base64_encoded: bool | None = None,
    ) -> Answer:
        """POSTs ``body`` to the function's route, signed with ``secret`` over ``signed_body`` (default: body)."""
        raw = body.encode("utf-8") if isinstance(body, str) else body
        all_headers = {"content-type": "application/json", "user-agent": "Voucherify-Webhooks"}
        if secret is not None:
            all_headers["x-voucherify-signature"] = sign(secret, raw if signed_body is None else signed_body)
        all_headers.update(headers or {})
        return self.send(
            http_api_event("POST", ROUTES[self.logical_id], raw, all_headers, base64_encoded=base64_encoded)
        )


def emitted_metrics(output: str) -> dict[str, float]:
    """The total of each metric in the Embedded Metric Format lines of a function's output."""
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(
                    value if isinstance(value, list) else [value]
                )
    return totals
