"""Rolling redemptions back: the queue's message contract and the worker's logic.

A ``RollbackRequest`` (JSON, ``rollback-request.schema.json``) names one redemption (``redemption_id``) or an
order (``order_id``). The worker, for each message:

1. a message that is not a valid ``RollbackRequest`` → recorded FAILED with the validation errors (paths and
   expectations, never values) under ``REQUEST#<message id>``; not retried;
2. an order → every redemption of the order the ledger holds as SUCCEEDED (a stack child: its parent, which
   rolls back the whole stack) is queued as its own request, one API call per message (``FANNED_OUT``);
3. a redemption → the request item ``REDEMPTION#r_… / REQUEST#<request id>`` goes PENDING (a finished request
   redelivered stops here); a redemption the ledger holds as ROLLED_BACK is not sent again
   (ALREADY_ROLLED_BACK, zero calls); otherwise one idempotent call to Voucherify:

   ===========================================  ========================================================
   answer                                       outcome
   ===========================================  ========================================================
   200, result SUCCESS                          rollback ``rr_…`` recorded (same write path as the
                                                webhook), redemption ROLLED_BACK, request SUCCEEDED
   200, result FAILURE                          rollback recorded as failed; request FAILED (failure_code)
   400 ``already_rolled_back``                  request ALREADY_ROLLED_BACK, redemption ROLLED_BACK
   400 ``invalid_redemption`` (stacked parent)  ``POST /v1/redemptions/{id}/rollbacks``; each child's
                                                rollback and the parent's recorded
   404 ``not_found``, any other 4xx             request FAILED with the key and message; not retried
   401 / 403                                    retried, ``VoucherifyAuthFailures`` metric (alarm); the
                                                secret is re-read (rotation)
   429                                          retried no sooner than Retry-After / X-Rate-Limit-Retry;
                                                the whole execution pauses its calls until then
   5xx, 408/409/425, timeout, broken connection retried: twice in-process (0.1–0.4 s), then by hiding the
                                                message base × 2^(receives − 1) s (jittered, capped);
                                                after the queue's maxReceiveCount → dead-letter queue
   ===========================================  ========================================================

4. an unexpected exception (a bug), wherever it is raised → ``RollbackWorkerErrors`` (alarm), logged with its
   type and frames (never its message, which may carry data), and retried like a 5xx: the request RETRYING
   with ``error.key`` ``worker_error``, FAILED with ``dead_lettered`` after the last receive (a message that was
   not read as a request: FAILED under ``REQUEST#<message id>`` then). No message crashes the worker: each one
   that ends leaves a record saying why.

An order whose ledger lists a redemption id the request model refuses (stored by an earlier version) queues the
valid ones and lists the others on the order request (``invalid_redemption_ids``, ``invalid_redemption_count``,
``error.key`` ``invalid_redemption_ids``; FAILED when none is valid). A child's request id is
``<request id>:<r_…>``, or ``sha256-<32 hex>:<r_…>`` when that would pass 256 characters (``child_request_id``).

Never twice: the call for a redemption runs under Powertools Idempotency keyed on the redemption id (records
in the ledger table, ``pk = IDEMPOTENCY#rollback-worker``): a concurrent message for the same redemption
finds the call in progress and is retried later, by when the ledger says ROLLED_BACK; an answer that reached
the goal is kept, so a retry after a failed ledger write records it without calling again. Answers that did
not reach the goal (permanent failures) are not kept: a corrected request may try again.

Nothing here knows about Lambda events: the entry point hands over ``QueueMessage``s.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NoReturn, Protocol

from pydantic import ValidationError

from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.dynamo import StorageError, StorageRefusedError
from voucherify_ledger.ledger.keys import (
    ALREADY_ROLLED_BACK,
    FAILED,
    FANNED_OUT,
    IDEMPOTENCY_KEY_PREFIX,
    RETRYING,
    ROLLED_BACK,
    SUCCEEDED,
    iso,
)
from voucherify_ledger.models import ids
from voucherify_ledger.models.rollback_request import (
    RollbackRequest,
    child_request_id,
    is_request_id,
    is_rollback_target,
)
from voucherify_ledger.models.webhooks import SimpleRedemption
from voucherify_ledger.settings import WorkerSettings
from voucherify_ledger.voucherify_client import (
    ApiResponse,
    CredentialsUnavailableError,
    SecretCredentials,
    VoucherifyClient,
    VoucherifyUnavailableError,
    powertools_secret_fetcher,
)

MAX_VISIBILITY_SECONDS = 43_200  # SQS's limit
SAFETY_SECONDS = 1.0  # kept free before the invocation's deadline
TRANSIENT_STATUSES = frozenset({408, 409, 425})
MAX_LISTED_INVALID_IDS = 100  # invalid redemption ids listed on an order request (all of them are counted)
MAX_REPORTED_ERRORS = 20

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def validation_errors(exc: ValidationError) -> list[str]:
    """``field.path: what was expected`` for each problem; never the offending value (it may be personal),
    nor an unexpected key that does not look like a field name (``{"annie@lemon.com": …}``)."""
    described = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        parts = [p if not isinstance(p, str) or _FIELD_NAME.match(p) else "<key>" for p in error["loc"]]
        location = ".".join(str(part) for part in parts)
        described.append(f"{location or 'message'}: {error['msg']}")
    if len(described) > MAX_REPORTED_ERRORS:
        described = [*described[:MAX_REPORTED_ERRORS], f"… and {len(described) - MAX_REPORTED_ERRORS} more"]
    return described


# --- the queue ------------------------------------------------------------------------------------
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


# --- pacing ---------------------------------------------------------------------------------------
class TokenBucket:
    """Keeps one execution environment under ``per_minute`` API calls in any 60-second window.

    ``burst`` calls may go at once (a batch sent concurrently); the rest of the minute's allowance refills
    evenly, so burst + refill × 60 s ≤ per_minute. A 429 pauses every call until the time Voucherify gave.
    Lives at module scope in the entry point, so it persists across warm invocations. Thread-safe.
    """

    def __init__(
        self, per_minute: float, *, burst: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.capacity = float(burst if burst is not None else max(1, min(10, int(per_minute // 6))))
        self.rate = max(per_minute - self.capacity, per_minute / 2) / 60.0  # tokens per second
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()
        self._paused_until = float("-inf")
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def _wait(self, now: float) -> float:
        wait_token = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
        return max(wait_token, self._paused_until - now, 0.0)

    def reserve(self, max_wait: float) -> float | None:
        """Reserves one call: the seconds to wait before making it, or None (nothing reserved) when that
        would be longer than ``max_wait``."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            wait = self._wait(now)
            if wait > max_wait:
                return None
            self._tokens -= 1
            return wait

    def estimated_wait(self) -> float:
        with self._lock:
            now = self._clock()
            self._refill(now)
            return self._wait(now)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))


