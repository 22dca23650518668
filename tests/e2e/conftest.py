"""The end-to-end tier: `make run`'s stack (moto server, the template's routes on 127.0.0.1, the fake Voucherify,
the SQS poller) started on ephemeral ports and driven over HTTP, the load test, the benchmark's programs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger_dev.local_stack import LocalStack
from support.local import start_stack


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """A local stack on ephemeral ports, found by ``redemption-ledger --local``; stopped after the test."""
    running = start_stack(monkeypatch)
    try:
        yield running
    finally:
        running.stop()
