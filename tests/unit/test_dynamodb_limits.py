"""What DynamoDB refuses, known before writing: id shapes and numbers beyond DynamoDB's precision and range."""

from __future__ import annotations

import pytest

from support.documents import with_redemption_id
from voucherify_ledger.ledger.dynamo import StorageRefusedError
from voucherify_ledger.ledger.dynamo import number as _number


def test_ids_of_another_shape_than_today_are_accepted() -> None:
    """Letters, digits and lengths beyond today's 18 hex digits are Voucherify's to choose."""
    from voucherify_ledger.models.webhooks import EventRedemptionSucceededData

    for redemption_id in ("r_ABCxyz0123456789QRSTUVWXYZ", "rf_" + "Z" * 100, "r_1"):
        data = with_redemption_id(redemption_id)
        if redemption_id.startswith("rf_"):  # a failed attempt says so in its result and status too
            data["redemption"].update(result="FAILURE", status="FAILED")
        assert EventRedemptionSucceededData.model_validate(data).redemption.id == redemption_id


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        (10**38 - 1, False),
        (10**38 + 1, True),  # 39 significant digits
        (10**40, False),  # 1E+40: one significant digit
        (10**126, True),  # beyond 9.99E+125
        (-(10**37), False),
    ],
)
def test_numbers_are_checked_against_dynamodbs_precision_and_range(value: int, refused: bool) -> None:
    """moto stores any number; DynamoDB refuses more than 38 significant digits and magnitudes beyond 1E+125."""
    if refused:
        with pytest.raises(StorageRefusedError, match="number"):
            _number(value)
    else:
        assert _number(value) == str(value)


def test_an_id_with_a_trailing_newline_is_no_id() -> None:
    """pydantic's patterns match the whole string; the ids module's checks must agree (re's ``$`` would not)."""
    from voucherify_ledger.models import ids

    for check, good in (
        (ids.is_redemption_id, "r_0e2500291ae016adea"),
        (ids.is_rollback_id, "rr_0e70cac29fee95aa7b"),
        (ids.is_succeeded_redemption_id, "r_0e2500291ae016adea"),
    ):
        assert check(good) and not check(good + "\n") and not check(good + "\n\n") and not check(" " + good)
