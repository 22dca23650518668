"""``voucherify_ledger.tracing``: with the Tracing parameter Off a handler is left as it is and no tracing code is
imported; On, it runs inside Powertools' Tracer, which patches botocore and http.client only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from ledger_dev.harness.template import PROJECT_ROOT
from voucherify_ledger import tracing

PROBE = """
import json, sys
from voucherify_ledger.tracing import traced
def handler(event, context):
    return {"echo": event}
wrapped = traced(handler)
print(json.dumps({
    "same": wrapped is handler,
    "answer": wrapped({"a": 1}, None),
    "xray_loaded": "aws_xray_sdk" in sys.modules,
    "tracer_loaded": "aws_lambda_powertools.tracing" in sys.modules,
}))
"""


def probe(tracing_value: str | None) -> dict[str, Any]:
    """A fresh interpreter (nothing imported before): what ``traced`` does and what it loaded."""
    env = {k: v for k, v in os.environ.items() if k != tracing.TRACING_ENV}
    if tracing_value is not None:
        env[tracing.TRACING_ENV] = tracing_value
    env["PYTHONPATH"] = str(PROJECT_ROOT / "layers" / "shared")
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("value", [None, "Off"])
def test_off_leaves_the_handler_and_loads_no_tracing_code(value: str | None) -> None:
    assert probe(value) == {"same": True, "answer": {"echo": {"a": 1}}, "xray_loaded": False, "tracer_loaded": False}


def test_on_runs_the_handler_inside_the_tracer() -> None:
    result = probe("On")
    assert result["same"] is False and result["answer"] == {"echo": {"a": 1}}
    assert result["xray_loaded"] and result["tracer_loaded"]


def test_only_botocore_and_http_client_are_patched_and_answers_stay_out_of_traces() -> None:
    assert tracing.PATCHED_MODULES == ("botocore", "httplib")
    source = (PROJECT_ROOT / "layers" / "shared" / "voucherify_ledger" / "tracing.py").read_text(encoding="utf-8")
    assert "capture_response=False" in source


def test_every_function_is_traced_outermost() -> None:
    for app in sorted((PROJECT_ROOT / "functions").glob("*/app.py")):
        text = app.read_text(encoding="utf-8")
        decorators = text.split("def lambda_handler(", 1)[0].rstrip().splitlines()
        stack = [line for line in decorators if line.startswith("@")]
        assert stack and stack[0].startswith("@traced"), app
