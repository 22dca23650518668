"""The reconciler's state in the ledger: the checkpoint (everything Voucherify lists as created before it has been
recorded), the lease that keeps one run at a time, the counts of the last run, and backfill jobs — each a range of
history that scheduled runs continue from ``resume_after`` until it is done. One backfill runs at a time: the state
item names it (``running_job``) and a second one asked for while it runs is that one."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from voucherify_ledger.ledger.dynamo import Table, Update, av, compact
from voucherify_ledger.ledger.keys import (
    JOB_DONE,
    JOB_RUNNING,
    iso,
    parse_iso,
    reconcile_job_key,
    reconcile_state_key,
)

COUNTS = ("listed", "recorded", "corrected", "unchanged", "unreadable", "unlisted", "api_calls", "windows", "splits")


@dataclass(frozen=True)
class Job:
    """A backfill: ``[since, until)``, done up to ``resume_after``."""

    job_id: str
    since: datetime
    until: datetime
    state: str
    resume_after: datetime | None = None
    runs: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    unlisted_ids: tuple[str, ...] = ()

    @property
    def next_after(self) -> datetime:
        """Where the next run of the job starts."""
        return self.resume_after or self.since

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "since": iso(self.since),
            "until": iso(self.until),
            "state": self.state,
            "resume_after": iso(self.resume_after),
            "runs": self.runs,
            **self.counts,
            "unlisted_ids": list(self.unlisted_ids),
        }

    @classmethod
    def from_item(cls, found: Mapping[str, Any]) -> Job:
        return cls(
            job_id=str(found["job_id"]),
            since=parse_iso(found["since"]) or datetime.min,
            until=parse_iso(found["until"]) or datetime.min,
            state=str(found.get("state", JOB_RUNNING)),
            resume_after=parse_iso(found.get("resume_after")),
            runs=int(found.get("runs", 0)),
            counts={name: int(found[name]) for name in COUNTS if name in found},
            unlisted_ids=tuple(str(i) for i in found.get("unlisted_ids") or ()),
        )


def job_id_for(since: datetime, until: datetime) -> str:
    """The same range asked for twice is the same job."""
    return "bf_" + hashlib.sha256(f"{iso(since)}|{iso(until)}".encode()).hexdigest()[:16]


class ReconcileStore:
    """``RECONCILE / STATE`` and ``RECONCILE / JOB#<id>``."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def state(self) -> dict[str, Any] | None:
        return self.table.get(reconcile_state_key())

    def checkpoint(self) -> datetime | None:
        return parse_iso((self.state() or {}).get("checkpoint"))

    def acquire(self, owner: str, now: datetime, seconds: float) -> bool:
        """Takes the lease for ``seconds`` unless another run holds it; False when one does."""
        update = Update().set("lease_owner", owner).set("lease_until", iso(now + timedelta(seconds=seconds)))
        until, holder = update.name_of("lease_until"), update.name_of("lease_owner")
        update.values.update({":now": av(iso(now)), ":owner": av(owner)})
        condition = f"attribute_not_exists({until}) OR {until} < :now OR {holder} = :owner"
        return self.table.update(reconcile_state_key(), update, what="reconcile state", condition=condition).applied

    def release(self, owner: str) -> None:
        update = Update().remove("lease_until").remove("lease_owner")
        update.values[":owner"] = av(owner)
        condition = f"{update.name_of('lease_owner')} = :owner"
        update.sets.append(f"{update.name_of('lease_released_by')} = :owner")
        self.table.update(reconcile_state_key(), update, what="reconcile state", condition=condition)

    def finish_run(self, *, checkpoint: datetime | None, run: Mapping[str, Any]) -> datetime | None:
        """Records the run's counts and moves the checkpoint forward (never back: a late run keeps the newer one);
        the checkpoint in effect afterwards."""
        key = reconcile_state_key()
        if checkpoint is not None:
            update = Update().set("last_run", compact(run)).set("checkpoint", iso(checkpoint))
            name = update.name_of("checkpoint")
            update.values[":checkpoint"] = av(iso(checkpoint))
            condition = f"attribute_not_exists({name}) OR {name} < :checkpoint"
            written = self.table.update(key, update, what="reconcile state", condition=condition, returns="ALL_NEW")
            if written.applied:
                return checkpoint
        written = self.table.update(
            key, Update().set("last_run", compact(run)), what="reconcile state", returns="ALL_NEW"
        )
        return parse_iso((written.item or {}).get("checkpoint"))

    def job(self, job_id: str) -> Job | None:
        found = self.table.get(reconcile_job_key(job_id))
        return Job.from_item(found) if found else None

    def running_job(self, state: Mapping[str, Any] | None = None) -> Job | None:
        """The backfill the state item names (``state``: that item, when the caller has just read it)."""
        job_id = ((self.state() if state is None else state) or {}).get("running_job")
        return self.job(str(job_id)) if job_id else None

    def start_job(self, since: datetime, until: datetime, now: datetime) -> tuple[Job, bool]:
        """The running backfill, or a new one of ``[since, until)``; True when this call started it."""
        running = self.running_job()
        if running is not None:
            return running, False
        job = Job(job_id_for(since, until), since, until, JOB_RUNNING)
        claim = Update().set("running_job", job.job_id)
        name = claim.name_of("running_job")
        if not self.table.update(
            reconcile_state_key(), claim, what="reconcile state", condition=f"attribute_not_exists({name})"
        ).applied:
            found = self.running_job()
            if found is not None:
                return found, False
        create = Update().set("job_id", job.job_id).set("since", iso(since)).set("until", iso(until))
        create.set("state", JOB_RUNNING).set("created_at", iso(now)).set("runs", 0)
        # The same range asked for again after it finished is walked again from its start, with fresh counts.
        for stale in ("resume_after", "finished_at", "updated_at", "unlisted_ids", *COUNTS):
            create.remove(stale)
        self.table.update(reconcile_job_key(job.job_id), create, what="reconcile job")
        return job, True

    def job_progress(
        self,
        job: Job,
        *,
        resume_after: datetime | None,
        counts: Mapping[str, int],
        done: bool,
        now: datetime,
        unlisted_ids: Sequence[str] = (),
    ) -> Job:
        """Adds one run's counts to the job and where it stopped (and the ids of the held redemptions Voucherify did
        not list, when it found some); a finished job frees the state for the next."""
        update = Update().add("runs", 1).set("updated_at", iso(now))
        if unlisted_ids:
            update.set("unlisted_ids", list(unlisted_ids))
        if resume_after is not None:
            update.set("resume_after", iso(resume_after))
        for name in COUNTS:
            if counts.get(name):
                update.add(name, int(counts[name]))
        if done:
            update.set("state", JOB_DONE).set("finished_at", iso(now))
        written = self.table.update(reconcile_job_key(job.job_id), update, what="reconcile job", returns="ALL_NEW")
        if done:
            free = Update().remove("running_job")
            free.values[":job"] = av(job.job_id)
            condition = f"{free.name_of('running_job')} = :job"
            free.sets.append(f"{free.name_of('last_job')} = :job")
            self.table.update(reconcile_state_key(), free, what="reconcile state", condition=condition)
        return Job.from_item(written.item or {})
