"""Pacing and retries of the rollback worker: the token bucket never exceeds its budget in any minute, a 429
pauses every call, retry delays grow and are capped, and what each Voucherify answer means."""

from __future__ import annotations

import random

import pytest

from support.worker import WORKER_REQUIRED_ENV
from voucherify_ledger.rollbacks.answers import classify
from voucherify_ledger.rollbacks.pacing import TokenBucket
from voucherify_ledger.rollbacks.worker import RollbackWorker
from voucherify_ledger.settings import WorkerSettings
from voucherify_ledger.voucherify_api import ApiResponse


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("per_minute", [2, 50, 100, 1000])
def test_the_bucket_never_exceeds_its_budget_in_any_minute(per_minute: int) -> None:
    clock = Clock()
    bucket = TokenBucket(per_minute, clock=clock)
    sent: list[float] = []
    while clock.now < 1000 + 300:  # five minutes of callers that never stop asking
        wait = bucket.reserve(max_wait=3600)
        assert wait is not None
        sent.append(clock.now + wait)
        clock.now += wait
    for start in sent:
        assert sum(1 for t in sent if start <= t < start + 60) <= per_minute
    assert len(sent) >= bucket.rate * 300  # and it keeps using the budget (all but the burst)
    assert bucket.rate * 60 >= per_minute / 2


def test_a_429_pauses_every_call_until_the_retry_time() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, clock=clock)
    bucket.pause(7.5)

    assert bucket.reserve(max_wait=5) is None  # nothing reserved when the wait is too long
    assert bucket.reserve(max_wait=10) == pytest.approx(7.5)
    assert bucket.estimated_wait() == pytest.approx(7.5)


def _worker(**env: str) -> RollbackWorker:
    worker = RollbackWorker.__new__(RollbackWorker)
    worker.settings = WorkerSettings.from_env({**WORKER_REQUIRED_ENV, **env})
    worker._rng = random.Random(7)
    return worker


def test_retry_delays_grow_with_the_receive_count_and_are_capped() -> None:
    worker = _worker(ROLLBACK_RETRY_BASE_SECONDS="5", ROLLBACK_RETRY_MAX_SECONDS="60")

    for count, ceiling in [(1, 5), (2, 10), (3, 20), (4, 40), (5, 60), (12, 60)]:
        delay = worker.backoff_seconds(count)
        assert ceiling / 2 <= delay <= ceiling + 1  # "equal jitter": at least half the ceiling


def test_default_backoffs_retry_a_transient_error_within_seconds() -> None:
    worker = _worker()
    assert worker.backoff_seconds(1) <= 6  # one transient 5xx: the next attempt within seconds
    # every attempt until the dead-letter queue: about a minute (the DLQ alarm then calls for a redrive)
    assert sum(worker.backoff_seconds(n) for n in range(1, worker.settings.rollback_max_receive_count)) <= 80


@pytest.mark.parametrize(
    ("status", "body", "endpoint", "meaning"),
    [
        (200, {"id": "rr_1", "result": "SUCCESS", "status": "SUCCEEDED"}, "rollback", "goal"),
        (200, {"id": "rr_1", "result": "FAILURE", "status": "FAILED"}, "rollback", "permanent"),
        (200, {"parent_rollback": {"id": "rr_p", "result": "SUCCESS"}, "rollbacks": []}, "rollbacks", "goal"),
        (200, {"unexpected": True}, "rollback", "transient"),
        (400, {"key": "already_rolled_back"}, "rollback", "goal"),
        (400, {"key": "invalid_redemption_parent"}, "rollback", "permanent"),
        (404, {"key": "not_found"}, "rollback", "permanent"),
        (401, {"key": "unauthorized"}, "rollback", "auth"),
        (403, None, "rollback", "auth"),
        (429, None, "rollback", "rate_limited"),
        (408, None, "rollback", "transient"),
        (500, None, "rollback", "transient"),
        (503, {"key": "x"}, "rollback", "transient"),
    ],
)
def test_what_each_answer_means(status: int, body: dict | None, endpoint: str, meaning: str) -> None:
    assert classify(ApiResponse(status, body, {}, b"", endpoint)) == meaning  # type: ignore[arg-type]
