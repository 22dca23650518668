"""The fake's HTTP plumbing: a threading server (listen backlog 128) whose handler hands every request to the fake."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger_dev.fake_voucherify.fake import FakeVoucherify

log = logging.getLogger("ledger_dev.fake_voucherify")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a batch's worker threads connect at once (socketserver's default is 5)

    def __init__(self, address: tuple[str, int], fake: FakeVoucherify) -> None:
        self.fake = fake
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered: the status line, headers and body leave in one send (handle_one_request flushes). Unbuffered, the
    # body's send waited on keep-alive connections for the client's delayed ACK of the headers (~40 ms an answer).
    wbufsize = 64 * 1024
    server_version = "FakeVoucherify/1.0"
    timeout = 60  # an idle keep-alive connection is closed after a minute
    server: _Server

    def do_POST(self) -> None:
        self.server.fake._dispatch(self)

    def do_GET(self) -> None:
        self.server.fake._dispatch(self)

    def do_DELETE(self) -> None:
        self.server.fake._dispatch(self)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    # helpers used by FakeVoucherify
    def read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def answer(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8") if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