# --- outcomes -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What became of one message (the record handler's result)."""

    state: str
    request_id: str
    redemption_id: str | None = None
    order_id: str | None = None
    rollback_id: str | None = None
    error_key: str | None = None
    api_calls: int = 0
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Problem:
    """Why a message is retried: the HTTP status (None without an answer), a key and a message."""

    status: int | None
    key: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("status", self.status), ("key", self.key), ("message", self.message)) if v}


class RetryLater(Exception):
    """The message stays on the queue; it was hidden for ``delay_seconds``."""

    def __init__(self, problem: Problem, delay_seconds: int) -> None:
        super().__init__(f"{problem.key}: {problem.message} (retry in {delay_seconds} s)")
        self.problem = problem
        self.delay_seconds = delay_seconds


class _Transient(Exception):
    def __init__(self, problem: Problem, retry_after: float | None = None) -> None:
        super().__init__(problem.message)
        self.problem = problem
        self.retry_after = retry_after
        self.calls = 0  # API calls made by the failed attempt


class _Definitive(Exception):
    """A final answer that did not reach the goal: carried out of the idempotent section so it is not kept."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__("definitive answer")
        self.answer = answer


@dataclass
class _Attempt:
    calls: int = 0


def _worker_problem(exc: BaseException) -> Problem:
    """An unexpected exception as a problem to record: its type only (its message may carry data)."""
    return Problem(None, "worker_error", f"unexpected {type(exc).__name__} in the worker")


MAX_LOGGED_FRAMES = 20


def _frames(exc: BaseException) -> list[str]:
    """Where an exception was raised (``file:line function``, innermost last), without its message."""
    frames = traceback.extract_tb(exc.__traceback__)[-MAX_LOGGED_FRAMES:]
    return [f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}" for frame in frames]


def _problem_of(response: ApiResponse) -> Problem:
    key = response.error_key
    if key is None:
        key = {401: "unauthorized", 403: "forbidden", 429: "rate_limited"}.get(response.status)
        key = key or ("server_error" if response.status >= 500 else f"http_{response.status}")
    message = response.error_message or f"Voucherify answered HTTP {response.status}"
    return Problem(response.status, key, message)


def classify(response: ApiResponse) -> Literal["goal", "permanent", "transient", "auth", "rate_limited"]:
    """What an answer means for the request (see the module's table)."""
    status = response.status
    if status == 200:
        body = response.body if isinstance(response.body, dict) else {}
        rollback = body if response.endpoint == "rollback" else body.get("parent_rollback")
        if not isinstance(rollback, dict) or not rollback.get("id"):
            return "transient"  # not a rollback object: ask again (a repeat answers already_rolled_back)
        if response.endpoint == "rollbacks" and not isinstance(body.get("rollbacks", []), list):
            return "transient"
        failed = rollback.get("result") == "FAILURE" or rollback.get("status") == "FAILED"
        return "permanent" if failed else "goal"
    if status == 400 and response.error_key == "already_rolled_back":
        return "goal"
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    if status >= 500 or status in TRANSIENT_STATUSES or status < 400:
        return "transient"
    return "permanent"


def _answer_record(response: ApiResponse) -> dict[str, Any]:
    """An answer as kept by the idempotency record (the raw body compressed: it holds customer data)."""
    return {
        "endpoint": response.endpoint,
        "status": response.status,
        "headers": dict(response.headers),
        "raw_zlib_b64": base64.b64encode(zlib.compress(response.raw, 6)).decode("ascii"),
    }


def _answer_from_record(record: Mapping[str, Any]) -> ApiResponse:
    raw = zlib.decompress(base64.b64decode(record["raw_zlib_b64"]))
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        body = None
    return ApiResponse(int(record["status"]), body, dict(record.get("headers") or {}), raw, record["endpoint"])


_ROLLBACK_CORE_FIELDS = (
    "id",
    "date",
    "status",
    "result",
    "redemption",
    "reason",
    "amount",
    "failure_code",
    "failure_message",
    "customer_id",
    "tracking_id",
    "metadata",
    "object",
)


def parse_rollback(document: Mapping[str, Any], redemption_id: str, now: datetime) -> SimpleRedemption:
    """A ``redemption_rollback`` object of an answer. Should Voucherify send a shape the webhook models do not
    know, the core fields (id, date, result, status, redemption, failure…) are enough to record it."""
    try:
        rollback = SimpleRedemption.model_validate(document)
    except ValidationError:
        core = {k: document.get(k) for k in _ROLLBACK_CORE_FIELDS if document.get(k) is not None}
        core.setdefault("date", now)
        core.setdefault("metadata", None)
        core["status"] = core.get("status") if core.get("status") in ("SUCCEEDED", "FAILED") else None
        if core.get("result") not in ("SUCCESS", "FAILURE"):
            core.pop("result", None)
        if not isinstance(core.get("metadata"), dict):
            core["metadata"] = None
        try:
            rollback = SimpleRedemption.model_validate(core)
        except ValidationError:
            rollback = SimpleRedemption.model_validate(
                {"id": str(document.get("id")), "date": now, "status": None, "metadata": None}
            )
    if not rollback.redemption:
        rollback = rollback.model_copy(update={"redemption": redemption_id})
    return rollback


# --- the worker -----------------------------------------------------------------------------------
class RollbackWorker:
    """Processes rollback messages; safe to call from several threads at once (one batch's records)."""

    IN_PROCESS_BASE_SECONDS = 0.1
    IN_PROCESS_MAX_SECONDS = 1.0

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
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.api = api
        self.queue = queue
        self.pacer = pacer
        self.logger = logger
        self.metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._metrics_lock = threading.Lock()
        self._context: Any = None
        self._invocation_started = time.monotonic()
        self._rollback_once, self._idempotency_config = self._idempotent(dynamodb)

    @classmethod
    def from_env(
        cls, *, logger: Any, metrics: Any, dynamodb: Any = None, sqs: Any = None, secrets: Any = None
    ) -> RollbackWorker:
        settings = WorkerSettings.from_env()
        if dynamodb is None or sqs is None:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=1,
                read_timeout=3,
                retries={"max_attempts": 3, "mode": "standard"},
                max_pool_connections=settings.rollback_batch_threads + 2,
            )
            dynamodb = dynamodb or boto3.client("dynamodb", config=config)
            sqs = sqs or boto3.client("sqs", config=config)
            # Every client during init, the API keys' one too (not on the first record).
            secrets = secrets or boto3.client("secretsmanager", config=config)
        api = VoucherifyClient(
            settings.voucherify_api_url,
            SecretCredentials(
                settings.voucherify_api_secret_id,
                max_age=settings.secret_max_age_seconds,
                fetch=powertools_secret_fetcher(settings.secret_max_age_seconds, secrets) if secrets else None,
            ),
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

    def _idempotent(self, dynamodb: Any) -> tuple[Callable[..., dict[str, Any]], Any]:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

        from voucherify_ledger.ledger.idempotency import idempotency_store

        persistence = idempotency_store(self.settings.ledger_table_name, dynamodb)
        config = IdempotencyConfig(
            event_key_jmespath="redemption_id",
            expires_after_seconds=self.settings.idempotency_expires_after_seconds,
            response_hook=lambda response, _record: {**response, "replayed": True},
        )
        wrapped = idempotent_function(
            data_keyword_argument="target",
            persistence_store=persistence,
            config=config,
            key_prefix=IDEMPOTENCY_KEY_PREFIX,
        )(self._call_api)
        return wrapped, config

    # --- per invocation ---------------------------------------------------------------------------
    def start_invocation(self, context: Any) -> None:
        """Call once per invocation, before the records: the deadline comes from the Lambda context."""
        self._context = context
        self._invocation_started = time.monotonic()
        if context is not None:
            self._idempotency_config.register_lambda_context(context)

    def _time_left(self) -> float:
        context = self._context
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            return context.get_remaining_time_in_millis() / 1000.0
        return 30.0 - (time.monotonic() - self._invocation_started)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

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
            self._retry(message, None, message.message_id, _worker_problem(exc), None)

    def _handle(self, message: QueueMessage) -> Outcome:
        now = self._now()
        try:
            request = RollbackRequest.model_validate_json(message.body)
        except ValidationError as exc:
            return self._reject(message, exc, now)
        request_id = request.request_id or message.message_id
        try:
            if request.order_id is not None:
                return self._fan_out(request, request_id, message, now)
            return self._roll_back(request, request.redemption_id or "", request_id, message, now)
        except _Transient as exc:
            self._retry(message, request, request_id, exc.problem, exc.retry_after, calls=exc.calls)
        except (StorageError, QueueError) as exc:
            self._retry(message, request, request_id, Problem(None, "storage", str(exc)), None)
        except StorageRefusedError as refused:  # DynamoDB will refuse it on every retry: end it now, saying why
            return self._refused(message, request, request_id, refused, now)
        except RetryLater:
            raise
        except Exception as exc:  # a bug: retried, and recorded on the request, like a transient problem
            self._worker_error(message, request_id, exc)
            self._retry(message, request, request_id, _worker_problem(exc), None)

    def _refused(
        self,
        message: QueueMessage,
        request: RollbackRequest,
        request_id: str,
        refused: StorageRefusedError,
        now: datetime,
    ) -> Outcome:
        """The ledger refused a write of this request for good (e.g. a redemption item already at DynamoDB's 400 KB):
        the request ends FAILED with ``ledger_refused`` and the reason. Voucherify may have rolled the redemption
        back (its answer is kept by the idempotency record), so the message says to check it there."""
        error = {
            "key": "ledger_refused",
            "message": f"{refused.reason}; the rollback may have been made in Voucherify: check the redemption there",
        }
        fields = {"error": error, "message_id": message.message_id, "receive_count": message.receive_count}
        if request.redemption_id:
            self.ledger.requests.update(request.redemption_id, request_id, FAILED, now=now, fields=fields)
        elif request.order_id:
            self.ledger.requests.record_order(request.order_id, request_id, FAILED, now=now, fields=fields)
        outcome = Outcome(
            FAILED, request_id, request.redemption_id, order_id=request.order_id, error_key="ledger_refused"
        )
        return self._done(outcome)

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
            self._retry(message, None, message.message_id, Problem(None, "storage", str(storage)), None)
        self._metric("RollbackRequestsRejected")
        self.logger.warning(
            "rollback request rejected: not a valid RollbackRequest",
            message_id=message.message_id,
            errors=errors,
        )
        return Outcome(FAILED, message.message_id, error_key="invalid_request", detail="; ".join(errors))

    def _fan_out(self, request: RollbackRequest, request_id: str, message: QueueMessage, now: datetime) -> Outcome:
        """Queues one request per redemption of the order the ledger holds as SUCCEEDED. Ids the request model
        refuses (stored by an earlier version) are not queued but listed on the order request; never raises on
        what the ledger holds."""
        order_id = request.order_id or ""
        listed = [
            r["redemption_id"] for r in self.ledger.redemptions.list_by("order", order_id) if r.get("redemption_id")
        ]
        valid = [r for r in listed if is_rollback_target(r)]
        invalid = [r for r in listed if not is_rollback_target(r)]
        states = self.ledger.redemptions.states(valid)
        targets: list[str] = []
        already: list[str] = []
        for redemption_id in valid:
            state = states.get(redemption_id) or {}
            parent = state.get("parent_redemption_id") or None
            parent_valid = parent is None or is_rollback_target(parent)
            parent_done = (
                parent is not None and parent_valid and (states.get(parent) or {}).get("status") == ROLLED_BACK
            )
            if state.get("status") == ROLLED_BACK or parent_done:
                already.append(redemption_id)
            elif state.get("status") == SUCCEEDED:
                if not parent_valid:
                    invalid.append(parent)  # a stack child goes with its parent, whose id cannot be sent
                    continue
                # A stack child is rolled back with its parent, by the stack endpoint, once.
                target = parent or redemption_id
                if target not in targets:
                    targets.append(target)
        invalid_ids = sorted({str(r) for r in invalid})
        common: dict[str, Any] = {
            "message_id": message.message_id,
            "receive_count": message.receive_count,
            "reason": request.reason,
            "invalid_redemption_ids": invalid_ids[:MAX_LISTED_INVALID_IDS] or None,
            "invalid_redemption_count": len(invalid_ids) or None,
            "error": None,
        }
        if invalid_ids:
            common["error"] = {
                "key": "invalid_redemption_ids",
                "message": f"{len(invalid_ids)} redemption id(s) of the order are not r_ followed by "
                f"1-{ids.MAX_ID_TAIL} letters or digits: not rolled back",
            }
            self._metric("RollbackRedemptionIdsInvalid", len(invalid_ids))
            self.logger.warning(
                "order rollback request: redemption ids of the ledger that are not r_… ids are not rolled back",
                request_id=request_id,
                order_id=order_id,
                invalid_redemption_count=len(invalid_ids),
            )
        if not targets:
            if invalid_ids:
                state = FAILED
            elif already:
                state = ALREADY_ROLLED_BACK
            else:
                state = FAILED
                common["error"] = {
                    "key": "order_not_in_ledger",
                    "message": f"the ledger holds no redemption of order {order_id}",
                }
            fields = {**common, "already_rolled_back_ids": already}
            self.ledger.requests.record_order(order_id, request_id, state, now=now, fields=fields)
            self._metric("RollbacksFailed" if state == FAILED else "RollbacksAlreadyRolledBack")
            self.logger.info("order rollback request: nothing to roll back", request_id=request_id, order_id=order_id)
            error_key = common["error"]["key"] if common["error"] else None
            return Outcome(state, request_id, order_id=order_id, error_key=error_key)
        child_ids = [child_request_id(request_id, target) for target in targets]
        parent_request_id = request_id if is_request_id(request_id) else None  # a message id may not be
        base = request.model_dump(exclude_none=True, exclude={"order_id", "request_id", "parent_request_id"})
        children = [
            RollbackRequest.model_validate(
                {**base, "redemption_id": target, "request_id": child_id, "parent_request_id": parent_request_id}
            ).to_message()
            for target, child_id in zip(targets, child_ids, strict=True)
        ]
        self.queue.send(children)
        self.ledger.requests.record_order(
            order_id,
            request_id,
            FANNED_OUT,
            now=now,
            fields={
                **common,
                "redemption_ids": targets,
                "child_request_ids": child_ids,
                "already_rolled_back_ids": already,
            },
        )
        self._metric("RollbackOrdersFannedOut")
        self.logger.info(
            "order rollback request fanned out", request_id=request_id, order_id=order_id, redemption_ids=targets
        )
        return Outcome(FANNED_OUT, request_id, order_id=order_id, detail=f"{len(targets)} redemption(s) queued")

    def _roll_back(
        self, request: RollbackRequest, redemption_id: str, request_id: str, message: QueueMessage, now: datetime
    ) -> Outcome:
        start = self.ledger.requests.begin(
            redemption_id,
            request_id,
            now=now,
            message_id=message.message_id,
            receive_count=message.receive_count,
            reason=request.reason,
            parent_request_id=request.parent_request_id,
        )
        if not start.proceed:  # a finished request delivered again
            state = str(start.item.get("state"))
            self._metric("RollbackDuplicates")
            self.logger.info(
                "rollback request already finished", request_id=request_id, redemption_id=redemption_id, state=state
            )
            error = start.item.get("error") or {}
            return Outcome(
                state,
                request_id,
                redemption_id,
                rollback_id=start.item.get("rollback_id"),
                error_key=error.get("key"),
                detail="already finished",
            )
        known = self.ledger.redemptions.state(redemption_id)
        if known and known.get("status") == ROLLED_BACK:
            rollback_ids = known.get("rollback_ids") or []
            self.ledger.requests.record_already_rolled_back(
                redemption_id, request_id, now=now, confirmed_by="ledger", fields={"rollback_ids": rollback_ids}
            )
            outcome = Outcome(ALREADY_ROLLED_BACK, request_id, redemption_id, detail="ROLLED_BACK in the ledger")
            return self._done(outcome)

        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyInconsistentStateError,
            IdempotencyPersistenceLayerError,
        )

        attempt = _Attempt()
        try:
            answer = self._rollback_once(target={"redemption_id": redemption_id}, request=request, attempt=attempt)
        except _Definitive as definitive:
            answer = definitive.answer
        except _Transient as transient:
            transient.calls = attempt.calls
            raise
        except (IdempotencyAlreadyInProgressError, IdempotencyInconsistentStateError):
            raise _Transient(Problem(None, "in_progress", "another worker is rolling this redemption back")) from None
        except IdempotencyPersistenceLayerError as exc:
            problem = Problem(None, "storage", f"idempotency record: {type(exc.__cause__).__name__}")
            transient = _Transient(problem)
            transient.calls = attempt.calls
            raise transient from None
        finally:
            if attempt.calls:
                self._metric("VoucherifyApiCalls", attempt.calls)
        return self._record(redemption_id, request_id, _answer_from_record(answer), attempt.calls, self._now())

    # --- the API call (idempotent on the redemption id) ---------------------------------------------
    def _call_api(self, *, target: dict[str, str], request: RollbackRequest, attempt: _Attempt) -> dict[str, Any]:
        redemption_id = target["redemption_id"]
        body = request.api_body()
        response = self._send(
            lambda deadline: self.api.rollback_redemption(redemption_id, body, deadline_seconds=deadline), attempt
        )
        if response.status == 400 and response.error_key == "invalid_redemption":
            # A stacked (parent) redemption: the stack has its own endpoint, which rolls back every child.
            response = self._send(
                lambda deadline: self.api.rollback_stacked_redemptions(redemption_id, body, deadline_seconds=deadline),
                attempt,
            )
        record = _answer_record(response)
        if classify(response) == "goal":
            return record
        raise _Definitive(record)

    def _send(self, call: Callable[[float], ApiResponse], attempt: _Attempt) -> ApiResponse:
        """One API request, paced; quick in-process retries of 5xx/timeouts/broken connections while the
        invocation has time. Returns a final answer or raises ``_Transient``."""
        retries = 0
        refreshed = False
        per_call = self.api.max_request_seconds + SAFETY_SECONDS
        while True:
            wait = self.pacer.reserve(max_wait=max(0.0, self._time_left() - per_call))
            if wait is None:
                raise _Transient(
                    Problem(None, "paced", "the API budget has no room left in this invocation"),
                    retry_after=self.pacer.estimated_wait(),
                )
            if wait > 0:
                self._sleep(wait)
            attempt.calls += 1
            try:
                response = call(self._time_left() - SAFETY_SECONDS)
            except VoucherifyUnavailableError as exc:
                problem = Problem(None, exc.kind, f"no answer from Voucherify ({exc.detail})")
            except CredentialsUnavailableError as exc:
                attempt.calls -= 1
                raise _Transient(Problem(None, "credentials", str(exc))) from None
            else:
                kind = classify(response)
                if kind == "rate_limited":
                    retry_after = response.retry_after(self._clock())
                    if retry_after is not None:
                        self.pacer.pause(retry_after)
                    self._metric("VoucherifyRateLimited")
                    raise _Transient(_problem_of(response), retry_after=retry_after)
                if kind == "auth":
                    self._metric("VoucherifyAuthFailures")
                    self.logger.error("Voucherify refused the API keys", status=response.status, key=response.error_key)
                    if not refreshed and self._refresh_credentials():
                        refreshed = True
                        continue
                    raise _Transient(_problem_of(response))
                if kind != "transient":
                    return response
                problem = _problem_of(response)
            retries += 1
            delay = min(self.IN_PROCESS_MAX_SECONDS, self.IN_PROCESS_BASE_SECONDS * 2 ** (retries - 1))
            delay *= 1 + self._rng.random()
            if retries > self.settings.rollback_in_process_retries or self._time_left() - delay < per_call:
                raise _Transient(problem)
            self._sleep(delay)

    def _refresh_credentials(self) -> bool:
        try:
            return self.api.credentials.refresh()
        except CredentialsUnavailableError:
            return False

    # --- recording --------------------------------------------------------------------------------
    def _record(self, redemption_id: str, request_id: str, response: ApiResponse, calls: int, now: datetime) -> Outcome:
        if classify(response) == "goal" and response.status == 400:  # already_rolled_back
            body = response.body if isinstance(response.body, dict) else {}
            self.ledger.requests.record_already_rolled_back(
                redemption_id,
                request_id,
                now=now,
                confirmed_by="api",
                fields={
                    "api_calls": calls,
                    "voucherify_request_id": body.get("request_id"),
                    "voucherify_resource_id": body.get("resource_id"),
                },
            )
            return self._done(
                Outcome(ALREADY_ROLLED_BACK, request_id, redemption_id, api_calls=calls, detail="already_rolled_back")
            )
        if response.status == 200:
            return self._record_rollbacks(redemption_id, request_id, response, calls, now)
        problem = _problem_of(response)
        body = response.body if isinstance(response.body, dict) else {}
        self.ledger.requests.update(
            redemption_id,
            request_id,
            FAILED,
            now=now,
            fields={
                "api_calls": calls,
                "error": {**problem.as_dict(), **({"details": body["details"]} if body.get("details") else {})},
            },
        )
        return self._done(Outcome(FAILED, request_id, redemption_id, error_key=problem.key, api_calls=calls))

    def _record_rollbacks(
        self, redemption_id: str, request_id: str, response: ApiResponse, calls: int, now: datetime
    ) -> Outcome:
        body = response.body
        fields: dict[str, Any] = {"api_calls": calls}
        if response.endpoint == "rollbacks":
            child_ids = []
            for child in body.get("rollbacks") or []:
                if not isinstance(child, dict) or not child.get("id"):
                    continue
                rollback = parse_rollback(child, child.get("redemption") or redemption_id, now)
                if rollback.redemption == redemption_id:
                    continue  # the parent's own rollback comes as parent_rollback
                raw = json.dumps(child, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
                self.ledger.requests.record_worker_rollback(
                    rollback.redemption or "", rollback, raw=raw, received_at=now
                )
                child_ids.append(rollback.id)
            fields.update(stacked=True, child_rollback_ids=child_ids)
            document = body["parent_rollback"]
        else:
            document = body
        rollback = parse_rollback(document, redemption_id, now)
        outcome = self.ledger.requests.record_worker_rollback(
            redemption_id,
            rollback,
            raw=response.raw,
            received_at=now,
            request_id=request_id,
            request_fields=fields,
        )
        if rollback.result == "FAILURE" or rollback.status == "FAILED":
            return self._done(
                Outcome(
                    FAILED,
                    request_id,
                    redemption_id,
                    rollback_id=rollback.id,
                    error_key=rollback.failure_code or "rollback_failed",
                    api_calls=calls,
                )
            )
        detail = "recorded first by the webhook" if outcome.status == "duplicate" else None
        return self._done(
            Outcome(SUCCEEDED, request_id, redemption_id, rollback_id=rollback.id, api_calls=calls, detail=detail)
        )

    def _done(self, outcome: Outcome) -> Outcome:
        metric = {
            SUCCEEDED: "RollbacksSucceeded",
            ALREADY_ROLLED_BACK: "RollbacksAlreadyRolledBack",
            FAILED: "RollbacksFailed",
        }.get(outcome.state)
        if metric:
            self._metric(metric)
        log = self.logger.warning if outcome.state == FAILED else self.logger.info
        log(
            f"rollback request {outcome.state}",
            request_id=outcome.request_id,
            redemption_id=outcome.redemption_id,
            rollback_id=outcome.rollback_id,
            error_key=outcome.error_key,
            api_calls=outcome.api_calls,
        )
        return outcome

    # --- retrying ---------------------------------------------------------------------------------
    def backoff_seconds(self, receive_count: int) -> int:
        """base × 2^(receive_count − 1), capped, with "equal jitter" (half fixed, half random)."""
        settings = self.settings
        ceiling = min(
            float(settings.rollback_retry_max_seconds),
            settings.rollback_retry_base_seconds * 2 ** max(0, min(receive_count, 30) - 1),
        )
        return math.ceil(ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    def _retry(
        self,
        message: QueueMessage,
        request: RollbackRequest | None,
        request_id: str,
        problem: Problem,
        retry_after: float | None,
        *,
        calls: int = 0,
    ) -> NoReturn:
        if retry_after is not None:  # never sooner than Voucherify (or the pacer) said
            delay = math.ceil(retry_after + self._rng.uniform(0, 1))
        else:
            delay = self.backoff_seconds(message.receive_count)
        delay = max(0, min(delay, MAX_VISIBILITY_SECONDS))
        last = message.receive_count >= self.settings.rollback_max_receive_count
        now = self._now()
        fields: dict[str, Any] = {
            "error": problem.as_dict(),
            "message_id": message.message_id,
            "receive_count": message.receive_count,
        }
        if calls:
            fields["api_calls"] = calls
        if last:
            state = FAILED
            fields["dead_lettered"] = True
            fields["error"]["message"] = f"{problem.message}; attempts exhausted, moved to the dead-letter queue"
        else:
            state = RETRYING
            fields["next_attempt_at"] = iso(now + timedelta(seconds=delay))
        recorded = False
        try:  # recorded or not, the message is delayed and retried
            if request is not None and request.redemption_id:
                self.ledger.requests.update(request.redemption_id, request_id, state, now=now, fields=fields)
                recorded = True
            elif request is not None and request.order_id:
                self.ledger.requests.record_order(request.order_id, request_id, state, now=now, fields=fields)
                recorded = True
        except Exception as exc:
            self.logger.warning("could not record the retry", request_id=request_id, error=type(exc).__name__)
        if not recorded:
            # Not read as a request, or its own key could not be written: the message's attempt is recorded under
            # its message id (REQUEST#<message id>), the last place left that says why it waits or went.
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
        if message.receipt_handle:
            try:
                self.queue.delay(message.receipt_handle, delay)
            except Exception as exc:  # the message then comes back after the queue's visibility timeout
                self.logger.warning("could not delay the message", request_id=request_id, error=type(exc).__name__)
        self._metric("RollbacksDeadLettered" if last else "RollbackRetries")
        self.logger.warning(
            "rollback request will be retried" if not last else "rollback request goes to the dead-letter queue",
            request_id=request_id,
            redemption_id=request.redemption_id if request else None,
            order_id=request.order_id if request else None,
            status=problem.status,
            key=problem.key,
            error=problem.message,
            receive_count=message.receive_count,
            delay_seconds=delay,
        )
        raise RetryLater(problem, delay)
