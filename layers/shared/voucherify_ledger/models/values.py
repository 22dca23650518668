"""The value types of the payload models: what the ledger stores is held to what DynamoDB can store, what it does not
store is taken as Voucherify sends it.

- ``LedgerAmount``: an integer amount the ledger stores (the smallest currency unit, credits or points): fewer than
  39 digits, as DynamoDB keeps at most 38 significant ones.
- ``LedgerNumber``: an OpenAPI ``number`` the ledger stores (a gift card's balance): an integer or a finite
  fraction, of a magnitude below 10^38 and, when not zero, at least 10^-130 (DynamoDB's smallest). The ledger
  writes a fraction as the decimal the JSON number spells (``12.5`` → ``12.5``).
- ``Number``: an OpenAPI ``number`` the ledger does not store (``amount_off``, ``amount_limit``, ``fixed_amount``,
  ``code_config.length`` …): any JSON number; the schema types them ``number``, so a fraction is no error.

Enums are closed only where the ledger decides on the value (a redemption's ``result`` and ``status``). Elsewhere a
field is typed ``Literal[<the values the schema lists>] | str``: the known values stay documented, and a value
Voucherify adds later is kept as received instead of quarantining the whole delivery.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import AfterValidator, Field

MAX_MAGNITUDE = 10**38  # DynamoDB keeps 38 significant digits: an integer below this always fits
MIN_MAGNITUDE = 1e-130  # DynamoDB's smallest positive number

LedgerAmount = Annotated[int, Field(gt=-MAX_MAGNITUDE, lt=MAX_MAGNITUDE)]


def _storable(value: int | float) -> int | float:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("a number the ledger stores must be finite")
        if value and abs(value) < MIN_MAGNITUDE:
            raise ValueError("a number the ledger stores must be 0 or at least 1E-130 in magnitude")
    if abs(value) >= MAX_MAGNITUDE:
        raise ValueError("a number the ledger stores must be below 10^38 in magnitude")
    return value


LedgerNumber = Annotated[int | float, AfterValidator(_storable)]
Number = int | float
