"""The operator CLI as the tests run it: in-process, its output captured."""

from __future__ import annotations

import io
import json
from typing import Any

from redemption_ledger_cli import cli


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``redemption-ledger ARGV``: its exit code and what it printed."""
    out = io.StringIO()
    return cli.main(argv, out=out), out.getvalue()


def cli_json(*argv: str) -> tuple[int, Any]:
    """``redemption-ledger ARGV``: its exit code and the JSON it printed."""
    code, text = run_cli(list(argv))
    return code, json.loads(text or "null")
