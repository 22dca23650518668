"""An order's rollback request: every redemption of the order the ledger holds as SUCCEEDED is queued as a request
of its own (a stack child: its parent, which rolls back the whole stack), one API call per message. The order is named
by Voucherify's id (``order_id``, index ``ByOrder``) or by the merchant's (``order_source_id``, ``ByOrderSourceId``);
its request is kept under ``ORDER#<ord_…>`` or ``ORDER_SOURCE#<order source id>`` (``ledger.keys``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.keys import (
    ALREADY_ROLLED_BACK,
    FAILED,
    FANNED_OUT,
    ROLLED_BACK,
    SUCCEEDED,
    OrderField,
)
from voucherify_ledger.models import ids
from voucherify_ledger.models.rollback_request import (
    RollbackRequest,
    child_request_id,
    is_request_id,
    is_rollback_target,
)
from voucherify_ledger.rollbacks.answers import Outcome
from voucherify_ledger.rollbacks.queue import QueueMessage, RollbackQueue

MAX_LISTED_INVALID_IDS = 100  # invalid redemption ids listed on an order request (all of them are counted)
ORDER_INDEX: dict[OrderField, Literal["order", "order_source_id"]] = {
    "order_id": "order",
    "order_source_id": "order_source_id",
}
DESCRIBED: dict[OrderField, str] = {"order_id": "order", "order_source_id": "order source id"}


@dataclass
class OrderTargets:
    """What an order's redemptions come to: the ids to queue, those already rolled back, those that cannot be sent."""

    targets: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    order_ids: list[str] = field(default_factory=list)  # Voucherify's ids of the order's redemptions (ord_…)
    failed_attempts: list[str] = field(default_factory=list)  # rf_…: nothing was given, nothing to roll back


