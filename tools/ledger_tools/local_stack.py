"""The whole bundle on 127.0.0.1, without Docker or an AWS account: ``make run``.

- moto's server is the embedded AWS (``http://127.0.0.1:$LOCAL_AWS_PORT``, default 5000);
- the resources the functions need are built from ``template.yaml``'s own definitions: the ledger table,
  the webhook secret (dev values), and every ``AWS::SQS::Queue`` (redrive policies resolved to ARNs);
- the template's ``HttpApi`` routes are served on ``http://127.0.0.1:$LOCAL_API_PORT`` (default 3000, the
  port ``sam local start-api`` uses): each request becomes a real API Gateway HTTP API (payload 2.0) event
  handed to the real handler, loaded with the function's environment from the template.

``LocalStack`` is what ``make run`` runs and what the tests start in-process on ephemeral ports::

    with LocalStack(LocalConfig(aws_port=0, api_port=0)) as stack:
        urllib.request.urlopen(stack.api_url + "/webhooks/redemption-succeeded", ...)

More moving parts (a queue worker, a fake Voucherify) plug in as background services
(``stack.add_service(...)`` before ``start()``, see ``BackgroundService`` and ``PollingService``); queues
declared in the template are created automatically and published in ``stack.queues`` and ``stack.refs``.

moto keeps its state in module globals: run one ``LocalStack`` per process at a time.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from ledger_tools.apigw import LambdaContext, http_api_event, response_parts
from ledger_tools.template import PROJECT_ROOT, HttpRoute, create_table, http_routes, load_template, resources

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

    from ledger_tools.fake_voucherify import FakeVoucherify
    from ledger_tools.sqs_poller import SqsPoller

log = logging.getLogger("ledger_tools.local_stack")

# --- the local environment, in one place (the CLI's --local reads the same) ----------------------
HOST = "127.0.0.1"
AWS_HOST_ENV = "LOCAL_AWS_HOST"
AWS_PORT_ENV = "LOCAL_AWS_PORT"
API_PORT_ENV = "LOCAL_API_PORT"
DEFAULT_AWS_PORT = 5000
DEFAULT_API_PORT = 3000  # what `sam local start-api` uses
REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"  # moto's default account
TABLE_NAME = "voucherify-ledger"
STACK_NAME = "voucherify-ledger-local"  # AWS::StackName of the local stack (queue names derive from it)
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
SIGNING_SECRET_ENV = "VOUCHERIFY_WEBHOOK_SECRET"
HEADER_TOKEN_ENV = "VOUCHERIFY_WEBHOOK_TOKEN"
DEFAULT_SIGNING_SECRET = "local-dev-webhook-secret"  # documented; also signs the committed events/*.json
DEFAULT_HEADER_TOKEN = "local-dev-token"
VOUCHERIFY_PORT_ENV = "LOCAL_VOUCHERIFY_PORT"
DEFAULT_VOUCHERIFY_PORT = 8787  # the fake Voucherify
VOUCHERIFY_API_URL_ENV = "VOUCHERIFY_API_URL"  # set: the worker calls this API instead of the fake
VOUCHERIFY_APP_ID_ENV = "VOUCHERIFY_APP_ID"
VOUCHERIFY_APP_TOKEN_ENV = "VOUCHERIFY_APP_TOKEN"
WORKER_FUNCTION = "RollbackWorkerFunction"
WORKER_QUEUE = "RollbackQueue"
PAYLOADS_DIR = PROJECT_ROOT / "events" / "payloads"

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API payload limit
INTEGRATION_TIMEOUT_SECONDS = 30.0  # API Gateway's maximum integration timeout
REQUEST_SOCKET_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 5.0
# Connections the kernel completes while the accept loop is busy (socketserver's default is 5). Past the
# backlog Linux drops the SYN, the client retries it a second later and, the queue still full under load, can
# get a reset without the server ever seeing the request: 16 loadtest senders connecting at once did.
LISTEN_BACKLOG = 128
_JSON = {"content-type": "application/json"}


# Settings that differ between functions by design (per route in the template) and that each function reads when it
# is loaded (WebhookSettings at init), so one process serves both routes right: no clash warning for them.
PER_FUNCTION_SETTINGS = frozenset({"WEBHOOK_AUTH"})


def template_parameter_default(name: str) -> str:
    return str(load_template()["Parameters"][name]["Default"])


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a port number (0-65535), got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{name} must be a port number (0-65535), got {port}")
    return port


@dataclass(frozen=True)
class LocalConfig:
    """Where the local stack listens and what it creates. Port 0 picks a free port (tests)."""

    aws_host: str = HOST
    aws_port: int = DEFAULT_AWS_PORT
    api_host: str = HOST
    api_port: int = DEFAULT_API_PORT
    region: str = REGION
    table_name: str = TABLE_NAME
    secret_id: str = field(default_factory=lambda: template_parameter_default("WebhookSecretId"))
    signing_secret: str = DEFAULT_SIGNING_SECRET
    header_token: str = DEFAULT_HEADER_TOKEN
    signing_secret_from_env: bool = False
    header_token_from_env: bool = False
    # The rollback worker: its queue polled, its API a fake Voucherify on voucherify_port, or the real
    # (or any) API at voucherify_api_url with these keys.
    rollbacks: bool = True
    voucherify_port: int = DEFAULT_VOUCHERIFY_PORT
    voucherify_api_url: str = ""
    voucherify_app_id: str = ""
    voucherify_app_token: str = ""
    # Template parameters other than their defaults, as `sam deploy --parameter-overrides` gives them.
    parameter_overrides: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalConfig:
        env = os.environ if env is None else env
        secret = env.get(SIGNING_SECRET_ENV, "")
        token = env.get(HEADER_TOKEN_ENV, "")
        api_url = env.get(VOUCHERIFY_API_URL_ENV, "").strip().rstrip("/")
        app_id, app_token = env.get(VOUCHERIFY_APP_ID_ENV, "").strip(), env.get(VOUCHERIFY_APP_TOKEN_ENV, "").strip()
        return cls(
            aws_host=env.get(AWS_HOST_ENV, "").strip() or HOST,
            aws_port=_port(env, AWS_PORT_ENV, DEFAULT_AWS_PORT),
            api_port=_port(env, API_PORT_ENV, DEFAULT_API_PORT),
            signing_secret=secret or DEFAULT_SIGNING_SECRET,
            header_token=token or DEFAULT_HEADER_TOKEN,
            signing_secret_from_env=bool(secret),
            header_token_from_env=bool(token),
            voucherify_port=_port(env, VOUCHERIFY_PORT_ENV, DEFAULT_VOUCHERIFY_PORT),
            voucherify_api_url=api_url,
            voucherify_app_id=app_id,
            voucherify_app_token=app_token,
        )

    @property
    def aws_endpoint(self) -> str:
        """The embedded AWS as clients reach it (a wildcard bind is reached through loopback)."""
        host = HOST if self.aws_host in ("0.0.0.0", "::", "") else self.aws_host
        return f"http://{host}:{self.aws_port}"

    def aws_environment(self) -> dict[str, str]:
        """What makes boto3 talk to the embedded AWS with dummy credentials."""
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            **DUMMY_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def secret_value(self) -> dict[str, str]:
        return {"signing_secret": self.signing_secret, "header_token": self.header_token}


def aws_client(service: str, endpoint: str, region: str = REGION) -> Any:
    """A boto3 client for the embedded AWS: dummy credentials, short timeouts, few retries."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )
    config = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"})
    return session.client(service, endpoint_url=endpoint, config=config)


