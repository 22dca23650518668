"""One page of the list for the window walk: the query Voucherify documents, the reconciler's own budget never
exceeded in any minute, a 429 honoured as the worker honours it, 5xx and dropped connections tried again a bounded
number of times, refused keys re-read once, and no call once the run's time is up."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from voucherify_ledger.reconcile.listing import ApiLister, list_params
from voucherify_ledger.reconcile.windows import ListingFailed, OutOfTime, Window
from voucherify_ledger.rollbacks.pacing import TokenBucket
from voucherify_ledger.voucherify_api import ApiResponse, VoucherifyUnavailableError

T0 = datetime(2026, 8, 1, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(days=1))
LIST = {"object": "list", "data_ref": "redemptions", "redemptions": [{"id": "r_1", "object": "redemption"}], "total": 1}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedClient:
    """Answers from a script (an ApiResponse, or an exception to raise), then 200 with ``LIST``; keeps call times."""

    max_request_seconds = 3.0

    def __init__(self, clock: Clock, script: list[Any] | None = None) -> None:
        self.clock, self.script = clock, list(script or [])
        self.calls: list[tuple[float, Mapping[str, Any]]] = []

    def list_redemptions(self, params: Mapping[str, Any], *, deadline_seconds: float | None = None) -> ApiResponse:
        self.calls.append((self.clock.now, dict(params)))
        step = self.script.pop(0) if self.script else answer(200, LIST)
        if isinstance(step, Exception):
            raise step
        return step


class Refresh:
    def __init__(self, changed: bool) -> None:
        self.changed, self.calls = changed, 0

    def refresh(self) -> bool:
        self.calls += 1
        return self.changed


def answer(status: int, body: Any, **headers: str) -> ApiResponse:
    return ApiResponse(status=status, body=body, headers=headers, raw=b"", endpoint="list")


def lister(clock: Clock, client: ScriptedClient, per_minute: float = 600, **options: Any) -> ApiLister:
    bucket = TokenBucket(per_minute, clock=clock)
    return ApiLister(client, bucket, time_left=options.pop("time_left", lambda: 600.0), sleep=clock.sleep, **options)


def test_the_query_is_the_documented_one_oldest_first_from_a_millisecond_early() -> None:
    assert list_params(WINDOW, 3) == {
        "limit": 100,
        "page": 3,
        "order": "created_at",
        "created_at[after]": "2026-07-31T23:59:59.999Z",
        "created_at[before]": "2026-08-02T00:00:00.000Z",
    }


@pytest.mark.parametrize("per_minute", [10, 60])
def test_the_budget_is_never_exceeded_in_any_minute(per_minute: int) -> None:
    clock = Clock()
    client = ScriptedClient(clock)
    pages = lister(clock, client, per_minute=per_minute)
    for page in range(1, 4 * per_minute + 1):
        pages(WINDOW, min(page, 99))
    times = [at for at, _ in client.calls]
    assert len(times) == 4 * per_minute
    assert max(sum(1 for t in times if start <= t < start + 60) for start in times) <= per_minute


def test_a_429_pauses_until_voucherify_says_and_the_call_is_made_again() -> None:
    clock = Clock()
    metrics: list[str] = []
    client = ScriptedClient(clock, [answer(429, {"key": "too_many_requests"}, **{"retry-after": "7"})])
    page = lister(clock, client, metric=lambda name, value: metrics.append(name))(WINDOW, 1)
    assert page.total == 1 and [o["id"] for o in page.objects] == ["r_1"]
    (first, _), (second, _) = client.calls
    assert second - first >= 7 and "VoucherifyRateLimited" in metrics


def test_5xx_and_dropped_connections_are_tried_again_a_bounded_number_of_times() -> None:
    clock = Clock()
    script = [answer(503, None), VoucherifyUnavailableError("connection", "reset"), answer(502, None)]
    with pytest.raises(ListingFailed, match="502"):
        lister(clock, ScriptedClient(clock, script), retries=2)(WINDOW, 1)
    recovered = ScriptedClient(clock, [answer(500, None)])
    assert lister(clock, recovered, retries=2)(WINDOW, 1).total == 1 and len(recovered.calls) == 2


@pytest.mark.parametrize(("changed", "calls"), [(True, 2), (False, 1)])
def test_refused_keys_are_re_read_once(changed: bool, calls: int) -> None:
    clock = Clock()
    client = ScriptedClient(clock, [answer(401, {"key": "unauthorized"})])
    refresh = Refresh(changed)
    pages = lister(clock, client, credentials=refresh)
    if changed:
        assert pages(WINDOW, 1).total == 1
    else:
        with pytest.raises(ListingFailed, match="401 unauthorized"):
            pages(WINDOW, 1)
    assert (len(client.calls), refresh.calls) == (calls, 1)


@pytest.mark.parametrize("body", [None, [], {"redemptions": []}, {"redemptions": {}, "total": 1}, {"total": True}])
def test_an_answer_without_a_list_is_no_page(body: Any) -> None:
    clock = Clock()
    with pytest.raises(ListingFailed):
        lister(clock, ScriptedClient(clock, [answer(200, body)]))(WINDOW, 1)


def test_no_call_once_the_runs_time_is_up_and_that_is_no_error() -> None:
    clock = Clock()
    client = ScriptedClient(clock)
    with pytest.raises(OutOfTime, match="budget"):
        lister(clock, client, time_left=lambda: 2.0)(WINDOW, 1)  # less than one request's timeout
    assert client.calls == []
    assert not issubclass(OutOfTime, ListingFailed)  # the walk ends where it got to, without an error
