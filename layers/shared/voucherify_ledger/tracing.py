"""X-Ray tracing of a function, when the stack's ``Tracing`` parameter is ``On`` (``LEDGER_TRACING``).

Off (the default), ``traced`` hands the handler back as it is: Powertools' Tracer and the X-Ray SDK are never
imported, so a function pays nothing for tracing it does not do. On, the handler runs inside Powertools' Tracer,
which patches botocore and http.client (the Voucherify API calls) and nothing else. Answers are not recorded in the
trace (``capture_response=False``): a trace holds timings, calls and errors, never a delivery's content.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

TRACING_ENV = "LEDGER_TRACING"
PATCHED_MODULES = ("botocore", "httplib")

Handler = TypeVar("Handler", bound=Callable[..., Any])


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(TRACING_ENV, "Off") == "On"


def traced(handler: Handler) -> Handler:
    """``handler``, traced when tracing is on (a decorator, outermost)."""
    if not enabled():
        return handler
    from aws_lambda_powertools.tracing import Tracer  # imports the X-Ray SDK: only here

    tracer = Tracer(patch_modules=PATCHED_MODULES)
    return cast(Handler, tracer.capture_lambda_handler(handler, capture_response=False))
