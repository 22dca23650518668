"""The operator CLI as the tests run it: in-process, its output captured; moto's server for its ``--local`` runs."""

from __future__ import annotations

import io
import json
import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ledger_dev.harness.moto_patches import MotoServer, linear_update_validation
from redemption_ledger_cli import cli


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``redemption-ledger ARGV``: its exit code and what it printed."""
    out = io.StringIO()
    return cli.main(argv, out=out), out.getvalue()


def cli_json(*argv: str) -> tuple[int, Any]:
    """``redemption-ledger ARGV``: its exit code and the JSON it printed."""
    code, text = run_cli(list(argv))
    return code, json.loads(text or "null")


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server on 127.0.0.1 (an ephemeral port), with make run's patches and no line per request, for the
    CLI's ``--local`` tests; its endpoint."""
    requests_log = logging.getLogger("werkzeug")  # one line on stderr per request otherwise
    level = requests_log.level
    requests_log.setLevel(logging.ERROR)
    linear_update_validation()  # as make run's moto (moto_patches): an update's clause check in linear time
    server = MotoServer("127.0.0.1", 0, verbose=False)
    server.start()
    assert server.error is None
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        requests_log.setLevel(level)


def reset_moto(endpoint: str) -> None:
    """Empties the moto server (``/moto-api/reset``)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as answer:
        answer.read()
