"""Recording what Voucherify answered a rollback request: the rollback objects of the answer (a stack's children
too), the request's final state, and the finished request counted and logged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.claims import finished_note
from voucherify_ledger.ledger.keys import ALREADY_ROLLED_BACK, FAILED, SUCCEEDED
from voucherify_ledger.rollbacks.answers import Outcome, classify, error_ids, parse_rollback, problem_of
from voucherify_ledger.voucherify_api import ApiResponse

DONE_METRICS = {
    SUCCEEDED: "RollbacksSucceeded",
    ALREADY_ROLLED_BACK: "RollbacksAlreadyRolledBack",
    FAILED: "RollbacksFailed",
}


@dataclass(frozen=True)
class AnswerRecording:
    """Writes final answers into the ledger; thread-safe (it keeps nothing between answers)."""

    ledger: Ledger
    logger: Any
    metric: Callable[[str, float], None]

    def record(
        self,
        redemption_id: str,
        request_id: str,
        response: ApiResponse,
        calls: int,
        now: datetime,
        *,
        attempt: Mapping[str, Any],
    ) -> Outcome:
        """What a final answer makes of the request: ALREADY_ROLLED_BACK, the rollback(s) recorded (SUCCEEDED, or
        FAILED for a rollback whose result is FAILURE), or FAILED with Voucherify's error. The request holds the
        redemption's claim: the writes that record the outcome release it (``ledger.claims``); ``attempt`` is what
        the request records of this attempt (``attempt_fields``)."""
        if classify(response) == "goal" and response.status == 400:  # already_rolled_back
            ids_of = error_ids(response)
            self.ledger.requests.record_already_rolled_back(
                redemption_id,
                request_id,
                now=now,
                confirmed_by="api",
                fields={
                    **attempt,
                    "api_calls": calls,
                    "voucherify_request_id": ids_of.request_id,
                    "voucherify_resource_id": ids_of.resource_id,
                },
            )
            return self.done(
                Outcome(ALREADY_ROLLED_BACK, request_id, redemption_id, api_calls=calls, detail="already_rolled_back")
            )
        if response.status == 200:
            return self._record_rollbacks(redemption_id, request_id, response, calls, now, attempt)
        problem = problem_of(response)  # with Voucherify's request_id / resource_id, for its support
        fields = {**attempt, "api_calls": calls, "error": problem.as_dict()}
        self.ledger.requests.update(redemption_id, request_id, FAILED, now=now, fields=fields)
        self.ledger.claims.release(redemption_id, request_id, finished=finished_note(FAILED, error_key=problem.key))
        return self.done(Outcome(FAILED, request_id, redemption_id, error_key=problem.key, api_calls=calls))

    def _record_rollbacks(
        self,
        redemption_id: str,
        request_id: str,
        response: ApiResponse,
        calls: int,
        now: datetime,
        attempt: Mapping[str, Any],
    ) -> Outcome:
        body = response.body
        fields: dict[str, Any] = {**attempt, "api_calls": calls}
        document = body
        if response.endpoint == "rollbacks":
            child_ids = self._record_stack_children(redemption_id, body.get("rollbacks") or [], now)
            fields.update(stacked=True, child_rollback_ids=child_ids)
            document = body["parent_rollback"]
        rollback = parse_rollback(document, redemption_id, now)
        outcome = self.ledger.requests.record_worker_rollback(
            redemption_id, rollback, raw=response.raw, received_at=now, request_id=request_id, request_fields=fields
        )
        if rollback.result == "FAILURE" or rollback.status == "FAILED":
            error_key = rollback.failure_code or "rollback_failed"
            return self.done(
                Outcome(
                    FAILED, request_id, redemption_id, rollback_id=rollback.id, error_key=error_key, api_calls=calls
                )
            )
        detail = "recorded first by the webhook" if outcome.status == "duplicate" else None
        return self.done(
            Outcome(SUCCEEDED, request_id, redemption_id, rollback_id=rollback.id, api_calls=calls, detail=detail)
        )

    def _record_stack_children(self, redemption_id: str, children: list[Any], now: datetime) -> list[str]:
        """The rollbacks of a stack's children (the stack endpoint's ``rollbacks``), each recorded; their ids."""
        child_ids = []
        for child in children:
            if not isinstance(child, dict) or not child.get("id"):
                continue
            rollback = parse_rollback(child, child.get("redemption") or redemption_id, now)
            if rollback.redemption == redemption_id:
                continue  # the parent's own rollback comes as parent_rollback
            raw = json.dumps(child, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            self.ledger.requests.record_worker_rollback(rollback.redemption or "", rollback, raw=raw, received_at=now)
            child_ids.append(rollback.id)
        return child_ids

    def done(self, outcome: Outcome) -> Outcome:
        """A finished request, counted (``DONE_METRICS``) and logged."""
        metric = DONE_METRICS.get(outcome.state)
        if metric:
            self.metric(metric, 1)
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
