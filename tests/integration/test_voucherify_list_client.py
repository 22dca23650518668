"""The client's redemptions list and lookup over real HTTP on 127.0.0.1: a GET with the query as given (the
brackets of ``created_at[after]`` encoded), the keys in their headers, no body and no content type, one request per
call, the answer as an ``ApiResponse`` whatever its status."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from voucherify_ledger.voucherify_api import StaticCredentials, VoucherifyClient


class Recorder(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.requests: list[dict[str, Any]] = []
        self.answer: tuple[int, dict[str, Any]] = (200, {"object": "list", "redemptions": [], "total": 0})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RecordingHandler(BaseHTTPRequestHandler):
    server: Recorder

    def do_GET(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        parts = urlsplit(self.path)
        self.server.requests.append(
            {
                "path": parts.path,
                "query": dict(parse_qsl(parts.query)),
                "raw_query": parts.query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": self.rfile.read(length) if length else b"",
            }
        )
        status, body = self.server.answer
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("x-request-id", "v-0abc")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_the_list_is_a_get_with_the_query_as_given(recorder: Recorder) -> None:
    client = VoucherifyClient(recorder.url, StaticCredentials("app-1", "token-1"))
    params = {
        "limit": 100,
        "page": 3,
        "order": "created_at",
        "created_at[after]": "2026-08-01T00:00:00.000Z",
        "created_at[before]": "2026-08-02T00:00:00.000Z",
    }
    recorder.answer = (200, {"object": "list", "data_ref": "redemptions", "redemptions": [{"id": "r_1"}], "total": 1})

    answer = client.list_redemptions(params)

    (request,) = recorder.requests
    assert request["path"] == "/v1/redemptions"
    assert request["query"] == {k: str(v) for k, v in params.items()}
    assert "created_at%5Bafter%5D=2026-08-01T00%3A00%3A00.000Z" in request["raw_query"]
    assert (request["headers"]["x-app-id"], request["headers"]["x-app-token"]) == ("app-1", "token-1")
    assert request["body"] == b"" and "content-type" not in request["headers"]
    assert (answer.status, answer.endpoint, answer.body["total"], answer.headers["x-request-id"]) == (
        200,
        "list",
        1,
        "v-0abc",
    )


def test_a_lookup_names_the_id_in_the_path_and_an_error_comes_back_as_an_answer(recorder: Recorder) -> None:
    client = VoucherifyClient(recorder.url, StaticCredentials("app-1", "token-1"))
    recorder.answer = (404, {"code": 404, "key": "not_found", "message": "Resource not found", "request_id": "v-1"})

    answer = client.get_redemption("rr_0c5eb002b40cce9d62")

    (request,) = recorder.requests
    assert request["path"] == "/v1/redemptions/rr_0c5eb002b40cce9d62"
    assert (answer.status, answer.endpoint, answer.error_key, answer.request_id) == (404, "get", "not_found", "v-1")
