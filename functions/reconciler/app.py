"""Lambda entry point: one reconciler run per scheduled event (see voucherify_ledger.reconcile).

A run continues the running backfill job, or walks Voucherify's list from the checkpoint less the overlap; it stops
``SAVE_SECONDS`` before the invocation's deadline, so that where it got to is always saved, and answers its counts.
"""

import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from voucherify_ledger.reconcile.service import ReconcileService
from voucherify_ledger.tracing import traced

# What a run keeps of the invocation's time to record its counts and where it stopped, and release its lease.
SAVE_SECONDS = 20.0
UNITS = {"ReconcileLagSeconds": "Seconds"}

logger = Logger()
metrics = Metrics()


def metric(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=UNITS.get(name, "Count"), value=value)


service = ReconcileService.from_env(metric=metric)


@traced  # X-Ray, when the stack's Tracing parameter is On (voucherify_ledger.tracing)
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - SAVE_SECONDS
    report = service.run(datetime.now(UTC), time_left=lambda: deadline - time.monotonic())
    summary = report.as_dict()
    if report.error:
        logger.warning("reconcile run stopped early", extra=summary)
    else:
        logger.info("reconcile run", extra=summary)
    return summary
