"""Walking Voucherify's list in windows: every object of the range is handed over, oldest first, in about one call
per 100 objects plus one per window; a window over 9,900 objects is split; a walk stopped anywhere resumes from
the last object it handed over and, together with the first part, covers the range."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from support.listing import ListEndpoint
from voucherify_ledger.reconcile.windows import (
    MAX_PER_QUERY,
    PAGE_SIZE,
    ListingFailed,
    Page,
    Window,
    WindowWalk,
    created_at,
    parts_for,
)

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def history_of(times: list[datetime]) -> ListEndpoint:
    """The list endpoint over redemptions created at ``times`` (ids in creation order)."""
    return ListEndpoint(
        [
            {"id": f"r_{i:08d}", "object": "redemption", "created_at": t.isoformat().replace("+00:00", "Z")}
            for i, t in enumerate(sorted(times))
        ]
    )


class CountedLister:
    """A lister that counts its calls, and a ``should_stop`` that says stop after ``limit`` of them."""

    def __init__(self, history: ListEndpoint) -> None:
        self.history = history
        self.calls = 0

    def __call__(self, window: Window, page: int) -> Page:
        self.calls += 1
        return self.history(window, page)

    def stop_after(self, limit: int) -> Any:
        return lambda: self.calls >= limit


def spread(n: int, days: int, seed: int, dense: tuple[int, int] | None = None) -> list[datetime]:
    """``n`` creation times over ``days`` days, millisecond resolution; ``dense`` = (day, count) adds a busy day."""
    rng = random.Random(seed)
    times = [T0 + timedelta(milliseconds=rng.randrange(days * 86_400_000)) for _ in range(n)]
    if dense:
        day, count = dense
        times += [T0 + timedelta(days=day, milliseconds=rng.randrange(86_400_000)) for _ in range(count)]
    return times


def walk_all(history: ListEndpoint, window: Window) -> tuple[list[Mapping[str, Any]], Any]:
    seen: list[Mapping[str, Any]] = []
    result = WindowWalk(history).run(window, seen.extend)
    return seen, result


def test_a_small_range_is_one_window_paged_oldest_first() -> None:
    history = history_of(spread(1_234, 90, seed=1))
    seen, result = walk_all(history, Window(T0, T0 + timedelta(days=90)))
    assert result.done and result.splits == 0 and result.windows == 1
    assert [o["id"] for o in seen] == [o["id"] for o in history.objects]
    assert result.calls == 13  # ceil(1,234 / 100)
    assert result.resume_after == history.times[-1]


def test_a_range_over_the_page_cap_is_split_and_every_object_comes_once() -> None:
    history = history_of(spread(30_000, 90, seed=2, dense=(40, 15_000)))  # one day alone holds more than a query can
    window = Window(T0, T0 + timedelta(days=90))
    seen, result = walk_all(history, window)

    counts = Counter(o["id"] for o in seen)
    assert set(counts) == {o["id"] for o in history.objects}
    assert max(counts.values()) == 1  # distinct millisecond times: no boundary is listed twice
    times = [created_at(o) for o in seen]
    assert times == sorted(times)  # oldest first across windows
    assert result.splits >= 2 and result.truncated == []
    # About one call per 100 objects, plus one per window and one wasted first page per split.
    assert result.calls <= len(history.objects) / PAGE_SIZE + result.windows + result.splits
    assert all(page <= 99 for _, page in history.calls)


def test_a_walk_stopped_anywhere_resumes_from_the_last_object_and_misses_nothing() -> None:
    history = history_of(spread(12_000, 30, seed=3))
    window = Window(T0, T0 + timedelta(days=30))
    for budget in (1, 7, 40, 95):
        first: list[Mapping[str, Any]] = []
        counted = CountedLister(history)
        stop = counted.stop_after(budget)
        stopped = WindowWalk(counted).run(window, first.extend, stop)
        assert not stopped.done and stopped.calls == budget
        resumed_from = stopped.resume_after or window.after
        rest: list[Mapping[str, Any]] = []
        finished = WindowWalk(history).run(Window(resumed_from, window.before), rest.extend)
        assert finished.done
        ids = [o["id"] for o in first + rest]
        assert set(ids) == {o["id"] for o in history.objects}, budget
        assert len(ids) - len(set(ids)) <= 1  # at most the object at the resume point, listed again


def test_objects_created_at_a_boundary_are_listed() -> None:
    edge = T0 + timedelta(days=1)
    history = history_of([T0 + timedelta(hours=1), edge, edge, T0 + timedelta(days=2) - timedelta(milliseconds=1)])
    seen, _ = walk_all(history, Window(edge, T0 + timedelta(days=2)))
    assert [created_at(o) for o in seen] == [edge, edge, T0 + timedelta(days=2) - timedelta(milliseconds=1)]


def test_a_window_too_short_to_split_is_paged_to_the_cap_and_reported() -> None:
    instant = T0 + timedelta(hours=5)
    history = history_of([instant] * (MAX_PER_QUERY + 50))
    seen, result = walk_all(history, Window(instant, instant + timedelta(milliseconds=1)))
    assert result.done and len(seen) == MAX_PER_QUERY
    assert result.truncated == [Window(instant, instant + timedelta(milliseconds=1))]


@pytest.mark.parametrize(("total", "parts"), [(9_901, 2), (15_840, 2), (15_841, 3), (100_000, 13)])
def test_a_split_aims_below_the_cap(total: int, parts: int) -> None:
    assert parts_for(total) == parts


def test_calls_grow_linearly_with_the_objects() -> None:
    small = walk_all(history_of(spread(20_000, 60, seed=4)), Window(T0, T0 + timedelta(days=60)))[1]
    large = walk_all(history_of(spread(80_000, 60, seed=4)), Window(T0, T0 + timedelta(days=60)))[1]
    assert large.calls <= 4 * small.calls * 1.1


def test_a_lister_that_fails_stops_the_walk_where_it_got_to() -> None:
    history = history_of(spread(1_000, 10, seed=5))

    def failing(window: Window, page: int) -> Page:
        if page == 4:
            raise ListingFailed("Voucherify answered 503 three times")
        return history(window, page)

    seen: list[Mapping[str, Any]] = []
    result = WindowWalk(failing).run(Window(T0, T0 + timedelta(days=10)), seen.extend)
    assert not result.done and result.error == "Voucherify answered 503 three times"
    assert len(seen) == 300 and result.resume_after == history.times[299]


def test_a_lister_out_of_time_ends_the_walk_where_it_got_to_without_an_error() -> None:
    from voucherify_ledger.reconcile.windows import OutOfTime

    objects = [{"id": f"r_{i}", "created_at": f"2026-10-01T00:{i:02d}:00.000Z"} for i in range(3)]
    pages = {1: Page(objects, 250)}

    def lister(window: Window, page: int) -> Page:
        if page in pages:
            return pages[page]
        raise OutOfTime("no call fits")

    result = WindowWalk(lister).run(
        Window(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)), lambda page: None
    )
    assert (result.done, result.error, result.listed) == (False, None, 3)
    assert result.resume_after == datetime(2026, 10, 1, 0, 2, tzinfo=UTC)
