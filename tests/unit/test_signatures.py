"""Voucherify's webhook signature: HMAC-SHA256 of the compact body, Voucherify's own test vectors, the
linear whitespace scan that checks a pretty-printed body as its compact form, constant-time comparisons."""

from __future__ import annotations

import hmac
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voucherify_ledger.webhooks.auth import (
    WebhookAuthenticator,
    sign,
    strip_json_whitespace,
    verify_signature,
)

# Voucherify's own test vectors (VOUCHERIFY.md, "Authenticity"), key "secretKey".
VECTORS = [
    (b'{"a":1}', "a17d2ac229d1ebbb5f10e839c7985c4818e5986eab297f7e5979196d4d7d3ed2"),
    (b'{"a\\"b":1}', "f7cf97814a03146abedb9793f56e1dec34f618f82d10395310d053f749483ffb"),
    (b"  message  ", "53ff92957e1427ce23ad5bda9d0c5f2f4ff384d0806b83eeacb510c842d3a358"),
]


# --- signatures ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("payload", "signature"), VECTORS)
def test_voucherify_test_vectors(payload: bytes, signature: str) -> None:
    assert sign("secretKey", payload) == signature
    assert verify_signature("secretKey", payload, signature)
    assert not verify_signature("secretkey", payload, signature)


@pytest.mark.parametrize(
    ("pretty", "signature"),
    [
        (b'{\n  "a": 1\n}', VECTORS[0][1]),
        (b'\r\n{\t"a" :\n\n 1 }\n', VECTORS[0][1]),
        (b'{\n  "a\\"b": 1\n}', VECTORS[1][1]),
    ],
)
def test_pretty_printed_body_is_checked_as_its_compact_form(pretty: bytes, signature: str) -> None:
    assert verify_signature("secretKey", pretty, signature)


@pytest.mark.parametrize(
    ("payload", "stripped"),
    [
        (b'{ "a" : 1 }', b'{"a":1}'),
        (b'{"name": "Jane  Doe"}', b'{"name":"Jane  Doe"}'),
        (b'{"q": "say \\"hi  there\\" "}', b'{"q":"say \\"hi  there\\" "}'),
        (b'{"path": "C:\\\\ dir\\\\" , "n" : [1, 2]}', b'{"path":"C:\\\\ dir\\\\","n":[1,2]}'),
        ('{"city": "Łódź  Kaliska"}'.encode(), '{"city":"Łódź  Kaliska"}'.encode()),
        (b'{"tab":"a\tb"}', b'{"tab":"a\tb"}'),
    ],
    ids=["outside", "inside-string", "escaped-quotes", "escaped-backslash", "non-ascii", "raw-tab-in-string"],
)
def test_whitespace_is_stripped_only_outside_strings(payload: bytes, stripped: bytes) -> None:
    assert strip_json_whitespace(payload) == stripped


# The substitution the stripper replaced: right on every input, but it retries its string scan from every quote, so
# a quote followed by escaped quotes costs quadratic time. Kept here as the oracle the linear scanner must equal.
_QUADRATIC = re.compile(rb'("(?:[^"\\]|\\.)*")|[ \t\n\r]+', re.DOTALL)


def quadratic_strip(payload: bytes) -> bytes:
    return _QUADRATIC.sub(lambda m: m.group(1) or b"", payload)


@pytest.mark.parametrize(
    "payload",
    [
        b'"',
        b'"\\',
        b'{"a": "unterminated \\" , "b" : 1 }',
        b'"\\"\\"\\" x "',
        b'{"a":"b" "c',
        b'  "a" "b \\" "  c "',
        b'"abc\\',
        b'{"k": "v"} trailing "  x',
        b'\\" "a b" "',
    ],
    ids=[
        "lone-quote",
        "quote-backslash",
        "unterminated-value",
        "escaped-quotes",
        "open-after-string",
        "strings-and-escapes",
        "backslash-at-end",
        "trailing-open",
        "escape-outside",
    ],
)
def test_malformed_bodies_are_stripped_as_before(payload: bytes) -> None:
    assert strip_json_whitespace(payload) == quadratic_strip(payload)


@settings(derandomize=True, database=None, max_examples=1500, deadline=None)
@given(
    st.lists(st.sampled_from([b'"', b"\\", b" ", b"\n", b"\t", b"\r", b"a", b"{", b":", b",", b"\xc5"]), max_size=40)
)
def test_the_linear_scanner_equals_the_quadratic_substitution(pieces: list[bytes]) -> None:
    payload = b"".join(pieces)
    assert strip_json_whitespace(payload) == quadratic_strip(payload)


def test_whitespace_inside_strings_stays_signed() -> None:
    signed = b'{"name":"Jane  Doe"}'
    signature = sign("secret", signed)
    assert verify_signature("secret", b'{ "name" : "Jane  Doe" }', signature)
    assert not verify_signature("secret", b'{"name":"Jane Doe"}', signature)
    assert not verify_signature("secret", b'{"name":"JaneDoe"}', signature)


@pytest.mark.parametrize(
    ("secret", "signature"),
    [
        ("secretKey", None),
        ("secretKey", ""),
        ("", VECTORS[0][1]),
        ("secretKey", VECTORS[0][1][:-1]),
        ("secretKey", VECTORS[0][1] + "0"),
        ("secretKey", "sha256=" + VECTORS[0][1]),
        ("secretKey", "z" * 64),
        ("secretKey", VECTORS[1][1]),
    ],
    ids=["none", "empty", "no-secret", "short", "long", "prefixed", "not-hex", "other-payload"],
)
def test_bad_signatures_are_refused(secret: str, signature: str | None) -> None:
    assert not verify_signature(secret, b'{"a":1}', signature)


def test_signature_header_is_read_case_and_space_insensitively() -> None:
    assert verify_signature("secretKey", b'{"a":1}', " " + VECTORS[0][1].upper() + "\n")
    assert verify_signature("secretKey", b'{"a":1}', VECTORS[0][1].encode())


def test_comparisons_are_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verify_signature("secretKey", b'{\n  "a": 1\n}', VECTORS[0][1])
    assert (VECTORS[0][1].encode(), VECTORS[0][1].encode()) in compared
    compared.clear()
    authenticator = WebhookAuthenticator(
        "id", "x-voucherify-token", methods="either", fetch=lambda _id, _force: {"header_token": "tok"}
    )
    assert authenticator.authenticate({"x-voucherify-token": "tok"}, b"{}").method == "token"
    assert (b"tok", b"tok") in compared
