"""The reconciler as ``ReconcilerFunction`` and the CLI's ``reconcile --local`` run it: settings, clients, API keys
and the budget's token bucket made once; one ``Reconciler`` (with its own lister and deadline) per run.

The bucket lives as long as the service (module scope in the function), so warm runs keep to the reconciler's share
of the budget (``RECONCILE_REQUESTS_PER_MINUTE``) across invocations, as the rollback worker's bucket does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.reconciliation import Job
from voucherify_ledger.models.base import build
from voucherify_ledger.reconcile.listing import ApiLister
from voucherify_ledger.reconcile.objects import API_DATA_MODELS
from voucherify_ledger.reconcile.run import Progress, Reconciler, RunReport
from voucherify_ledger.reconcile.windows import Window
from voucherify_ledger.rollbacks.pacing import TokenBucket
from voucherify_ledger.settings import ReconcilerSettings
from voucherify_ledger.voucherify_api import (
    SecretCredentials,
    StaticCredentials,
    VoucherifyClient,
    api_secret_fetcher,
)

Metric = Callable[[str, float], None]


class ReconcileService:
    """Runs, backfills and status of the reconciler on one ledger and one Voucherify project."""

    def __init__(
        self,
        settings: ReconcilerSettings,
        ledger: Ledger,
        client: VoucherifyClient,
        *,
        credentials: SecretCredentials | StaticCredentials | None = None,
        bucket: TokenBucket | None = None,
        metric: Metric = lambda name, value: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings, self.ledger, self.client = settings, ledger, client
        self.credentials = credentials if credentials is not None else client.credentials
        self.bucket = bucket or TokenBucket(settings.reconcile_requests_per_minute)
        self.metric, self.sleep = metric, sleep

    @classmethod
    def from_env(
        cls,
        *,
        metric: Metric = lambda name, value: None,
        dynamodb: Any = None,
        secrets: Any = None,
        env: Mapping[str, str] | None = None,
    ) -> ReconcileService:
        """From the function's environment (``ReconcilerSettings``); every client made now, during init."""
        settings = ReconcilerSettings.from_env(env)
        build(*API_DATA_MODELS)  # the validators of Voucherify's objects (``reconcile.objects``), now, during init
        if dynamodb is None or secrets is None:
            from voucherify_ledger.aws import reconciler_clients

            made = reconciler_clients()
            dynamodb, secrets = dynamodb or made[0], secrets or made[1]
        credentials = SecretCredentials(
            settings.voucherify_api_secret_id,
            max_age=settings.secret_max_age_seconds,
            fetch=api_secret_fetcher(settings.secret_max_age_seconds, secrets),
        )
        client = cls.api_client(settings, credentials)
        return cls(settings, Ledger(settings.ledger_table_name, dynamodb), client, metric=metric)

    @staticmethod
    def api_client(
        settings: ReconcilerSettings, credentials: SecretCredentials | StaticCredentials
    ) -> VoucherifyClient:
        return VoucherifyClient(
            settings.voucherify_api_url,
            credentials,
            connect_timeout=settings.voucherify_connect_timeout_seconds,
            read_timeout=settings.voucherify_read_timeout_seconds,
            max_connections=2,
        )

    def run(
        self,
        now: datetime,
        *,
        time_left: Callable[[], float],
        dry_run: bool = False,
        window: Window | None = None,
        progress: Progress | None = None,
    ) -> RunReport:
        """One run (see ``Reconciler.run``), making no call that would end after ``time_left()`` seconds."""
        lister = ApiLister(
            self.client,
            self.bucket,
            credentials=self.credentials,
            time_left=time_left,
            sleep=self.sleep,
            metric=self.metric,
        )
        overlap = timedelta(minutes=self.settings.reconcile_overlap_minutes)
        reconciler = Reconciler(
            self.ledger, lister, overlap=overlap, metric=self.metric, api_calls=lambda: lister.calls
        )
        return reconciler.run(now, time_left=time_left, dry_run=dry_run, window=window, progress=progress)

    def start_backfill(self, since: datetime, until: datetime, now: datetime) -> tuple[Job, bool]:
        """The running backfill, or a new one of ``[since, until)``; True when this call started it."""
        if not since < until:
            raise ValueError("a backfill needs since before until")
        return self.ledger.reconciliation.start_job(since, until, now)

    def status(self) -> dict[str, Any]:
        """The checkpoint, the running backfill (or the last one) and the last scheduled run's counts."""
        store = self.ledger.reconciliation
        state = store.state() or {}
        running = store.running_job(state)
        last_job = None if running else (store.job(str(state["last_job"])) if state.get("last_job") else None)
        return {
            "checkpoint": state.get("checkpoint"),
            "lease_until": state.get("lease_until"),
            "running_job": running.as_dict() if running else None,
            "last_job": last_job.as_dict() if last_job else None,
            "last_run": state.get("last_run"),
            "requests_per_minute": self.settings.reconcile_requests_per_minute,
            "overlap_minutes": self.settings.reconcile_overlap_minutes,
        }
