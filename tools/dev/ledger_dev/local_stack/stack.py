"""``LocalStack``: the whole bundle on 127.0.0.1, without Docker or an AWS account (``make run``).

- moto's server is the embedded AWS (``http://127.0.0.1:$LOCAL_AWS_PORT``, default 5000), with the fixes of
  ``harness.moto_patches``;
- the resources the functions need are built from ``template.yaml``'s own definitions: the ledger table,
  the webhook secret (dev values), and every ``AWS::SQS::Queue`` (``harness.queues``);
- the template's ``HttpApi`` routes are served on ``http://127.0.0.1:$LOCAL_API_PORT`` (default 3000, the
  port ``sam local start-api`` uses) by ``harness.api_emulator``: each request becomes a real API Gateway HTTP API
  (payload 2.0) event handed to the real handler, loaded with the function's environment from the template;
- the rollback worker: its queue polled (``harness.sqs_poller``), its API the fake Voucherify
  (``ledger_dev.fake_voucherify``) or ``VOUCHERIFY_API_URL``; the fake answers ``404 not_found`` for a redemption
  Voucherify never made, as Voucherify does, and knows those of the sample payloads and of every webhook the API
  records (``known``);
- the ledger's stream (``streams``): every function's ``Type: DynamoDB`` event polled as Lambda's event source mapping
  does (batching, filters, partial batch failures, retries, the on-failure queue, all as the template says), the
  template's event bus created and the ledger's events kept in a log group by a rule of the local stack's own;
- the reconciler (``reconciler``): ``ReconcilerFunction`` invoked every ``reconcile_seconds`` as its ``ScheduleV2``
  event would (not when the template's schedule is disabled: ``ReconcileSchedule=Off``), against the same API;
- the fake's history (``history``): ``history`` objects over 90 days, of which a share ``history_webhooks`` of
  webhooks is sent to the webhook routes in the background once the API serves; the rest are for the reconciler.

``LocalStack`` is what ``make run`` runs and what the tests start in-process on ephemeral ports::

    with LocalStack(LocalConfig(aws_port=0, api_port=0)) as stack:
        urllib.request.urlopen(stack.api_url + "/webhooks/redemption-succeeded", ...)

More moving parts plug in as background services (``stack.add_service(...)`` before ``start()``, see
``services``); queues declared in the template are created automatically and published in ``stack.queues`` and
``stack.refs``.

moto keeps its state in module globals: run one ``LocalStack`` per process at a time.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
import threading
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ledger_dev.harness.api_emulator import CompiledRoute, _ApiServer
from ledger_dev.harness.functions import LocalFunction, function_setting, load_handler
from ledger_dev.harness.queues import LocalQueue, create_queues
from ledger_dev.harness.template import (
    HttpRoute,
    create_table,
    function_environment,
    http_routes,
    load_template,
    resources,
)
from ledger_dev.local_stack.banner import banner
from ledger_dev.local_stack.config import (
    ACCOUNT_ID,
    API_PORT_ENV,
    API_SECRET_ID,
    AWS_PORT_ENV,
    DEFAULT_AWS_PORT,
    PAYLOADS_DIR,
    PER_FUNCTION_SETTINGS,
    RECONCILER_FUNCTION,
    STACK_NAME,
    VOUCHERIFY_API_URL_ENV,
    VOUCHERIFY_APP_ID_ENV,
    VOUCHERIFY_APP_TOKEN_ENV,
    VOUCHERIFY_PORT_ENV,
    WORKER_FUNCTION,
    WORKER_QUEUE,
    LocalConfig,
    aws_client,
)
from ledger_dev.local_stack.history import HistoryWebhooks, seed
from ledger_dev.local_stack.known import know_samples, learning
from ledger_dev.local_stack.reconciler import ScheduledReconciler, schedule_of
from ledger_dev.local_stack.services import SHUTDOWN_TIMEOUT_SECONDS, BackgroundService
from ledger_dev.local_stack.streams import LedgerEvents, create_event_buses, stream_events

if TYPE_CHECKING:
    from ledger_dev.fake_voucherify import FakeVoucherify
    from ledger_dev.harness.moto_patches import MotoServer
    from ledger_dev.harness.sqs_poller import SqsPoller

log = logging.getLogger("ledger_dev.local_stack")


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
    resolved from), ``queues`` (logical id → ``LocalQueue``), ``services``; with the API: ``fake_voucherify``
    (unless ``VOUCHERIFY_API_URL``), ``rollback_poller``, ``reconciler`` (when scheduled), ``history_webhooks``
    (when the fake's history has webhooks to send); ``ledger_events`` (``streams.LedgerEvents``: the stream pollers
    and the events' log group) when the template has a ``DynamoDB`` event.
    """

    def __init__(self, config: LocalConfig | None = None, *, services: Iterable[BackgroundService] = ()) -> None:
        self.config = config or LocalConfig.from_env()
        self.services: list[BackgroundService] = list(services)
        self.refs: dict[str, str] = {}
        self.queues: dict[str, LocalQueue] = {}
        self.routes: list[HttpRoute] = http_routes()
        self.compiled_routes = [CompiledRoute.of(route) for route in self.routes]
        self._functions: dict[str, LocalFunction] = {}
        self._functions_lock = threading.Lock()
        self._saved_env: dict[str, str | None] = {}
        self._moto: MotoServer | None = None
        self._api: _ApiServer | None = None
        self._api_thread: threading.Thread | None = None
        self._started_services: list[BackgroundService] = []
        self.fake_voucherify: FakeVoucherify | None = None
        self.rollback_poller: SqsPoller | None = None
        self.reconciler: ScheduledReconciler | None = None
        self.history_webhooks: HistoryWebhooks | None = None
        self.ledger_events: LedgerEvents | None = None
        self.started = False

    # --- public API -------------------------------------------------------------------------------
    def add_service(self, service: BackgroundService) -> None:
        """Runs ``service`` with the stack: call before ``start()``."""
        if self.started:
            raise RuntimeError("add services before start()")
        self.services.append(service)

    @property
    def running_services(self) -> list[BackgroundService]:
        """The services started (with the stack's own: the fake Voucherify, the poller), else those added."""
        return self._started_services or self.services

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
        self._start_streams()
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
        if self.history_webhooks is not None:  # once the API serves: start-up does not wait for them
            self.history_webhooks.start(self)
            self._started_services.append(self.history_webhooks)

    def _start_moto(self) -> None:
        from ledger_dev.harness.moto_patches import MotoServer, serialize_moto_dynamodb

        serialize_moto_dynamodb()
        _check_free(self.config.aws_host, self.config.aws_port, "embedded AWS", AWS_PORT_ENV)
        server = MotoServer(self.config.aws_host, self.config.aws_port, verbose=False)
        server.start()
        if server.error is not None:  # werkzeug prints why and exits when it cannot listen
            raise StartupError(
                f"the embedded AWS could not listen on {self.config.aws_host}:{self.config.aws_port} "
                f"(set {AWS_PORT_ENV} to another port)"
            ) from server.error
        self._moto = server
        _, port = server.get_host_and_port()
        self.config = replace(self.config, aws_port=port)
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
        self.config = replace(self.config, api_port=self._api.server_address[1])

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
            dynamodb = self.aws_client("dynamodb")
            create_table(dynamodb, table_id, cfg.table_name, stream=cfg.streams)
            arn = f"arn:aws:dynamodb:{cfg.region}:{ACCOUNT_ID}:table/{cfg.table_name}"
            self.refs.update({table_id: cfg.table_name, f"{table_id}.Arn": arn})
            stream_arn = dynamodb.describe_table(TableName=cfg.table_name)["Table"].get("LatestStreamArn")
            if stream_arn:
                self.refs[f"{table_id}.StreamArn"] = stream_arn
        secret = self.aws_client("secretsmanager").create_secret(
            Name=cfg.secret_id, SecretString=json.dumps(cfg.secret_value())
        )
        self.refs.update({"WebhookSecretId": cfg.secret_id, "WebhookSecretArn": secret["ARN"]})
        queues = resources("AWS::SQS::Queue")
        if queues:
            for queue in create_queues(self.aws_client("sqs"), queues, self.refs):
                self.queues[queue.logical_id] = queue
        if resources("AWS::Events::EventBus"):
            create_event_buses(self.aws_client("events"), self.refs)

    def _start_streams(self) -> None:
        """The stream pollers of the template's DynamoDB events, and the log group that keeps the ledger's events."""
        if not self.config.streams or not stream_events():
            return
        events = LedgerEvents()
        events.start(self)
        self._started_services.append(events)
        self.ledger_events = events

    def _start_rollbacks(self) -> None:
        """The worker's and the reconciler's API (the fake Voucherify with its history, or VOUCHERIFY_API_URL) and
        keys, the worker's queue poller and the reconciler's schedule."""
        cfg = self.config
        if not cfg.rollbacks or WORKER_FUNCTION not in resources("AWS::Serverless::Function"):
            return
        from ledger_dev.fake_voucherify import FakeVoucherify, api_secret_value
        from ledger_dev.harness.sqs_poller import SqsPoller

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
            know_samples(fake, PAYLOADS_DIR)  # and, once the API serves, what its webhooks record (``known``)
            api_url, keys = fake.url, api_secret_value()
            if cfg.history:
                seed(fake, cfg)
                if webhook:  # a share of 0 sends nothing; the banner still says what the fake holds
                    self.history_webhooks = HistoryWebhooks(
                        fake, objects=cfg.history, share=cfg.history_webhooks, seed=cfg.history_seed
                    )
        secret_id = self.refs.get("VoucherifyApiSecretId") or API_SECRET_ID
        self.aws_client("secretsmanager").create_secret(Name=secret_id, SecretString=keys)
        self.refs["VoucherifyApiUrl"] = api_url
        self.function(WORKER_FUNCTION)  # loaded now: a configuration error stops start-up, not the first message
        if WORKER_QUEUE in self.queues:
            poller = SqsPoller(
                self.aws_client("sqs"),
                self.queues[WORKER_QUEUE].url,
                lambda event, _context: self.function(WORKER_FUNCTION).invoke(event),
                function_name=WORKER_FUNCTION,
                timeout_seconds=float(function_setting(WORKER_FUNCTION, "Timeout", 3)),
                region=cfg.region,
                queue_arn=self.queues[WORKER_QUEUE].arn,
                max_consecutive_errors=1_000_000,  # make run keeps polling through a flaky moment
            )
            poller.start(self)
            self._started_services.append(poller)
            self.rollback_poller = poller
        schedule = schedule_of(RECONCILER_FUNCTION, self.refs) if cfg.reconcile_seconds > 0 else None
        if schedule is not None and schedule.enabled:
            reconciler = ScheduledReconciler(cfg.reconcile_seconds, schedule=schedule)
            reconciler.start(self)  # loads the function now: a configuration error stops start-up
            self._started_services.append(reconciler)
            self.reconciler = reconciler

    def _load(self, logical_id: str) -> LocalFunction:
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
        if any(route.function == logical_id for route in self.routes):  # a webhook: the fake knows what it records
            handler = learning(handler, lambda: self.fake_voucherify)
        return LocalFunction(
            logical_id=logical_id,
            handler=handler,
            environment=environment,
            timeout_seconds=float(function_setting(logical_id, "Timeout", 3)),
            memory_mb=int(function_setting(logical_id, "MemorySize", 128)),
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
    def banner(self, payloads_dir: Path = PAYLOADS_DIR, *, env_file: Path | None = None) -> str:
        """What ``make run`` prints on start (``banner.banner``; ``env_file``: the ``sam local invoke --env-vars`` file
        written for this stack)."""
        return banner(self, payloads_dir, env_file=env_file)
