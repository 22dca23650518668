"""Lambda entry point: the rollback queue's SQS batches (see voucherify_ledger.rollbacks).

Records of a batch are handled concurrently (a bounded thread pool), so a batch takes about one API
round-trip; failed records are reported with ReportBatchItemFailures and stay on the queue.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from voucherify_ledger.rollbacks import QueueMessage, RollbackWorker

logger = Logger()
metrics = Metrics()
worker = RollbackWorker.from_env(logger=logger, metrics=metrics)


class ConcurrentBatchProcessor(BatchProcessor):
    """BatchProcessor whose records run on up to ``max_workers`` threads (the record handler is thread-safe)."""

    def __init__(self, event_type: EventType, *, max_workers: int, **kwargs: Any) -> None:
        super().__init__(event_type, **kwargs)
        self.max_workers = max_workers

    def process(self) -> list[tuple]:
        if len(self.records) <= 1 or self.max_workers <= 1:
            return super().process()
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(self.records))) as pool:
            return list(pool.map(self._process_record, self.records))


# A batch whose every record is retried is not an invocation error: the worker already logged and
# delayed each one, and the Errors metric stays for crashes and timeouts.
processor = ConcurrentBatchProcessor(
    EventType.SQS, max_workers=worker.settings.rollback_batch_threads, raise_on_entire_batch_failure=False
)


def record_handler(record: SQSRecord) -> dict[str, Any]:
    message = QueueMessage(
        message_id=record.message_id,
        body=record.body or "",
        receipt_handle=record.receipt_handle,
        receive_count=int(record.attributes.approximate_receive_count or 1),
    )
    return worker.handle(message).as_dict()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    worker.start_invocation(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
