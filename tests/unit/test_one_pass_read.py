"""The webhook's one-pass read (``validate_json`` of the body through Powertools' parser) against its step-by-step
read (``json.loads``, envelope, event type, model): whenever the one-pass read answers, it must answer exactly what
the step-by-step read would, and it must answer for every valid seed delivery (the warm path depends on it).

The damaged payloads are test_hostile's, plus shape damage aimed at the one-pass read's guesses: an envelope's keys
in a bare payload, a bare payload wrapped or unwrapped, the wrong event type, a rollback at the redemption URL.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from support.damage import HOSTILE, damaged_payloads, seeds
from support.functions import ROUTES
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.webhooks.reading import DeliveryReader, Invalid, Malformed
from voucherify_ledger.webhooks.routes import REDEMPTION_ROLLBACK_SUCCEEDED, REDEMPTION_SUCCEEDED

ROUTE_OF = {
    "RedemptionSucceededFunction": REDEMPTION_SUCCEEDED,
    "RedemptionRollbackSucceededFunction": REDEMPTION_ROLLBACK_SUCCEEDED,
}
FUNCTIONS = sorted(ROUTES)
RECEIVED_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def step_by_step(reader: DeliveryReader, text: str, delivery: Delivery) -> Any:
    """``handle``'s reading when the one-pass read declines: the reference."""
    read = reader.read_step_by_step(text, delivery)
    if isinstance(read, Malformed):
        return "400"
    if isinstance(read, Invalid):
        return f"quarantined: {read.reason}"
    return read.data, read.delivery


def canonical(read: Any) -> Any:
    if not isinstance(read, tuple):
        return read
    data, delivery = read
    # JSON text, not ==: a NaN in an open metadata field is not equal to itself.
    dumped = json.dumps(data.model_dump(), default=str, allow_nan=True)
    return type(data).__name__, dumped, delivery


def assert_agrees(function: str, raw: bytes) -> bool:
    """True when the one-pass read answered (and agreed), False when it declined."""
    reader = DeliveryReader(ROUTE_OF[function])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False  # answered 400 before either read
    delivery = Delivery(raw=raw, route=reader.route.name, received_at=RECEIVED_AT)
    fast = reader.read_in_one_pass(text, delivery)
    if fast is None:
        return False
    assert canonical((fast.data, fast.delivery)) == canonical(step_by_step(reader, text, delivery))
    return True


def compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode(
        "utf-8", "surrogatepass"
    )


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_valid_seed_delivery_is_read_in_one_pass(function: str) -> None:
    for document in seeds(function):
        for raw in (compact(document), json.dumps(document, indent=2).encode("utf-8")):
            assert assert_agrees(function, raw), document.get("id")


@st.composite
def reshaped(draw: st.DrawFn, function: str) -> bytes:
    """A seed delivery whose shape is changed where the one-pass read guesses or checks."""
    bare, *envelopes = seeds(function)
    document = copy.deepcopy(draw(st.sampled_from([bare, *envelopes])))
    other_types = ["redemption.succeeded", "customer.redemption.succeeded", "redemption.rollback.succeeded", "x"]
    change = draw(
        st.sampled_from(
            ["envelope keys", "one envelope key", "wrap", "unwrap", "event type", "rollback key", "escaped keys"]
        )
    )
    is_envelope = "event" in document and "data" in document
    if change == "envelope keys":
        document["event"] = draw(st.sampled_from([{}, None, copy.deepcopy(envelopes[0]["event"])]))
        document["data"] = draw(st.sampled_from([{}, copy.deepcopy(bare)]))
    elif change == "one envelope key":
        document.pop(draw(st.sampled_from(["event", "data"])), None)
    elif change == "wrap" and not is_envelope:
        document = {**copy.deepcopy(envelopes[0]), "data": document}
    elif change == "unwrap" and is_envelope:
        document = document["data"]
    elif change == "event type" and is_envelope:
        document["event"]["type"] = draw(st.sampled_from(other_types))
    elif change == "rollback key":
        target = document["data"] if is_envelope else document
        target["redemption_rollback"] = draw(st.sampled_from([None, {}, copy.deepcopy(target.get("redemption"))]))
    raw = compact(document).decode("utf-8", "surrogatepass")
    if change == "escaped keys":  # the same keys, spelt so that a substring search does not see them
        raw = raw.replace('"event":', '"\\u0065vent":').replace('"data":', '"\\u0064ata":')
    return raw.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("function", FUNCTIONS)
@HOSTILE
@given(data=st.data())
def test_the_one_pass_read_answers_what_the_step_by_step_read_would(function: str, data: st.DataObject) -> None:
    raw = data.draw(st.one_of(damaged_payloads(function), reshaped(function)))
    assert_agrees(function, raw)
