"""``ReconcilerFunction`` on a schedule of the local stack's own: what its ``ScheduleV2`` event does in AWS.

``schedule_of(logical_id, refs)`` reads the function's schedule from the template (its ``ScheduleV2`` / ``Schedule``
event, ``State`` resolved with the template's conditions and the stack's parameters: ``ReconcileSchedule=Off``
disables it); ``ScheduledReconciler`` is the background service that invokes the function's real handler (loaded by
``stack.function()``, its environment from the template) every ``interval`` seconds with the event EventBridge
Scheduler sends a target without an input, ``{}``, and logs each run's counts.

Locally the interval is ``LOCAL_RECONCILE_SECONDS`` (default 60), not the template's expression (rate(1 hour)), and
each invocation's context gives it ``LOCAL_RECONCILE_TIMEOUT_SECONDS`` (60 s) instead of the template's Timeout
(900 s): the run stops 20 s before that and saves where it got to, as it would in Lambda, and the next run goes on.
Runs never overlap (one thread: the next is ``interval`` after the last ended). A stop of the stack does not wait
for a run: a run waiting for the API budget's next token ends then, as if out of time (its position saved, its lease
released), and one still going after ``SHUTDOWN_TIMEOUT_SECONDS`` is left to its daemon thread.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledger_dev.harness.apigw import LambdaContext
from ledger_dev.harness.functions import LocalFunction, function_setting
from ledger_dev.harness.template import load_template, resources
from ledger_dev.local_stack.config import (
    LOCAL_RECONCILE_TIMEOUT_SECONDS,
    RECONCILE_SECONDS_ENV,
    RECONCILER_FUNCTION,
)
from ledger_dev.local_stack.services import SHUTDOWN_TIMEOUT_SECONDS

if TYPE_CHECKING:
    from ledger_dev.local_stack.stack import LocalStack

log = logging.getLogger("ledger_dev.local_stack")

SCHEDULE_EVENT_TYPES = ("ScheduleV2", "Schedule")
SCHEDULED_EVENT: dict[str, Any] = {}  # what EventBridge Scheduler hands a Lambda target without an Input


@dataclass(frozen=True)
class Schedule:
    """A function's schedule event in the template: its name, expression and whether it is enabled."""

    event: str
    kind: str
    expression: str
    enabled: bool


class _Unresolvable(Exception):
    pass


def _value(node: Any, refs: Mapping[str, str], conditions: Mapping[str, Any]) -> Any:
    """An intrinsic function's value, for the few a schedule's properties use (Ref, If, Equals, Not, And, Or)."""
    if isinstance(node, str | int | float | bool):
        return node
    if isinstance(node, dict) and len(node) == 1:
        ((name, args),) = node.items()
        if name == "Ref":
            if args not in refs:
                raise _Unresolvable(args)
            return refs[args]
        if name == "Condition":
            return _condition(args, refs, conditions)
        if name == "Fn::If":
            chosen = args[1] if _condition(args[0], refs, conditions) else args[2]
            return _value(chosen, refs, conditions)
        if name == "Fn::Equals":
            return str(_value(args[0], refs, conditions)) == str(_value(args[1], refs, conditions))
        if name == "Fn::Not":
            return not _value(args[0], refs, conditions)
        if name == "Fn::And":
            return all(_value(arg, refs, conditions) for arg in args)
        if name == "Fn::Or":
            return any(_value(arg, refs, conditions) for arg in args)
    raise _Unresolvable(repr(node))


def _condition(name: str, refs: Mapping[str, str], conditions: Mapping[str, Any]) -> bool:
    if name not in conditions:
        raise _Unresolvable(name)
    return bool(_value(conditions[name], refs, conditions))


def schedule_of(logical_id: str, refs: Mapping[str, str]) -> Schedule | None:
    """The function's schedule event (the first ``ScheduleV2`` / ``Schedule``), or None when it has none; its
    ``State`` / ``Enabled`` and expression resolved from ``refs`` (parameters, overrides included)."""
    function = resources("AWS::Serverless::Function").get(logical_id)
    if function is None:
        return None
    conditions = load_template().get("Conditions") or {}
    for name, event in (function["Properties"].get("Events") or {}).items():
        if event.get("Type") not in SCHEDULE_EVENT_TYPES:
            continue
        props = event.get("Properties") or {}
        try:
            expression = str(_value(props.get("ScheduleExpression", ""), refs, conditions))
            state = _value(props["State"], refs, conditions) if "State" in props else None
            enabled = _value(props.get("Enabled", True), refs, conditions)
        except _Unresolvable as unknown:
            log.warning("%s: its schedule names %s, which the local stack cannot resolve: taken as on", name, unknown)
            expression, state, enabled = str(props.get("ScheduleExpression", "")), None, True
        on = str(state).upper() != "DISABLED" if state is not None else enabled not in (False, "false", "False")
        return Schedule(name, str(event["Type"]), expression, on)
    return None


