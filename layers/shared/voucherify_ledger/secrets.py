"""Secrets Manager secrets read through Powertools parameters (cached ``max_age`` seconds), and the policy that
re-reads one at most once a minute when a credential it holds was refused: a rotated secret is picked up without a
redeploy, and a flood of refused credentials does not hammer Secrets Manager."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

# (secret id, force a re-read) → the secret's value as Powertools returns it: a string, bytes or a parsed object.
SecretValue = str | bytes | dict[str, Any] | None
SecretFetcher = Callable[[str, bool], SecretValue]


def secret_text(value: SecretValue) -> str | None:
    """A secret's value as text (bytes are UTF-8), or None when it is not text."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value if isinstance(value, str) else None


def json_object(value: SecretValue) -> dict[str, Any] | None:
    """A secret's value as a JSON object: a parsed one as it is, text holding one parsed; else None."""
    if isinstance(value, dict):
        return value
    text = secret_text(value)
    if text is None:
        return None
    try:
        decoded = json.loads(text)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


class SecretUnavailableError(RuntimeError):
    """A secret could not be read (or holds nothing usable): what needs it cannot be done now, so retry later."""


def secret_fetcher(
    max_age: int,
    client: Any = None,
    *,
    what: str = "secret",
    error: type[SecretUnavailableError] = SecretUnavailableError,
) -> SecretFetcher:
    """Reads a secret through Powertools parameters, cached ``max_age`` seconds, with ``client`` (made during init
    with the function's other clients, so no event pays for it), or a default client made on the first read. A
    failed read raises ``error`` naming ``what`` and the cause's type, never a value."""
    from aws_lambda_powertools.utilities import parameters

    provider = parameters.SecretsProvider(boto3_client=client) if client is not None else None

    def fetch(secret_id: str, force: bool) -> SecretValue:
        nonlocal provider
        if provider is None:
            provider = parameters.SecretsProvider()
        try:
            return provider.get(secret_id, max_age=max_age, force_fetch=force)
        except parameters.exceptions.GetParameterError as exc:
            raise error(f"cannot read {what}: {type(exc.__cause__ or exc).__name__}") from exc

    return fetch


class CachedSecret:
    """One secret: ``read()`` answers the fetcher's cached value; ``may_refresh()`` allows a forced re-read
    (``read(force=True)``) at most once per ``REFRESH_INTERVAL_SECONDS``."""

    REFRESH_INTERVAL_SECONDS = 60.0

    def __init__(self, secret_id: str, fetch: SecretFetcher, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.secret_id = secret_id
        self._fetch = fetch
        self._clock = clock
        self._last_forced = float("-inf")

    def read(self, *, force: bool = False) -> SecretValue:
        return self._fetch(self.secret_id, force)

    def may_refresh(self) -> bool:
        """True (and the time noted) unless a re-read was allowed less than ``REFRESH_INTERVAL_SECONDS`` ago."""
        now = self._clock()
        if now - self._last_forced < self.REFRESH_INTERVAL_SECONDS:
            return False
        self._last_forced = now
        return True
