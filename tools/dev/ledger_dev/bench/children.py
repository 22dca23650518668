"""The fresh interpreters the bench measures in (``bench/programs/``), and the environment they run with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger_dev.bench.seeds import EVENT_BUS_NAME, QUEUE_URL, REGION, TABLE_NAME
from ledger_dev.harness.template import function_environment

CHILD_TIMEOUT_SECONDS = 60
PROGRAMS_DIR = Path(__file__).resolve().parent / "programs"


def child_environment(logical_id: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The function's environment from the template (local stand-ins for the stack's resources), dummy
    credentials, no ``PYTHONPATH`` leaking in, and nothing pointing at a real endpoint."""
    refs = {"LedgerTable": TABLE_NAME, "RollbackQueue": QUEUE_URL, "LedgerEventBus": EVENT_BUS_NAME}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYTHON"))}
    env.update(function_environment(logical_id, refs))
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": logical_id,
            "PYTHONDONTWRITEBYTECODE": "",
        }
    )
    env.pop("PYTHONDONTWRITEBYTECODE")
    env.update(extra or {})
    return env


# The child scripts import nothing before the clock starts but ``time`` (built in); what they need to talk


@dataclass(frozen=True)
class ChildScript:
    """A program of ``bench/programs/`` and its arguments; ``spec`` (JSON) is written to a file passed after them."""

    program: str  # a file name in PROGRAMS_DIR
    args: tuple[str, ...] = ()
    spec: Any = None

    @property
    def path(self) -> Path:
        return PROGRAMS_DIR / self.program


def run_child(script: ChildScript, env: Mapping[str, str], args: Sequence[str] = ()) -> dict[str, Any]:
    """Runs ``script`` in a fresh interpreter (by its file path: no package of the dev tools is imported before it
    starts); its answer is the JSON it writes to the file named in its first argument."""
    with ExitStack() as files:
        out = files.enter_context(tempfile.NamedTemporaryFile("r", suffix=".json"))
        argv = [sys.executable, str(script.path), out.name, *script.args, *args]
        if script.spec is not None:
            spec = files.enter_context(tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8"))
            json.dump(script.spec, spec)
            spec.flush()
            argv.append(spec.name)
        done = subprocess.run(
            argv,
            env=dict(env),
            cwd=tempfile.gettempdir(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=CHILD_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"benchmark child failed ({done.returncode}):\n{done.stderr.decode()[-3000:]}")
        return json.loads(out.read())


@contextmanager
def aws_environment(extra: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            **extra,
        }
    )
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        if not os.environ.get(name):
            os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