class ScheduledReconciler:
    """Invokes ``function`` every ``interval`` seconds with ``{}``, one run at a time, until stopped.

    ``runs`` holds each run's summary (what the handler answered), ``failures`` the invocations that raised;
    ``wait_for_runs(n, timeout)`` waits for the n-th."""

    name = "reconciler"

    def __init__(
        self,
        interval: float,
        *,
        schedule: Schedule,
        function: str = RECONCILER_FUNCTION,
        timeout_seconds: float = LOCAL_RECONCILE_TIMEOUT_SECONDS,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive (0 means no scheduled reconciler: do not start one)")
        self.interval, self.schedule, self.function_name = interval, schedule, function
        self.timeout_seconds = timeout_seconds
        self.template_timeout_seconds = float(function_setting(function, "Timeout", 3))
        self.runs: list[dict[str, Any]] = []
        self.failures = 0
        self._function: LocalFunction | None = None
        self._stop = threading.Event()
        self._ran = threading.Condition()
        self._thread: threading.Thread | None = None

    # --- service ------------------------------------------------------------------------------------------
    def start(self, stack: LocalStack) -> None:
        self._function = stack.function(self.function_name)
        self._cut_budget_waits_on_stop(self._function)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"local-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(SHUTDOWN_TIMEOUT_SECONDS)
            if self._thread.is_alive():
                log.warning(
                    "%s: a run was still going after %.0f s; left to finish on its own",
                    self.name,
                    SHUTDOWN_TIMEOUT_SECONDS,
                )
            self._thread = None

    def describe(self) -> list[str]:
        return [
            f"reconciler    {self.function_name} every {self.interval:g} s ({RECONCILE_SECONDS_ENV}; the template's "
            f"{self.schedule.kind} {self.schedule.event}: {self.schedule.expression}), each run given "
            f"{self.timeout_seconds:.0f} s here (its Timeout: {self.template_timeout_seconds:.0f} s)"
        ]

    # --- runs ---------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def run_once(self) -> dict[str, Any] | None:
        """One scheduled invocation now: the handler's summary, None when it raised (logged)."""
        function = self._function
        if function is None:
            raise RuntimeError("start the service first")
        with function.lock:  # one Lambda instance: one event at a time (ReservedConcurrentExecutions: 1)
            function.invocations += 1
            context = LambdaContext(
                function_name=function.logical_id,
                memory_limit_in_mb=function.memory_mb,
                timeout_seconds=self.timeout_seconds,
                region=function.region,
            )
            started = time.monotonic()
            try:
                summary = function.handler(dict(SCHEDULED_EVENT), context)
            except Exception:
                self.failures += 1
                log.exception("%s: the scheduled run failed", function.logical_id)
                return None
            took = time.monotonic() - started
        log.log(logging.WARNING if summary.get("error") else logging.INFO, "%s", run_line(function, summary, took))
        with self._ran:
            self.runs.append(summary)
            self._ran.notify_all()
        return summary

    def wait_for_runs(self, count: int = 1, timeout: float = 10.0) -> bool:
        """True once ``count`` runs have answered; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._ran:
            while len(self.runs) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._ran.wait(left)
        return True

    def _cut_budget_waits_on_stop(self, function: LocalFunction) -> None:
        """The handler's module keeps its ``ReconcileService`` as ``service``; its ``sleep`` (the wait for the API
        budget's next token) becomes one a stop of the stack ends, as if the run were out of time."""
        from voucherify_ledger.reconcile.windows import OutOfTime

        module = sys.modules.get(getattr(function.handler, "__module__", "") or "")
        service = getattr(module, "service", None)
        if service is None or not hasattr(service, "sleep"):
            log.warning("%s: no module-level service with a sleep: a stop waits for its run", function.logical_id)
            return
        stopping = self._stop

        def sleep(seconds: float) -> None:
            if stopping.wait(seconds):
                raise OutOfTime("the local stack is stopping")

        service.sleep = sleep


def run_line(function: LocalFunction, summary: Mapping[str, Any], took: float) -> str:
    """One line of a run's counts, as the harness logs the API's requests."""
    if not summary.get("ran", True):
        return f"{function.logical_id} (scheduled): another run holds the lease; nothing done ({took * 1000:.0f} ms)"
    what = f"backfill job {summary['job_id']}" if summary.get("job_id") else "scheduled run"
    counts = ", ".join(
        f"{name} {summary.get(name, 0)}"
        for name in ("listed", "recorded", "corrected", "unchanged", "unreadable", "api_calls")
    )
    if summary.get("error"):
        state = f"stopped early: {summary['error']}"
    elif summary.get("done"):
        state = "done"
    else:
        state = f"out of time at {summary.get('resume_after') or 'its start'}"
    return (
        f"{function.logical_id} ({what} {summary.get('after')} to {summary.get('before')}): {counts}; {state} "
        f"({took * 1000:.0f} ms)"
    )
