"""The ledger's update expressions (``ledger.dynamo.Update``): which attribute names are written as they are and which
through a placeholder, and the parameters an UpdateItem gets."""

from __future__ import annotations

from pathlib import Path

import moto
import pytest

from voucherify_ledger.ledger.dynamo import StorageRefusedError, Update, number

RESERVED_WORDS = Path(moto.__file__).parent / "dynamodb" / "parsing" / "reserved_keywords.txt"


def reserved_words() -> list[str]:
    return [line.strip() for line in RESERVED_WORDS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_no_dynamodb_reserved_word_has_an_underscore() -> None:
    words = reserved_words()
    assert len(words) > 500 and not [word for word in words if "_" in word]


@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_every_reserved_word_goes_through_a_placeholder(case: object) -> None:
    for word in reserved_words():
        name = case(word)  # type: ignore[operator]
        assert Update().name_of(name).startswith("#n"), name


@pytest.mark.parametrize(
    "name", ["rollback#rr_1a2b", "REDEMPTION#x_y", "_private", "1st_try", "with space_x", "dash-ed_x", "ünïcode_x"]
)
def test_a_name_that_is_not_a_plain_identifier_goes_through_a_placeholder(name: str) -> None:
    update = Update().set(name, "v")
    params = update.params()
    assert params["UpdateExpression"] == "SET #n0 = :v0"
    assert params.get("ExpressionAttributeNames") == {"#n0": name}


def test_names_with_an_underscore_are_written_as_they_are() -> None:
    update = Update().set("redemption_id", "r_1").set_if_absent("order_id", "ord_1").add("rollback_ids", {"rr_1"})
    params = update.params()
    assert params["UpdateExpression"] == (
        "SET redemption_id = :v0, order_id = if_not_exists(order_id, :v1) ADD rollback_ids :v2"
    )
    assert "ExpressionAttributeNames" not in params  # DynamoDB refuses an empty map
    assert params["ExpressionAttributeValues"] == {":v0": {"S": "r_1"}, ":v1": {"S": "ord_1"}, ":v2": {"SS": ["rr_1"]}}


def test_a_placeholder_stands_for_one_name_and_values_never_collide() -> None:
    update = Update().set("status", "SUCCEEDED").set("entity", "redemption").set_if_absent("status", "x")
    assert update.name_of("status") == "#n0" and update.name_of("entity") == "#n1"
    params = update.params()
    assert params["UpdateExpression"] == "SET #n0 = :v0, #n1 = :v1, #n0 = if_not_exists(#n0, :v2)"
    assert params["ExpressionAttributeNames"] == {"#n0": "status", "#n1": "entity"}
    assert set(params["ExpressionAttributeValues"]) == {":v0", ":v1", ":v2"}


def test_an_update_of_removes_alone_has_no_set_clause() -> None:
    assert Update().remove("worker_claim").remove("status").params()["UpdateExpression"] == "REMOVE worker_claim, #n0"


def test_key_attributes_are_still_held_to_their_byte_limits() -> None:
    with pytest.raises(StorageRefusedError, match="order_source_id"):
        Update().set("order_source_id", "x" * 2049)
    Update().set("order_source_id", "x" * 2048)


@pytest.mark.parametrize("value", [0, 1, -1, 10**37, -(10**38) + 1, 10**38 - 1, 10**38, 10**125, 12 * 10**100])
def test_an_int_is_written_as_the_decimal_check_writes_it(value: int) -> None:
    assert number(value) == str(value)


@pytest.mark.parametrize("value", [10**38 + 1, 10**126, -(10**200)])
def test_an_int_dynamodb_refuses_is_refused(value: int) -> None:
    with pytest.raises(StorageRefusedError):
        number(value)
