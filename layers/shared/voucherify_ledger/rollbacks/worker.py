"""The rollback worker: what becomes of each message of the rollback queue (the outcome table is in
``docs/ARCHITECTURE.md`` and the README). Nothing here knows about Lambda events: the entry point hands over
``QueueMessage``s (``rollbacks.batch``).
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from voucherify_ledger.aws import worker_clients
from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.claims import Claim, finished_note
from voucherify_ledger.ledger.dynamo import StorageError, StorageRefusedError
from voucherify_ledger.ledger.keys import ALREADY_ROLLED_BACK, FAILED
from voucherify_ledger.models.base import build
from voucherify_ledger.models.rollback_request import RollbackRequest, validation_errors
from voucherify_ledger.models.webhooks import SimpleRedemption
from voucherify_ledger.rollbacks.answers import (
    Outcome,
    Problem,
    RetryLater,
    attempt_fields,
    classify,
    encode_answer,
    worker_problem,
)
from voucherify_ledger.rollbacks.calls import RollbackCaller, Transient
from voucherify_ledger.rollbacks.orders import OrderFanOut
from voucherify_ledger.rollbacks.pacing import TokenBucket
from voucherify_ledger.rollbacks.queue import QueueError, QueueMessage, RollbackQueue, SqsRollbackQueue
from voucherify_ledger.rollbacks.recording import AnswerRecording
from voucherify_ledger.rollbacks.retries import Retries, backoff_seconds
from voucherify_ledger.rollbacks.stacks import StackChildren, StackPlace
from voucherify_ledger.settings import WorkerSettings
from voucherify_ledger.voucherify_api import ApiResponse, SecretCredentials, VoucherifyClient, api_secret_fetcher

MAX_LOGGED_FRAMES = 20


def _frames(exc: BaseException) -> list[str]:
    """Where an exception was raised (``file:line function``, innermost last), without its message."""
    frames = traceback.extract_tb(exc.__traceback__)[-MAX_LOGGED_FRAMES:]
    return [f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}" for frame in frames]


class RollbackWorker:
    """Processes rollback messages; safe to call from several threads at once (one batch's records)."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        ledger: Ledger,
        api: VoucherifyClient,
        queue: RollbackQueue,
        pacer: TokenBucket,
        logger: Any,
        metrics: Any,
        dynamodb: Any,
        rng: random.Random | None = None,
    ) -> None:
        # The validators of what the worker reads from Voucherify's answers, built now, during init, once.
        build(SimpleRedemption)
        self.settings, self.ledger, self.queue, self.pacer = settings, ledger, queue, pacer
        self.logger, self.metrics = logger, metrics
        self._rng = rng or random.Random()
        self._metrics_lock = threading.Lock()
        self.caller = RollbackCaller(
            api=api,
            pacer=pacer,
            in_process_retries=settings.rollback_in_process_retries,
            metric=self._metric,
            logger=logger,
            rng=self._rng,
        )
        self.recording = AnswerRecording(ledger=ledger, logger=logger, metric=self._metric)
        self.orders = OrderFanOut(ledger=ledger, queue=queue, logger=logger, metric=self._metric)
        self.stack_children = StackChildren(ledger=ledger, recording=self.recording, metric=self._metric)
        self.retries = Retries(
            settings=settings,
            ledger=ledger,
            queue=queue,
            logger=logger,
            metric=self._metric,
            now=self._now,
            rng=self._rng,
        )

    @classmethod
    def from_env(
        cls, *, logger: Any, metrics: Any, dynamodb: Any = None, sqs: Any = None, secrets: Any = None
    ) -> RollbackWorker:
        settings = WorkerSettings.from_env()
        if dynamodb is None or sqs is None:
            # Every client during init, the API keys' one too (not on the first record).
            made = worker_clients(settings.rollback_batch_threads)
            dynamodb, sqs, secrets = dynamodb or made[0], sqs or made[1], secrets or made[2]
        credentials = SecretCredentials(
            settings.voucherify_api_secret_id,
            max_age=settings.secret_max_age_seconds,
            fetch=api_secret_fetcher(settings.secret_max_age_seconds, secrets) if secrets else None,
        )
        api = VoucherifyClient(
            settings.voucherify_api_url,
            credentials,
            connect_timeout=settings.voucherify_connect_timeout_seconds,
            read_timeout=settings.voucherify_read_timeout_seconds,
            max_connections=settings.rollback_batch_threads,
        )
        return cls(
            settings=settings,
            ledger=Ledger(settings.ledger_table_name, dynamodb),
            api=api,
            queue=SqsRollbackQueue(sqs, settings.rollback_queue_url),
            pacer=TokenBucket(settings.requests_per_minute_per_execution),
            logger=logger,
            metrics=metrics,
            dynamodb=dynamodb,
        )

    def start_invocation(self, context: Any) -> None:
        """Call once per invocation, before the records: the deadline comes from the Lambda context."""
        self.caller.start_invocation(context)

    def backoff_seconds(self, receive_count: int) -> int:
        """How long a message of its ``receive_count``-th receive is hidden before the next (``retries``)."""
        return backoff_seconds(self.settings, receive_count, self._rng)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(time.time(), UTC)

    def _metric(self, name: str, value: float = 1) -> None:
        with self._metrics_lock:
            self.metrics.add_metric(name=name, unit="Count", value=value)

    # --- one message ------------------------------------------------------------------------------
    def handle(self, message: QueueMessage) -> Outcome:
        """The outcome of a message, or ``RetryLater`` (the message was hidden for the backoff) to leave it
        on the queue; nothing else, whatever the message holds. An unexpected exception (a bug) is counted
        (``RollbackWorkerErrors``), logged without its message, and retried like a transient problem: the
        request is recorded RETRYING with ``error.key`` ``worker_error``, and after the last receive FAILED with
        ``dead_lettered``. One raised before the request was read is recorded under ``REQUEST#<message id>``
        when the message goes to the dead-letter queue."""
        try:
            return self._handle(message)
        except RetryLater:
            raise
        except Exception as exc:  # reading the message, rejecting it, or recording a retry went wrong
            self._worker_error(message, message.message_id, exc)
            self.retries.retry(message, None, message.message_id, worker_problem(exc))

    def _handle(self, message: QueueMessage) -> Outcome:
        now = self._now()
        try:
            request = RollbackRequest.model_validate_json(message.body)
        except ValidationError as exc:
            return self._reject(message, exc, now)
        request_id = request.request_id or message.message_id
        try:
            if request.order_target() is not None:
                return self.orders.fan_out(request, request_id, message, now)
            return self._roll_back(request, request.redemption_id or "", request_id, message, now)
        except (StorageError, QueueError) as exc:
            self.retries.retry(message, request, request_id, Problem(None, "storage", str(exc)))
        except StorageRefusedError as refused:  # DynamoDB will refuse it on every retry: end it now, saying why
            return self._refused(message, request, request_id, refused, now)
        except RetryLater:
            raise
        except Exception as exc:  # a bug: retried, and recorded on the request, like a transient problem
            self._worker_error(message, request_id, exc)
            self.retries.retry(message, request, request_id, worker_problem(exc))

    def _refused(
        self,
        message: QueueMessage,
        request: RollbackRequest,
        request_id: str,
        refused: StorageRefusedError,
        now: datetime,
    ) -> Outcome:
        """The ledger refused a write of this request for good (e.g. a redemption item already at DynamoDB's 400 KB):
        the request ends FAILED with ``ledger_refused`` and the reason, even over the SUCCEEDED this attempt wrote
        just before the redemption's write was refused. Voucherify may have rolled the redemption back, so the
        message says to check it there. The claim is released."""
        error = {
            "key": "ledger_refused",
            "message": f"{refused.reason}; the rollback may have been made in Voucherify: check the redemption there",
        }
        fields = {"error": error, "message_id": message.message_id, "receive_count": message.receive_count}
        order = request.order_target()
        if request.redemption_id:
            self._let_go(request.redemption_id, request_id, finished=finished_note(FAILED, error_key="ledger_refused"))
            fields = {**attempt_fields(message, request), **fields}
            self.ledger.requests.update(
                request.redemption_id, request_id, FAILED, now=now, fields=fields, guarded=False
            )
        elif order is not None:
            self.ledger.requests.record_order(order[1], request_id, FAILED, now=now, fields=fields, by=order[0])
        outcome = Outcome(
            FAILED,
            request_id,
            request.redemption_id,
            order_id=request.order_id,
            order_source_id=request.order_source_id,
            error_key="ledger_refused",
        )
        return self.recording.done(outcome)

    def _worker_error(self, message: QueueMessage, request_id: str, exc: Exception) -> None:
        self._metric("RollbackWorkerErrors")
        # The exception's message may carry what the message or the ledger held: its type and where it was
        # raised are logged, never its text (exc_info=False). Logged through .exception, at ERROR, as crashes were.
        self.logger.exception(
            "unexpected error in the rollback worker",
            exc_info=False,
            message_id=message.message_id,
            request_id=request_id,
            receive_count=message.receive_count,
            error=type(exc).__name__,
            traceback=_frames(exc),
        )

    def _reject(self, message: QueueMessage, exc: ValidationError, now: datetime) -> Outcome:
        errors = validation_errors(exc)
        try:
            self.ledger.requests.record_rejected(
                message.message_id,
                errors=errors,
                now=now,
                message_id=message.message_id,
                receive_count=message.receive_count,
            )
        except StorageError as storage:
            self.retries.retry(message, None, message.message_id, Problem(None, "storage", str(storage)))
        self._metric("RollbackRequestsRejected")
        self.logger.warning(
            "rollback request rejected: not a valid RollbackRequest",
            message_id=message.message_id,
            errors=errors,
        )
        return Outcome(FAILED, message.message_id, error_key="invalid_request", detail="; ".join(errors))

    def _roll_back(
        self, request: RollbackRequest, redemption_id: str, request_id: str, message: QueueMessage, now: datetime
    ) -> Outcome:
        """One conditional write claims the redemption and says what the ledger knows of it (``ledger.claims``):
        the request finished before (a redelivery: answered from the ledger), the redemption ROLLED_BACK (no call),
        another request's claim live (retried later), or claimed: then a stack's child is refused without a call,
        an answer an earlier attempt kept is recorded, or Voucherify is called once. The outcome's writes release
        the claim; whatever else happens, it is released (or, with a goal answer not yet recorded, the answer kept)."""
        started = time.time()
        claim = self.ledger.claims.claim(
            redemption_id, request_id, now=started, until=started + max(0.0, self.caller.time_left())
        )
        attempt = attempt_fields(message, request)
        if claim.outcome == "held":
            problem = Problem(None, "in_progress", "another worker is rolling this redemption back")
            self.retries.retry(message, request, request_id, problem)
        if claim.outcome != "claimed":
            return self._answer_unclaimed(claim, redemption_id, request_id, now, attempt)
        answer: ApiResponse | None = None
        try:
            place = StackPlace.of(claim.item)
            if place.role == "child" and place.parent_redemption_id:  # refused without a call: only its parent can
                return self.stack_children.answer(
                    redemption_id, request_id, place.parent_redemption_id, now, attempt=attempt
                )
            result = self.caller.call(redemption_id, request, stacked=place.role == "parent", kept=claim.kept_answer)
            if isinstance(result, Transient):
                self._let_go(redemption_id, request_id)
                self.retries.retry(message, request, request_id, result.problem, result.retry_after, calls=result.calls)
            answer = result.response
            return self.recording.record(redemption_id, request_id, answer, result.calls, self._now(), attempt=attempt)
        except RetryLater:
            raise
        except StorageRefusedError:
            raise  # ``_refused`` ends the request and releases the claim
        except BaseException:
            self._let_go(redemption_id, request_id, answer=answer)
            raise

    def _answer_unclaimed(
        self, claim: Claim, redemption_id: str, request_id: str, now: datetime, attempt: Mapping[str, Any]
    ) -> Outcome:
        """A claim refused because the request finished before (a redelivery: answered from its note, no write) or
        because the ledger holds the redemption ROLLED_BACK (the request ends ALREADY_ROLLED_BACK, no call)."""
        if claim.outcome == "finished":
            note = claim.finished or {}
            state = str(note.get("state"))
            self._metric("RollbackDuplicates")
            self.logger.info(
                "rollback request already finished", request_id=request_id, redemption_id=redemption_id, state=state
            )
            return Outcome(
                state,
                request_id,
                redemption_id,
                rollback_id=note.get("rollback_id"),
                error_key=note.get("error_key"),
                detail="already finished",
            )
        self.ledger.requests.record_already_rolled_back(
            redemption_id,
            request_id,
            now=now,
            confirmed_by="ledger",
            fields={"rollback_ids": claim.item.get("rollback_ids") or [], **attempt},
        )
        return self.recording.done(
            Outcome(ALREADY_ROLLED_BACK, request_id, redemption_id, detail="ROLLED_BACK in the ledger")
        )

    def _let_go(
        self,
        redemption_id: str,
        request_id: str,
        *,
        answer: ApiResponse | None = None,
        finished: dict[str, Any] | None = None,
    ) -> None:
        """Releases this request's claim — keeping a goal ``answer`` that could not be recorded, for the next claim
        to record without a call. A failure is logged: the claim then lapses at the invocation's deadline."""
        try:
            if answer is not None and classify(answer) == "goal":
                self.ledger.claims.keep_answer(redemption_id, request_id, encode_answer(answer))
            else:
                self.ledger.claims.release(redemption_id, request_id, finished=finished)
        except Exception as exc:
            self._metric("RollbackClaimsNotReleased")
            self.logger.warning(
                "could not release the claim on the redemption",
                request_id=request_id,
                redemption_id=redemption_id,
                error=type(exc).__name__,
                detail=str(exc) if isinstance(exc, StorageError) else None,  # DynamoDB's error code, never a value
            )
