"""The faults the fake injects on demand (``Fault``), and Voucherify's documented error answers (``ERRORS``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any, Literal

# The documented error answers: (HTTP status, message, details) — redemptions.json's examples.
ERRORS: dict[str, tuple[int, str, str]] = {
    "already_rolled_back": (400, "Already rolled back", "Redemption has been already rolled back."),
    "invalid_redemption": (
        400,
        "Invalid redemption",
        "You can rollback only a single redemption. Use different endpoint for stacked redemption.",
    ),
    "invalid_redemption_parent": (
        400,
        "Invalid redemption parent",
        "You can rollback only a redemption that does not have parent redemption.",
    ),
    "invalid_order": (400, "Invalid order", "Order is not related with redemption."),
    "invalid_customer": (400, "Invalid customer", "Customer is not related with redemption."),
    "not_found": (404, "Resource not found", "Cannot find {type} with id {id}"),
    "unauthorized": (401, "Unauthorized", "Invalid X-App-Id or X-App-Token."),
    "forbidden": (403, "Forbidden", "The API key may not roll back redemptions."),
}

FaultKind = Literal["status", "error", "rate_limit", "timeout", "drop", "latency", "failure"]
FAULT_KINDS: tuple[str, ...] = ("status", "error", "rate_limit", "timeout", "drop", "latency", "failure")


@dataclass
class Fault:
    """One injected misbehaviour. The first matching fault (other than ``latency``) decides the answer.

    - ``status``: answer ``status`` (e.g. 500, 502, 503) with a Voucherify-style error body;
    - ``error``: the documented error ``key`` (``not_found``, ``invalid_order``, ``unauthorized``, …), naming
      ``resource_id`` / ``resource_type`` when given (``not_found``: the redemption unless told);
    - ``rate_limit``: 429 with ``Retry-After: retry_after`` and ``X-Rate-Limit-*``;
    - ``timeout``: hang ``seconds`` (past the client's read timeout), then close without answering;
    - ``drop``: close the connection without answering;
    - ``latency``: wait ``seconds``, then answer normally (adds to other faults); with ``until`` (a
      ``threading.Event``, from Python only) the answer waits until it is set, at most ``seconds``: a test holds
      a call in flight for as long as it takes, however slowly a loaded machine runs;
    - ``failure``: 200 with a ``redemption_rollback`` whose result is FAILURE.

    ``apply``: for ``timeout``/``drop``, roll back first (the answer is lost, not the rollback).
    ``times``: requests it hits (None: until cleared); ``probability``: share of matching requests.
    """

    kind: FaultKind
    status: int = 503
    key: str | None = None
    retry_after: float = 1.0
    seconds: float = 30.0
    redemption_id: str | None = None
    times: int | None = 1
    probability: float = 1.0
    apply: bool = False
    failure_code: str = "customer_rules_violated"
    failure_message: str = "Customer does not match the validation rules."
    resource_id: str | None = None
    resource_type: str | None = None
    hits: int = 0
    until: threading.Event | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (one of {', '.join(FAULT_KINDS)})")
        if self.until is not None and (self.kind != "latency" or not isinstance(self.until, threading.Event)):
            raise ValueError("until is a threading.Event, for a latency fault")
        if self.kind == "error" and self.key not in ERRORS:
            raise ValueError(f"unknown error key {self.key!r} (one of {', '.join(ERRORS)})")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")

    def matches(self, redemption_id: str | None) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return self.redemption_id is None or self.redemption_id == redemption_id

    def as_dict(self) -> dict[str, Any]:
        """The fault as JSON (``until``, an event, only says whether it still holds answers)."""
        document = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "until"}
        if self.until is not None:
            document["held"] = not self.until.is_set()
        return document
