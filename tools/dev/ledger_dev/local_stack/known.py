"""What the local stack's fake Voucherify knows besides its history, so that its rollback endpoints answer as
Voucherify's would: ``404 not_found`` for a redemption Voucherify never made, a rollback for one it did.

In the local stack, Voucherify made exactly the redemptions whose webhooks reached the bundle, and those of the sample
payloads:

- ``know_samples(fake, payloads_dir)``: the redemptions of ``events/payloads/`` (the banner's curl examples, and what
  the ``events/`` files of ``sam local invoke`` record, straight into the embedded AWS);
- ``learning(handler, fake_of)``: a webhook function's handler that, for a delivery it answers ``200`` (``recorded``
  or ``duplicate``), has the fake know the redemptions it names (``FakeVoucherify.know_webhook``) — a curl of the
  banner, a test's or the load test's deliveries alike. A quarantined, refused or failed delivery teaches nothing.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger_dev.harness.apigw import response_parts

if TYPE_CHECKING:
    from ledger_dev.fake_voucherify import FakeVoucherify

log = logging.getLogger("ledger_dev.local_stack")

Handler = Callable[[dict[str, Any], Any], Any]
ACCEPTED = frozenset({"recorded", "duplicate"})  # the answers of a delivery the ledger holds


def know_samples(fake: FakeVoucherify, payloads_dir: Path) -> list[str]:
    """The redemptions of every sample payload in ``payloads_dir`` known to ``fake``: the ids newly known."""
    known: list[str] = []
    for path in sorted(payloads_dir.glob("*.json")) if payloads_dir.is_dir() else []:
        known += fake.know_webhook(path.read_bytes())
    return known


def delivered_body(event: dict[str, Any]) -> bytes | None:
    """The body of an API Gateway HTTP API event as the sender sent it (None when it cannot be read)."""
    body = event.get("body")
    if not isinstance(body, str):
        return None
    if not event.get("isBase64Encoded"):
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None


def accepted(answer: Any) -> bool:
    """A handler's answer says the ledger holds the delivery (``200``, ``recorded`` or ``duplicate``)."""
    try:
        status, _, payload = response_parts(answer)
        return status == 200 and json.loads(payload).get("status") in ACCEPTED
    except (TypeError, ValueError, AttributeError):
        return False


def learning(handler: Handler, fake_of: Callable[[], FakeVoucherify | None]) -> Handler:
    """``handler``, after which the fake (``fake_of()``, read on every delivery) knows what an accepted delivery
    names. Learning never changes the answer, nor fails the delivery."""

    @functools.wraps(handler)  # its module too: hooks find the function's module through the handler
    def handle(event: dict[str, Any], context: Any) -> Any:
        answer = handler(event, context)
        fake = fake_of()
        if fake is not None and accepted(answer):
            body = delivered_body(event)
            if body is not None:
                try:
                    fake.know_webhook(body)
                except Exception:  # a fake's bookkeeping never fails a delivery the ledger holds
                    log.exception("the fake Voucherify could not learn a delivery's redemptions")
        return answer

    return handle