# --- background services ---------------------------------------------------------------------------
@runtime_checkable
class BackgroundService(Protocol):
    """Something the local stack runs next to the API: started in the order added, after the AWS
    resources exist (``stack.refs``, ``stack.queues``, ``stack.aws_client()``, ``stack.function()`` are
    usable, and ``stack.api_url`` is bound), stopped in reverse order. ``stop()`` must return within a
    few seconds. An optional ``describe() -> list[str]`` adds lines to the banner."""

    name: str

    def start(self, stack: LocalStack) -> None: ...

    def stop(self) -> None: ...


class PollingService:
    """A daemon thread calling ``poll(stack)`` every ``interval`` seconds until stopped (an SQS worker's
    shape). A failing poll is logged and the loop goes on; ``poll`` itself must be bounded (e.g. a
    ``ReceiveMessage`` with a short ``WaitTimeSeconds``)."""

    def __init__(self, name: str, poll: Callable[[LocalStack], None] | None = None, *, interval: float = 0.2) -> None:
        self.name = name
        self.interval = interval
        self._poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0
        self.failures = 0

    def poll(self, stack: LocalStack) -> None:
        if self._poll is None:
            raise NotImplementedError("pass poll= or override poll()")
        self._poll(stack)

    def start(self, stack: LocalStack) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(stack,), name=f"local-{self.name}", daemon=True)
        self._thread.start()

    def _run(self, stack: LocalStack) -> None:
        while not self._stop.is_set():
            try:
                self.poll(stack)
            except Exception:
                self.failures += 1
                log.exception("%s: poll failed", self.name)
            self.polls += 1
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(SHUTDOWN_TIMEOUT_SECONDS)
            if self._thread.is_alive():
                log.warning("%s did not stop within %.0f s", self.name, SHUTDOWN_TIMEOUT_SECONDS)
            self._thread = None


