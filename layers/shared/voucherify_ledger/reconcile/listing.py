"""One page of ``GET /v1/redemptions`` for the window walk, paced to the reconciler's share of the API budget.

Each call takes a token of the reconciler's own bucket (``RECONCILE_REQUESTS_PER_MINUTE``: the rollback worker paces
itself to the rest). A 429 pauses the bucket for as long as Voucherify says and the call is tried again, as the
worker does; a 5xx, a timeout or a dropped connection is tried again at most ``retries`` times; refused keys are
re-read once (a rotated secret). What still gives no page raises ``ListingFailed``: the run stops there and the next
one continues.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from voucherify_ledger.ledger.keys import iso
from voucherify_ledger.reconcile.windows import EDGE, PAGE_SIZE, ListingFailed, OutOfTime, Page, Window
from voucherify_ledger.rollbacks.pacing import TokenBucket
from voucherify_ledger.voucherify_api import ApiResponse, VoucherifyUnavailableError


class ListClient(Protocol):
    @property
    def max_request_seconds(self) -> float: ...

    def list_redemptions(
        self, params: Mapping[str, str | int], *, deadline_seconds: float | None = None
    ) -> ApiResponse: ...


class Credentials(Protocol):
    def refresh(self) -> bool: ...


def list_params(window: Window, page: int) -> dict[str, str | int]:
    """The query of one page: oldest first, the window's start one millisecond early (``after`` may be exclusive)."""
    return {
        "limit": PAGE_SIZE,
        "page": page,
        "order": "created_at",
        "created_at[after]": iso(window.after - EDGE),
        "created_at[before]": iso(window.before),
    }


def page_of(answer: ApiResponse) -> Page:
    body = answer.body
    if not isinstance(body, dict):
        raise ListingFailed(f"the list answered {answer.status} without a JSON object")
    objects, total = body.get("redemptions"), body.get("total")
    if not isinstance(objects, list) or not isinstance(total, int) or isinstance(total, bool):
        raise ListingFailed("the list's answer has no redemptions array or no total")
    return Page([obj for obj in objects if isinstance(obj, dict)], total)


class ApiLister:
    """A ``Lister`` on ``client``, paced by ``bucket``, never waiting past ``time_left()``."""

    def __init__(
        self,
        client: ListClient,
        bucket: TokenBucket,
        *,
        credentials: Credentials | None = None,
        time_left: Callable[[], float],
        retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        metric: Callable[[str, float], None] = lambda name, value: None,
    ) -> None:
        self.client, self.bucket, self.credentials = client, bucket, credentials
        self.time_left, self.retries, self.sleep, self.metric = time_left, retries, sleep, metric
        self.calls = 0

    def __call__(self, window: Window, page: int) -> Page:
        params = list_params(window, page)
        problem = "no attempt"
        failures = 0
        refreshed = False
        while failures <= self.retries:
            answer = self._send(params)
            if isinstance(answer, str):
                problem, failures = answer, failures + 1
                continue
            if answer.ok:
                return page_of(answer)
            problem = f"{answer.status} {answer.error_key or ''}".strip()
            if answer.status == 429:
                self.metric("VoucherifyRateLimited", 1)
                self.bucket.pause(answer.retry_after() or 1.0)
                continue  # honoured, not counted as a failure: the bucket waits
            if answer.status in (401, 403):
                self.metric("VoucherifyAuthFailures", 1)
                if not refreshed and self.credentials is not None and self.credentials.refresh():
                    refreshed = True
                    continue
                break
            if answer.status < 500:
                break
            failures += 1
        raise ListingFailed(f"GET /v1/redemptions: {problem}")

    def _send(self, params: Mapping[str, Any]) -> ApiResponse | str:
        """The answer, or why there is none; OutOfTime when the budget leaves no call in the time left."""
        room = self.time_left() - self.client.max_request_seconds
        wait = self.bucket.reserve(max(0.0, room)) if room > 0 else None
        if wait is None:
            raise OutOfTime("no call fits the API budget before the run's time is up")
        if wait:
            self.sleep(wait)
        self.calls += 1
        self.metric("VoucherifyApiCalls", 1)
        try:
            return self.client.list_redemptions(params, deadline_seconds=self.time_left())
        except VoucherifyUnavailableError as exc:
            return exc.kind
