"""``GET /v1/redemptions`` in memory, for the reconciler's tests: ``created_at[after]`` and ``[before]`` exclusive,
``order=created_at``, pages of 100 up to page 99, and ``total`` the count of the whole query, as Voucherify answers."""

from __future__ import annotations

import bisect
import copy
import json
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from support.documents import SHARED_DIR
from voucherify_ledger.reconcile.windows import EDGE, PAGE_SIZE, Page, Window, created_at

T0 = datetime(2026, 8, 1, tzinfo=UTC)
SPEC = json.loads((SHARED_DIR / "reference" / "voucherify" / "redemptions.json").read_text(encoding="utf-8"))


def _example(path: str, method: str, name: str) -> dict[str, Any]:
    media = SPEC["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    return copy.deepcopy(media["examples"][name]["value"])


def stamp(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def history(
    redemptions: int, seed: int, *, start: datetime = T0, days: int = 60
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Redemptions over ``days`` from ``start`` (some failed attempts), a rollback for every eighth, built from the
    redemptions API's published examples; and each redemption's rollback ids."""
    rng = random.Random(seed)
    redemption = _example("/v1/redemptions/{redemptionId}", "get", "Discount Voucher")
    failed = _example("/v1/redemptions/{redemptionId}", "get", "Failed Voucher")
    rollback = _example("/v1/redemptions/{redemptionId}/rollback", "post", "Discount Coupon")
    objects: list[dict[str, Any]] = []
    rollbacks: dict[str, list[str]] = {}
    for i in range(redemptions):
        when = start + timedelta(milliseconds=rng.randrange(days * 86_400_000))
        is_failed = i % 17 == 0
        obj = copy.deepcopy(failed if is_failed else redemption)
        obj["id"] = f"{'rf' if is_failed else 'r'}_{i:018x}"
        obj["date"] = stamp(when)
        objects.append(obj)
        rollbacks[obj["id"]] = []
        if not is_failed and i % 8 == 0:
            undo = copy.deepcopy(rollback)
            undo["id"], undo["redemption"] = f"rr_{i:018x}", obj["id"]
            undo["date"] = stamp(when + timedelta(hours=rng.randrange(1, 48)))
            objects.append(undo)
            rollbacks[obj["id"]].append(undo["id"])
    return objects, rollbacks


class ListEndpoint:
    """A lister over ``objects`` (each with ``created_at`` or ``date``); keeps every call's window and page."""

    def __init__(self, objects: Sequence[Mapping[str, Any]]) -> None:
        dated = sorted(((created_at(obj), obj) for obj in objects), key=lambda pair: pair[0] or 0)
        self.times = [when for when, _ in dated]
        self.objects = [obj for _, obj in dated]
        self.calls: list[tuple[Window, int]] = []

    def __call__(self, window: Window, page: int) -> Page:
        assert 1 <= page <= 99
        self.calls.append((window, page))
        lo = bisect.bisect_right(self.times, window.after - EDGE)  # the lister sends after one millisecond early
        hi = bisect.bisect_left(self.times, window.before)
        start = lo + (page - 1) * PAGE_SIZE
        return Page(list(self.objects[start : min(start + PAGE_SIZE, hi)]), hi - lo)
