"""``redemption-ledger reconcile``: record what Voucherify's ``GET /v1/redemptions`` lists over ``[--since, --until)``
and the ledger lacks (the webhooks never delivered it), as a backfill job of the reconciler — or count it
(``--dry-run``), or say where the reconciler is (``--status``).

- ``--local``: the job is run to its end here, against ``make run``'s ledger and the Voucherify API it uses
  (``$VOUCHERIFY_API_URL``, else its fake on ``$LOCAL_VOUCHERIFY_PORT``), with the keys of
  ``$VOUCHERIFY_APP_ID`` / ``$VOUCHERIFY_APP_TOKEN`` or of the API secret ``make run`` stores for the worker; one run
  after another (each under the ledger's lease, as the scheduled reconciler's), within ``--requests-per-minute``.
- ``--stack NAME``: the job is started in the stack's ledger and the stack's ``ReconcilerFunction`` invoked at once
  (asynchronously); its scheduled runs continue the job until it is done. ``--table NAME``: the job is started, the
  next scheduled run begins it.
- ``--dry-run``: one walk of the range here, counting what a run would record; nothing is written, no job. Against a
  deployed stack it calls Voucherify from this machine: ``$VOUCHERIFY_APP_ID`` / ``$VOUCHERIFY_APP_TOKEN`` and
  ``--api-url`` (``$VOUCHERIFY_API_URL``, default https://api.voucherify.io) are needed.

The last thing on stdout is one JSON object (the summary, the job, or the status). A progress bar goes to stderr when
it is a terminal. Imports the layer package, boto3 and the standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TextIO

from redemption_ledger_cli import local, where
from redemption_ledger_cli.where import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CliError,
    Target,
    aws_problem,
    print_json,
    read,
    resolve_target,
)

EXIT_BUSY = 5  # not finished: another backfill is running, or another run kept the lease past the wait
FUNCTION_OUTPUT = "ReconcilerFunctionName"
API_URL_ENV = "VOUCHERIFY_API_URL"
APP_ID_ENV = "VOUCHERIFY_APP_ID"
APP_TOKEN_ENV = "VOUCHERIFY_APP_TOKEN"
REQUESTS_PER_MINUTE_ENV = "RECONCILE_REQUESTS_PER_MINUTE"
DEFAULT_API_URL = "https://api.voucherify.io"
LOCAL_REQUESTS_PER_MINUTE = 60  # the fake's, or whatever $VOUCHERIFY_API_URL make run uses: keep under its plan
REMOTE_REQUESTS_PER_MINUTE = 10  # ReconcilerSettings' default: a dry run from here shares the project's budget
MAX_REQUESTS_PER_MINUTE = 99_999  # the settings keep the reconciler's share below the project's (at most 100,000)
RUN_SECONDS = 600.0  # each run of a --local backfill: well inside the ledger's lease (900 s)
DRY_RUN_SECONDS = 6 * 3600.0  # a dry run holds no lease: one walk, however long the budget makes it
LEASE_WAIT_SECONDS = 120.0  # how long --local waits for another run (make run's scheduled one) to let go
LEASE_RETRY_SECONDS = 1.0

_sleep: Callable[[float], None] = time.sleep
_clock: Callable[[], float] = time.monotonic


def _now() -> datetime:
    return datetime.now(UTC)


# --- arguments --------------------------------------------------------------------------------------
def parse_time(option: str, value: str) -> datetime:
    """An ISO 8601 time (a date alone is its midnight; without an offset, UTC), in UTC; a usage error otherwise."""
    from voucherify_ledger.ledger.keys import parse_iso

    when = parse_iso(value.strip())
    if when is None:
        raise CliError(
            f"{option} {value!r} is not a time: use ISO 8601, e.g. 2026-08-01 or 2026-08-01T12:00:00Z", EXIT_USAGE
        )
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def time_range(args: argparse.Namespace, now: datetime) -> tuple[datetime, datetime]:
    """``[--since, --until)``, ``--until`` defaulting to now; a usage error unless since comes first."""
    from voucherify_ledger.ledger.keys import iso

    since = parse_time("--since", args.since)
    until = parse_time("--until", args.until) if args.until is not None else now
    if not since < until:
        said = "--until" if args.until is not None else "now (the default --until)"
        raise CliError(f"--since {iso(since)} must be before {said} {iso(until)}", EXIT_USAGE)
    return since, until


def check_arguments(args: argparse.Namespace) -> None:
    if args.status:
        given = [name for name, value in (("--since", args.since), ("--until", args.until)) if value is not None]
        given += ["--dry-run"] if args.dry_run else []
        if given:
            raise CliError(f"--status reads the ledger only: it takes no {', '.join(given)}", EXIT_USAGE)
    elif args.since is None:
        raise CliError("say what to reconcile: --since TIME [--until TIME], or --status", EXIT_USAGE)
    if args.requests_per_minute is not None and not 1 <= args.requests_per_minute <= MAX_REQUESTS_PER_MINUTE:
        raise CliError(f"--requests-per-minute must be 1-{MAX_REQUESTS_PER_MINUTE:,}", EXIT_USAGE)


def requests_per_minute(args: argparse.Namespace) -> int:
    """``--requests-per-minute``, else ``$RECONCILE_REQUESTS_PER_MINUTE``, else 60 locally and 10 otherwise."""
    if args.requests_per_minute is not None:
        return int(args.requests_per_minute)
    raw = os.environ.get(REQUESTS_PER_MINUTE_ENV, "").strip()
    if not raw:
        return LOCAL_REQUESTS_PER_MINUTE if args.local else REMOTE_REQUESTS_PER_MINUTE
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_REQUESTS_PER_MINUTE:
        raise CliError(
            f"{REQUESTS_PER_MINUTE_ENV} must be a number of requests (1-{MAX_REQUESTS_PER_MINUTE:,})", EXIT_USAGE
        )
    return value


# --- Voucherify: where, with which keys -----------------------------------------------------------------
@dataclass
class Api:
    """The Voucherify API a walk calls here, and where its keys come from (for messages: never the keys)."""

    url: str
    credentials: Any
    keys_from: str


def env_keys(*, required_for: str = "") -> Any:
    """``StaticCredentials`` of ``$VOUCHERIFY_APP_ID`` / ``$VOUCHERIFY_APP_TOKEN``, None when neither is set (a usage
    error when only one is, or when ``required_for`` says why they are needed)."""
    from voucherify_ledger.voucherify_api import StaticCredentials

    app_id, app_token = os.environ.get(APP_ID_ENV, "").strip(), os.environ.get(APP_TOKEN_ENV, "").strip()
    if app_id and app_token:
        return StaticCredentials(app_id, app_token)
    if app_id or app_token:
        raise CliError(f"set both {APP_ID_ENV} and {APP_TOKEN_ENV} (Project settings > Application keys)", EXIT_USAGE)
    if required_for:
        raise CliError(
            f"{required_for} calls Voucherify from this machine: set {APP_ID_ENV} and {APP_TOKEN_ENV} (Project "
            f"settings > Application keys; read-only use of the list)",
            EXIT_USAGE,
        )
    return None


def local_api(args: argparse.Namespace, target: Target) -> Api:
    """``make run``'s Voucherify: ``--api-url`` / ``$VOUCHERIFY_API_URL``, else its fake; the keys from the
    environment, else from the API secret in the embedded Secrets Manager."""
    url = (args.api_url or os.environ.get(API_URL_ENV, "")).strip().rstrip("/")
    if not url:
        try:
            url = local.voucherify_url()
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
    keys = env_keys()
    if keys is not None:
        return Api(url, keys, f"${APP_ID_ENV} / ${APP_TOKEN_ENV}")
    from voucherify_ledger.voucherify_api import SecretCredentials, api_secret_fetcher

    config = local.LocalAws.from_env()
    secrets = local.aws_client("secretsmanager", config.endpoint, args.region or config.region)
    credentials = SecretCredentials(local.API_SECRET_ID, fetch=api_secret_fetcher(300, secrets))
    return Api(url, credentials, f"the secret {local.API_SECRET_ID}{where.at(target)}")


def remote_api(args: argparse.Namespace) -> Api:
    keys = env_keys(required_for="a dry run against a deployed stack or table")
    url = (args.api_url or os.environ.get(API_URL_ENV, "") or DEFAULT_API_URL).strip().rstrip("/")
    return Api(url, keys, f"${APP_ID_ENV} / ${APP_TOKEN_ENV}")


def check_keys(api: Api) -> None:
    """Reads the keys once now, so that keys that cannot be read stop the command before anything is started."""
    from voucherify_ledger.secrets import SecretUnavailableError

    try:
        api.credentials.get()
    except SecretUnavailableError as exc:
        raise CliError(
            f"no Voucherify API keys: {exc} from {api.keys_from} (is `make run` running with the reconciler? "
            f"or set {APP_ID_ENV} and {APP_TOKEN_ENV})"
        ) from None


def service_for(target: Target, api: Api, rpm: int, *, local_api_allowed: bool) -> Any:
    from voucherify_ledger.errors import describe_errors
    from voucherify_ledger.reconcile.service import ReconcileService
    from voucherify_ledger.settings import ReconcilerSettings

    values = {
        "ledger_table_name": target.table_name,
        "voucherify_api_url": api.url,
        "voucherify_api_secret_id": local.API_SECRET_ID,  # the keys are api.credentials: never read by this name
        "reconcile_requests_per_minute": rpm,
        "voucherify_requests_per_minute": max(100, rpm + 1),  # the reconciler's share must leave the worker some
    }
    try:
        settings = ReconcilerSettings.model_validate(values, context={"local": local_api_allowed})
    except ValueError as exc:  # pydantic's ValidationError
        problems = "; ".join(describe_errors(exc, whole="settings")) if hasattr(exc, "errors") else str(exc)
        raise CliError(f"cannot reconcile with {api.url}: {problems}", EXIT_USAGE) from None
    client = ReconcileService.api_client(settings, api.credentials)
    return ReconcileService(settings, target.ledger(), client, credentials=api.credentials)


# --- the progress bar -----------------------------------------------------------------------------------
class ProgressBar:
    """``[####......]  42%  listed 1,200  recorded 30`` on one line of a terminal: how far into ``[since, until)``
    the walk has come (the ``created_at`` of the newest object listed), and the counts so far."""

    WIDTH = 30

    def __init__(self, since: datetime, until: datetime, stream: TextIO) -> None:
        self.since, self.until, self.stream = since, until, stream
        self.fraction = 0.0
        self.drawn = False

    def show(self, counts: dict[str, int], reached: datetime | None) -> None:
        if reached is not None:
            span = (self.until - self.since).total_seconds()
            done = (reached - self.since).total_seconds() / span if span > 0 else 1.0
            self.fraction = max(self.fraction, min(1.0, max(0.0, done)))
        filled = round(self.fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(
            f"\r[{bar}] {self.fraction:4.0%}  listed {counts.get('listed', 0):,}  "
            f"recorded {counts.get('recorded', 0) + counts.get('corrected', 0):,}"
        )
        self.stream.flush()
        self.drawn = True

    def finish(self, counts: dict[str, int]) -> None:
        """The walk reached ``until``: the whole bar, with the final counts."""
        self.fraction = 1.0
        self.show(counts, None)

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def progress_bar(since: datetime, until: datetime) -> ProgressBar | None:
    """A bar on stderr when it is a terminal; None on a pipe or a file."""
    stream = sys.stderr
    isatty = getattr(stream, "isatty", None)
    return ProgressBar(since, until, stream) if callable(isatty) and isatty() else None


def _counts() -> tuple[str, ...]:
    """The counts a run reports and a job adds up (the ledger's list of them)."""
    from voucherify_ledger.ledger.reconciliation import COUNTS

    return COUNTS


def _added(totals: dict[str, int], counts: Any) -> dict[str, int]:
    return {name: totals.get(name, 0) + int(getattr(counts, name, 0)) for name in _counts()}


def _deadline(seconds: float) -> Callable[[], float]:
    ends = _clock() + seconds
    return lambda: ends - _clock()


# --- running ------------------------------------------------------------------------------------------
def _run(target: Target, api: Api, work: Callable[[], Any]) -> Any:
    """``work()`` on the target's ledger; keys that cannot be read become a CliError naming where they come from."""
    from voucherify_ledger.secrets import SecretUnavailableError

    try:
        return read(target, lambda _ledger: work())
    except SecretUnavailableError as exc:
        raise CliError(f"no Voucherify API keys: {exc} (from {api.keys_from})") from None


def dry_run(service: Any, target: Target, api: Api, since: datetime, until: datetime) -> dict[str, Any]:
    """One walk of ``[since, until)`` counting what a run would record; writes nothing."""
    from voucherify_ledger.ledger.keys import iso
    from voucherify_ledger.reconcile.windows import Window

    bar = progress_bar(since, until)
    try:
        report = _run(
            target,
            api,
            lambda: service.run(
                _now(),
                time_left=_deadline(DRY_RUN_SECONDS),
                dry_run=True,
                window=Window(since, until),
                progress=(lambda counts, reached: bar.show(_added({}, counts), reached)) if bar else None,
            ),
        )
        if bar and report.done:
            bar.finish(_added({}, report.counts))
    finally:
        if bar:
            bar.close()
    found = report.as_dict()
    return {
        "dry_run": True,
        "job_id": None,
        "since": iso(since),
        "until": iso(until),
        "done": report.done,
        "runs": 1,
        "resume_after": None if report.done else found["resume_after"],
        "error": report.error,
        **{name: found[name] for name in _counts()},
        "unlisted_ids": found["unlisted_ids"],
    }


def local_backfill(service: Any, target: Target, api: Api, since: datetime, until: datetime) -> dict[str, Any]:
    """The backfill job of ``[since, until)`` started (or the same one continued) and run to its end here, one run
    after another; a run the lease keeps out waits for it, at most ``LEASE_WAIT_SECONDS``."""
    from voucherify_ledger.ledger.keys import iso
    from voucherify_ledger.ledger.reconciliation import job_id_for

    job, started = _run(target, api, lambda: service.start_backfill(since, until, _now()))
    if job.job_id != job_id_for(since, until):
        raise CliError(
            f"another backfill is running in table {target.table_name}{where.at(target)}: {job.job_id} "
            f"({iso(job.since)} to {iso(job.until)}, at {iso(job.resume_after) or 'its start'}); one runs at a time: "
            f"run `{PROG} reconcile --since {iso(job.since)} --until {iso(job.until)} --local` to finish it, then "
            "this again (see `reconcile --status --local`)",
            EXIT_BUSY,
        )
    print(
        f"{PROG}: backfill {job.job_id} {'started' if started else 'continued'}: {iso(since)} to {iso(until)}, "
        f"Voucherify at {api.url}",
        file=sys.stderr,
    )
    store = service.ledger.reconciliation
    totals: dict[str, int] = {}
    summary: dict[str, Any] = {"dry_run": False, "job_id": job.job_id, "since": iso(since), "until": iso(until)}
    runs, done, error, resume_after = 0, False, None, None
    waiting_since: float | None = None
    bar = progress_bar(since, until)
    try:
        while True:
            running = _run(target, api, store.running_job)
            if running is None or running.job_id != job.job_id:  # finished meanwhile (by a scheduled run)
                done = True
                break
            before = dict(totals)

            def progress(counts: Any, reached: datetime | None, before: dict[str, int] = before) -> None:
                if bar:
                    bar.show(_added(before, counts), reached)

            time_left = _deadline(RUN_SECONDS)
            report = _run(target, api, partial(service.run, _now(), time_left=time_left, progress=progress))
            if not report.ran:  # another run holds the lease (make run's scheduled reconciler, say)
                waiting_since = _clock() if waiting_since is None else waiting_since
                if _clock() - waiting_since >= LEASE_WAIT_SECONDS:
                    raise CliError(
                        f"another reconciler run has held the ledger's lease for over {LEASE_WAIT_SECONDS:g} s: "
                        f"backfill {job.job_id} stays running (scheduled runs continue it; or run this again)",
                        EXIT_BUSY,
                    )
                _sleep(LEASE_RETRY_SECONDS)
                continue
            waiting_since = None
            runs += 1
            totals = _added(totals, report.counts)
            resume_after = report.as_dict()["resume_after"] or resume_after
            if report.error:
                error = report.error
                break
            if report.done:
                done = True
                if bar:
                    bar.finish(totals)
                break
    finally:
        if bar:
            bar.close()
    summary.update(done=done, runs=runs, started=started, resume_after=None if done else resume_after, error=error)
    return {**summary, **{name: totals.get(name, 0) for name in _counts()}}


def start_remote(args: argparse.Namespace, target: Target, since: datetime, until: datetime) -> dict[str, Any]:
    """The job started in the table (or the running one reported), and with --stack the reconciler invoked now."""
    from voucherify_ledger.ledger.keys import iso
    from voucherify_ledger.ledger.reconciliation import job_id_for

    # the function first: a stack without it (deployed before the reconciler) gets no job that nothing would run
    function = where._stack_output(args.stack, args.region, FUNCTION_OUTPUT) if args.stack else None
    job, started = read(target, lambda ledger: ledger.reconciliation.start_job(since, until, _now()))
    answer: dict[str, Any] = {**job.as_dict(), "started": started, "table": target.table_name}
    mine = job.job_id == job_id_for(since, until)
    if not mine:
        answer["requested"] = {"job_id": job_id_for(since, until), "since": iso(since), "until": iso(until)}
        answer["note"] = "another backfill is running (one at a time): yours was not started; ask again once it is done"
    if function is not None:
        answer["function_name"] = function
        answer["invoked"] = invoke_reconciler(function, args.region, job.job_id)
        if answer["invoked"] is not True:
            answer["error"] = answer.pop("invoked")
            answer["invoked"] = False
        elif mine:
            answer["note"] = "the reconciler runs now, then on its schedule until the job is done (see --status)"
    elif mine:
        answer["invoked"] = False
        answer["note"] = "the reconciler's next scheduled run starts the job (see --status)"
    return answer


def invoke_reconciler(function: str, region: str | None, job_id: str) -> bool | str:
    """``ReconcilerFunction`` invoked asynchronously (its run continues the running job): True, or why not."""
    client = where._aws_client("lambda", region)
    payload = json.dumps({"source": PROG, "job_id": job_id}).encode()
    try:
        answer = client.invoke(FunctionName=function, InvocationType="Event", Payload=payload)
    except Exception as exc:  # botocore's errors: refused (no lambda:InvokeFunction), unreachable
        return f"cannot invoke {function}: {aws_problem(exc)}"
    status = int(answer.get("StatusCode", 0))
    return True if status == 202 else f"invoking {function} answered {status}"


def status(target: Target) -> dict[str, Any]:
    """``ReconcileService.status()`` read from the ledger alone (no API keys, no settings): the checkpoint, the lease,
    the running backfill (or the last one) and the last scheduled run's counts. The budget and the overlap are the
    function's settings (template parameters), not the ledger's."""

    def reading(ledger: Any) -> dict[str, Any]:
        store = ledger.reconciliation
        state = store.state() or {}
        running = store.running_job()
        last_job = None if running else (store.job(str(state["last_job"])) if state.get("last_job") else None)
        return {
            "table": target.table_name,
            "checkpoint": state.get("checkpoint"),
            "lease_until": state.get("lease_until"),
            "running_job": running.as_dict() if running else None,
            "last_job": last_job.as_dict() if last_job else None,
            "last_run": state.get("last_run"),
        }

    found: dict[str, Any] = read(target, reading)
    return found


# --- the command ----------------------------------------------------------------------------------------
def run_reconcile(args: argparse.Namespace, out: TextIO) -> int:
    check_arguments(args)
    if args.status:
        print_json(status(resolve_target(args)), out)
        return EXIT_OK
    since, until = time_range(args, _now())
    if not args.local and not args.dry_run:  # the deployed reconciler runs the job, within its own budget
        target = resolve_target(args)
        answer = start_remote(args, target, since, until)
        print_json(answer, out)
        if answer.get("error"):
            print(f"{PROG}: {answer['error']}; the job stays started", file=sys.stderr)
            return EXIT_ERROR
        return EXIT_OK if "requested" not in answer else EXIT_BUSY
    rpm = requests_per_minute(args)  # usage errors before the ledger is looked for
    api = remote_api(args) if not args.local else None
    target = resolve_target(args)
    api = api or local_api(args, target)
    service = service_for(target, api, rpm, local_api_allowed=bool(args.local))
    check_keys(api)
    if args.dry_run:
        summary = dry_run(service, target, api, since, until)
    else:
        summary = local_backfill(service, target, api, since, until)
    print_json(summary, out)
    if summary["error"]:
        print(f"{PROG}: the walk stopped early: {summary['error']} (Voucherify at {api.url})", file=sys.stderr)
        return EXIT_ERROR
    if not summary["done"]:
        print(f"{PROG}: not done: stopped at {summary['resume_after']}", file=sys.stderr)
        return EXIT_BUSY
    return EXIT_OK


def register_reconcile(commands: Any, parent: argparse.ArgumentParser) -> None:
    reconcile = commands.add_parser(
        "reconcile",
        parents=[parent],
        help="record what Voucherify lists and the ledger lacks (a backfill of a time range), or --status",
        description="Walks Voucherify's GET /v1/redemptions over [--since, --until) and records in the ledger what "
        "it lacks (redemptions and rollbacks the webhooks never delivered), as a backfill job of the reconciler. "
        "--local runs the job to its end here, against make run's ledger and Voucherify; --stack starts the job in "
        "the stack's ledger and invokes its ReconcilerFunction now (scheduled runs continue it); --table starts the "
        "job for the next scheduled run. --dry-run walks the range here and writes nothing. Prints a JSON summary "
        "last (a progress bar goes to stderr when it is a terminal).",
        epilog="Exit codes: 0 done (--stack/--table: the job started or running), 2 wrong usage, 3 the ledger or "
        "Voucherify cannot be reached or refused (the summary says where the walk stopped), 5 not finished: another "
        "backfill is running, or another run kept the lease.",
    )
    reconcile.add_argument("--since", metavar="TIME", help="from this created_at (ISO 8601, e.g. 2026-08-01)")
    reconcile.add_argument("--until", metavar="TIME", help="up to this created_at, exclusive (default: now)")
    reconcile.add_argument(
        "--dry-run", dest="dry_run", action="store_true", help="count what would be recorded; write nothing"
    )
    reconcile.add_argument(
        "--status", action="store_true", help="the checkpoint, the running backfill and the last run (no API keys)"
    )
    reconcile.add_argument(
        "--requests-per-minute",
        dest="requests_per_minute",
        type=int,
        metavar="N",
        help=f"API calls a minute this command may make (default ${REQUESTS_PER_MINUTE_ENV}, else "
        f"{LOCAL_REQUESTS_PER_MINUTE} with --local, {REMOTE_REQUESTS_PER_MINUTE} otherwise): keep it, with what the "
        "worker and your other clients spend, under your plan's budget",
    )
    reconcile.add_argument(
        "--api-url",
        dest="api_url",
        metavar="URL",
        help=f"Voucherify's API, for walks made here (default ${API_URL_ENV}; else make run's fake with --local, "
        f"{DEFAULT_API_URL} otherwise)",
    )
    reconcile.set_defaults(run=run_reconcile)