# --- functions ------------------------------------------------------------------------------------
@dataclass
class LocalFunction:
    """One loaded function: like a single Lambda instance, it handles one event at a time."""

    logical_id: str
    handler: Callable[[dict[str, Any], Any], Any]
    environment: dict[str, str]
    timeout_seconds: float
    memory_mb: int
    region: str = REGION
    lock: threading.Lock = field(default_factory=threading.Lock)
    invocations: int = 0

    def invoke(self, event: dict[str, Any], *, wait: float = INTEGRATION_TIMEOUT_SECONDS) -> Any:
        """Runs the handler; ``TimeoutError`` when the instance stays busy longer than ``wait`` seconds."""
        if not self.lock.acquire(timeout=wait):
            raise TimeoutError(f"{self.logical_id} stayed busy for {wait:.0f} s")
        try:
            self.invocations += 1
            context = LambdaContext(
                function_name=self.logical_id,
                memory_limit_in_mb=self.memory_mb,
                timeout_seconds=self.timeout_seconds,
                region=self.region,
            )
            started = time.monotonic()
            result = self.handler(event, context)
            took = time.monotonic() - started
            if took > self.timeout_seconds:
                log.warning(
                    "%s took %.1f s, longer than its Timeout of %.0f s: Lambda would have stopped it",
                    self.logical_id,
                    took,
                    self.timeout_seconds,
                )
            return result
        finally:
            self.lock.release()


def _function_setting(logical_id: str, name: str, default: Any) -> Any:
    own = resources("AWS::Serverless::Function")[logical_id]["Properties"].get(name)
    value = own if own is not None else load_template().get("Globals", {}).get("Function", {}).get(name, default)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default


# --- queues ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalQueue:
    logical_id: str
    name: str
    url: str
    arn: str


_QUEUE_ATTRIBUTES_SKIPPED = {"QueueName", "Tags", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds"}


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def resolve_intrinsics(value: Any, refs: Mapping[str, str]) -> Any:
    """``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` resolved from ``refs`` (logical ids, ``Id.Attribute``,
    parameters, pseudo parameters), recursively; anything else unresolvable is a clear error."""
    if isinstance(value, list):
        return [resolve_intrinsics(v, refs) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return _lookup(refs, str(arg))
        if key == "Fn::GetAtt":
            return _lookup(refs, ".".join(arg) if isinstance(arg, list) else str(arg))
        if key == "Fn::Sub":
            text, extra = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
            scope = {**refs, **{k: str(resolve_intrinsics(v, refs)) for k, v in extra.items()}}
            return re.sub(r"\$\{([^}!][^}]*)\}", lambda m: _lookup(scope, m.group(1)), text)
        if key.startswith("Fn::") or key == "Condition":
            raise ValueError(f"{key} is not supported by the local stack")
    return {k: resolve_intrinsics(v, refs) for k, v in value.items()}


def _lookup(refs: Mapping[str, str], name: str) -> str:
    try:
        return refs[name]
    except KeyError:
        raise ValueError(f"cannot resolve {name!r} locally (known: {', '.join(sorted(refs))})") from None


def _queue_dependencies(props: Any, queue_ids: set[str]) -> set[str]:
    found: set[str] = set()
    if isinstance(props, dict):
        for key, arg in props.items():
            if key == "Ref" and arg in queue_ids:
                found.add(arg)
            elif key == "Fn::GetAtt":
                target = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
                if target in queue_ids:
                    found.add(target)
            else:
                found |= _queue_dependencies(arg, queue_ids)
    elif isinstance(props, list):
        for item in props:
            found |= _queue_dependencies(item, queue_ids)
    return found


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def local_queue_name(logical_id: str, props: Mapping[str, Any], refs: Mapping[str, str]) -> str:
    """The queue's ``QueueName`` resolved locally, else ``<STACK_NAME>-<logical-id>`` (``.fifo`` if FIFO)."""
    name = resolve_intrinsics(props.get("QueueName"), refs)
    if name:
        return str(name)
    fifo = str(resolve_intrinsics(props.get("FifoQueue", ""), refs)).lower() == "true"
    return f"{STACK_NAME}-{_kebab(logical_id)}" + (".fifo" if fifo else "")


def create_queues(sqs: Any, queue_resources: Mapping[str, Mapping[str, Any]], refs: dict[str, str]) -> list[LocalQueue]:
    """Creates every ``AWS::SQS::Queue`` of ``queue_resources`` (logical id → resource), dead-letter
    queues first, with their properties as queue attributes (``RedrivePolicy`` with its
    ``deadLetterTargetArn`` resolved to the DLQ's ARN). A ``QueueName`` is resolved locally; without one
    the queue is named ``<STACK_NAME>-<logical-id>``. Adds ``Id``, ``Id.Arn``, ``Id.QueueName`` and
    ``Id.QueueUrl`` to ``refs``."""
    pending = {lid: dict(res.get("Properties") or {}) for lid, res in queue_resources.items()}
    ids = set(pending)
    created: list[LocalQueue] = []
    for _ in range(len(ids) + 1):  # each pass creates at least one queue, or the rest is a cycle
        ready = [lid for lid, props in pending.items() if not (_queue_dependencies(props, ids) & pending.keys())]
        if not pending:
            break
        if not ready:
            raise ValueError(f"queues reference each other in a cycle: {', '.join(sorted(pending))}")
        for lid in sorted(ready):
            props = resolve_intrinsics(pending.pop(lid), refs)
            name = local_queue_name(lid, props, refs)
            attributes = {k: _attribute_text(v) for k, v in props.items() if k not in _QUEUE_ATTRIBUTES_SKIPPED}
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            queue = LocalQueue(lid, name, url, arn)
            refs.update({lid: url, f"{lid}.Arn": arn, f"{lid}.QueueName": name, f"{lid}.QueueUrl": url})
            created.append(queue)
    return created


# --- HTTP routes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _CompiledRoute:
    route: HttpRoute
    pattern: re.Pattern[str]
    params: tuple[str, ...]

    @classmethod
    def of(cls, route: HttpRoute) -> _CompiledRoute:
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
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], stack: LocalStack) -> None:
        self.stack = stack
        super().__init__(address, _ApiHandler)


