"""One run of the reconciler: what Voucherify lists that the ledger lacks is recorded through the webhooks' own writes.

A run holds the ledger's lease (one run at a time). With a backfill job running, it continues the job from where the
last run stopped; otherwise it walks from the checkpoint, less the overlap (Voucherify's list and its webhooks are
eventually consistent), to the run's start. Each page's objects are looked up in the ledger in one batch read first,
so what the ledger already holds costs a read, not a write; what it lacks is recorded (``source`` reconciler, the
object's JSON as its raw copy), counted as ``recorded`` (a redemption, failed attempts included) or ``corrected`` (a
rollback of a redemption the ledger held). Nothing is ever deleted on Voucherify's word. A run stops before a call it
has no time for, and saves where it stopped: the checkpoint, or the job's ``resume_after``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.keys import iso, parse_iso
from voucherify_ledger.ledger.reconciliation import Job
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData
from voucherify_ledger.reconcile.objects import ApiData, UnreadableObject, data_redemption_id, raw_copy, webhook_data
from voucherify_ledger.reconcile.windows import Lister, WalkResult, Window, WindowWalk, created_at

UNLISTED_KEPT = 100  # ids of held-but-not-listed redemptions a report keeps (the count is exact)
ROUTE = "reconciler"  # the route a listed object's raw copy names: the reconciler, not a webhook URL
SOURCE = "reconciler"


@dataclass
class RunCounts:
    listed: int = 0
    recorded: int = 0  # redemptions the webhooks never delivered
    corrected: int = 0  # rollbacks of redemptions the ledger held without them
    unchanged: int = 0
    unreadable: int = 0
    unlisted: int = 0  # redemptions the ledger holds in the walked range that Voucherify did not list
    api_calls: int = 0
    windows: int = 0
    splits: int = 0

    @property
    def missing(self) -> int:
        """What the webhooks never delivered: the ledger had to learn it from the list."""
        return self.recorded + self.corrected


# (the run's counts so far, the ``created_at`` of the newest object handed over) after each page
Progress = Callable[["RunCounts", datetime | None], None]


@dataclass(frozen=True)
class RunReport:
    ran: bool  # False: another run held the lease
    window: Window | None
    done: bool
    resumed_after: datetime | None
    counts: RunCounts
    job_id: str | None = None
    dry_run: bool = False
    error: str | None = None  # why the run stopped early: Voucherify gave no usable page
    unlisted_ids: tuple[str, ...] = ()  # the first UNLISTED_KEPT of them: reported, never removed

    def as_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "done": self.done,
            "job_id": self.job_id,
            "dry_run": self.dry_run,
            "after": iso(self.window.after) if self.window else None,
            "before": iso(self.window.before) if self.window else None,
            "resume_after": iso(self.resumed_after),
            "error": self.error,
            **asdict(self.counts),
            "unlisted_ids": list(self.unlisted_ids),
        }


class Reconciler:
    """Runs on ``ledger`` with ``lister`` (one call of ``GET /v1/redemptions``, paced to the reconciler's budget)."""

    def __init__(
        self,
        ledger: Ledger,
        lister: Lister,
        *,
        overlap: timedelta,
        lease_seconds: float = 900,
        metric: Callable[[str, float], None] = lambda name, value: None,
        api_calls: Callable[[], int] | None = None,
    ) -> None:
        """``api_calls``: the calls the lister made so far (its retries included), when it counts them."""
        self.ledger, self.lister, self.api_calls = ledger, lister, api_calls
        self.overlap, self.lease_seconds, self.metric = overlap, lease_seconds, metric

    def run(
        self,
        now: datetime,
        *,
        time_left: Callable[[], float],
        dry_run: bool = False,
        window: Window | None = None,
        progress: Progress | None = None,
    ) -> RunReport:
        """One run; it makes no call once ``time_left()`` (the seconds the caller still gives it) is 0. A dry run
        holds no lease, writes nothing and saves nothing: it counts what a run would record — over ``window`` when
        given (a backfill asked for with ``--dry-run``), else over what a run would walk. ``progress`` is told the
        counts and the ``created_at`` reached after each page."""
        if window is not None and not dry_run:
            raise ValueError("only a dry run walks a window of its own: a backfill is a job (start_job)")
        owner = uuid.uuid4().hex
        store = self.ledger.reconciliation
        if not dry_run and not store.acquire(owner, now, self.lease_seconds):
            return RunReport(False, None, False, None, RunCounts())
        try:
            state = (store.state() or {}) if window is None else {}  # one read: the running job, or the checkpoint
            job = store.running_job(state) if window is None else None
            if window is None and job is not None:
                window = Window(job.next_after, job.until)
            elif window is None:
                window = Window((parse_iso(state.get("checkpoint")) or now) - self.overlap, now)
            counts = RunCounts()
            listed_ids: set[str] = set()

            def handle(page: Sequence[Mapping[str, Any]]) -> None:
                listed_ids.update(str(obj.get("id")) for obj in page if obj.get("object") != "redemption_rollback")
                self._reconcile_page(page, now, counts, dry_run, job.job_id if job is not None else None)
                if progress is not None:
                    progress(counts, max(filter(None, map(created_at, page)), default=None))

            walked = WindowWalk(self.lister).run(window, handle, lambda: time_left() <= 0)
            self._count_walk(counts, walked)
            unlisted = self._unlisted(window, walked, listed_ids, now)
            counts.unlisted = len(unlisted)
            job_id = job.job_id if job is not None else None
            report = RunReport(
                True,
                window,
                walked.done,
                walked.resume_after,
                counts,
                job_id,
                dry_run,
                walked.error,
                tuple(unlisted[:UNLISTED_KEPT]),
            )
            if not dry_run:  # a dry run changes nothing and says nothing to the alarms
                self._save(report, now, job)
                self._emit(report)
            return report
        finally:
            if not dry_run:
                store.release(owner)

    def _unlisted(self, window: Window, walked: WalkResult, listed_ids: set[str], now: datetime) -> list[str]:
        """What the ledger holds as recorded in the part of ``window`` the walk listed whole, and Voucherify did not
        list: nothing when the listing was cut short (an error, a window too dense to page through), and nothing
        newer than the overlap (Voucherify's list may not show it yet)."""
        if walked.error or walked.truncated:
            return []
        reached = window.before if walked.done else walked.resume_after
        settled = min(reached, now - self.overlap) if reached is not None else None
        if settled is None or settled <= window.after:
            return []
        return sorted(set(self.ledger.redemptions.recorded_between(window.after, settled)) - listed_ids)

    def _emit(self, report: RunReport) -> None:
        if report.counts.unlisted:
            self.metric("ReconcileUnlisted", report.counts.unlisted)
        # A scheduled run that finds what the webhooks never delivered means deliveries are being lost (an alarm); a
        # backfill finds history from before the webhooks were set up, which is what it is for.
        self.metric("Backfilled" if report.job_id else "ReconciledMissing", report.counts.missing)
        if report.counts.unreadable:
            self.metric("ReconcileUnreadable", report.counts.unreadable)
        if report.error:
            self.metric("ReconcileErrors", 1)

    def _count_walk(self, counts: RunCounts, walked: WalkResult) -> None:
        # The lister's own count when it keeps one: a 429 or a 5xx tried again is a call of the budget too.
        counts.api_calls = self.api_calls() if self.api_calls is not None else walked.calls
        counts.windows, counts.splits = walked.windows, walked.splits

    def _save(self, report: RunReport, now: datetime, job: Job | None) -> None:
        """Where the run got to: the job's progress (the lease kept it the run's own), or the checkpoint."""
        store = self.ledger.reconciliation
        assert report.window is not None
        reached = report.window.before if report.done else report.resumed_after
        if job is not None:
            store.job_progress(
                job,
                resume_after=reached,
                counts=asdict(report.counts),
                done=report.done,
                now=now,
                unlisted_ids=report.unlisted_ids,
            )
            return
        checkpoint = store.finish_run(checkpoint=reached, run=report.as_dict() | {"finished_at": iso(now)})
        if checkpoint is not None:
            self.metric("ReconcileLagSeconds", max(0.0, (now - checkpoint).total_seconds()))

    def _reconcile_page(
        self,
        objects: Sequence[Mapping[str, Any]],
        now: datetime,
        counts: RunCounts,
        dry_run: bool,
        job_id: str | None = None,
    ) -> None:
        counts.listed += len(objects)
        read: list[tuple[ApiData, Delivery]] = []
        for obj in objects:
            try:
                read.append((webhook_data(obj), Delivery(raw=raw_copy(obj), route=ROUTE, received_at=now)))
            except UnreadableObject:
                counts.unreadable += 1
        states = self.ledger.redemptions.states(data_redemption_id(data) for data, _ in read)  # one batch read
        for data, delivery in read:
            self._reconcile(data, delivery, states.get(data_redemption_id(data)), counts, dry_run, job_id)

    def _reconcile(
        self,
        data: ApiData,
        delivery: Delivery,
        state: Mapping[str, Any] | None,
        counts: RunCounts,
        dry_run: bool,
        job_id: str | None = None,
    ) -> None:
        """``job_id``: the backfill job of the run, noted on a redemption it records (``reconcile_job_id``): history
        from before the webhooks were set up, not a lost delivery."""
        if isinstance(data, EventRedemptionRollbackSucceededData):
            known = [*((state or {}).get("rollback_ids") or []), *((state or {}).get("failed_rollback_ids") or [])]
            if data.redemption_rollback.id in known:
                counts.unchanged += 1
                return
            if not dry_run:
                self.ledger.redemptions.record_rollback(data, delivery, source=SOURCE)
            counts.corrected += 1
            return
        if state is not None and state.get("redemption_recorded_at"):
            counts.unchanged += 1  # an item a rollback made before its redemption came still lacks the redemption
            return
        recorded = None if dry_run else self.ledger.redemptions.record(data, delivery, reconcile_job_id=job_id)
        if recorded is not None and recorded.status == "duplicate":
            counts.unchanged += 1  # a webhook came in meanwhile
            return
        counts.recorded += 1
