"""``make run``'s stack as the end-to-end tests start and drive it: on ephemeral ports, with short retry delays."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from ledger_dev import local_stack
from ledger_dev.local_stack import LocalConfig, LocalStack
from support.documents import compact, payload
from voucherify_ledger.webhooks.auth import sign

SUCCEEDED_PATH = "/webhooks/redemption-succeeded"
FAST_RETRIES = {
    "ROLLBACK_RETRY_BASE_SECONDS": "0.5",
    "ROLLBACK_RETRY_MAX_SECONDS": "2",
    "VOUCHERIFY_READ_TIMEOUT_SECONDS": "3",
}


def deliver_seed(stack: LocalStack) -> None:
    """POSTs the seed redemption.succeeded, signed, to the stack's webhook API; it must be answered 200."""
    deliver_redemption(stack, payload("redemption_succeeded"))


def deliver_redemption(stack: LocalStack, document: dict[str, Any]) -> None:
    """POSTs a redemption.succeeded payload, compact and signed, as Voucherify does; it must be answered 200."""
    raw = compact(document)
    request = urllib.request.Request(
        stack.api_url + SUCCEEDED_PATH,
        data=raw,
        headers={"content-type": "application/json", "x-voucherify-signature": sign(stack.config.signing_secret, raw)},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        assert answer.status == 200


def start_stack(monkeypatch: pytest.MonkeyPatch, **config: Any) -> LocalStack:
    """A started local stack on ephemeral ports, found by ``--local`` (the caller stops it)."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SAM_LOCAL", "VOUCHERIFY_API_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(name, value)
    stack = LocalStack(LocalConfig(aws_port=0, api_port=0, voucherify_port=0, **config)).start()
    monkeypatch.setenv(local_stack.AWS_PORT_ENV, str(stack.config.aws_port))  # what --local reads
    return stack
