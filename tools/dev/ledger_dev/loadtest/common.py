"""What every phase shares: the request tag, the functions it hooks, the terminal states, the phase report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger_dev.harness.api_emulator import INTEGRATION_TIMEOUT_SECONDS
from voucherify_ledger.ledger.keys import (
    SUCCEEDED,
)

TAG_HEADER = "x-loadtest-delivery"  # which delivery and attempt: the fault hook's answers are matched on it
WEBHOOK_FUNCTIONS = ("RedemptionSucceededFunction", "RedemptionRollbackSucceededFunction")
TERMINAL_STATES = frozenset({SUCCEEDED, "ALREADY_ROLLED_BACK", "FAILED"})
MAX_REPORTED_PROBLEMS = 25
# A sender waits longer than the API's integration timeout: a function busy that long is answered 503 (as API
# Gateway does), not a sender's timeout that would look like a lost connection.
SENDER_TIMEOUT_SECONDS = INTEGRATION_TIMEOUT_SECONDS + 10


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


@dataclass
class PhaseReport:
    name: str
    ok: bool = True
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def fail(self, problems: Sequence[str]) -> None:
        if problems:
            self.ok = False
            self.problems.extend(problems)