# --- the stack ------------------------------------------------------------------------------------
class StartupError(RuntimeError):
    """The local stack cannot start (e.g. a port in use); the message says what to do."""


def _port_in_use_hint(what: str, env_name: str, port: int) -> str:
    hint = f"port {port} ({what}) is already in use: stop whatever holds it or set {env_name}=<another port>"
    if port == DEFAULT_AWS_PORT:
        hint += " (on macOS, AirPlay Receiver listens on 5000)"
    return hint


def _check_free(host: str, port: int, what: str, env_name: str) -> None:
    """A clear error before a server tries a port that is taken (werkzeug would just exit)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is fine
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(_port_in_use_hint(what, env_name, port)) from None
            raise StartupError(f"cannot listen on {host}:{port} ({what}): {exc.strerror}") from None


class LocalStack:
    """The embedded AWS, the template's resources, background services and the HTTP API, on loopback.

    Attributes once started: ``config`` (with the actual ports), ``aws_endpoint``, ``api_url``,
    ``refs`` (logical id / ``Id.Attribute`` / parameter → local value, what function environments are
    resolved from), ``queues`` (logical id → ``LocalQueue``), ``services``.
    """

    def __init__(self, config: LocalConfig | None = None, *, services: Iterable[BackgroundService] = ()) -> None:
        self.config = config or LocalConfig.from_env()
        self.services: list[BackgroundService] = list(services)
        self.refs: dict[str, str] = {}
        self.queues: dict[str, LocalQueue] = {}
        self.routes: list[HttpRoute] = http_routes()
        self.compiled_routes = [_CompiledRoute.of(route) for route in self.routes]
        self._functions: dict[str, LocalFunction] = {}
        self._functions_lock = threading.Lock()
        self._saved_env: dict[str, str | None] = {}
        self._moto: ThreadedMotoServer | None = None
        self._api: _ApiServer | None = None
        self._api_thread: threading.Thread | None = None
        self._started_services: list[BackgroundService] = []
        self.fake_voucherify: FakeVoucherify | None = None
        self.rollback_poller: SqsPoller | None = None
        self.started = False

    # --- public API -------------------------------------------------------------------------------
    def add_service(self, service: BackgroundService) -> None:
        """Runs ``service`` with the stack: call before ``start()``."""
        if self.started:
            raise RuntimeError("add services before start()")
        self.services.append(service)

    @property
    def aws_endpoint(self) -> str:
        return self.config.aws_endpoint

    @property
    def api_url(self) -> str:
        return f"http://{self.config.api_host}:{self.config.api_port}"

    def aws_client(self, service: str) -> Any:
        return aws_client(service, self.aws_endpoint, self.config.region)

    def route_keys(self) -> list[str]:
        return [f"{route.method} {route.path}" for route in self.routes]

    def function(self, logical_id: str) -> LocalFunction:
        """The function, loaded once (on first use) as Lambda loads it: its environment from the template
        (resolved from ``refs``) is put into ``os.environ``, then its handler module is imported."""
        with self._functions_lock:
            if logical_id not in self._functions:
                self._functions[logical_id] = self._load(logical_id)
            return self._functions[logical_id]

    def start(self) -> LocalStack:
        if self.started:
            return self
        self.started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops the API, the services (reverse order) and the embedded AWS; restores ``os.environ``."""
        if self._api is not None:
            if self._api_thread is not None:
                self._api.shutdown()  # returns once serve_forever has left its loop
            self._api.server_close()
            if self._api_thread is not None:
                self._api_thread.join(SHUTDOWN_TIMEOUT_SECONDS)
            self._api, self._api_thread = None, None
        while self._started_services:
            service = self._started_services.pop()
            try:
                service.stop()
            except Exception:
                log.exception("stopping %s failed", service.name)
        if self._moto is not None:
            with contextlib.suppress(Exception):
                self._moto.stop()
            self._moto = None
        self._restore_env()
        self._clear_parameter_caches()
        self._functions.clear()
        self.started = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- start-up ---------------------------------------------------------------------------------
    def _start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server: no access log per call
        self._start_moto()
        self._bind_api()
        self._set_env(self.config.aws_environment())
        self._set_env(dict.fromkeys(("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")))
        no_proxy = ",".join(
            filter(None, (os.environ.get("NO_PROXY") or os.environ.get("no_proxy"), "127.0.0.1,localhost"))
        )
        self._set_env({"NO_PROXY": no_proxy, "no_proxy": no_proxy})  # loopback never goes through a proxy
        self._clear_parameter_caches()
        self._create_resources()
        self._start_rollbacks()
        for service in self.services:
            log.info("starting %s", service.name)
            service.start(self)
            self._started_services.append(service)
        for logical_id in dict.fromkeys(route.function for route in self.routes):
            self.function(logical_id)
        assert self._api is not None
        self._api_thread = threading.Thread(
            target=self._api.serve_forever, kwargs={"poll_interval": 0.05}, name="local-api", daemon=True
        )
        self._api_thread.start()

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        serialize_moto_dynamodb()

        class _Server(ThreadedMotoServer):
            """ThreadedMotoServer that reports a failed bind instead of waiting for ever, stops quickly and
            frees its port."""

            error: BaseException | None = None

            def _server_entry(self) -> None:
                # ThreadedMotoServer._server_entry, with a short poll interval so that stop() is quick.
                from moto.moto_server.werkzeug_app import (
                    DomainDispatcherApplication,
                    MotoRequestHandler,
                    create_backend_app,
                )
                from werkzeug.serving import make_server

                try:
                    app = DomainDispatcherApplication(create_backend_app)
                    self._server = make_server(
                        self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
                    )
                    self._server_ready_event.set()
                    self._server.serve_forever(poll_interval=0.05)
                except BaseException as exc:
                    self.error = exc
                    self._server_ready_event.set()

            def stop(self) -> None:
                server = self._server
                if server is not None and self.error is None:
                    super().stop()
                    server.server_close()

        _check_free(self.config.aws_host, self.config.aws_port, "embedded AWS", AWS_PORT_ENV)
        server = _Server(self.config.aws_host, self.config.aws_port, verbose=False)
        server.start()
        if server.error is not None:  # werkzeug prints why and exits when it cannot listen
            raise StartupError(
                f"the embedded AWS could not listen on {self.config.aws_host}:{self.config.aws_port} "
                f"(set {AWS_PORT_ENV} to another port)"
            ) from server.error
        self._moto = server
        _, port = server.get_host_and_port()
        self.config = _replace(self.config, aws_port=port)
        # moto's backends are process-global: start from a clean slate.
        request = urllib.request.Request(f"{self.aws_endpoint}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()

    def _bind_api(self) -> None:
        try:
            self._api = _ApiServer((self.config.api_host, self.config.api_port), self)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(_port_in_use_hint("webhook API", API_PORT_ENV, self.config.api_port)) from None
            raise
        self.config = _replace(self.config, api_port=self._api.server_address[1])

    def _create_resources(self) -> None:
        cfg = self.config
        self.refs.update(
            {
                "AWS::Region": cfg.region,
                "AWS::AccountId": ACCOUNT_ID,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::StackName": STACK_NAME,
                **{name: str(p.get("Default", "")) for name, p in (load_template().get("Parameters") or {}).items()},
                **{name: str(value) for name, value in cfg.parameter_overrides.items()},
            }
        )
        tables = resources("AWS::DynamoDB::Table")
        if tables:
            table_id = "LedgerTable" if "LedgerTable" in tables else next(iter(tables))
            create_table(self.aws_client("dynamodb"), table_id, cfg.table_name)
            arn = f"arn:aws:dynamodb:{cfg.region}:{ACCOUNT_ID}:table/{cfg.table_name}"
            self.refs.update({table_id: cfg.table_name, f"{table_id}.Arn": arn})
        secret = self.aws_client("secretsmanager").create_secret(
            Name=cfg.secret_id, SecretString=json.dumps(cfg.secret_value())
        )
        self.refs.update({"WebhookSecretId": cfg.secret_id, "WebhookSecretArn": secret["ARN"]})
        queues = resources("AWS::SQS::Queue")
        if queues:
            for queue in create_queues(self.aws_client("sqs"), queues, self.refs):
                self.queues[queue.logical_id] = queue

    def _start_rollbacks(self) -> None:
        """The worker's API (the fake Voucherify, or VOUCHERIFY_API_URL) and keys, and its queue's poller."""
        cfg = self.config
        if not cfg.rollbacks or WORKER_FUNCTION not in resources("AWS::Serverless::Function"):
            return
        from ledger_tools.fake_voucherify import FakeVoucherify, api_secret_value
        from ledger_tools.sqs_poller import SqsPoller

        if cfg.voucherify_api_url:
            if not cfg.voucherify_api_url.startswith(("https://", "http://")):
                raise StartupError(f"{VOUCHERIFY_API_URL_ENV} must be an http(s) URL, got {cfg.voucherify_api_url!r}")
            if not (cfg.voucherify_app_id and cfg.voucherify_app_token):
                raise StartupError(
                    f"{VOUCHERIFY_API_URL_ENV} is set: also set {VOUCHERIFY_APP_ID_ENV} and {VOUCHERIFY_APP_TOKEN_ENV} "
                    "(Project settings > Application keys)"
                )
            api_url, keys = cfg.voucherify_api_url, api_secret_value(cfg.voucherify_app_id, cfg.voucherify_app_token)
        else:
            webhook = next((r.path for r in self.routes if r.function == "RedemptionRollbackSucceededFunction"), None)
            # Bound like the embedded AWS (LOCAL_AWS_HOST=0.0.0.0 lets `sam local` containers reach both).
            _check_free(cfg.aws_host, cfg.voucherify_port, "fake Voucherify", VOUCHERIFY_PORT_ENV)
            fake = FakeVoucherify(
                host=cfg.aws_host,
                port=cfg.voucherify_port,
                webhook_url=self.api_url + webhook if webhook else None,
                webhook_secret=cfg.signing_secret,
            )
            fake.start(self)
            self._started_services.append(fake)
            self.fake_voucherify = fake
            api_url, keys = fake.url, api_secret_value()
        secret_id = self.refs.get("VoucherifyApiSecretId") or template_parameter_default("VoucherifyApiSecretId")
        self.aws_client("secretsmanager").create_secret(Name=secret_id, SecretString=keys)
        self.refs["VoucherifyApiUrl"] = api_url
        self.function(WORKER_FUNCTION)  # loaded now: a configuration error stops start-up, not the first message
        if WORKER_QUEUE in self.queues:
            poller = SqsPoller(
                self.aws_client("sqs"),
                self.queues[WORKER_QUEUE].url,
                lambda event, _context: self.function(WORKER_FUNCTION).invoke(event),
                function_name=WORKER_FUNCTION,
                timeout_seconds=float(_function_setting(WORKER_FUNCTION, "Timeout", 3)),
                region=cfg.region,
                queue_arn=self.queues[WORKER_QUEUE].arn,
                max_consecutive_errors=1_000_000,  # make run keeps polling through a flaky moment
            )
            poller.start(self)
            self._started_services.append(poller)
            self.rollback_poller = poller

    def _load(self, logical_id: str) -> LocalFunction:
        from ledger_tools.handlers import load_handler
        from ledger_tools.template import function_environment

        environment = function_environment(logical_id, self.refs)
        for name in self.config.aws_environment():  # the embedded AWS, not the template's placeholders
            environment.pop(name, None)
        clashes = {
            name
            for fn in self._functions.values()
            for name, value in fn.environment.items()
            if environment.get(name, value) != value and name not in PER_FUNCTION_SETTINGS
        }
        if clashes:
            log.warning(
                "%s sets %s differently from another function; the local stack shares one process, so each "
                "function reads its value when it is loaded",
                logical_id,
                ", ".join(sorted(clashes)),
            )
        self._set_env(environment)
        handler = load_handler(logical_id)
        return LocalFunction(
            logical_id=logical_id,
            handler=handler,
            environment=environment,
            timeout_seconds=float(_function_setting(logical_id, "Timeout", 3)),
            memory_mb=int(_function_setting(logical_id, "MemorySize", 128)),
            region=self.config.region,
        )

    # --- environment ------------------------------------------------------------------------------
    def _set_env(self, values: Mapping[str, str | None]) -> None:
        for name, value in values.items():
            if name not in self._saved_env:
                self._saved_env[name] = os.environ.get(name)
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    @staticmethod
    def _clear_parameter_caches() -> None:
        """Powertools keeps its Secrets Manager provider (and the client's endpoint) process-wide."""
        if "aws_lambda_powertools.utilities.parameters" in sys.modules:
            sys.modules["aws_lambda_powertools.utilities.parameters"].clear_caches()

    # --- banner -----------------------------------------------------------------------------------
    def banner(self, payloads_dir: Path = PAYLOADS_DIR) -> str:
        cfg = self.config
        width = max(len(key) for key in self.route_keys()) if self.routes else 0
        lines = [
            "Voucherify redemption ledger: local stack (moto as the embedded AWS; no Docker, no AWS account)",
            f"  embedded AWS  {cfg.aws_endpoint}  (region {cfg.region}; {AWS_PORT_ENV})",
            f"  ledger table  {cfg.table_name}",
            f"  secret        {cfg.secret_id}",
            f"  webhook API   {self.api_url}  ({API_PORT_ENV})",
        ]
        lines += [
            f"    {key.ljust(width)}  -> {route.function}"
            for key, route in zip(self.route_keys(), self.routes, strict=True)
        ]
        lines += [f"  queue         {q.name}  ({lid})" for lid, q in self.queues.items()]
        if cfg.voucherify_api_url:
            lines.append(
                f"  Voucherify API {cfg.voucherify_api_url}  "
                f"({VOUCHERIFY_API_URL_ENV}, X-App-Id {cfg.voucherify_app_id})"
            )
        for service in self._started_services or self.services:
            describe = getattr(service, "describe", None)
            lines += [f"  {line}" for line in (describe() if callable(describe) else [f"service       {service.name}"])]
        lines.append(
            f"  signing secret: {SIGNING_SECRET_ENV} "
            + (
                "(set in your environment)"
                if cfg.signing_secret_from_env
                else f'(not set: default "{cfg.signing_secret}")'
            )
        )
        token_header = self.refs.get("WebhookTokenHeader") or template_parameter_default("WebhookTokenHeader")
        lines.append(
            f"  header token:   {HEADER_TOKEN_ENV} for the {token_header} header "
            + ("(set in your environment)" if cfg.header_token_from_env else f'(not set: default "{cfg.header_token}")')
        )
        examples = curl_examples(self.api_url, cfg.signing_secret, self.routes, payloads_dir)
        if examples:
            lines += ["", "Send the sample payloads (signed with the secret in use):"]
            for example in examples:
                lines += [f"  {line}" for line in example.command.splitlines()]
            lines += ["", "Then look the redemptions up in the ledger:"]
            lines += [
                f"  redemption-ledger show {rid} --local" for rid in dict.fromkeys(e.redemption_id for e in examples)
            ]
        if self.rollback_poller is not None:
            example = examples[0].redemption_id if examples else "r_…"
            lines += ["", "Roll a redemption back through the queue and the worker:"]
            lines.append(f'  redemption-ledger rollback {example} --reason "order cancelled" --local')
        lines += ["", "Ctrl-C stops everything."]
        return "\n".join(lines)


_MOTO_DYNAMODB_LOCK = threading.RLock()


def serialize_moto_dynamodb() -> None:
    """Makes moto's DynamoDB handle one request at a time, as DynamoDB keeps each item write atomic and each
    transaction isolated. moto's server is threaded and its DynamoDB backend is not thread-safe: a failed
    ``TransactWriteItems`` puts back a copy of the whole table taken when it started, undoing every write other
    threads made meanwhile, and copying a table that another thread is changing fails (HTTP 500). Idempotent."""
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_serialized", False):
        return
    unlocked = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _MOTO_DYNAMODB_LOCK:
            return unlocked(self)

    call_action._serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    _cheap_moto_transactions()


def _cheap_moto_transactions() -> None:
    """moto's ``TransactWriteItems`` deep-copies every table it touches before it starts, to put the copy back if
    it fails: O(table size) per transaction, seconds once the table holds thousands of items. With requests
    serialized, keeping only the items the transaction touches is enough to undo it."""
    import copy
    import types

    import moto.dynamodb.models as backend_module
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    whole_table_copy = DynamoDBBackend.transact_write_items
    no_table_copy = types.SimpleNamespace(
        deepcopy=lambda value, memo=None: value if isinstance(value, Table) else copy.deepcopy(value, memo)
    )

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Any, Any, Any, Any]] = []
        for entry in transact_items[:100]:
            operation = next(iter(entry.values()), None) or {}
            table = self.tables.get(operation.get("TableName"))
            if table is None:
                continue
            key = operation.get("Key") or operation.get("Item") or {}
            try:
                hash_key = DynamoType(key[table.hash_key_attr])
                range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
            except Exception:  # a malformed key: moto's own code reports it
                continue
        backend_module.copy = no_table_copy  # type: ignore[assignment]
        try:
            whole_table_copy(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):
                if item is None:
                    with contextlib.suppress(KeyError):
                        table.items[hash_key].pop(range_key) if range_key else table.items.pop(hash_key)
                elif range_key:
                    table.items[hash_key][range_key] = item
                else:
                    table.items[hash_key] = item
            raise
        finally:
            backend_module.copy = copy  # type: ignore[assignment]

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _replace(config: LocalConfig, **changes: Any) -> LocalConfig:
    from dataclasses import replace

    return replace(config, **changes)


