"""API Gateway HTTP API (payload format 2.0) events and Lambda contexts, as AWS builds them.

Used by the local stack to invoke handlers and by the tests, so both exercise the real event shape.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

TEXT_CONTENT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


def _is_text(content_type: str | None, body: bytes) -> bool:
    if content_type and not content_type.lower().startswith(TEXT_CONTENT_TYPES) and "+json" not in content_type:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def http_api_event(
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    *,
    query: str = "",
    base64_encoded: bool | None = None,
    source_ip: str = "127.0.0.1",
    api_id: str = "local",
    stage: str = "$default",
) -> dict:
    """An HTTP API v2 event. Header names are lower-cased and repeated headers joined with commas, as
    API Gateway does. The body is base64-encoded when it is not UTF-8 text (or when asked to be)."""
    raw = body.encode("utf-8") if isinstance(body, str) else (body or b"")
    joined: dict[str, str] = {}
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or [])
    for name, value in pairs:
        key = name.lower()
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    joined.setdefault("host", f"{api_id}.execute-api.localhost")
    if base64_encoded is None:
        base64_encoded = not _is_text(joined.get("content-type"), raw)
    now = datetime.now(UTC)
    event: dict = {
        "version": "2.0",
        "routeKey": f"{method.upper()} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": joined,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": api_id,
            "domainName": joined["host"],
            "domainPrefix": api_id,
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex[:16],
            "routeKey": f"{method.upper()} {path}",
            "stage": stage,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": base64_encoded,
    }
    if query:
        params: dict[str, str] = {}
        for part in query.split("&"):
            name, _, value = part.partition("=")
            params[name] = f"{params[name]},{value}" if name in params else value
        event["queryStringParameters"] = params
    if raw or body is not None:
        event["body"] = base64.b64encode(raw).decode("ascii") if base64_encoded else raw.decode("utf-8")
    return event


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 5.0
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    region: str = "eu-west-1"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:123456789012:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


def response_parts(result: object) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a handler's answer, read as API Gateway reads payload 2.0 answers."""
    import json

    if isinstance(result, dict) and "statusCode" in result:
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
        return int(result["statusCode"]), {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}, raw
    # A payload 2.0 answer without statusCode is taken as a 200 JSON body.
    return 200, {"content-type": "application/json"}, json.dumps(result).encode("utf-8")
