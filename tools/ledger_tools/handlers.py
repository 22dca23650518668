"""Imports a function's handler as Lambda would: from its ``CodeUri`` and ``Handler`` in the template."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import Any

from ledger_tools.template import resources

Handler = Callable[[dict[str, Any], Any], Any]


def load_handler(logical_id: str, *, fresh: bool = True) -> Handler:
    """The handler of ``logical_id``. Its module is imported anew (``fresh``), so it reads the environment
    as it is now: set the function's environment before calling this."""
    from ledger_tools.template import PROJECT_ROOT

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
