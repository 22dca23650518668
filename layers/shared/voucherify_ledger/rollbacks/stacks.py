"""Stacked redemptions: what the ledger knows of a redemption's place in a stack, and what becomes of a request for a
stack's child.

Voucherify rolls a stack back only as a whole, through its parent (``POST /v1/redemptions/{parent}/rollbacks``, every
child with it); ``/rollback`` answers ``invalid_redemption_parent`` to a child and ``invalid_redemption`` to a parent.
So a child the ledger knows as one is refused without an API call, its error naming the parent and the command that
rolls the stack back; one whose parent the ledger holds ROLLED_BACK went with its stack. A parent the ledger knows as
one goes straight to the stack endpoint (``rollbacks.calls``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.claims import finished_note
from voucherify_ledger.ledger.keys import ALREADY_ROLLED_BACK, FAILED, ROLLED_BACK
from voucherify_ledger.models.rollback_request import is_rollback_target
from voucherify_ledger.rollbacks.answers import Outcome
from voucherify_ledger.rollbacks.recording import AnswerRecording

STACK_CHILD = "stack_child"  # error.key of a refused request for a stack's child


@dataclass(frozen=True)
class StackPlace:
    """A redemption's place in a stack as the ledger knows it: a ``parent``, a ``child`` of ``parent_redemption_id``,
    or neither (a lone redemption, or one the ledger does not know)."""

    role: Literal["parent", "child"] | None = None
    parent_redemption_id: str | None = None

    @classmethod
    def of(cls, state: Mapping[str, Any] | None) -> StackPlace:
        """From ``ledger.redemptions.state``: a parent by its ``stack_role``; a child by its ``parent_redemption_id``
        (``stack_role`` ``child``, or none at all on an item written before the ledger kept ``stack_role``)."""
        found = state or {}
        role, parent = found.get("stack_role"), found.get("parent_redemption_id")
        if role == "parent":
            return cls("parent")
        if isinstance(parent, str) and parent and role in ("child", None):
            return cls("child", parent)
        return cls()


def stack_child_error(redemption_id: str, parent: str) -> dict[str, str]:
    """The error of a refused request for a stack's child: the parent, and how to roll the stack back."""
    if not is_rollback_target(parent):  # stored by an earlier version: not an id a request can name
        return {
            "key": STACK_CHILD,
            "message": f"{redemption_id} is a child of a stacked redemption whose id in the ledger is not an r_ id: "
            "Voucherify rolls a stack back only through its parent; roll it back in Voucherify. No API call was made.",
        }
    return {
        "key": STACK_CHILD,
        "message": f"{redemption_id} is a child of the stacked redemption {parent}: Voucherify rolls a stack back only "
        f"as a whole, through its parent (a child's rollback is refused with invalid_redemption_parent). Roll the "
        f"stack back with `redemption-ledger rollback {parent} --reason …` (a RollbackRequest with redemption_id "
        f"{parent}). No API call was made.",
        "parent_redemption_id": parent,
    }


@dataclass(frozen=True)
class StackChildren:
    """Requests for a stack's child: answered from the ledger, never with an API call; thread-safe."""

    ledger: Ledger
    recording: AnswerRecording
    metric: Callable[[str, float], None]

    def answer(
        self, redemption_id: str, request_id: str, parent: str, now: datetime, *, attempt: Mapping[str, Any]
    ) -> Outcome:
        """ALREADY_ROLLED_BACK when the ledger holds the parent ROLLED_BACK (its stack went with it), else FAILED
        ``stack_child`` (``stack_child_error``). The request holds the child's claim: it is released, the request
        noted finished."""
        parent_state = self.ledger.redemptions.state(parent) if is_rollback_target(parent) else None
        if parent_state and parent_state.get("status") == ROLLED_BACK:
            self.ledger.requests.record_already_rolled_back(
                redemption_id,
                request_id,
                now=now,
                confirmed_by="ledger",
                fields={"rolled_back_with": parent, **attempt},
            )
            self.ledger.claims.release(redemption_id, request_id, finished=finished_note(ALREADY_ROLLED_BACK))
            detail = f"its stack's parent {parent} is ROLLED_BACK in the ledger"
            return self.recording.done(Outcome(ALREADY_ROLLED_BACK, request_id, redemption_id, detail=detail))
        error = stack_child_error(redemption_id, parent)
        self.ledger.requests.update(redemption_id, request_id, FAILED, now=now, fields={"error": error, **attempt})
        self.ledger.claims.release(redemption_id, request_id, finished=finished_note(FAILED, error_key=STACK_CHILD))
        self.metric("RollbackStackChildrenRefused", 1)
        return self.recording.done(
            Outcome(FAILED, request_id, redemption_id, error_key=STACK_CHILD, detail="a stack's child: no API call")
        )
