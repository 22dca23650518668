"""The reconciler end to end: the fake Voucherify over HTTP holds months of history (redemptions, stacks, failed
attempts, rollbacks), the webhook functions receive only part of its webhooks (shuffled, some twice), and a backfill
through ``ReconcileService`` — the client, pacing and lister the function uses — leaves the ledger equal to the
fake's state: every redemption with its status and rollback ids, nothing extra. A second run records nothing; a
window over the 9,900 objects one query can page through is split; the rollback worker draining at the same time
and the reconciler together keep under the project's budget (the fake answers 429 beyond it)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger_dev.fake_voucherify import FakeVoucherify
from support.functions import Answer, Aws
from support.template import WEBHOOK_FUNCTIONS
from support.worker import Harness
from voucherify_ledger.ledger.keys import REDEMPTION_PREFIX
from voucherify_ledger.reconcile.service import ReconcileService
from voucherify_ledger.reconcile.windows import MAX_PER_QUERY, PAGE_SIZE, Window
from voucherify_ledger.rollbacks.pacing import TokenBucket
from voucherify_ledger.settings import ReconcilerSettings
from voucherify_ledger.voucherify_api import StaticCredentials

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
FUNCTION_OF_ROUTE = {path: function for function, path in WEBHOOK_FUNCTIONS.items()}


@pytest.fixture
def fake() -> Iterator[FakeVoucherify]:
    with FakeVoucherify(webhook_delay=None) as started:
        yield started


def service_on(aws: Aws, fake: FakeVoucherify, *, per_minute: int = 60_000, budget: int = 100_000) -> ReconcileService:
    settings = ReconcilerSettings.model_validate(
        {
            "ledger_table_name": aws.table_name,
            "voucherify_api_url": fake.url,
            "voucherify_api_secret_id": "unused",
            "voucherify_requests_per_minute": budget,
            "reconcile_requests_per_minute": per_minute,
        }
    )
    credentials = StaticCredentials(fake.app_id, fake.app_token)
    client = ReconcileService.api_client(settings, credentials)
    return ReconcileService(settings, aws.ledger, client, bucket=TokenBucket(per_minute))


def deliver(invoke: Callable[..., Answer], webhooks: list[tuple[str, bytes]], share: float, seed: int) -> int:
    """A ``share`` of the webhooks through the webhook functions, shuffled, a tenth of them twice."""
    rng = random.Random(seed)
    chosen = rng.sample(webhooks, round(len(webhooks) * share))
    chosen += rng.sample(chosen, len(chosen) // 10)
    rng.shuffle(chosen)
    for route, body in chosen:
        answer = invoke(FUNCTION_OF_ROUTE[route], body)
        assert answer.status in (200, 202) and answer.body["status"] in ("recorded", "duplicate"), answer
    return len(chosen)


def expected_state(history: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the ledger must hold of Voucherify's history: each redemption's status and rollback ids."""
    expected: dict[str, dict[str, Any]] = {}
    for obj in history:
        if obj["object"] == "redemption":
            expected[obj["id"]] = {
                "status": "FAILED" if obj["result"] == "FAILURE" else "SUCCEEDED",
                "rollback_ids": [],
                "failed_rollback_ids": [],
            }
    for obj in history:
        if obj["object"] == "redemption_rollback":
            state = expected[obj["redemption"]]
            if obj["result"] == "SUCCESS":
                state["rollback_ids"].append(obj["id"])
                state["status"] = "ROLLED_BACK"
            else:
                state["failed_rollback_ids"].append(obj["id"])
    return expected


def ledger_state(aws: Aws) -> dict[str, dict[str, Any]]:
    """Every redemption the ledger holds, as ``expected_state`` describes one."""
    pages = aws.dynamodb.get_paginator("scan").paginate(TableName=aws.table_name, ConsistentRead=True)
    held = [
        item["pk"]["S"].removeprefix(REDEMPTION_PREFIX)
        for page in pages
        for item in page["Items"]
        if item["pk"]["S"].startswith(REDEMPTION_PREFIX) and item["sk"]["S"] == "REDEMPTION"
    ]
    return {
        redemption_id: {
            "status": state["status"],
            "rollback_ids": sorted(state.get("rollback_ids") or []),
            "failed_rollback_ids": sorted(state.get("failed_rollback_ids") or []),
        }
        for redemption_id, state in aws.ledger.redemptions.states(held).items()
    }


def normalised(state: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r: {k: sorted(v) if isinstance(v, list) else v for k, v in s.items()} for r, s in state.items()}


def backfill(service: ReconcileService, since: datetime, until: datetime) -> list[Any]:
    """Runs until the job is done, as scheduled runs would; every run's report."""
    service.start_backfill(since, until, until)
    reports = []
    while not reports or not reports[-1].done:
        reports.append(service.run(until, time_left=lambda: 120))
        assert reports[-1].ran and reports[-1].error is None, reports[-1]
        assert len(reports) < 10
    return reports


def list_calls(fake: FakeVoucherify) -> int:
    return sum(1 for r in fake.requests if r.endpoint == "list")


