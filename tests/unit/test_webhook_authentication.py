"""How a webhook route authenticates a delivery: the secret's formats, signature or token per route, a rotated
secret re-read at most once a minute, an unreadable secret reported (503), never refused."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from voucherify_ledger.secrets import SecretUnavailableError
from voucherify_ledger.webhooks.auth import (
    SIGNATURE_HEADER,
    AuthMethods,
    WebhookAuthenticator,
    WebhookSecrets,
    sign,
)


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
