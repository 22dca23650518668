"""The rollback worker's call to Voucherify for one redemption, made while the worker holds the redemption's claim
(``ledger.claims``: one call at a time per redemption), paced to the API budget, with quick in-process retries. It
answers ``Answered`` (a final answer) or ``Transient`` (retry the message later), never raises for what Voucherify
did; an answer an earlier attempt kept (``kept``) is answered again without a call.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from voucherify_ledger.models.rollback_request import RollbackRequest
from voucherify_ledger.rollbacks.answers import Problem, classify, decode_answer, problem_of
from voucherify_ledger.rollbacks.pacing import TokenBucket
from voucherify_ledger.voucherify_api import (
    ApiResponse,
    CredentialsUnavailableError,
    VoucherifyClient,
    VoucherifyUnavailableError,
)

SAFETY_SECONDS = 1.0  # kept free before the invocation's deadline
IN_PROCESS_BASE_SECONDS = 0.1
IN_PROCESS_MAX_SECONDS = 1.0


@dataclass(frozen=True)
class Answered:
    """A final answer of Voucherify (the goal reached, or a permanent failure), after ``calls`` API calls."""

    response: ApiResponse
    calls: int = 0


@dataclass(frozen=True)
class Transient:
    """No final answer: the message is retried, no sooner than ``retry_after`` seconds when that is known."""

    problem: Problem
    retry_after: float | None = None
    calls: int = 0


@dataclass
class _Attempt:
    calls: int = 0  # API calls made by this attempt, whatever became of it


class RollbackCaller:
    """Calls the rollback API for one redemption at a time; thread-safe (one batch's records call at once)."""

    def __init__(
        self,
        *,
        api: VoucherifyClient,
        pacer: TokenBucket,
        in_process_retries: int,
        metric: Callable[[str, float], None],
        logger: Any,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.api = api
        self.pacer = pacer
        self.in_process_retries = in_process_retries
        self._metric = metric
        self.logger = logger
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._context: Any = None
        self._invocation_started = time.monotonic()

    def start_invocation(self, context: Any) -> None:
        """Call once per invocation: the deadline (and so how long a claim holds) comes from ``context``."""
        self._context = context
        self._invocation_started = time.monotonic()

    def time_left(self) -> float:
        """Seconds left in this invocation (the Lambda context's, or 30 s from ``start_invocation`` without one)."""
        return self._time_left()

    def _time_left(self) -> float:
        context = self._context
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            seconds: float = context.get_remaining_time_in_millis() / 1000.0
            return seconds
        return 30.0 - (time.monotonic() - self._invocation_started)

    def call(
        self,
        redemption_id: str,
        request: RollbackRequest,
        *,
        stacked: bool = False,
        kept: Mapping[str, Any] | None = None,
    ) -> Answered | Transient:
        """The rollback of ``redemption_id``: an answer an earlier attempt kept (``kept``, no call made), or one call,
        paced and quickly retried. A stack's parent the ledger knows as one (``stacked``) goes to the stack endpoint
        at once; any other redemption to ``/rollback`` first, then, if Voucherify says it is a stack's parent
        (``invalid_redemption``), to the stack endpoint: two calls. The caller holds the redemption's claim."""
        if kept is not None:
            return Answered(decode_answer(kept))
        attempt = _Attempt()
        try:
            result = self._call_api(redemption_id, request, attempt, stacked=stacked)
        finally:
            if attempt.calls:
                self._metric("VoucherifyApiCalls", attempt.calls)
        return replace(result, calls=attempt.calls)

    def _call_api(
        self, redemption_id: str, request: RollbackRequest, attempt: _Attempt, *, stacked: bool
    ) -> Answered | Transient:
        """A final answer, or ``Transient``."""
        body = request.api_body()

        def stack(deadline: float) -> ApiResponse:  # the stack's own endpoint, which rolls back every child
            return self.api.rollback_stacked_redemptions(redemption_id, body, deadline_seconds=deadline)

        if stacked:
            sent = self._send(stack, attempt)
        else:
            sent = self._send(
                lambda deadline: self.api.rollback_redemption(redemption_id, body, deadline_seconds=deadline), attempt
            )
            if isinstance(sent, ApiResponse) and sent.status == 400 and sent.error_key == "invalid_redemption":
                sent = self._send(stack, attempt)  # a stack's parent the ledger did not know as one
        return sent if isinstance(sent, Transient) else Answered(sent)

    def _send(self, call: Callable[[float], ApiResponse], attempt: _Attempt) -> ApiResponse | Transient:
        """One API request, paced; quick in-process retries of 5xx/timeouts/broken connections while the
        invocation has time. A final answer, or ``Transient``."""
        retries = 0
        refreshed = False
        per_call = self.api.max_request_seconds + SAFETY_SECONDS
        while True:
            wait = self.pacer.reserve(max_wait=max(0.0, self._time_left() - per_call))
            if wait is None:
                problem = Problem(None, "paced", "the API budget has no room left in this invocation")
                return Transient(problem, retry_after=self.pacer.estimated_wait())
            if wait > 0:
                self._sleep(wait)
            attempt.calls += 1
            try:
                response = call(self._time_left() - SAFETY_SECONDS)
            except VoucherifyUnavailableError as exc:
                problem = Problem(None, exc.kind, f"no answer from Voucherify ({exc.detail})")
            except CredentialsUnavailableError as exc:
                attempt.calls -= 1
                return Transient(Problem(None, "credentials", str(exc)))
            else:
                kind = classify(response)
                if kind == "auth":
                    if self._refused_keys(response, may_refresh=not refreshed):
                        refreshed = True
                        continue
                    return Transient(problem_of(response))
                if kind == "rate_limited":
                    return self._rate_limited(response)
                if kind != "transient":
                    return response
                problem = problem_of(response)
            retries += 1
            delay = min(IN_PROCESS_MAX_SECONDS, IN_PROCESS_BASE_SECONDS * 2 ** (retries - 1))
            delay *= 1 + self._rng.random()
            if retries > self.in_process_retries or self._time_left() - delay < per_call:
                return Transient(problem)
            self._sleep(delay)

    def _refused_keys(self, response: ApiResponse, *, may_refresh: bool) -> bool:
        """A 401/403: counted and logged; True when the keys were re-read (``may_refresh``) and changed, so that one
        more call is worth making."""
        self._metric("VoucherifyAuthFailures", 1)
        self.logger.error("Voucherify refused the API keys", status=response.status, key=response.error_key)
        if not may_refresh:
            return False
        try:
            return self.api.credentials.refresh()
        except CredentialsUnavailableError:
            return False

    def _rate_limited(self, response: ApiResponse) -> Transient:
        """A 429: every call of this execution pauses until the time Voucherify gave."""
        retry_after = response.retry_after(self._clock())
        if retry_after is not None:
            self.pacer.pause(retry_after)
        self._metric("VoucherifyRateLimited", 1)
        return Transient(problem_of(response), retry_after=retry_after)
