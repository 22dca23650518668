"""Walking ``GET /v1/redemptions`` over a time range in windows a query can page through.

One query lists at most ``MAX_PAGES`` × ``PAGE_SIZE`` objects (pages 1–99 of at most 100). A window whose first page
says it holds more (``total``) is split into as many equal parts as its total needs, and each part is walked
oldest first; every page is listed ``order=created_at``, so objects come in the order they were created and a
walk stopped at any point resumes from the ``created_at`` of the last object it handed over (``resume_after``).

The range is ``[after, before)`` for the walk; the queries send ``created_at[after]`` one millisecond earlier than a
window's start, so an object created exactly at a boundary is listed whether Voucherify's ``after`` is exclusive
or inclusive (the ledger's writes are idempotent: an object listed twice is recorded once).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from voucherify_ledger.ledger.keys import parse_iso

PAGE_SIZE = 100
MAX_PAGES = 99
MAX_PER_QUERY = PAGE_SIZE * MAX_PAGES  # 9,900
# A split aims below the cap, so that a window whose objects are not spread evenly still fits after one split.
SPLIT_FILL = 0.8
# A window this short is never split further (its objects share one millisecond or so): it is paged to the cap.
MIN_SPAN = timedelta(milliseconds=2)
EDGE = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Window:
    """``[after, before)`` in Voucherify's ``created_at``."""

    after: datetime
    before: datetime

    def split(self, parts: int) -> list[Window]:
        """``parts`` windows of equal span, oldest first."""
        step = (self.before - self.after) / parts
        edges = [self.after + step * i for i in range(parts)] + [self.before]
        return [Window(edges[i], edges[i + 1]) for i in range(parts) if edges[i] < edges[i + 1]]

    @property
    def span(self) -> timedelta:
        return self.before - self.after


@dataclass(frozen=True)
class Page:
    """One answer of the list endpoint: its objects (oldest first) and the ``total`` of the query."""

    objects: list[Mapping[str, Any]]
    total: int


# (window, page number 1–99) → the page; the lister sends created_at[after] = window.after - EDGE.
Lister = Callable[[Window, int], Page]


class ListingFailed(Exception):
    """The lister got no usable page (Voucherify unavailable, refused the keys, answered garbage): the walk stops and
    says where it got to, as when it runs out of time."""


class OutOfTime(Exception):
    """The lister has no time left for another call (the budget's wait and the request would outlast the run): the
    walk stops where it got to, as when ``should_stop`` says so, without an error."""


@dataclass
class WalkResult:
    """What a walk did: ``done``, or where to resume (``resume_after``), and its counts."""

    done: bool
    resume_after: datetime | None
    calls: int = 0
    listed: int = 0
    windows: int = 0
    splits: int = 0
    truncated: list[Window] = field(default_factory=list)  # windows too short to split that held > 9,900
    error: str | None = None  # why the walk stopped early, when the lister failed


def created_at(obj: Mapping[str, Any]) -> datetime | None:
    value = obj.get("created_at") or obj.get("date")
    return value if isinstance(value, datetime) else parse_iso(value)


def parts_for(total: int) -> int:
    """How many equal windows a window of ``total`` objects is split into."""
    return max(2, math.ceil(total / (MAX_PER_QUERY * SPLIT_FILL)))


class WindowWalk:
    """Walks ``[after, before)`` with ``lister``, handing each page's objects to ``handle`` oldest first, until done
    or until ``should_stop()`` says so before a call (the caller's time or API budget)."""

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    def run(
        self,
        window: Window,
        handle: Callable[[Sequence[Mapping[str, Any]]], None],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> WalkResult:
        result = WalkResult(done=False, resume_after=None)
        try:
            self._walk(window, handle, should_stop, result)
        except OutOfTime:
            pass
        except ListingFailed as failed:
            result.error = str(failed)
        return result

    def _walk(
        self,
        window: Window,
        handle: Callable[[Sequence[Mapping[str, Any]]], None],
        should_stop: Callable[[], bool],
        result: WalkResult,
    ) -> None:
        pending = [window]  # a stack: the oldest window last, so it is walked first
        while pending:
            current = pending.pop()
            if should_stop():
                return
            first = self._call(current, 1, result)
            if first.total > MAX_PER_QUERY and current.span > MIN_SPAN:
                result.splits += 1
                pending.extend(reversed(current.split(parts_for(first.total))))
                continue
            if first.total > MAX_PER_QUERY:
                result.truncated.append(current)
            result.windows += 1
            self._hand_over(first.objects, handle, result)
            pages = math.ceil(min(first.total, MAX_PER_QUERY) / PAGE_SIZE)
            for number in range(2, pages + 1):
                if should_stop():
                    return
                page = self._call(current, number, result)
                self._hand_over(page.objects, handle, result)
                if not page.objects:
                    break
        result.done = True

    def _call(self, window: Window, number: int, result: WalkResult) -> Page:
        result.calls += 1
        return self.lister(window, number)

    @staticmethod
    def _hand_over(
        objects: Sequence[Mapping[str, Any]], handle: Callable[[Sequence[Mapping[str, Any]]], None], result: WalkResult
    ) -> None:
        if objects:
            handle(objects)
        result.listed += len(objects)
        for obj in objects:
            when = created_at(obj)
            if when is not None and (result.resume_after is None or when > result.resume_after):
                result.resume_after = when
