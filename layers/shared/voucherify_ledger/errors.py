"""What a pydantic ValidationError says, for a person: ``field.path: what was expected`` for each problem (at most
``MAX_REPORTED_ERRORS``), never the offending value, which may be personal data."""

from __future__ import annotations

import re

from pydantic import ValidationError

MAX_REPORTED_ERRORS = 20
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def describe_errors(
    exc: ValidationError, prefix: str = "", *, whole: str = "body", mask_keys: bool = False
) -> list[str]:
    """``field.path: what was expected`` for each problem, the path under ``prefix`` (``whole`` when the problem is
    the document itself). With ``mask_keys`` a key that does not look like a field name (``{"annie@lemon.com": …}``
    under a model that forbids unknown keys) is shown as ``<key>``."""
    described = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        parts = error["loc"]
        if mask_keys:
            parts = tuple(p if not isinstance(p, str) or _FIELD_NAME.match(p) else "<key>" for p in parts)
        location = ".".join(str(part) for part in (prefix, *parts) if part != "")
        described.append(f"{location or whole}: {error['msg']}")
    if len(described) > MAX_REPORTED_ERRORS:
        described = [*described[:MAX_REPORTED_ERRORS], f"… and {len(described) - MAX_REPORTED_ERRORS} more"]
    return described
