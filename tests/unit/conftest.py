"""The unit tier: no AWS and no sockets. A unit test that opens a connection fails at once and names where it
belongs (tests/integration for moto and the in-process fakes, tests/e2e for the local stack)."""

from __future__ import annotations

import socket
from typing import Any

import pytest


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a unit test opened a connection: it belongs in tests/integration or tests/e2e")


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unit-tests-have-no-aws")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unit-tests-have-no-aws")
