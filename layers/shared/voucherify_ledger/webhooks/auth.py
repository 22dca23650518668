"""Authenticity of webhook deliveries.

Two credentials, and per route a deployment setting (``WEBHOOK_AUTH``) says which it accepts:
- ``x-voucherify-signature``: lowercase hex HMAC-SHA256 of the payload keyed with the project's webhook
  secret. Checked over the raw body, then over the body with JSON whitespace outside strings removed
  (that is what Voucherify signs); never over a re-serialised document.
- a shared token in a custom header (distribution webhooks, which may be unsigned).

``signature`` accepts only a valid signature (project-settings webhooks are always signed), ``token`` only the
token, ``either`` a valid signature or, on a delivery that carries no signature, the token: a signature that is
present must be right, whatever token comes with it.

The secrets live in AWS Secrets Manager, read through ``voucherify_ledger.secrets`` (cached, re-read at most once a
minute after a refused credential).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from voucherify_ledger.secrets import (
    CachedSecret,
    SecretFetcher,
    SecretUnavailableError,
    SecretValue,
    json_object,
    secret_fetcher,
    secret_text,
)

SIGNATURE_HEADER = "x-voucherify-signature"
AuthMethods = Literal["signature", "token", "either"]
_SHA256_HEX_LENGTH = 64

# A JSON string literal from its opening quote: runs of plain characters and escape pairs, taken possessively (no
# backtracking), then the closing quote. A failed match has scanned to the end of the body exactly once.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_WHITESPACE = re.compile(rb"[ \t\n\r]+")


def sign(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()


def strip_json_whitespace(payload: bytes) -> bytes:
    """Removes whitespace outside JSON strings, leaving string contents (escaped quotes included) intact.

    One pass over the bytes, whatever they hold (it runs before authentication): each string literal is matched
    once from its opening quote, and whitespace between them is dropped. An unterminated string (its scan reaches
    the end) leaves its quote as it is and the rest of the body is stripped of whitespace: every later quote lies
    inside that scan, escaped, so no later string could end either. That is the result of retrying the string scan
    from every quote, as a single regex substitution did, without its quadratic time on a quote followed by
    thousands of escaped quotes.
    """
    parts: list[bytes] = []
    position = 0
    while True:
        quote = payload.find(b'"', position)
        if quote < 0:
            parts.append(_WHITESPACE.sub(b"", payload[position:]))
            break
        parts.append(_WHITESPACE.sub(b"", payload[position:quote]))
        string = _STRING.match(payload, quote)
        if string is None:  # unterminated: no string starts after it
            parts.append(_WHITESPACE.sub(b"", payload[quote:]))
            break
        parts.append(string.group())
        position = string.end()
    return b"".join(parts)


def _same(expected_hex: str, given: bytes) -> bool:
    return hmac.compare_digest(expected_hex.encode("ascii"), given)


def verify_signature(secret: str, payload: bytes, signature: str | bytes | None) -> bool:
    """Constant-time check of a hex signature over the raw body, then over the whitespace-stripped body."""
    if not secret or not signature:
        return False
    given = signature.encode("utf-8", "replace") if isinstance(signature, str) else signature
    given = given.strip().lower()
    if len(given) != _SHA256_HEX_LENGTH:
        return False
    if _same(sign(secret, payload), given):
        return True
    stripped = strip_json_whitespace(payload)
    return stripped != payload and _same(sign(secret, stripped), given)


@dataclass(frozen=True)
class WebhookSecrets:
    signing_secret: str | None = None
    header_token: str | None = None

    @classmethod
    def parse(cls, value: SecretValue) -> WebhookSecrets:
        """A JSON object ``{"signing_secret", "header_token"}``, or a plain string used as the signing secret."""
        text = secret_text(value)
        found = json_object(value)
        if found is None and text is not None:
            found = {"signing_secret": text.strip()}
        if found is None:
            raise SecretUnavailableError("the webhook secret is empty")
        secrets = cls(
            signing_secret=str(found.get("signing_secret") or "") or None,
            header_token=str(found.get("header_token") or "") or None,
        )
        if not (secrets.signing_secret or secrets.header_token):
            raise SecretUnavailableError("the webhook secret has neither signing_secret nor header_token")
        return secrets


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    method: str  # "signature" | "token" | "none" | "" when refused
    reason: str = ""


class WebhookAuthenticator:
    """Accepts a delivery whose credential (as ``methods`` allows) matches the secret; refuses anything else.

    On a failed check the secret is re-read at most once a minute (``CachedSecret``), so a rotated secret is picked
    up without letting a flood of bad requests hammer Secrets Manager. Without ``secret_id`` (unauthenticated, a local
    run only) nothing is read.
    """

    def __init__(
        self,
        secret_id: str | None,
        token_header: str,
        *,
        methods: AuthMethods = "signature",
        allow_unauthenticated: bool = False,
        fetch: SecretFetcher | None = None,
        max_age: int = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret_id = secret_id
        self.token_header = token_header.lower()
        self.methods = methods
        self.allow_unauthenticated = allow_unauthenticated
        fetch = fetch or secret_fetcher(max_age, what="webhook secret")
        self._secret = CachedSecret(secret_id or "", fetch, clock=clock)
        self._parsed: tuple[str | bytes, WebhookSecrets] | None = None

    def _secrets(self, force: bool = False) -> WebhookSecrets:
        assert self.secret_id
        value = self._secret.read(force=force)
        # The fetcher answers the very object it cached until the secret is read again (max_age, or a forced
        # refresh): the parse of that immutable string is kept with it, not redone on every delivery.
        if self._parsed is not None and self._parsed[0] is value:
            return self._parsed[1]
        secrets = WebhookSecrets.parse(value)
        if isinstance(value, (str, bytes)):
            self._parsed = (value, secrets)
        return secrets

    def _credential(self, headers: Mapping[str, str]) -> tuple[str, str] | None:
        """The one credential this route checks: ``("signature" | "token", value)``, or None when none is sent."""
        signature = headers.get(SIGNATURE_HEADER) if self.methods != "token" else None
        if signature:
            return "signature", signature
        token = headers.get(self.token_header) if self.methods != "signature" else None
        return ("token", token) if token else None

    @staticmethod
    def _matches(secrets: WebhookSecrets, kind: str, value: str, body: bytes) -> bool:
        if kind == "signature":
            return bool(secrets.signing_secret) and verify_signature(secrets.signing_secret or "", body, value)
        return bool(secrets.header_token) and hmac.compare_digest(
            value.strip().encode("utf-8", "replace"), (secrets.header_token or "").encode("utf-8")
        )

    def _missing(self) -> str:
        if self.methods == "signature":
            return f"missing {SIGNATURE_HEADER} header (this URL accepts signed deliveries only)"
        if self.methods == "token":
            return f"missing {self.token_header} token header (this URL accepts the token only)"
        return f"missing {SIGNATURE_HEADER} header (or the {self.token_header} token header)"

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> AuthResult:
        """``headers`` must be case-insensitive or lower-cased (API Gateway v2 lower-cases them)."""
        if self.allow_unauthenticated:
            return AuthResult(True, "none")
        credential = self._credential(headers)
        if credential is None:
            return AuthResult(False, "", self._missing())
        kind, value = credential
        if self._matches(self._secrets(), kind, value, body):
            return AuthResult(True, kind)
        if self._secret.may_refresh() and self._matches(self._secrets(force=True), kind, value, body):
            return AuthResult(True, kind)
        what = SIGNATURE_HEADER if kind == "signature" else f"{self.token_header} token"
        return AuthResult(False, "", f"{what} does not match the webhook secret")
