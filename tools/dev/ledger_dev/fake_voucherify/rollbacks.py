"""What the two rollback endpoints do (``RollbackEndpoints``, a part of ``FakeVoucherify``): roll back a redemption or
a whole stack as Voucherify answers (``already_rolled_back``, ``invalid_redemption``, ``invalid_redemption_parent``,
``not_found``), mark it rolled back, add the rollback to the history and schedule its webhook."""

from __future__ import annotations

import threading
from typing import Any

from ledger_dev.fake_voucherify.documents import FakeRedemption, _hex_id, rollback_document
from ledger_dev.fake_voucherify.faults import Fault
from ledger_dev.fake_voucherify.history import History


class RollbackEndpoints:
    """The rollback itself; the fake holds the state it works on."""

    lenient: bool
    app_id: str
    _lock: threading.RLock
    _history: History
    _redemptions: dict[str, FakeRedemption]
    _rolled_back: dict[str, str]

    def _error(self, key: str, redemption_id: str, **extra: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        raise NotImplementedError

    def _schedule_webhook(self, rollback: dict[str, Any], redemption: FakeRedemption) -> None:
        raise NotImplementedError

    # --- the rollback itself ----------------------------------------------------------------------
    def _known(self, redemption_id: str) -> FakeRedemption | None:
        redemption = self._redemptions.get(redemption_id)
        if redemption is None and self.lenient and redemption_id.startswith("r_"):
            redemption = self._redemptions[redemption_id] = FakeRedemption(redemption_id)
        return redemption

    def _roll_back(self, endpoint: str, redemption_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        to_send: list[tuple[dict[str, Any], FakeRedemption]] = []
        with self._lock:
            redemption = self._known(redemption_id)
            if redemption is None:
                status, error, _ = self._error("not_found", redemption_id)
                return status, error
            if redemption.parent_id is not None:
                status, error, _ = self._error("invalid_redemption_parent", redemption_id)
                return status, error
            if redemption.rollback_id is not None:
                status, error, _ = self._error("already_rolled_back", redemption_id)
                return status, error
            if endpoint == "rollback" and redemption.children:
                status, error, _ = self._error("invalid_redemption", redemption_id)
                return status, error
            if endpoint == "rollback":
                rollback = self._rollback_object(redemption, query, body)
                to_send.append((rollback, redemption))
                answer: Any = rollback
            else:
                children = []
                for child_id in redemption.children:
                    child = self._redemptions[child_id]
                    if child.rollback_id is None:
                        children.append(self._rollback_object(child, query, body))
                        to_send.append((children[-1], child))
                parent = self._rollback_object(redemption, query, body, related="redemption")
                to_send.append((parent, redemption))
                answer = {"rollbacks": children, "parent_rollback": parent, "order": parent.get("order")}
        for rollback, owner in to_send:
            self._schedule_webhook(rollback, owner)
        return 200, answer

    def _rollback_object(
        self, redemption: FakeRedemption, query: dict[str, str], body: Any, *, related: str = "voucher"
    ) -> dict[str, Any]:
        """A ``redemption_rollback`` like the OpenAPI example; marks the redemption rolled back."""
        rollback_id = _hex_id("rr_")
        redemption.rollback_id = rollback_id
        self._rolled_back[redemption.id] = rollback_id
        document = rollback_document(rollback_id, redemption, query, body, app_id=self.app_id, related=related)
        self._history.add(dict(document))
        return document

    def _failed_rollback(self, redemption_id: str, query: dict[str, str], body: Any, fault: Fault) -> dict[str, Any]:
        with self._lock:
            redemption = self._known(redemption_id) or FakeRedemption(redemption_id)
        document = rollback_document(_hex_id("rrf_"), redemption, query, body, app_id=self.app_id)
        document.update(
            result="FAILURE",
            status="FAILED",
            failure_code=fault.failure_code,
            failure_message=fault.failure_message,
        )
        with self._lock:
            self._history.add(dict(document))
        return document
