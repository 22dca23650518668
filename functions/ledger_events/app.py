"""Lambda entry point: the ledger table's DynamoDB stream batches (see voucherify_ledger.events).

Each change a downstream system follows becomes an EventBridge event (source voucherify.ledger) on EVENT_BUS_NAME;
records whose events could not be put are reported with ReportBatchItemFailures, with every later record of the
batch, and retried from the stream.
"""

from typing import Any

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from voucherify_ledger.events.stream import LedgerEventsStream
from voucherify_ledger.tracing import traced

logger = Logger()
metrics = Metrics()
stream = LedgerEventsStream.from_env(logger=logger, metrics=metrics)


@traced  # X-Ray, when the stack's Tracing parameter is On (voucherify_ledger.tracing)
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return stream.process(event, context)
