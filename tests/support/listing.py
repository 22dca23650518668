"""``GET /v1/redemptions`` in memory, for the reconciler's tests: ``created_at[after]`` and ``[before]`` exclusive,
``order=created_at``, pages of 100 up to page 99, and ``total`` the count of the whole query, as Voucherify answers."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from voucherify_ledger.reconcile.windows import EDGE, PAGE_SIZE, Page, Window, created_at


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
