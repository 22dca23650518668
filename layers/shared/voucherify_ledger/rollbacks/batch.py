"""The rollback worker's SQS batches through Powertools' batch utility, their records handled at the same time:
a batch takes about one API round-trip, and failed records are reported (ReportBatchItemFailures) and stay on the
queue.

Only Powertools' public API is used: ``BatchProcessor.process`` handles records one after the other, so the
records go through ``AsyncBatchProcessor`` / ``async_process_partial_response``, whose record handler awaits the
worker's (blocking) handler on a bounded thread pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from voucherify_ledger.rollbacks.queue import QueueMessage


def queue_message(record: SQSRecord) -> QueueMessage:
    """An SQS record as the worker reads it."""
    return QueueMessage(
        message_id=record.message_id,
        body=record.body or "",
        receipt_handle=record.receipt_handle,
        receive_count=int(record.attributes.approximate_receive_count or 1),
    )


class ConcurrentBatch:
    """Runs ``handle`` (thread-safe) for each record of a batch on up to ``max_workers`` threads at once."""

    def __init__(self, handle: Callable[[QueueMessage], Any], *, max_workers: int) -> None:
        self._handle = handle
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rollback-record")
        # A batch whose every record is retried is not an invocation error: the worker already logged and
        # delayed each one, and the Errors metric stays for crashes and timeouts.
        self._processor = AsyncBatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)

    async def _record(self, record: SQSRecord) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._handle, queue_message(record))

    def process(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The batch's partial response: ``batchItemFailures`` lists the records left on the queue."""
        return dict(
            async_process_partial_response(
                event=event, record_handler=self._record, processor=self._processor, context=context
            )
        )
