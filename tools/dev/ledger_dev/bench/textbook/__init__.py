"""The textbook baseline: the webhook and the rollback worker a competent team writes from the Powertools
documentation, never deployed, measured by ``make bench`` beside the bundle (the bundle must cost less).

- ``webhook/app.py``: one function behind both webhook URLs (``APIGatewayHttpResolver``, a route per event family),
  ``hmac.compare_digest`` of ``x-voucherify-signature`` with the bundle's secret, the Powertools parser with the
  bundle's payload models, ``@idempotent_function`` (``DynamoDBPersistenceLayer``) around a ``put_item`` of the raw
  delivery, Logger / Metrics / Tracer as documented;
- ``worker/app.py``: ``BatchProcessor`` (SQS) and ``@idempotent_function`` around ``POST
  /v1/redemptions/{id}/rollback`` (``urllib``), then a ``put_item`` of the result.

Both read the bundle's own environment variables (``LEDGER_TABLE_NAME``, ``WEBHOOK_SECRET_ID``,
``VOUCHERIFY_API_URL`` …), so they run with the environment ``template.yaml`` gives the function they stand beside.
There is no textbook reconciler or ledger-events function: those rows have no textbook figure.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger_dev.bench.seeds import WEBHOOK_FUNCTIONS, WORKER_FUNCTION

TEXTBOOK_DIR = Path(__file__).resolve().parent
# The bundle's function → the textbook program that does its job (a folder of TEXTBOOK_DIR holding ``app.py``).
TEXTBOOK_OF: dict[str, str] = {**dict.fromkeys(WEBHOOK_FUNCTIONS, "webhook"), WORKER_FUNCTION: "worker"}


def textbook_dir(logical_id: str) -> Path:
    """The folder of the textbook program standing beside ``logical_id`` (KeyError when there is none)."""
    return TEXTBOOK_DIR / TEXTBOOK_OF[logical_id]


def load_textbook(logical_id: str) -> tuple[Callable[[dict[str, Any], Any], Any], Any]:
    """The textbook handler standing beside ``logical_id`` and its module, imported anew (it reads the environment
    as it is now: set the function's environment first)."""
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    DEFAULT_PROVIDERS.clear()  # Powertools' secret provider (and its client) made again, for this environment
    path = textbook_dir(logical_id) / "app.py"
    name = f"ledger_dev_textbook_{TEXTBOOK_OF[logical_id]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, f"cannot import {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.lambda_handler, module


__all__ = ["TEXTBOOK_DIR", "TEXTBOOK_OF", "load_textbook", "textbook_dir"]
