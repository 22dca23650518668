"""The shapes of the Voucherify ids the ledger keys on, in one place.

Each id is a known prefix, then letters and digits: ``r_…`` a redemption (``rf_…`` a failed one), ``rr_…`` a
rollback (``rrf_…`` a failed one), ``ord_…`` an order, ``cust_…`` a customer, ``v_…`` a voucher. The tail is
not held to the hex digits today's ids happen to use, and its length bound (``MAX_ID_TAIL``) is generous, so a
format change on Voucherify's side is not refused; what does not fit is never written (the webhooks quarantine
it, the rollback worker records it as invalid), because it would make keys DynamoDB refuses or that no one can
look up.

The merchant's own order id (Voucherify's ``order.source_id``, ``order_source_id`` in the ledger) is no Voucherify id:
any text of 1–``MAX_ORDER_SOURCE_ID`` characters without control characters, which always fits a DynamoDB key (at
most 4 UTF-8 bytes a character, with its key prefix, within 2,048 bytes). It is an order number, never personal data:
the ledger keys and logs it.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

MAX_ID_TAIL = 100
_TAIL = rf"[0-9A-Za-z]{{1,{MAX_ID_TAIL}}}"

REDEMPTION_ID_PATTERN = rf"^(?:r|rf)_{_TAIL}$"  # a redemption, succeeded (r_) or failed (rf_)
SUCCEEDED_REDEMPTION_ID_PATTERN = rf"^r_{_TAIL}$"  # what can be rolled back
ROLLBACK_ID_PATTERN = rf"^(?:rr|rrf)_{_TAIL}$"  # a rollback, succeeded (rr_) or failed (rrf_)
ORDER_ID_PATTERN = rf"^ord_{_TAIL}$"
CUSTOMER_ID_PATTERN = rf"^cust_{_TAIL}$"
VOUCHER_ID_PATTERN = rf"^v_{_TAIL}$"
REDEMPTION_FAMILY_ID_PATTERN = rf"^(?:r|rf|rr|rrf)_{_TAIL}$"  # a redemption object: either of the above
MAX_ORDER_SOURCE_ID = 500  # characters: 2,000 UTF-8 bytes at most
# No C0/C1 control characters (a line break or a NUL in a key is a mistake, not an order number).
ORDER_SOURCE_ID_PATTERN = rf"^[^\u0000-\u001F\u007F-\u009F]{{1,{MAX_ORDER_SOURCE_ID}}}$"
REDEMPTION_ID_SHAPE = f"r_… or rf_…, then 1–{MAX_ID_TAIL} letters or digits"
ROLLBACK_ID_SHAPE = f"rr_… or rrf_…, then 1–{MAX_ID_TAIL} letters or digits"

RedemptionId = Annotated[str, StringConstraints(pattern=REDEMPTION_ID_PATTERN)]
SucceededRedemptionId = Annotated[str, StringConstraints(pattern=SUCCEEDED_REDEMPTION_ID_PATTERN)]
RollbackId = Annotated[str, StringConstraints(pattern=ROLLBACK_ID_PATTERN)]
OrderId = Annotated[str, StringConstraints(pattern=ORDER_ID_PATTERN)]
CustomerId = Annotated[str, StringConstraints(pattern=CUSTOMER_ID_PATTERN)]
VoucherId = Annotated[str, StringConstraints(pattern=VOUCHER_ID_PATTERN)]
OrderSourceId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ORDER_SOURCE_ID, pattern=ORDER_SOURCE_ID_PATTERN)
]

# fullmatch, as pydantic matches the patterns: a trailing newline is no part of an id (re's $ would allow it).
_SUCCEEDED_REDEMPTION = re.compile(SUCCEEDED_REDEMPTION_ID_PATTERN)
_REDEMPTION = re.compile(REDEMPTION_ID_PATTERN)
_ROLLBACK = re.compile(ROLLBACK_ID_PATTERN)


def is_redemption_id(value: object) -> bool:
    """True for an ``r_…`` or ``rf_…`` id of the accepted shape."""
    return isinstance(value, str) and _REDEMPTION.fullmatch(value) is not None


def is_rollback_id(value: object) -> bool:
    """True for an ``rr_…`` or ``rrf_…`` id of the accepted shape."""
    return isinstance(value, str) and _ROLLBACK.fullmatch(value) is not None


def is_succeeded_redemption_id(value: object) -> bool:
    """True for an ``r_…`` id of the accepted shape (a redemption the rollback API can be asked to undo)."""
    return isinstance(value, str) and _SUCCEEDED_REDEMPTION.fullmatch(value) is not None
