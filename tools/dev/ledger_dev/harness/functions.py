"""The bundle's functions as Lambda runs them: a handler imported from its ``CodeUri`` and ``Handler`` in the
template (``load_handler``), and ``LocalFunction``, one loaded instance that handles one event at a time."""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger_dev.harness.api_emulator import INTEGRATION_TIMEOUT_SECONDS
from ledger_dev.harness.apigw import LambdaContext
from ledger_dev.harness.template import PROJECT_ROOT, load_template, resources
from redemption_ledger_cli.local import REGION

log = logging.getLogger("ledger_dev.harness.functions")

Handler = Callable[[dict[str, Any], Any], Any]


def load_handler(logical_id: str, *, fresh: bool = True) -> Handler:
    """The handler of ``logical_id``. Its module is imported anew (``fresh``), so it reads the environment
    as it is now: set the function's environment before calling this."""
    props = resources("AWS::Serverless::Function")[logical_id]["Properties"]
    module_name, _, function_name = props["Handler"].rpartition(".")
    path = PROJECT_ROOT / props["CodeUri"] / (module_name.replace(".", "/") + ".py")
    qualified = f"functions.{logical_id}.{module_name}"
    if not fresh and qualified in sys.modules:
        return getattr(sys.modules[qualified], function_name)
    spec = importlib.util.spec_from_file_location(qualified, path)
    assert spec and spec.loader, f"cannot import {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return getattr(module, function_name)


@dataclass
class LocalFunction:
    """One loaded function: like a single Lambda instance, it handles one event at a time."""

    logical_id: str
    handler: Callable[[dict[str, Any], Any], Any]
    environment: dict[str, str]
    timeout_seconds: float
    memory_mb: int
    region: str = REGION
    lock: threading.Lock = field(default_factory=threading.Lock)
    invocations: int = 0

    def invoke(self, event: dict[str, Any], *, wait: float = INTEGRATION_TIMEOUT_SECONDS) -> Any:
        """Runs the handler; ``TimeoutError`` when the instance stays busy longer than ``wait`` seconds."""
        if not self.lock.acquire(timeout=wait):
            raise TimeoutError(f"{self.logical_id} stayed busy for {wait:.0f} s")
        try:
            self.invocations += 1
            context = LambdaContext(
                function_name=self.logical_id,
                memory_limit_in_mb=self.memory_mb,
                timeout_seconds=self.timeout_seconds,
                region=self.region,
            )
            started = time.monotonic()
            result = self.handler(event, context)
            took = time.monotonic() - started
            if took > self.timeout_seconds:
                log.warning(
                    "%s took %.1f s, longer than its Timeout of %.0f s: Lambda would have stopped it",
                    self.logical_id,
                    took,
                    self.timeout_seconds,
                )
            return result
        finally:
            self.lock.release()


def function_setting(logical_id: str, name: str, default: Any) -> Any:
    """A numeric property (``Timeout``, ``MemorySize``): the function's own, else the Globals', else ``default``."""
    own = resources("AWS::Serverless::Function")[logical_id]["Properties"].get(name)
    value = own if own is not None else load_template().get("Globals", {}).get("Function", {}).get(name, default)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default
