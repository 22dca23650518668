"""The end-to-end tier: `make run`'s stack (moto server, the template's routes on 127.0.0.1, the fake Voucherify,
the SQS poller, the scheduled reconciler) started on ephemeral ports and driven over HTTP, the load test, the
benchmark's programs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ledger_dev import local_stack
from ledger_dev.local_stack import LocalStack
from support.local import start_stack


@pytest.fixture
def stack_config() -> dict[str, Any]:
    """``LocalConfig`` fields the ``stack`` fixture starts with beside its ephemeral ports: none (no history in the
    fake, no scheduled reconciler). A test gives its own with ``@pytest.mark.parametrize("stack_config", [{...}])``
    (or a module with a fixture of this name), e.g. ``{"history": 300, "history_webhooks": 0.3}`` or
    ``{"reconcile_seconds": 1}``."""
    return {}


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, stack_config: dict[str, Any]) -> Iterator[LocalStack]:
    """A local stack on ephemeral ports, found by ``redemption-ledger --local`` (its embedded AWS and its fake
    Voucherify); stopped after the test."""
    running = start_stack(monkeypatch, **stack_config)
    try:
        if running.fake_voucherify is not None:  # what reconcile --local calls
            port = running.fake_voucherify.url.rsplit(":", 1)[1]
            monkeypatch.setenv(local_stack.VOUCHERIFY_PORT_ENV, port)
        yield running
    finally:
        running.stop()
