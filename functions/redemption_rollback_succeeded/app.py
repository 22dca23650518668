"""Lambda entry point: POST /webhooks/redemption-rollback-succeeded (see voucherify_ledger.webhooks.receiver)."""

from typing import Any

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from voucherify_ledger.tracing import traced
from voucherify_ledger.webhooks.receiver import WebhookReceiver, message_as_is
from voucherify_ledger.webhooks.routes import REDEMPTION_ROLLBACK_SUCCEEDED

logger = Logger(json_deserializer=message_as_is)  # log messages are sentences, not JSON
metrics = Metrics()
receiver = WebhookReceiver.from_env(REDEMPTION_ROLLBACK_SUCCEEDED, logger=logger, metrics=metrics)


@traced  # X-Ray, when the stack's Tracing parameter is On (voucherify_ledger.tracing)
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return receiver.handle(event)
