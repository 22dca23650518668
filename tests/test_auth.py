"""Authenticity of deliveries (signature, shared token, secret rotation) and the settings that guard it."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voucherify_ledger.secrets import SecretUnavailableError
from voucherify_ledger.settings import SettingsError, WebhookSettings, embedded_aws
from voucherify_ledger.webhooks.auth import (
    SIGNATURE_HEADER,
    AuthMethods,
    WebhookAuthenticator,
    WebhookSecrets,
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


# --- secrets -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"signing_secret": "s", "header_token": "t"}', WebhookSecrets("s", "t")),
        (b'{"signing_secret": "s"}', WebhookSecrets("s", None)),
        ({"header_token": "t"}, WebhookSecrets(None, "t")),
        ("  plain-secret \n", WebhookSecrets("plain-secret", None)),
    ],
    ids=["json", "bytes", "dict", "plain-string"],
)
def test_secret_formats(value: Any, expected: WebhookSecrets) -> None:
    assert WebhookSecrets.parse(value) == expected


@pytest.mark.parametrize("value", [None, "{}", '{"signing_secret": "", "header_token": null}', {"other": "x"}])
def test_secret_without_credentials_is_unavailable(value: Any) -> None:
    with pytest.raises(SecretUnavailableError):
        WebhookSecrets.parse(value)


class FakeSecrets:
    """A secret store whose value can be rotated, counting reads (forced reads bypass the cache)."""

    def __init__(self, value: Mapping[str, str]) -> None:
        self.value = dict(value)
        self.cached = dict(value)
        self.reads = 0
        self.forced = 0

    def rotate(self, **value: str) -> None:
        self.value = dict(value)

    def __call__(self, secret_id: str, force: bool) -> str:
        assert secret_id == "voucherify-ledger/webhook"
        self.reads += 1
        if force:
            self.forced += 1
            self.cached = dict(self.value)
        return json.dumps(self.cached)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def authenticator(
    store: FakeSecrets, clock: Clock | None = None, *, methods: AuthMethods = "either", **kwargs: Any
) -> WebhookAuthenticator:
    return WebhookAuthenticator(
        "voucherify-ledger/webhook",
        "X-Voucherify-Token",
        methods=methods,
        fetch=store,
        clock=clock or Clock(),
        **kwargs,
    )


BODY = b'{"redemption":{"id":"r_1"}}'


def test_signature_or_token_authenticates() -> None:
    store = FakeSecrets({"signing_secret": "s3cret", "header_token": "t0ken"})
    auth = authenticator(store)
    assert auth.authenticate({SIGNATURE_HEADER: sign("s3cret", BODY)}, BODY).method == "signature"
    assert auth.authenticate({"x-voucherify-token": "t0ken"}, BODY).method == "token"
    refused = auth.authenticate({"x-voucherify-token": "t0ken-not"}, BODY)
    assert (refused.ok, refused.reason) == (False, "x-voucherify-token token does not match the webhook secret")
    missing = auth.authenticate({"x-other": "t0ken"}, BODY)
    assert not missing.ok and missing.reason.startswith("missing x-voucherify-signature header")


def test_a_signature_only_route_refuses_the_token_without_reading_the_secret() -> None:
    store = FakeSecrets({"signing_secret": "s3cret", "header_token": "t0ken"})
    auth = authenticator(store, methods="signature")
    refused = auth.authenticate({"x-voucherify-token": "t0ken"}, BODY)
    assert (refused.ok, refused.reason) == (
        False,
        "missing x-voucherify-signature header (this URL accepts signed deliveries only)",
    )
    assert store.reads == 0
    wrong = auth.authenticate({SIGNATURE_HEADER: "0" * 64, "x-voucherify-token": "t0ken"}, BODY)
    assert (wrong.ok, wrong.reason) == (False, "x-voucherify-signature does not match the webhook secret")
    assert auth.authenticate({SIGNATURE_HEADER: sign("s3cret", BODY)}, BODY).method == "signature"


@pytest.mark.parametrize("methods", ["either", "signature"])
def test_a_wrong_signature_is_refused_whatever_token_comes_with_it(methods: AuthMethods) -> None:
    """A leaked distribution token must not turn a forged signature into an accepted redemption."""
    auth = authenticator(FakeSecrets({"signing_secret": "s3cret", "header_token": "t0ken"}), methods=methods)
    for signature in ("0" * 64, sign("guess", BODY), "short"):
        refused = auth.authenticate({SIGNATURE_HEADER: signature, "x-voucherify-token": "t0ken"}, BODY)
        assert not refused.ok and refused.reason == "x-voucherify-signature does not match the webhook secret"


def test_a_token_only_route_checks_the_token_alone() -> None:
    auth = authenticator(FakeSecrets({"signing_secret": "s3cret", "header_token": "t0ken"}), methods="token")
    assert auth.authenticate({SIGNATURE_HEADER: "0" * 64, "x-voucherify-token": "t0ken"}, BODY).method == "token"
    refused = auth.authenticate({SIGNATURE_HEADER: sign("s3cret", BODY)}, BODY)
    assert (refused.ok, refused.reason) == (
        False,
        "missing x-voucherify-token token header (this URL accepts the token only)",
    )


def test_token_alone_is_refused_when_the_secret_has_no_token() -> None:
    auth = authenticator(FakeSecrets({"signing_secret": "s3cret"}))
    assert not auth.authenticate({"x-voucherify-token": ""}, BODY).ok
    assert not auth.authenticate({"x-voucherify-token": "anything"}, BODY).ok
    assert not auth.authenticate({SIGNATURE_HEADER: sign("", BODY)}, BODY).ok


def test_missing_credentials_are_refused_without_reading_the_secret() -> None:
    store = FakeSecrets({"signing_secret": "s3cret"})
    assert not authenticator(store).authenticate({}, BODY).ok
    assert store.reads == 0


def test_rotated_secret_is_re_read_on_a_failed_check() -> None:
    store = FakeSecrets({"signing_secret": "old"})
    auth = authenticator(store)
    assert auth.authenticate({SIGNATURE_HEADER: sign("old", BODY)}, BODY).ok
    store.rotate(signing_secret="new")
    assert auth.authenticate({SIGNATURE_HEADER: sign("new", BODY)}, BODY).ok
    assert store.forced == 1
    assert auth.authenticate({SIGNATURE_HEADER: sign("new", BODY)}, BODY).ok
    assert store.forced == 1  # the refreshed secret is used from then on


def test_failed_checks_re_read_the_secret_at_most_once_a_minute() -> None:
    store = FakeSecrets({"signing_secret": "s3cret"})
    clock = Clock()
    auth = authenticator(store, clock)
    forged = {SIGNATURE_HEADER: sign("forged", BODY)}
    for _ in range(50):
        assert not auth.authenticate(forged, BODY).ok
        clock.now += 1.0
    assert store.forced == 1  # 50 failures within 50 s
    clock.now += 10.0  # a minute after the forced read
    assert not auth.authenticate(forged, BODY).ok
    assert store.forced == 2


def test_unreadable_secret_is_reported_not_refused() -> None:
    def broken(secret_id: str, force: bool) -> str:
        raise SecretUnavailableError("cannot read webhook secret: ResourceNotFoundException")

    auth = WebhookAuthenticator("voucherify-ledger/webhook", "x-voucherify-token", fetch=broken)
    with pytest.raises(SecretUnavailableError):
        auth.authenticate({SIGNATURE_HEADER: "0" * 64}, BODY)


def test_unauthenticated_mode_accepts_without_reading_the_secret() -> None:
    store = FakeSecrets({"signing_secret": "s3cret"})
    result = authenticator(store, allow_unauthenticated=True).authenticate({}, BODY)
    assert (result.ok, result.method) == (True, "none")
    assert store.reads == 0


# --- settings ------------------------------------------------------------------------------------------
BASE_ENV = {"LEDGER_TABLE_NAME": "ledger", "WEBHOOK_SECRET_ID": "voucherify-ledger/webhook"}


def test_settings_defaults() -> None:
    settings = WebhookSettings.from_env(BASE_ENV)
    assert settings.webhook_token_header == "x-voucherify-token"
    assert settings.allow_unauthenticated_webhooks is False
    assert settings.max_body_bytes == 262_144
    assert settings.quarantine_retention_days == 30
    assert settings.webhook_auth == "signature"  # without the template's per-route value: the strict one


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"WEBHOOK_SECRET_ID": "s"}, "LEDGER_TABLE_NAME"),
        ({"LEDGER_TABLE_NAME": "ledger"}, "WEBHOOK_SECRET_ID is required"),
        ({**BASE_ENV, "WEBHOOK_SECRET_ID": ""}, "WEBHOOK_SECRET_ID is required"),
        ({**BASE_ENV, "MAX_BODY_BYTES": "10"}, "MAX_BODY_BYTES"),
        ({**BASE_ENV, "MAX_BODY_BYTES": "lots"}, "MAX_BODY_BYTES"),
        ({**BASE_ENV, "MAX_BODY_BYTES": "262145"}, "MAX_BODY_BYTES"),
        ({**BASE_ENV, "QUARANTINE_RETENTION_DAYS": "0"}, "QUARANTINE_RETENTION_DAYS"),
        ({**BASE_ENV, "ALLOW_UNAUTHENTICATED_WEBHOOKS": "perhaps"}, "ALLOW_UNAUTHENTICATED_WEBHOOKS"),
        ({**BASE_ENV, "WEBHOOK_AUTH": "any"}, "WEBHOOK_AUTH"),
        ({**BASE_ENV, "WEBHOOK_AUTH": "Signature"}, "WEBHOOK_AUTH"),
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        WebhookSettings.from_env(env)


@pytest.mark.parametrize(
    "local",
    [
        {"AWS_SAM_LOCAL": "true"},
        {"AWS_SAM_LOCAL": "TRUE"},
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"},
        {"AWS_ENDPOINT_URL": "http://localhost:4566"},
        {"AWS_ENDPOINT_URL": "http://[::1]:4566"},
    ],
)
def test_unauthenticated_mode_is_allowed_on_local_emulation(local: dict[str, str]) -> None:
    env = {"LEDGER_TABLE_NAME": "ledger", "ALLOW_UNAUTHENTICATED_WEBHOOKS": "true", **local}
    assert embedded_aws(env)
    assert WebhookSettings.from_env(env).allow_unauthenticated_webhooks is True


@pytest.mark.parametrize(
    "remote",
    [
        {},
        {"AWS_SAM_LOCAL": "false"},
        {"AWS_SAM_LOCAL": "1"},
        {"AWS_ENDPOINT_URL": "https://dynamodb.eu-west-1.amazonaws.com"},
        {"AWS_ENDPOINT_URL": "http://localhost.example.com:4566"},
        {"AWS_ENDPOINT_URL": "http://127.0.0.1.nip.io:4566"},
        {"AWS_ENDPOINT_URL": "http://127.0.0.1@evil.example.com"},
        {"AWS_ENDPOINT_URL": "http://evil.example.com/127.0.0.1"},
        {"AWS_ENDPOINT_URL": "127.0.0.1:4566"},
    ],
)
@pytest.mark.parametrize("secret_id", ["", "voucherify-ledger/webhook"])
def test_unauthenticated_mode_is_refused_elsewhere(remote: dict[str, str], secret_id: str) -> None:
    env = {"LEDGER_TABLE_NAME": "ledger", "ALLOW_UNAUTHENTICATED_WEBHOOKS": "true", "WEBHOOK_SECRET_ID": secret_id}
    assert not embedded_aws(remote)
    with pytest.raises(SettingsError, match="ALLOW_UNAUTHENTICATED_WEBHOOKS=true is a local-only setting"):
        WebhookSettings.from_env({**env, **remote})
