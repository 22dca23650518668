"""The HTTP API on loopback, as API Gateway serves the template's ``HttpApi`` routes (payload format 2.0).

Each request is matched against the routes (``{param}`` and greedy ``{param+}`` segments; 404 / 405 as API
Gateway answers them), becomes the event API Gateway would build (``apigw.http_api_event``) and is handed to the
route's function; the function's answer is read as API Gateway reads a 2.0 answer. A function busy past the
integration timeout is a 503, one that raises a 500; bodies past API Gateway's payload limit get 413.

``_ApiServer(address, backend)`` serves it; ``backend`` (the local stack) knows the routes and the functions.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from ledger_dev.harness.apigw import http_api_event, response_parts
from ledger_dev.harness.template import HttpRoute

log = logging.getLogger("ledger_dev.harness.api_emulator")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API payload limit
INTEGRATION_TIMEOUT_SECONDS = 30.0  # API Gateway's maximum integration timeout
REQUEST_SOCKET_TIMEOUT_SECONDS = 10.0
# Connections the kernel completes while the accept loop is busy (socketserver's default is 5). Past the
# backlog Linux drops the SYN, the client retries it a second later and, the queue still full under load, can
# get a reset without the server ever seeing the request: 16 loadtest senders connecting at once did.
LISTEN_BACKLOG = 128
_JSON = {"content-type": "application/json"}


class Invocable(Protocol):
    def invoke(self, event: dict[str, Any]) -> Any: ...


class ApiBackend(Protocol):
    """What the emulator serves: the compiled routes and the functions behind them (``LocalStack``)."""

    compiled_routes: list[CompiledRoute]

    def route_keys(self) -> list[str]: ...

    def function(self, logical_id: str) -> Invocable: ...


@dataclass(frozen=True)
class CompiledRoute:
    route: HttpRoute
    pattern: re.Pattern[str]
    params: tuple[str, ...]

    @classmethod
    def of(cls, route: HttpRoute) -> CompiledRoute:
        parts, params = [], []
        for segment in route.path.split("/"):
            greedy = re.fullmatch(r"\{([^}]+)\+\}", segment)
            plain = re.fullmatch(r"\{([^}]+)\}", segment)
            if greedy:
                params.append(greedy.group(1))
                parts.append("(.+)")
            elif plain:
                params.append(plain.group(1))
                parts.append("([^/]+)")
            else:
                parts.append(re.escape(segment))
        return cls(route, re.compile("/".join(parts)), tuple(params))

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        return None if found is None else dict(zip(self.params, found.groups(), strict=True))

    def accepts(self, method: str) -> bool:
        return self.route.method in ("ANY", "*", method)


class _BodyTooLarge(Exception):
    pass


def _read_chunked(stream: Any, limit: int) -> bytes:
    body = bytearray()
    while True:  # each pass consumes a non-empty chunk (bounded by limit) or ends the body
        size_line = stream.readline(1024)
        try:
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            raise ValueError("malformed chunked body") from None
        if size == 0:
            for _ in range(100):  # trailer lines, up to the blank line
                if stream.readline(8192) in (b"\r\n", b"\n", b""):
                    break
            return bytes(body)
        if len(body) + size > limit:
            raise _BodyTooLarge
        body += stream.read(size)
        stream.readline(16)  # CRLF after the chunk


class _ApiHandler(BaseHTTPRequestHandler):
    server: _ApiServer
    protocol_version = "HTTP/1.1"
    # Buffered: the status line, headers and body leave in one send (handle_one_request flushes). Unbuffered, the
    # body's send waited on keep-alive connections for the client's delayed ACK of the headers (~40 ms an answer).
    wbufsize = 64 * 1024
    timeout = REQUEST_SOCKET_TIMEOUT_SECONDS

    def do_request(self) -> None:
        started = time.monotonic()
        stack = self.server.stack
        split = urlsplit(self.path)
        path, method = split.path or "/", self.command.upper()
        candidates = [(r, params) for r in stack.compiled_routes if (params := r.match(path)) is not None]
        if not candidates:
            self._answer(404, {"message": "Not Found", "routes": stack.route_keys()}, close=True)
            return
        chosen = next(((r, p) for r, p in candidates if r.accepts(method)), None)
        if chosen is None:
            allowed = ", ".join(sorted({r.route.method for r, _ in candidates}))
            self._answer(405, {"message": "Method Not Allowed", "allow": allowed}, {"allow": allowed}, close=True)
            return
        route, params = chosen
        try:
            body = self._body()
        except _BodyTooLarge:
            self._answer(413, {"message": "Request Entity Too Large"}, close=True)
            return
        except (ValueError, OSError):
            self._answer(400, {"message": "Bad Request"}, close=True)
            return
        event = http_api_event(method, path, body, list(self.headers.items()), query=split.query)
        event["routeKey"] = event["requestContext"]["routeKey"] = f"{route.route.method} {route.route.path}"
        if params:
            event["pathParameters"] = params
        request_id = event["requestContext"]["requestId"]
        try:
            function = stack.function(route.route.function)
            status, headers, payload = response_parts(function.invoke(event))
        except TimeoutError:
            log.error("%s %s: %s stayed busy, answering 503", method, path, route.route.function)
            status, headers, payload = 503, dict(_JSON), b'{"message":"Service Unavailable"}'
        except Exception:
            log.exception("%s %s: %s raised (API Gateway answers 500)", method, path, route.route.function)
            status, headers, payload = 500, dict(_JSON), b'{"message":"Internal Server Error"}'
        headers["apigw-requestid"] = request_id
        self._send(status, headers, payload)
        log.info(
            "%s %s -> %d (%s, %.0f ms)", method, path, status, route.route.function, (time.monotonic() - started) * 1000
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_request

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return _read_chunked(self.rfile, MAX_BODY_BYTES)
        length = int(self.headers.get("content-length") or 0)
        if length < 0:
            raise ValueError("negative content-length")
        if length > MAX_BODY_BYTES:
            raise _BodyTooLarge
        return self.rfile.read(length) if length else b""

    def _answer(
        self, status: int, body: Mapping[str, Any], extra: Mapping[str, str] | None = None, *, close: bool = False
    ) -> None:
        if close:
            self.close_connection = True  # the request body (if any) was not read
        self._send(status, {**_JSON, **(extra or {})}, json.dumps(body, separators=(",", ":")).encode("utf-8"))
        log.info("%s %s -> %d", self.command, urlsplit(self.path).path, status)

    def _send(self, status: int, headers: Mapping[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("api: " + format, *args)


class _ApiServer(ThreadingHTTPServer):
    """The HTTP API on ``address``, handing each request to ``stack`` (``ApiBackend``: the local stack)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], stack: ApiBackend) -> None:
        self.stack = stack
        super().__init__(address, _ApiHandler)