@dataclass(frozen=True)
class OrderFanOut:
    """Fans an order request out onto the queue; never raises on what the ledger holds."""

    ledger: Ledger
    queue: RollbackQueue
    logger: Any
    metric: Callable[[str, float], None]

    def targets(self, order: str, by: OrderField = "order_id") -> OrderTargets:
        """The order's redemptions by what becomes of them. Ids the request model refuses (stored by an earlier
        version) are not queued but listed; a stack child goes with its parent, once."""
        items = self.ledger.redemptions.list_by(ORDER_INDEX[by], order)
        failed = [str(r["redemption_id"]) for r in items if r.get("redemption_id") and r.get("status") == FAILED]
        listed = [r["redemption_id"] for r in items if r.get("redemption_id") and r.get("status") != FAILED]
        valid = [r for r in listed if is_rollback_target(r)]
        found = OrderTargets(invalid=[r for r in listed if not is_rollback_target(r)], failed_attempts=failed)
        found.order_ids = sorted({str(r["order_id"]) for r in items if r.get("order_id")})
        states = self.ledger.redemptions.states(valid)
        for redemption_id in valid:
            state = states.get(redemption_id) or {}
            parent = state.get("parent_redemption_id") or None
            parent_valid = parent is None or is_rollback_target(parent)
            parent_done = (
                parent is not None and parent_valid and (states.get(parent) or {}).get("status") == ROLLED_BACK
            )
            if state.get("status") == ROLLED_BACK or parent_done:
                found.already.append(redemption_id)
            elif state.get("status") == SUCCEEDED:
                if not parent_valid:
                    found.invalid.append(str(parent))  # a stack child goes with its parent, whose id cannot be sent
                    continue
                # A stack child is rolled back with its parent, by the stack endpoint, once.
                target = parent or redemption_id
                if target not in found.targets:
                    found.targets.append(target)
        return found

    def fan_out(self, request: RollbackRequest, request_id: str, message: QueueMessage, now: datetime) -> Outcome:
        """Queues the order's requests and records the order request: FANNED_OUT, ALREADY_ROLLED_BACK, or FAILED
        (nothing of the order in the ledger, or only ids that cannot be sent)."""
        by, order = request.order_target() or ("order_id", "")
        found = self.targets(order, by)
        common = self._common_fields(request, request_id, message, found)
        if by == "order_source_id":
            common["order_ids"] = found.order_ids or None
        if not found.targets:
            return self._nothing_to_roll_back(by, order, request_id, found, common, now)
        child_ids = [child_request_id(request_id, target) for target in found.targets]
        parent_request_id = request_id if is_request_id(request_id) else None  # a message id may not be
        base = request.model_dump(
            exclude_none=True, exclude={"order_id", "order_source_id", "request_id", "parent_request_id"}
        )
        children = [
            RollbackRequest.model_validate(
                {**base, "redemption_id": target, "request_id": child_id, "parent_request_id": parent_request_id}
            ).to_message()
            for target, child_id in zip(found.targets, child_ids, strict=True)
        ]
        self.queue.send(children)
        fields = {
            **common,
            "redemption_ids": found.targets,
            "child_request_ids": child_ids,
            "already_rolled_back_ids": found.already,
            "failed_attempt_ids": found.failed_attempts[:100] or None,
        }
        self.ledger.requests.record_order(order, request_id, FANNED_OUT, now=now, fields=fields, by=by)
        self.metric("RollbackOrdersFannedOut", 1)
        self.logger.info(
            "order rollback request fanned out", request_id=request_id, **{by: order}, redemption_ids=found.targets
        )
        detail = f"{len(found.targets)} redemption(s) queued"
        return _order_outcome(FANNED_OUT, request_id, by, order, detail=detail)

    def _common_fields(
        self, request: RollbackRequest, request_id: str, message: QueueMessage, found: OrderTargets
    ) -> dict[str, Any]:
        """The order request's fields whatever its state, with the ids that cannot be sent (counted and logged)."""
        invalid_ids = sorted({str(r) for r in found.invalid})
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
            self.metric("RollbackRedemptionIdsInvalid", len(invalid_ids))
            self.logger.warning(
                "order rollback request: redemption ids of the ledger that are not r_… ids are not rolled back",
                request_id=request_id,
                order_id=request.order_id,
                order_source_id=request.order_source_id,
                invalid_redemption_count=len(invalid_ids),
            )
        return common

    def _nothing_to_roll_back(
        self,
        by: OrderField,
        order: str,
        request_id: str,
        found: OrderTargets,
        common: dict[str, Any],
        now: datetime,
    ) -> Outcome:
        if found.invalid:
            state = FAILED
        elif found.already:
            state = ALREADY_ROLLED_BACK
        elif found.failed_attempts:
            state = FAILED
            common["error"] = {
                "key": "only_failed_attempts",
                "message": f"every redemption of {DESCRIBED[by]} {order} in the ledger is a failed attempt: "
                "nothing was given, nothing to roll back",
            }
        else:
            state = FAILED
            common["error"] = {
                "key": "order_not_in_ledger",
                "message": f"the ledger holds no redemption of {DESCRIBED[by]} {order}",
            }
        fields = {
            **common,
            "already_rolled_back_ids": found.already,
            "failed_attempt_ids": found.failed_attempts[:100] or None,
        }
        self.ledger.requests.record_order(order, request_id, state, now=now, fields=fields, by=by)
        self.metric("RollbacksFailed" if state == FAILED else "RollbacksAlreadyRolledBack", 1)
        self.logger.info("order rollback request: nothing to roll back", request_id=request_id, **{by: order})
        error_key = common["error"]["key"] if common["error"] else None
        return _order_outcome(state, request_id, by, order, error_key=error_key)


def _order_outcome(
    state: str, request_id: str, by: OrderField, order: str, *, error_key: str | None = None, detail: str | None = None
) -> Outcome:
    """The outcome of an order-level request, naming its order as the request did."""
    if by == "order_source_id":
        return Outcome(state, request_id, order_source_id=order, error_key=error_key, detail=detail)
    return Outcome(state, request_id, order_id=order, error_key=error_key, detail=detail)
