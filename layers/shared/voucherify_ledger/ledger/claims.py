"""The rollback worker's claim on a redemption: the lock that keeps two requests (or two deliveries of one) from
calling Voucherify for the same redemption at once, held in the redemption's own item.

One conditional UpdateItem takes it (``worker_claim``: the request id; ``worker_claim_until``: epoch milliseconds, the
claiming invocation's deadline) and answers what the worker needs to know of the redemption: the item as the write
left it (its status, its place in a stack, an answer kept by an earlier attempt), or, when the condition failed, the
item as the condition found it: the request already finished (``finished#<request id>``), the redemption ROLLED_BACK,
or another live claim. No read, and no record besides the ledger's own.

The write that records the outcome releases the claim (``release_update``, or ``release``) and notes the request in
``finished#<request id>`` (its state, rollback id, error key), so that a finished request delivered again is answered
by the failed claim alone. When Voucherify's answer reached the goal but could not be recorded, ``keep_answer`` puts
it in ``worker_answer`` and releases the claim: the next claim gets it back and records it without another call.

A claim on a redemption the ledger does not know creates its item (the claim alone), as a rollback that comes first
does; the indexes never list it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from voucherify_ledger.ledger.dynamo import Table, Update, av, compact
from voucherify_ledger.ledger.keys import ROLLED_BACK, redemption_key

CLAIM = "worker_claim"
CLAIM_UNTIL = "worker_claim_until"
ANSWER = "worker_answer"
FINISHED_PREFIX = "finished#"  # finished#<request id>: {state, rollback_id, error_key} of a finished request


@dataclass(frozen=True)
class Claim:
    """What a claim found: ``claimed`` (the worker may call; ``item`` is the redemption as the claim left it),
    ``finished`` (this request ended before: ``finished`` says how), ``rolled_back`` (the ledger holds the redemption
    ROLLED_BACK) or ``held`` (another request's claim is live)."""

    outcome: Literal["claimed", "finished", "rolled_back", "held"]
    item: dict[str, Any]
    finished: dict[str, Any] | None = None

    @property
    def kept_answer(self) -> dict[str, Any] | None:
        """The answer an earlier attempt could not record (``keep_answer``), if the claim found one."""
        found = self.item.get(ANSWER)
        return dict(found) if isinstance(found, Mapping) else None


def finished_note(state: str, rollback_id: str | None = None, error_key: str | None = None) -> dict[str, Any]:
    return compact({"state": state, "rollback_id": rollback_id, "error_key": error_key})


def release_update(update: Update, request_id: str, finished: Mapping[str, Any] | None) -> None:
    """Adds to ``update`` (a write of the redemption item) the release of the claim and of any kept answer, and
    (``finished``: ``finished_note``) the request's note."""
    update.remove(CLAIM)
    update.remove(CLAIM_UNTIL)
    update.remove(ANSWER)
    if finished is not None:
        update.set(FINISHED_PREFIX + request_id, dict(finished))


class RedemptionClaims:
    """Claims of the rollback worker on redemption items; thread-safe (it keeps nothing between calls)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def claim(self, redemption_id: str, request_id: str, *, now: float, until: float) -> Claim:
        """Claims the redemption for ``request_id`` until ``until`` (epoch seconds; kept in milliseconds), unless this
        request finished before, the redemption is ROLLED_BACK in the ledger, or another request's claim is live at
        ``now``."""
        update = Update()
        update.set(CLAIM, request_id)
        update.set(CLAIM_UNTIL, int(until * 1000))
        claim, claim_until = update.name_of(CLAIM), update.name_of(CLAIM_UNTIL)
        finished, status = update.name_of(FINISHED_PREFIX + request_id), update.name_of("status")
        update.values.update({":now": av(int(now * 1000)), ":rolled_back": av(ROLLED_BACK)})
        condition = (
            f"attribute_not_exists({finished}) AND (attribute_not_exists({status}) OR {status} <> :rolled_back) "
            f"AND (attribute_not_exists({claim}) OR {claim_until} < :now)"
        )
        key = redemption_key(redemption_id)
        written = self.table.update(
            key, update, what="claim", condition=condition, returns="ALL_NEW", old_on_failure=True
        )
        if written.applied:
            return Claim("claimed", written.item or {})
        found = written.item if written.item is not None else self.table.get(key) or {}
        note = found.get(FINISHED_PREFIX + request_id)
        if isinstance(note, Mapping):
            return Claim("finished", found, dict(note))
        if found.get("status") == ROLLED_BACK:
            return Claim("rolled_back", found)
        return Claim("held", found)

    def release(self, redemption_id: str, request_id: str, *, finished: Mapping[str, Any] | None = None) -> None:
        """Releases this request's claim (and a kept answer), noting the request as ``finished`` when it is; nothing
        when the claim is no longer this request's."""
        update = Update()
        release_update(update, request_id, finished)
        update.values[":me"] = av(request_id)
        self.table.update(
            redemption_key(redemption_id), update, what="claim", condition=f"{update.name_of(CLAIM)} = :me"
        )

    def keep_answer(self, redemption_id: str, request_id: str, answer: Mapping[str, Any]) -> None:
        """Keeps a goal answer that could not be recorded, and releases the claim: the next claim records it."""
        update = Update()
        update.set(ANSWER, dict(answer))
        update.remove(CLAIM)
        update.remove(CLAIM_UNTIL)
        update.values[":me"] = av(request_id)
        self.table.update(
            redemption_key(redemption_id), update, what="claim", condition=f"{update.name_of(CLAIM)} = :me"
        )