# --- curl examples --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CurlExample:
    payload: Path
    url: str
    signature: str
    redemption_id: str
    command: str


def webhook_kind(document: Mapping[str, Any]) -> tuple[str, str] | None:
    """(event type, redemption id) of a payload, bare or in a v2024 envelope; None when it is neither
    a redemption nor a rollback event."""
    from voucherify_ledger.models.webhooks import is_envelope

    data: Any = document
    event_type: str | None = None
    if is_envelope(dict(document)):
        event_type = str((document.get("event") or {}).get("type") or "")
        data = document.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get("redemption"), Mapping):
        return None
    rollback = data.get("redemption_rollback")
    if event_type is None:
        event_type = "redemption.rollback.succeeded" if isinstance(rollback, Mapping) else "redemption.succeeded"
    redemption_id = (rollback or {}).get("redemption") if isinstance(rollback, Mapping) else None
    return event_type, str(redemption_id or data["redemption"].get("id") or "")


def route_for_event(event_type: str, routes: Sequence[HttpRoute]) -> HttpRoute | None:
    """The template route whose receiver accepts ``event_type`` (``/webhooks/<receiver route name>``)."""
    from voucherify_ledger.webhooks import REDEMPTION_ROLLBACK_SUCCEEDED, REDEMPTION_SUCCEEDED

    for receiver in (REDEMPTION_SUCCEEDED, REDEMPTION_ROLLBACK_SUCCEEDED):
        if event_type in receiver.event_types:
            for route in routes:
                if route.method in ("POST", "ANY") and route.path.rstrip("/").endswith("/" + receiver.name):
                    return route
    return None


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def curl_examples(
    api_url: str, signing_secret: str, routes: Sequence[HttpRoute], payloads_dir: Path = PAYLOADS_DIR
) -> list[CurlExample]:
    """A ready-to-paste curl command per payload file, signed over the file's exact bytes."""
    from voucherify_ledger.auth import SIGNATURE_HEADER, sign

    examples: list[tuple[int, CurlExample]] = []
    for path in sorted(payloads_dir.glob("*.json")) if payloads_dir.is_dir() else []:
        raw = path.read_bytes()
        try:
            document = json.loads(raw)
        except ValueError:
            continue
        kind = webhook_kind(document) if isinstance(document, dict) else None
        route = route_for_event(kind[0], routes) if kind else None
        if kind is None or route is None:
            continue
        url = api_url + route.path
        signature = sign(signing_secret, raw)
        command = (
            f"curl -sS -w '\\n' -X POST {url} \\\n"
            f"  -H 'content-type: application/json' \\\n"
            f"  -H '{SIGNATURE_HEADER}: {signature}' \\\n"
            f"  --data-binary @{_display_path(path)}"
        )
        examples.append((list(routes).index(route), CurlExample(path, url, signature, kind[1], command)))
    return [example for _, example in sorted(examples, key=lambda pair: (pair[0], pair[1].payload.name))]


# --- make run -------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    argparse.ArgumentParser(
        prog="python -m ledger_tools.local_stack",
        description="The whole bundle on 127.0.0.1 (what `make run` runs); Ctrl-C stops it.",
        epilog=f"Environment: {API_PORT_ENV} (default {DEFAULT_API_PORT}), {AWS_PORT_ENV} (default "
        f"{DEFAULT_AWS_PORT}), {AWS_HOST_ENV} (default {HOST}; 0.0.0.0 lets `sam local` containers reach it), "
        f"{SIGNING_SECRET_ENV} (default {DEFAULT_SIGNING_SECRET!r}), {HEADER_TOKEN_ENV} (default "
        f"{DEFAULT_HEADER_TOKEN!r}).",
    ).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        config = LocalConfig.from_env()
        with LocalStack(config) as stack:
            print(stack.banner(), flush=True)
            while not stop.wait(0.5):  # until Ctrl-C / SIGTERM
                pass
            print("\nstopping the local stack…", flush=True)
    except (StartupError, ValueError) as exc:
        print(f"local stack: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
