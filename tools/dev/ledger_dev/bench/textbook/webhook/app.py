"""The textbook webhook: what a team writes from the Powertools documentation (never deployed; ``make bench`` measures
the bundle against it).

One function behind both webhook URLs: ``APIGatewayHttpResolver`` with a route per event family, the signature
checked with ``hmac.compare_digest`` (header ``x-voucherify-signature``, the secret's ``signing_secret``; the
``header_token`` for an unsigned distribution delivery), the body validated by the Powertools parser with the
bundle's own payload models, and the raw delivery put into the table under ``@idempotent_function`` (its records in
the same table, by its documented composite key). Logger, Metrics and Tracer as the documentation shows them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, UnauthorizedError
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from voucherify_ledger.models.webhooks import (
    EventRedemptionRollbackSucceededData,
    EventRedemptionSucceededData,
    WebhookEnvelope,
)

TABLE_NAME = os.environ["LEDGER_TABLE_NAME"]
SECRET_ID = os.environ["WEBHOOK_SECRET_ID"]
TOKEN_HEADER = os.environ.get("WEBHOOK_TOKEN_HEADER", "x-voucherify-token").lower()

logger = Logger()
metrics = Metrics()
tracer = Tracer()
app = APIGatewayHttpResolver()
dynamodb = boto3.client("dynamodb")
persistence = DynamoDBPersistenceLayer(table_name=TABLE_NAME, key_attr="pk", sort_key_attr="sk")
# Voucherify retries a delivery for about two days: a duplicate must still be known then.
config = IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=3 * 24 * 3600)


def authentic(raw: bytes, headers: dict[str, str]) -> bool:
    secret = parameters.get_secret(SECRET_ID, transform="json", max_age=300)
    signature = headers.get("x-voucherify-signature")
    if signature:
        expected = hmac.new(secret["signing_secret"].encode(), raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)
    token = headers.get(TOKEN_HEADER)
    return bool(token) and hmac.compare_digest(str(token), str(secret.get("header_token") or ""))


@idempotent_function(data_keyword_argument="delivery", config=config, persistence_store=persistence)
def record(delivery: dict[str, Any]) -> dict[str, Any]:
    dynamodb.put_item(
        TableName=TABLE_NAME,
        Item={
            "pk": {"S": f"REDEMPTION#{delivery['redemption_id']}"},
            "sk": {"S": f"DELIVERY#{delivery['id']}"},
            "event_type": {"S": delivery["event_type"]},
            "received_at": {"S": delivery["received_at"]},
            "body": {"S": delivery["body"]},
        },
    )
    return {"status": "recorded", "id": delivery["id"]}


def receive(model: type[BaseModel]) -> dict[str, Any]:
    raw = (app.current_event.decoded_body or "").encode()
    if not authentic(raw, app.current_event.headers):
        metrics.add_metric(name="Unauthorized", unit=MetricUnit.Count, value=1)
        raise UnauthorizedError("signature does not match")
    body = json.loads(raw)
    try:
        if "event" in body and "data" in body:
            envelope = parse(event=body, model=WebhookEnvelope)
            data: Any = parse(event=envelope.data, model=model)
            event_type = envelope.event.type
        else:
            data = parse(event=body, model=model)
            event_type = "bare"
    except ValidationError as exc:
        raise BadRequestError(f"invalid payload: {exc.error_count()} error(s)") from exc
    rollback = getattr(data, "redemption_rollback", None)
    subject = rollback or data.redemption
    delivery = {
        "id": subject.id,
        "redemption_id": data.redemption.id if data.redemption else getattr(rollback, "redemption", None),
        "event_type": event_type,
        "received_at": datetime.now(UTC).isoformat(),
        "body": raw.decode(),
    }
    result: dict[str, Any] = record(delivery=delivery)
    metrics.add_metric(name="Recorded", unit=MetricUnit.Count, value=1)
    logger.info("delivery recorded", extra={"id": subject.id, "event_type": event_type})
    return result


@app.post("/webhooks/redemption-succeeded")
def redemption_succeeded() -> dict[str, Any]:
    return receive(EventRedemptionSucceededData)


@app.post("/webhooks/redemption-rollback-succeeded")
def redemption_rollback_succeeded() -> dict[str, Any]:
    return receive(EventRedemptionRollbackSucceededData)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config.register_lambda_context(context)
    return app.resolve(event, context)
