"""The textbook rollback worker: what a team writes from the Powertools documentation (never deployed; ``make bench``
measures the bundle's worker against it).

``BatchProcessor`` over the SQS batch (partial failures reported), each message's ``POST
/v1/redemptions/{id}/rollback`` under ``@idempotent_function`` keyed on the redemption id (its records in the ledger
table, by the documented composite key), the API keys from Secrets Manager through ``parameters``, the call made
with ``urllib`` as the standard library offers it, and a ``put_item`` of the result.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

TABLE_NAME = os.environ["LEDGER_TABLE_NAME"]
API_URL = os.environ["VOUCHERIFY_API_URL"].rstrip("/")
API_SECRET_ID = os.environ["VOUCHERIFY_API_SECRET_ID"]

logger = Logger()
metrics = Metrics()
tracer = Tracer()
processor = BatchProcessor(event_type=EventType.SQS)
dynamodb = boto3.client("dynamodb")
persistence = DynamoDBPersistenceLayer(table_name=TABLE_NAME, key_attr="pk", sort_key_attr="sk")
config = IdempotencyConfig(event_key_jmespath="redemption_id", expires_after_seconds=7 * 24 * 3600)


@idempotent_function(data_keyword_argument="request", config=config, persistence_store=persistence)
def roll_back(request: dict[str, Any]) -> dict[str, Any]:
    keys = parameters.get_secret(API_SECRET_ID, transform="json", max_age=300)
    query = urllib.parse.urlencode({k: request[k] for k in ("reason", "tracking_id") if request.get(k)})
    body = {k: request[k] for k in ("customer", "order", "metadata") if request.get(k)}
    call = urllib.request.Request(
        f"{API_URL}/v1/redemptions/{urllib.parse.quote(request['redemption_id'])}/rollback?{query}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"X-App-Id": keys["app_id"], "X-App-Token": keys["app_token"], "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(call, timeout=10) as answer:
        result: dict[str, Any] = json.load(answer)
    return result


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    request = json.loads(record.body)
    rollback = roll_back(request=request)
    dynamodb.put_item(
        TableName=TABLE_NAME,
        Item={
            "pk": {"S": f"REDEMPTION#{request['redemption_id']}"},
            "sk": {"S": f"ROLLBACK#{rollback['id']}"},
            "result": {"S": str(rollback.get("result"))},
            "status": {"S": str(rollback.get("status"))},
            "created_at": {"S": str(rollback.get("created_at"))},
            "rollback": {"S": json.dumps(rollback)},
        },
    )
    metrics.add_metric(name="RolledBack", unit=MetricUnit.Count, value=1)
    logger.info("rolled back", extra={"redemption_id": request["redemption_id"], "rollback_id": rollback["id"]})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    config.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