def test_a_backfill_leaves_the_ledger_equal_to_voucherify_when_only_70_percent_of_webhooks_came(
    aws: Aws, fake: FakeVoucherify, invoke: Callable[..., Answer]
) -> None:
    counts = fake.seed_history(5_000, days=120, end=NOW, seed=11)
    history = fake.history()
    rollbacks = sum(1 for o in history if o["object"] == "redemption_rollback")
    assert len(history) >= 5_000 and rollbacks >= 0.1 * len(history), counts
    assert any(o.get("redemption") and o["object"] == "redemption" for o in history)  # stack children
    spread = [o["date"] for o in history]
    assert min(spread) < (NOW - timedelta(days=90)).isoformat()
    delivered = deliver(invoke, fake.history_webhooks(), 0.7, seed=12)
    service = service_on(aws, fake)

    reports = backfill(service, NOW - timedelta(days=121), NOW)

    total = sum(r.counts.listed for r in reports)
    missing = sum(r.counts.missing for r in reports)
    calls = sum(r.counts.api_calls for r in reports)
    windows = sum(r.counts.windows for r in reports)
    assert total == len(history) and missing > 0.2 * len(history), (total, missing, delivered)
    assert normalised(ledger_state(aws)) == normalised(expected_state(history))
    # one call per 100 objects, one per window, a split's first page: a small margin
    assert calls == list_calls(fake) <= len(history) / PAGE_SIZE + windows + 3, (calls, windows)

    before = list_calls(fake)
    again = service.run(NOW, time_left=lambda: 60)  # the scheduled run from the job's checkpoint
    assert again.ran and (again.counts.recorded, again.counts.corrected) == (0, 0)
    assert list_calls(fake) - before <= 3


def test_a_window_over_what_one_query_can_page_through_is_split_and_every_object_listed_once(
    aws: Aws, fake: FakeVoucherify
) -> None:
    """10,400 objects in twelve days, more than the 99 pages of 100 one query reaches: the walk splits the window
    and lists every object. A dry run over an empty ledger: each object is counted once as what it would record (a
    redemption, or a rollback of one), none twice, none missed; it reads the ledger once per page, writes nothing."""
    fake.seed_history(MAX_PER_QUERY + 500, days=12, end=NOW, seed=21)
    history = fake.history()
    service = service_on(aws, fake)
    window = Window(NOW - timedelta(days=13), NOW)

    report = service.run(NOW, time_left=lambda: 120, dry_run=True, window=window)

    assert report.done and report.error is None and report.counts.splits >= 1
    assert report.counts.listed == len(history) > MAX_PER_QUERY
    assert report.counts.recorded + report.counts.corrected == len(history)
    listed = [r for r in fake.requests if r.endpoint == "list"]
    assert report.counts.api_calls == len(listed) <= len(history) / PAGE_SIZE + report.counts.windows + 3
    assert max(int(r.query["page"]) for r in listed) <= 99
    assert aws.items() == []


def test_the_worker_and_the_reconciler_together_keep_under_the_budget(
    aws: Aws, make_harness: Callable[..., Harness]
) -> None:
    """A budget of 120 calls a minute, 30 of them the reconciler's, the fake limiting at 120 a minute: for 20 s the
    worker rolls back redemptions while the reconciler backfills, both with more to do than their share allows. No
    429, and together they make no more calls than the two shares' buckets allow (their bursts, then 120 a minute)."""
    budget, share, seconds = 120, 30, 20.0
    harness = make_harness(
        rate_limit_per_minute=budget,
        env={
            "VOUCHERIFY_REQUESTS_PER_MINUTE": str(budget),
            "RECONCILE_REQUESTS_PER_MINUTE": str(share),
            "ROLLBACK_MAX_CONCURRENCY": "1",  # one execution here: it paces itself to the worker's whole share
        },
    )
    fake = harness.fake
    fake.seed_history(4_000, days=30, end=NOW, seed=31)
    history = fake.history()
    rolled_back = {o["redemption"] for o in history if o["object"] == "redemption_rollback"}
    parents = {o["redemption"] for o in history if o["object"] == "redemption" and o.get("redemption")}
    to_roll_back = [
        o["id"]
        for o in history
        if o["object"] == "redemption"
        and o["result"] == "SUCCESS"
        and not o.get("redemption")  # not a stack's child
        and o["id"] not in parents | rolled_back
    ][:80]
    service = service_on(aws, fake, per_minute=share, budget=budget)
    service.start_backfill(NOW - timedelta(days=31), NOW, NOW)
    for redemption_id in to_roll_back:
        harness.send(redemption_id=redemption_id, reason="budget test")

    started = time.monotonic()
    stop_at = started + seconds
    reports: list[Any] = []
    reconciling = threading.Thread(
        target=lambda: reports.append(service.run(NOW, time_left=lambda: stop_at - time.monotonic()))
    )
    reconciling.start()
    while time.monotonic() < stop_at - 3 and harness.queue_depth() > 0:
        harness.poll()
    reconciling.join(seconds + 15)
    elapsed = time.monotonic() - started

    statuses = Counter(r.status for r in fake.requests)
    assert statuses[429] == 0 and statuses[200] == len(fake.requests), statuses
    lists = sum(1 for r in fake.requests if r.endpoint == "list")
    rollbacks = len(fake.requests) - lists
    # each did work, and each had more than its share allows in the time: the buckets, not the demand, set the pace
    assert reports and not reports[0].done and lists >= 5 and 10 <= rollbacks < len(to_roll_back)
    # the two buckets: worker 10 at once then (90 - 10) a minute, reconciler 5 then (30 - 5) a minute
    allowed = 10 + 5 + (80 + 25) / 60 * elapsed  # under the budget's 120 a minute however long it runs
    assert len(fake.requests) <= allowed, (len(fake.requests), elapsed)
