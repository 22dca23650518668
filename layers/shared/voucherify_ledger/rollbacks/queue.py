"""The rollback queue: the message as the worker reads it, the SQS adapter that fans order requests out and delays
retries, and ``enqueue_rollback`` for whoever asks for a rollback (the operator's CLI, your order service)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from voucherify_ledger.models.rollback_request import RollbackRequest


@dataclass(frozen=True)
class QueueMessage:
    """One message as the worker needs it, whatever delivered it."""

    message_id: str
    body: str
    receipt_handle: str | None = None
    receive_count: int = 1


class RollbackQueue(Protocol):
    def send(self, bodies: Sequence[str]) -> None: ...

    def delay(self, receipt_handle: str, seconds: int) -> None: ...


class QueueError(RuntimeError):
    """The queue refused a message."""


class SqsRollbackQueue:
    """The rollback queue on SQS: fan-out (``SendMessageBatch``) and retry delays (``ChangeMessageVisibility``)."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    def send(self, bodies: Sequence[str]) -> None:
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start : start + 10])]
            answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            if answer.get("Failed"):
                codes = sorted({f.get("Code", "?") for f in answer["Failed"]})
                raise QueueError(f"SQS refused {len(answer['Failed'])} message(s): {', '.join(codes)}")

    def delay(self, receipt_handle: str, seconds: int) -> None:
        self.client.change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=int(seconds)
        )


def enqueue_rollback(sqs: Any, queue_url: str, request: RollbackRequest | Mapping[str, Any]) -> str:
    """Puts a rollback request on the queue; returns the SQS message id (the default ``request_id``).

    ``request`` is validated first: a malformed request raises ``pydantic.ValidationError`` here rather
    than failing in the worker."""
    if not isinstance(request, RollbackRequest):
        request = RollbackRequest.model_validate(request)
    return str(sqs.send_message(QueueUrl=queue_url, MessageBody=request.to_message())["MessageId"])
