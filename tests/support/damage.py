"""Damaged input for the property tests (hypothesis): the seed deliveries with one field wrong, arbitrary bodies,
base64 flags that lie, wrong signatures. Every test that uses them runs a fixed number of derandomized examples
(``HOSTILE``: no example database), so ``make test`` tries the same cases each run."""

from __future__ import annotations

import base64
import copy
import json
import string
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ledger_dev.harness.template import PROJECT_ROOT
from support.documents import seed_documents
from voucherify_ledger.webhooks.auth import sign

# The moto table and the loaded handler are built once per test and shared by its examples on purpose (a fresh
# table per example would cost ~0.3 s each); every example checks only the writes it made itself.
HOSTILE = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_BODY_BYTES = 262_144
SEED_PAGES = {"RedemptionSucceededFunction": "002", "RedemptionRollbackSucceededFunction": "000"}
ENVELOPE_EVENTS = {
    "RedemptionSucceededFunction": ["redemption_succeeded_envelope"],
    "RedemptionRollbackSucceededFunction": [
        "redemption_rollback_succeeded_envelope",
        "customer_redemption_rollback_succeeded_distribution",
    ],
}


def envelope_body(name: str) -> dict[str, Any]:
    event = json.loads((PROJECT_ROOT / "events" / f"{name}.json").read_text(encoding="utf-8"))
    body = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode("utf-8")
    return json.loads(body)


def seeds(function: str) -> list[dict[str, Any]]:
    """The seed page's payload (bare, as a raw distribution sends it) and the v2024 envelopes of the events."""
    return [seed_documents(SEED_PAGES[function])[0], *(envelope_body(name) for name in ENVELOPE_EVENTS[function])]


DEEP = "\x00deep\x00"  # replaced in the serialised body by a nesting too deep for a recursive parser


def wrong_values() -> st.SearchStrategy[Any]:
    """Values of every JSON type, and the ones that break parsers and stores."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([0, -1, 2**63, -(2**63) - 1, 10**40, 1.5, -0.0, 1e308, float("nan"), float("inf")]),
        st.floats(),
        st.text(max_size=40),
        st.sampled_from(["", " ", "null", "r_", "rr_", "2024-13-45T99:99:99Z", "\u202e\u0000\ud800", "💥" * 50]),
    )
    huge = st.one_of(
        st.integers(1_000, 120_000).map(lambda n: "x" * n),
        st.integers(1_000, 30_000).map(lambda n: list(range(n))),
        st.integers(100, 5_000).map(lambda n: {f"k{i}": i for i in range(n)}),
    )
    nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner))
    return st.one_of(scalars, huge, nested, st.just(DEEP))


def paths(document: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(document, dict):
        for key, value in document.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield (*prefix, index)
            yield from paths(value, (*prefix, index))


def serialise(document: Any, depth: int) -> bytes:
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return text.replace(json.dumps(DEEP), "[" * depth + "]" * depth).encode("utf-8", "surrogatepass")


@st.composite
def damaged_payloads(draw: st.DrawFn, function: str) -> bytes:
    """A seed payload with one field replaced by a wrong value, removed, or its key duplicated."""
    document = copy.deepcopy(draw(st.sampled_from(seeds(function))))
    path = draw(st.sampled_from(list(paths(document))))
    *parents, last = path
    parent = document
    for part in parents:
        parent = parent[part]
    action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "duplicate"]))
    depth = draw(st.sampled_from([50, 900, 5_000, 60_000]))
    if action == "delete":
        del parent[last]
        return serialise(document, depth)
    if action == "duplicate" and isinstance(parent, dict):
        # JSON with the key twice: the first occurrence is the wrong value, the last the real one (or the reverse).
        wrong = serialise(draw(wrong_values()), depth).decode("utf-8", "surrogatepass")
        raw = serialise(document, depth).decode("utf-8", "surrogatepass")
        needle = json.dumps(last, ensure_ascii=False) + ":"
        at = raw.find(needle)
        if at >= 0:
            raw = raw[:at] + needle + wrong + "," + raw[at:]
        return raw.encode("utf-8", "surrogatepass")
    parent[last] = draw(wrong_values())
    return serialise(document, depth)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=40,
)
arbitrary_bodies = st.one_of(
    st.binary(max_size=2_000),
    json_values.map(lambda v: json.dumps(v).encode("utf-8")),
    st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")),  # lone surrogates: invalid UTF-8
    st.sampled_from([b"", b"{", b"[]", b"null", b'{"a":1}\x00', b"\xef\xbb\xbf{}", b"\xff\xfe{}", b"{}" * 10]),
    st.integers(1, 60_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 60_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(MAX_BODY_BYTES - 4, MAX_BODY_BYTES + 4).map(lambda n: b"{" + b" " * (n - 2) + b"}"),
)


@st.composite
def on_the_wire(draw: st.DrawFn, raw: bytes) -> tuple[str, bool, bool]:
    """The event's ``body`` and ``isBase64Encoded`` for ``raw``, and whether they are honest (a flag may lie)."""
    mode = draw(st.sampled_from(["honest", "honest", "flag-true-on-text", "flag-false-on-base64", "broken-base64"]))
    encoded = base64.b64encode(raw).decode("ascii")
    if mode == "flag-true-on-text":
        return raw.decode("utf-8", "surrogateescape"), True, False
    if mode == "flag-false-on-base64":
        return encoded, False, False
    if mode == "broken-base64":
        cut = draw(st.integers(0, max(0, len(encoded) - 1)))
        return encoded[:cut] + draw(st.sampled_from(["=", "*", "é", ""])), True, False
    try:
        return raw.decode("utf-8"), False, True
    except UnicodeDecodeError:
        return encoded, True, True


wrong_signatures = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="0123456789abcdef", min_size=0, max_size=130).filter(lambda s: len(s) != 64),
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    st.text(alphabet=string.printable + "é💥\u0000", min_size=64, max_size=64),
    st.integers(8_000, 20_000).map(lambda n: "a" * n),  # oversized header
    st.just(sign("another-secret", b"{}")),
)
