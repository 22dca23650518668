"""A small client for the Voucherify endpoints the bundle calls, on urllib3: the two rollback endpoints (the rollback
worker) and the redemptions list and lookup (the reconciler).

urllib3 ships with the Lambda Python runtime (botocore depends on it), so the functions need no HTTP
library of their own; Voucherify's generated SDK costs seconds and ~120 MB at import and is not used.

- ``POST {base}/v1/redemptions/{redemptionId}/rollback`` — one redemption;
- ``POST {base}/v1/redemptions/{parentRedemptionId}/rollbacks`` — a stacked (parent) redemption;
- ``GET {base}/v1/redemptions`` — redemptions and rollbacks, filtered, paged;
- ``GET {base}/v1/redemptions/{redemptionId}`` — one redemption or rollback.

``reason`` and ``tracking_id`` travel as query parameters, ``customer``, ``order`` and ``metadata`` as the
JSON body. Authentication is ``X-App-Id`` / ``X-App-Token`` from a Secrets Manager secret
``{"app_id": ..., "app_token": ...}`` read through ``voucherify_ledger.secrets`` (cached).

The client makes exactly one HTTP request per call and never retries: every answer — 2xx, 4xx or 5xx — comes
back as an ``ApiResponse``; a timeout or a broken connection raises ``VoucherifyUnavailableError``. What to
do about an answer is the caller's decision (``voucherify_ledger.rollbacks.answers``, the reconciler's listing).
Nothing here logs.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

import urllib3

from voucherify_ledger.secrets import CachedSecret, SecretFetcher, SecretUnavailableError, json_object, secret_fetcher

CLIENT_VERSION = "0.1.0"  # the project's version (pyproject.toml); a test keeps them equal
USER_AGENT = f"voucherify-redemption-ledger/{CLIENT_VERSION}"
DEFAULT_API_URL = "https://api.voucherify.io"

# Headers worth keeping from an answer (lower-cased).
RATE_LIMIT_HEADERS = (
    "retry-after",
    "x-rate-limit-limit",
    "x-rate-limit-remaining",
    "x-rate-limit-retry",
    "x-rate-limit-type",
)
KEPT_HEADERS = (*RATE_LIMIT_HEADERS, "content-type", "x-request-id")
Endpoint = Literal["rollback", "rollbacks", "list", "get"]
_EPOCH_THRESHOLD = 1_000_000_000  # a larger X-Rate-Limit-Retry is an epoch time, a smaller one a delay


class CredentialsUnavailableError(SecretUnavailableError):
    """The API keys could not be read from Secrets Manager (or the secret is malformed): retry later."""


class VoucherifyUnavailableError(RuntimeError):
    """No HTTP answer: the connection failed, was dropped, or the answer did not come in time."""

    def __init__(self, kind: Literal["timeout", "connection"], detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class ApiCredentials:
    app_id: str
    app_token: str = field(repr=False)

    @classmethod
    def parse(cls, value: Any) -> ApiCredentials:
        found = json_object(value)
        if found is None:
            raise CredentialsUnavailableError("the API secret is not a JSON object")
        app_id, app_token = found.get("app_id"), found.get("app_token")
        if not (isinstance(app_id, str) and app_id and isinstance(app_token, str) and app_token):
            raise CredentialsUnavailableError('the API secret needs "app_id" and "app_token"')
        return cls(app_id, app_token)


class SecretCredentials:
    """The API keys of a Secrets Manager secret, cached ``max_age`` seconds.

    After a 401/403 the caller calls ``refresh()``: the secret is re-read at most once a minute (``CachedSecret``),
    so a rotated key is picked up without a redeploy and a wrong key does not hammer Secrets Manager.
    """

    def __init__(
        self,
        secret_id: str,
        *,
        max_age: int = 300,
        fetch: SecretFetcher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret_id = secret_id
        fetch = fetch or api_secret_fetcher(max_age)
        self._secret = CachedSecret(secret_id, fetch, clock=clock)

    def get(self) -> ApiCredentials:
        return ApiCredentials.parse(self._secret.read())

    def refresh(self) -> bool:
        """Re-reads the secret unless that was done less than a minute ago; True when the keys changed."""
        if not self._secret.may_refresh():
            return False
        before = self.get()
        return ApiCredentials.parse(self._secret.read(force=True)) != before


def api_secret_fetcher(max_age: int, client: Any = None) -> SecretFetcher:
    """The API keys' secret, read as ``secret_fetcher`` reads every secret; a failed read is a
    CredentialsUnavailableError."""
    return secret_fetcher(max_age, client, what="the Voucherify API secret", error=CredentialsUnavailableError)


class StaticCredentials:
    """Fixed keys (tests, scripts)."""

    def __init__(self, app_id: str, app_token: str) -> None:
        self._credentials = ApiCredentials(app_id, app_token)

    def get(self) -> ApiCredentials:
        return self._credentials

    def refresh(self) -> bool:
        return False


def _error_property(name: str) -> Any:
    """A read-only attribute of ``ApiResponse``: its ``error_field(name)``."""
    return property(lambda response: response.error_field(name))


@dataclass(frozen=True)
class ApiResponse:
    """One HTTP answer of the API: status, parsed JSON (``None`` if the body is not JSON), the useful headers."""

    status: int
    body: Any
    headers: Mapping[str, str]
    raw: bytes = field(repr=False)
    endpoint: Endpoint = "rollback"

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error_field(self, name: str) -> str | None:
        """A field of a Voucherify error object (``key``, ``message``, ``details``, ``request_id`` …) as text, or None
        for an answer that is not an error."""
        if self.ok or not isinstance(self.body, dict):
            return None
        value = self.body.get(name)
        return str(value) if value is not None else None

    error_key = _error_property("key")  # already_rolled_back, not_found, …
    error_message = _error_property("message")
    error_details = _error_property("details")
    request_id = _error_property("request_id")

    @property
    def rate_limit_remaining(self) -> int | None:
        value = self.headers.get("x-rate-limit-remaining")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def retry_after(self, now: float | None = None) -> float | None:
        """Seconds to wait before the next request, from ``Retry-After`` (seconds or an HTTP date) and
        ``X-Rate-Limit-Retry`` (an epoch time in seconds; a small number is read as a delay). The longer wins."""
        now = time.time() if now is None else now
        waits: list[float] = []
        retry_after = self.headers.get("retry-after")
        if retry_after:
            try:
                waits.append(float(retry_after))
            except ValueError:
                with contextlib.suppress(TypeError, ValueError, IndexError):
                    waits.append(parsedate_to_datetime(retry_after).timestamp() - now)
        retry_at = self.headers.get("x-rate-limit-retry")
        if retry_at:
            try:
                value = float(retry_at)
            except ValueError:
                value = math.nan
            if value >= _EPOCH_THRESHOLD * 1000:  # milliseconds
                value = value / 1000.0
            if value >= _EPOCH_THRESHOLD:
                waits.append(value - now)
            elif value >= 0:
                waits.append(value)
        if not waits:
            return None
        return max(0.0, *waits)


@dataclass(frozen=True)
class RollbackBody:
    """The rollback API's request fields: ``reason`` and ``tracking_id`` (query), the rest JSON body."""

    reason: str | None = None
    tracking_id: str | None = None
    customer: Mapping[str, Any] | None = None
    order: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] | None = None

    def query(self) -> str:
        params = {k: v for k, v in (("reason", self.reason), ("tracking_id", self.tracking_id)) if v}
        return urlencode(params)

    def json(self) -> bytes:
        body = {
            k: v
            for k, v in (("customer", self.customer), ("order", self.order), ("metadata", self.metadata))
            if v is not None
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class VoucherifyClient:
    """``rollback_redemption``, ``rollback_stacked_redemptions``, ``list_redemptions`` and ``get_redemption``;
    thread-safe (one connection pool)."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        credentials: SecretCredentials | StaticCredentials | None = None,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        max_connections: int = 10,
        user_agent: str = USER_AGENT,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        if credentials is None:
            raise ValueError("credentials are required")
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.user_agent = user_agent
        self._pool = pool or urllib3.PoolManager(num_pools=2, maxsize=max_connections, block=False, retries=False)

    @property
    def max_request_seconds(self) -> float:
        """The longest a request can take before it times out."""
        return self.connect_timeout + self.read_timeout

    def rollback_redemption(
        self, redemption_id: str, body: RollbackBody | None = None, *, deadline_seconds: float | None = None
    ) -> ApiResponse:
        """``POST /v1/redemptions/{redemptionId}/rollback``."""
        path = f"/v1/redemptions/{quote(redemption_id, safe='')}/rollback"
        return self._post(path, body, "rollback", deadline_seconds)

    def rollback_stacked_redemptions(
        self, parent_redemption_id: str, body: RollbackBody | None = None, *, deadline_seconds: float | None = None
    ) -> ApiResponse:
        """``POST /v1/redemptions/{parentRedemptionId}/rollbacks``: the parent and every child of a stack."""
        return self._post(
            f"/v1/redemptions/{quote(parent_redemption_id, safe='')}/rollbacks", body, "rollbacks", deadline_seconds
        )

    def list_redemptions(
        self, params: Mapping[str, str | int], *, deadline_seconds: float | None = None
    ) -> ApiResponse:
        """``GET /v1/redemptions`` with ``params`` as its query (``limit``, ``page``, ``order``,
        ``created_at[after]`` …)."""
        return self._send("GET", "/v1/redemptions", urlencode(params), None, "list", deadline_seconds)

    def get_redemption(self, redemption_id: str, *, deadline_seconds: float | None = None) -> ApiResponse:
        """``GET /v1/redemptions/{redemptionId}``: a redemption or a rollback."""
        path = f"/v1/redemptions/{quote(redemption_id, safe='')}"
        return self._send("GET", path, "", None, "get", deadline_seconds)

    def _post(
        self,
        path: str,
        body: RollbackBody | None,
        endpoint: Endpoint,
        deadline_seconds: float | None,
    ) -> ApiResponse:
        body = body or RollbackBody()
        return self._send("POST", path, body.query(), body.json(), endpoint, deadline_seconds)

    def _send(
        self,
        method: Literal["GET", "POST"],
        path: str,
        query: str,
        payload: bytes | None,
        endpoint: Endpoint,
        deadline_seconds: float | None,
    ) -> ApiResponse:
        credentials = self.credentials.get()
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        read = self.read_timeout
        if deadline_seconds is not None:  # never outlive the invocation
            read = max(0.1, min(read, deadline_seconds - self.connect_timeout))
        timeout = urllib3.Timeout(connect=self.connect_timeout, read=read)
        headers = {
            "X-App-Id": credentials.app_id,
            "X-App-Token": credentials.app_token,
            "Accept": "application/json",
            "User-Agent": self.user_agent,
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            answer = self._pool.request(
                method, url, body=payload, headers=headers, timeout=timeout, retries=False, redirect=False
            )
        except urllib3.exceptions.NewConnectionError as exc:  # refused, unreachable (a TimeoutError subclass)
            raise VoucherifyUnavailableError("connection", type(exc).__name__) from None
        except urllib3.exceptions.TimeoutError as exc:
            raise VoucherifyUnavailableError("timeout", type(exc).__name__) from None
        except urllib3.exceptions.HTTPError as exc:
            raise VoucherifyUnavailableError("connection", type(exc).__name__) from None
        raw = answer.data or b""
        try:
            parsed = json.loads(raw) if raw else None
        except (ValueError, RecursionError):
            parsed = None
        kept = {name: answer.headers[name] for name in KEPT_HEADERS if name in answer.headers}
        return ApiResponse(status=answer.status, body=parsed, headers=kept, raw=raw, endpoint=endpoint)
