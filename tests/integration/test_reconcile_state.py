"""The reconciler's state in the ledger (moto): one run at a time by a lease, a checkpoint that only moves forward,
and backfill jobs — one running at a time, the same range asked for twice being the same job, counts added run
after run until done."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from support.functions import Aws
from voucherify_ledger.ledger.keys import JOB_DONE, JOB_RUNNING

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def test_one_run_at_a_time_until_its_lease_ends_or_it_lets_go(aws: Aws) -> None:
    store = aws.ledger.reconciliation
    assert store.acquire("run-1", T0, 600)
    assert not store.acquire("run-2", T0 + timedelta(seconds=30), 600)
    assert store.acquire("run-1", T0 + timedelta(seconds=60), 600)  # the holder may renew
    assert store.acquire("run-2", T0 + timedelta(minutes=12), 600)  # the lease ran out
    store.release("run-1")  # not the holder: nothing changes
    assert not store.acquire("run-3", T0 + timedelta(minutes=13), 600)
    store.release("run-2")
    assert store.acquire("run-3", T0 + timedelta(minutes=13), 600)


def test_the_checkpoint_only_moves_forward_and_every_run_is_counted(aws: Aws) -> None:
    store = aws.ledger.reconciliation
    assert store.checkpoint() is None
    store.finish_run(checkpoint=T0, run={"listed": 5})
    store.finish_run(checkpoint=T0 - timedelta(hours=1), run={"listed": 2})  # a late run
    assert store.checkpoint() == T0
    assert (store.state() or {})["last_run"] == {"listed": 2}
    store.finish_run(checkpoint=T0 + timedelta(hours=1), run={"listed": 7})
    assert store.checkpoint() == T0 + timedelta(hours=1)
    store.finish_run(checkpoint=None, run={"listed": 0})
    assert store.checkpoint() == T0 + timedelta(hours=1)


def test_one_backfill_at_a_time_continued_run_after_run_until_done(aws: Aws) -> None:
    store = aws.ledger.reconciliation
    since, until = T0 - timedelta(days=90), T0
    job, started = store.start_job(since, until, T0)
    assert started and job.state == JOB_RUNNING and job.next_after == since
    again, started_again = store.start_job(since, until, T0 + timedelta(minutes=1))
    other, started_other = store.start_job(since - timedelta(days=1), until, T0 + timedelta(minutes=2))
    assert (again.job_id, started_again) == (job.job_id, False)
    assert (other.job_id, started_other) == (job.job_id, False)  # the running one is reported

    halfway = since + timedelta(days=40)
    job = store.job_progress(
        job, resume_after=halfway, counts={"listed": 400, "recorded": 30, "api_calls": 5}, done=False, now=T0
    )
    assert (job.runs, job.next_after, job.counts["listed"], job.counts["api_calls"]) == (1, halfway, 400, 5)
    assert store.running_job() == job

    job = store.job_progress(job, resume_after=until, counts={"listed": 600, "api_calls": 7}, done=True, now=T0)
    assert (job.state, job.runs, job.counts["listed"], job.counts["api_calls"]) == (JOB_DONE, 2, 1_000, 12)
    assert store.running_job() is None
    assert (store.state() or {})["last_job"] == job.job_id
    later, started_later = store.start_job(T0, T0 + timedelta(days=1), T0 + timedelta(hours=1))
    assert started_later and later.job_id != job.job_id


def test_a_finished_backfill_asked_for_again_walks_its_range_again_with_fresh_counts(aws: Aws) -> None:
    store = aws.ledger.reconciliation
    since, until = T0 - timedelta(days=10), T0
    job, _ = store.start_job(since, until, T0)
    store.job_progress(job, resume_after=until, counts={"listed": 900, "recorded": 12}, done=True, now=T0)

    again, started = store.start_job(since, until, T0 + timedelta(days=1))

    assert started and again.job_id == job.job_id
    found = store.running_job()
    assert found is not None and found.state == JOB_RUNNING
    assert (found.next_after, found.runs, found.counts) == (since, 0, {})  # from the start, not from where it ended
    assert store.job(job.job_id) == found
