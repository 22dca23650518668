"""The API budget's fixed shares: the reconciler spends RECONCILE_REQUESTS_PER_MINUTE, the rollback worker the rest,
divided between its concurrent executions; together they never plan more than VOUCHERIFY_REQUESTS_PER_MINUTE."""

from __future__ import annotations

import pytest

from support.worker import WORKER_REQUIRED_ENV
from voucherify_ledger.settings import ReconcilerSettings, SettingsError, WorkerSettings

RECONCILER_REQUIRED_ENV = {"LEDGER_TABLE_NAME": "ledger", "VOUCHERIFY_API_SECRET_ID": "voucherify-ledger/api"}


@pytest.mark.parametrize(("budget", "reconcile", "concurrency"), [(100, 0, 2), (100, 10, 2), (2000, 200, 8), (2, 1, 1)])
def test_the_shares_add_up_to_the_budget(budget: int, reconcile: int, concurrency: int) -> None:
    shared = {"VOUCHERIFY_REQUESTS_PER_MINUTE": str(budget), "RECONCILE_REQUESTS_PER_MINUTE": str(reconcile)}
    worker = WorkerSettings.from_env({**WORKER_REQUIRED_ENV, **shared, "ROLLBACK_MAX_CONCURRENCY": str(concurrency)})
    planned = worker.requests_per_minute_per_execution * concurrency
    assert planned == budget - reconcile
    if reconcile:
        reconciler = ReconcilerSettings.from_env({**RECONCILER_REQUIRED_ENV, **shared})
        assert reconciler.reconcile_requests_per_minute + planned == budget


def test_without_a_reconciler_the_worker_has_the_whole_budget() -> None:
    worker = WorkerSettings.from_env({**WORKER_REQUIRED_ENV, "VOUCHERIFY_REQUESTS_PER_MINUTE": "100"})
    assert worker.worker_requests_per_minute == 100


@pytest.mark.parametrize("reconcile", ["100", "150"])
def test_a_reconciler_share_that_leaves_the_worker_nothing_is_refused(reconcile: str) -> None:
    env = {"VOUCHERIFY_REQUESTS_PER_MINUTE": "100", "RECONCILE_REQUESTS_PER_MINUTE": reconcile}
    for settings, required in ((WorkerSettings, WORKER_REQUIRED_ENV), (ReconcilerSettings, RECONCILER_REQUIRED_ENV)):
        with pytest.raises(SettingsError, match="RECONCILE_REQUESTS_PER_MINUTE must leave the rollback worker"):
            settings.from_env({**required, **env})


def test_the_reconciler_needs_a_share_and_starts_an_hour_before_its_checkpoint() -> None:
    reconciler = ReconcilerSettings.from_env(RECONCILER_REQUIRED_ENV)
    assert (reconciler.reconcile_requests_per_minute, reconciler.reconcile_overlap_minutes) == (10, 60)
    with pytest.raises(SettingsError, match="RECONCILE_REQUESTS_PER_MINUTE"):
        ReconcilerSettings.from_env({**RECONCILER_REQUIRED_ENV, "RECONCILE_REQUESTS_PER_MINUTE": "0"})
