"""The fake's history: every redemption and rollback it knows, as the API lists them, kept sorted by creation time.

``History`` holds API objects (``objects``) in ``date`` order (ties in the order added), so a listing bisects for
its ``created_at`` range and walks only that slice: O(log n + k) for a range of k objects in created_at order,
O(k log k) when another order sorts it. A rollback added after its redemption marks it ``ROLLED_BACK``. Not
thread-safe: the fake calls it under its lock. Handed-out objects are shallow copies, and a redemption's fields are
only ever replaced (``objects.mark_rolled_back``), so an answer being written keeps what it said.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ledger_dev.fake_voucherify.documents import envelope
from ledger_dev.fake_voucherify.listing import ListQuery, micros
from ledger_dev.fake_voucherify.objects import event_of, is_rollback, mark_rolled_back, webhook_data_of


def created_micros(obj: dict[str, Any]) -> int:
    return micros(datetime.fromisoformat(obj["date"]))


def _kind(obj: dict[str, Any]) -> str:
    failed = obj.get("result") == "FAILURE"
    if is_rollback(obj):
        return "failed_rollbacks" if failed else "rollbacks"
    return "failed_redemptions" if failed else "redemptions"


class History:
    def __init__(self) -> None:
        self._keys: list[int] = []
        self._objects: list[dict[str, Any]] = []
        self._by_id: dict[str, dict[str, Any]] = {}
        self._kinds: Counter[str] = Counter()
        self.list_calls = 0
        self.listed = 0  # objects handed out by list answers

    def __len__(self) -> int:
        return len(self._objects)

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    # --- adding ---------------------------------------------------------------------------------------
    def add(self, obj: dict[str, Any]) -> None:
        """One object (a rollback marks its redemption rolled back, when the history holds it)."""
        key = created_micros(obj)
        at = bisect.bisect_right(self._keys, key)
        self._keys.insert(at, key)
        self._objects.insert(at, obj)
        self._index(obj)
        if is_rollback(obj) and obj.get("result") == "SUCCESS":
            redemption = self._by_id.get(obj.get("redemption") or "")
            if redemption is not None:
                mark_rolled_back(redemption, obj)

    def extend(self, objects: Iterable[dict[str, Any]]) -> None:
        """Many objects at once (already marked as their rollbacks left them): one sort, O(n log n)."""
        added = list(objects)
        for obj in added:
            self._index(obj)
        pairs = sorted(
            zip(self._keys + [created_micros(o) for o in added], self._objects + added, strict=True),
            key=lambda pair: pair[0],
        )
        self._keys = [k for k, _ in pairs]
        self._objects = [o for _, o in pairs]

    def _index(self, obj: dict[str, Any]) -> None:
        if obj["id"] in self._by_id:
            raise ValueError(f"the history already holds {obj['id']}")
        self._by_id[obj["id"]] = obj
        self._kinds[_kind(obj)] += 1

    # --- reading --------------------------------------------------------------------------------------
    def get(self, object_id: str) -> dict[str, Any] | None:
        found = self._by_id.get(object_id)
        return dict(found) if found is not None else None

    def objects(self) -> list[dict[str, Any]]:
        """Every object, oldest first (the history's own, not copies: read, do not change)."""
        return list(self._objects)

    def counts(self) -> dict[str, int]:
        return {
            "objects": len(self._objects),
            **{k: self._kinds[k] for k in ("redemptions", "failed_redemptions", "rollbacks", "failed_rollbacks")},
            "list_calls": self.list_calls,
            "listed": self.listed,
        }

    def list(self, query: ListQuery) -> dict[str, Any]:
        """The body of ``GET /v1/redemptions`` for ``query``: one page, and the ``total`` the query matches."""
        lo = 0 if query.after_us is None else bisect.bisect_right(self._keys, query.after_us)
        hi = len(self._keys) if query.before_us is None else bisect.bisect_left(self._keys, query.before_us)
        hi = max(lo, hi)
        start = (query.page - 1) * query.limit
        sort = query.sort_key()
        if not query.filtered and sort is None:  # a slice of the history itself, either way round
            total = hi - lo
            if query.order == "created_at":
                page = self._objects[lo + start : min(hi, lo + start + query.limit)]
            else:
                top = hi - start
                page = self._objects[max(lo, top - query.limit) : max(lo, top)][::-1]
        else:
            chosen = [o for o in self._objects[lo:hi] if query.matches(o)] if query.filtered else self._objects[lo:hi]
            if sort is None:
                chosen = chosen if query.order == "created_at" else chosen[::-1]
            else:
                name, descending = sort
                chosen = sorted(
                    chosen, key=lambda o: (o.get(name) is not None, str(o.get(name) or "")), reverse=descending
                )
                if not descending:  # missing values last either way
                    chosen = [o for o in chosen if o.get(name) is not None] + [o for o in chosen if o.get(name) is None]
            total = len(chosen)
            page = chosen[start : start + query.limit]
        self.list_calls += 1
        self.listed += len(page)
        return {"object": "list", "data_ref": "redemptions", "redemptions": [dict(o) for o in page], "total": total}

    # --- webhooks -------------------------------------------------------------------------------------
    def webhooks(
        self, *, project_id: str, app_id: str, share: float = 1.0, seed: int = 0, target_url: str | None = None
    ) -> list[tuple[str, bytes]]:
        """The webhook of each object (a seeded ``share`` of them), oldest first: (the bundle's route, the body)."""
        rng = random.Random(seed)
        sent = []
        for obj in self._objects:
            if share < 1.0 and rng.random() >= share:
                continue
            redemption = self._by_id.get(obj.get("redemption") or "") if is_rollback(obj) else None
            event, path = event_of(obj)

            def new_id(
                prefix: str, of: str = obj["id"]
            ) -> str:  # the same ids each time: a resend is the same send-out
                return prefix + hashlib.sha256(f"{of}/{prefix}/{seed}".encode()).hexdigest()[:18]

            body = envelope(
                event,
                webhook_data_of(obj, redemption),
                entity_id=obj["id"],
                project_id=project_id,
                app_id=app_id,
                target_url=target_url,
                created_at=obj["date"],
                new_id=new_id,
            )
            sent.append((path, body))
        return sent
