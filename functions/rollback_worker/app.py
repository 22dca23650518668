"""Lambda entry point: the rollback queue's SQS batches (see voucherify_ledger.rollbacks.worker).

Records of a batch are handled concurrently (voucherify_ledger.rollbacks.batch); failed records are reported with
ReportBatchItemFailures and stay on the queue.
"""

from typing import Any

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from voucherify_ledger.rollbacks.batch import ConcurrentBatch
from voucherify_ledger.rollbacks.worker import RollbackWorker
from voucherify_ledger.tracing import traced

logger = Logger()
metrics = Metrics()
worker = RollbackWorker.from_env(logger=logger, metrics=metrics)
batch = ConcurrentBatch(
    lambda message: worker.handle(message).as_dict(), max_workers=worker.settings.rollback_batch_threads
)


@traced  # X-Ray, when the stack's Tracing parameter is On (voucherify_ledger.tracing)
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    worker.start_invocation(context)
    return batch.process(event, context)
