"""Retrying a rollback message through SQS: its backoff, the record that says why it waits (RETRYING, or FAILED
``dead_lettered`` on the queue's last receive), the message hidden for the delay, and ``RetryLater``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.keys import FAILED, RETRYING, iso
from voucherify_ledger.models.rollback_request import RollbackRequest
from voucherify_ledger.rollbacks.answers import Problem, RetryLater, attempt_fields
from voucherify_ledger.rollbacks.queue import QueueMessage, RollbackQueue
from voucherify_ledger.settings import WorkerSettings

MAX_VISIBILITY_SECONDS = 43_200  # SQS's limit


def backoff_seconds(settings: WorkerSettings, receive_count: int, rng: random.Random) -> int:
    """base × 2^(receive_count − 1), capped, with "equal jitter" (half fixed, half random)."""
    ceiling: float = min(
        float(settings.rollback_retry_max_seconds),
        settings.rollback_retry_base_seconds * 2 ** max(0, min(receive_count, 30) - 1),
    )
    return math.ceil(ceiling / 2 + rng.uniform(0, ceiling / 2))


@dataclass(frozen=True)
class Retries:
    """Sends messages back to the queue for a later attempt, saying why in the ledger."""

    settings: WorkerSettings
    ledger: Ledger
    queue: RollbackQueue
    logger: Any
    metric: Callable[[str, float], None]
    now: Callable[[], datetime]
    rng: random.Random

    def delay_seconds(self, message: QueueMessage, retry_after: float | None) -> int:
        if retry_after is not None:  # never sooner than Voucherify (or the pacer) said
            delay = math.ceil(retry_after + self.rng.uniform(0, 1))
        else:
            delay = backoff_seconds(self.settings, message.receive_count, self.rng)
        return max(0, min(delay, MAX_VISIBILITY_SECONDS))

    def retry(
        self,
        message: QueueMessage,
        request: RollbackRequest | None,
        request_id: str,
        problem: Problem,
        retry_after: float | None = None,
        *,
        calls: int = 0,
    ) -> NoReturn:
        """Records the retry (the request's, or without one the message's), hides the message for its delay and
        raises RetryLater; a record or a delay that fails is logged, and the message is retried all the same."""
        delay = self.delay_seconds(message, retry_after)
        last = message.receive_count >= self.settings.rollback_max_receive_count
        now = self.now()
        fields: dict[str, Any] = {
            "error": problem.as_dict(),
            "message_id": message.message_id,
            "receive_count": message.receive_count,
        }
        if calls:
            fields["api_calls"] = calls
        if last:
            fields["dead_lettered"] = True
            fields["error"]["message"] = f"{problem.message}; attempts exhausted, moved to the dead-letter queue"
        else:
            fields["next_attempt_at"] = iso(now + timedelta(seconds=delay))
        state = FAILED if last else RETRYING
        if not self._record_on_request(message, request, request_id, state, fields, now):
            self._record_on_message(message, problem, state, fields, now, last=last)
        if message.receipt_handle:
            try:
                self.queue.delay(message.receipt_handle, delay)
            except Exception as exc:  # the message then comes back after the queue's visibility timeout
                self.logger.warning("could not delay the message", request_id=request_id, error=type(exc).__name__)
        self.metric("RollbacksDeadLettered" if last else "RollbackRetries", 1)
        self.logger.warning(
            "rollback request will be retried" if not last else "rollback request goes to the dead-letter queue",
            request_id=request_id,
            redemption_id=request.redemption_id if request else None,
            order_id=request.order_id if request else None,
            order_source_id=request.order_source_id if request else None,
            status=problem.status,
            key=problem.key,
            error=problem.message,
            voucherify_request_id=problem.ids.request_id if problem.ids else None,
            receive_count=message.receive_count,
            delay_seconds=delay,
        )
        raise RetryLater(problem, delay)

    def _record_on_request(
        self,
        message: QueueMessage,
        request: RollbackRequest | None,
        request_id: str,
        state: str,
        fields: dict[str, Any],
        now: datetime,
    ) -> bool:
        """The retry on the request's own item (a redemption's request: with the attempt counted); False when there
        is no request or it could not be written."""
        try:
            if request is not None and request.redemption_id:
                fields = {**attempt_fields(message, request), **fields}
                self.ledger.requests.update(request.redemption_id, request_id, state, now=now, fields=fields)
                return True
            order = request.order_target() if request is not None else None
            if order is not None:
                self.ledger.requests.record_order(order[1], request_id, state, now=now, fields=fields, by=order[0])
                return True
        except Exception as exc:
            self.logger.warning("could not record the retry", request_id=request_id, error=type(exc).__name__)
        return False

    def _record_on_message(
        self, message: QueueMessage, problem: Problem, state: str, fields: dict[str, Any], now: datetime, *, last: bool
    ) -> None:
        """Not read as a request, or its own key could not be written: the message's attempt is recorded under its
        message id (REQUEST#<message id>), the last place left that says why it waits or went."""
        try:
            self.ledger.requests.record_rejected(
                message.message_id,
                errors=[f"{problem.key}: {fields['error']['message']}"],
                now=now,
                message_id=message.message_id,
                receive_count=message.receive_count,
                state=state,
                error=fields["error"],
                fields=(
                    {"dead_lettered": True, "next_attempt_at": None}
                    if last
                    else {"next_attempt_at": fields["next_attempt_at"], "dead_lettered": None}
                ),
            )
        except Exception as exc:
            self.logger.warning(
                "could not record the message's retry", message_id=message.message_id, error=type(exc).__name__
            )
