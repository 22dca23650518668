"""What ``make run`` prints on start: the endpoints, the routes, the queues, and a ready-to-paste ``curl`` per sample
payload (signed over the file's exact bytes with the secret in use), then the CLI commands that look the redemptions
up, roll one back, backfill what the webhooks never delivered and follow the ledger's events."""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger_dev.harness.template import HttpRoute, parameter_default, resources
from ledger_dev.local_stack.config import (
    API_PORT_ENV,
    AWS_HOST_ENV,
    AWS_PORT_ENV,
    DEFAULT_AWS_PORT,
    DEFAULT_VOUCHERIFY_PORT,
    HEADER_TOKEN_ENV,
    PAYLOADS_DIR,
    RECONCILE_SECONDS_ENV,
    RECONCILER_FUNCTION,
    SIGNING_SECRET_ENV,
    VOUCHERIFY_API_URL_ENV,
    VOUCHERIFY_PORT_ENV,
)
from ledger_dev.local_stack.history import backfill_since
from voucherify_ledger.models.ids import is_succeeded_redemption_id

if TYPE_CHECKING:
    from ledger_dev.local_stack.stack import LocalStack


def banner(stack: LocalStack, payloads_dir: Path = PAYLOADS_DIR, *, env_file: Path | None = None) -> str:
    """What ``make run`` prints: where everything listens, ready-to-paste signed curl commands, the CLI to try;
    with ``env_file`` (the ``sam local invoke --env-vars`` file written for this stack's ports), how to use it."""
    cfg = stack.config
    width = max(len(key) for key in stack.route_keys()) if stack.routes else 0
    lines = [
        "Voucherify redemption ledger: local stack (moto as the embedded AWS; no Docker, no AWS account)",
        f"  embedded AWS  {cfg.aws_endpoint}  (region {cfg.region}; {AWS_PORT_ENV})",
        f"  ledger table  {cfg.table_name}",
        f"  secret        {cfg.secret_id}",
        f"  webhook API   {stack.api_url}  ({API_PORT_ENV})",
    ]
    lines += [
        f"    {key.ljust(width)}  -> {route.function}"
        for key, route in zip(stack.route_keys(), stack.routes, strict=True)
    ]
    lines += [f"  queue         {q.name}  ({lid})" for lid, q in stack.queues.items()]
    if cfg.voucherify_api_url:
        lines.append(
            f"  Voucherify API {cfg.voucherify_api_url}  ({VOUCHERIFY_API_URL_ENV}, X-App-Id {cfg.voucherify_app_id})"
        )
    for service in stack.running_services:
        describe = getattr(service, "describe", None)
        lines += [f"  {line}" for line in (describe() if callable(describe) else [f"service       {service.name}"])]
    reconciles = "VoucherifyApiUrl" in stack.refs and RECONCILER_FUNCTION in resources("AWS::Serverless::Function")
    if reconciles and stack.reconciler is None:
        lines.append(f"  reconciler    not scheduled ({RECONCILE_SECONDS_ENV}=0, or ReconcileSchedule Off)")
    lines.append(
        f"  signing secret: {SIGNING_SECRET_ENV} "
        + ("(set in your environment)" if cfg.signing_secret_from_env else f'(not set: default "{cfg.signing_secret}")')
    )
    token_header = stack.refs.get("WebhookTokenHeader") or parameter_default("WebhookTokenHeader")
    lines.append(
        f"  header token:   {HEADER_TOKEN_ENV} for the {token_header} header "
        + ("(set in your environment)" if cfg.header_token_from_env else f'(not set: default "{cfg.header_token}")')
    )
    examples = curl_examples(stack.api_url, cfg.signing_secret, stack.routes, payloads_dir)
    if examples:
        lines += ["", "Send the sample payloads (signed with the secret in use):"]
        for example in examples:
            lines += [f"  {line}" for line in example.command.splitlines()]
        lines += ["", "Then look the redemptions up in the ledger:"]
        cli = cli_command(cfg.aws_port)
        lines += [f"  {cli} show {rid} --local" for rid in dict.fromkeys(e.redemption_id for e in examples)]
    if env_file is not None:
        lines += ["", *sam_local_lines(stack, env_file, payloads_dir.parent)]
    if stack.rollback_poller is not None:  # a redemption the rollback API can undo (not a failed one, rf_…)
        example = next((e.redemption_id for e in examples if is_succeeded_redemption_id(e.redemption_id)), "r_…")
        lines += ["", "Roll a redemption back through the queue and the worker:"]
        if stack.fake_voucherify is not None and not stack.fake_voucherify.lenient:
            lines.append(
                "  (the fake Voucherify rolls back the sample payloads' redemptions and those the API recorded; "
                "any other id is 404 not_found, as Voucherify answers)"
            )
        lines.append(f'  {cli_command(cfg.aws_port)} rollback {example} --reason "order cancelled" --local --wait 30')
    if reconciles:
        lines += ["", *reconcile_lines(stack)]
    if stack.ledger_events is not None and stack.ledger_events.pollers and stack.ledger_events.buses:
        lines += ["", *events_lines(stack)]
    lines += ["", "Ctrl-C stops everything."]
    return "\n".join(lines)


def reconcile_lines(stack: LocalStack) -> list[str]:
    """The backfill of the whole history (``--since`` a day before it begins) and the reconciler's status, as they
    paste: ``--local`` finds the API as ``make run`` calls it (its fake's port, or ``VOUCHERIFY_API_URL``)."""
    cfg = stack.config
    api: dict[str, str] = {}
    if cfg.voucherify_api_url:
        api[VOUCHERIFY_API_URL_ENV] = cfg.voucherify_api_url
    elif stack.fake_voucherify is not None:
        port = int(stack.fake_voucherify.url.rsplit(":", 1)[1])
        if port != DEFAULT_VOUCHERIFY_PORT:
            api[VOUCHERIFY_PORT_ENV] = str(port)
    scheduled = "the scheduled runs cover the last hour and its overlap" if stack.reconciler else "no scheduled runs"
    return [
        f"Record what the webhooks never delivered: backfill the fake's history ({scheduled}), then see the reconciler:"
        if stack.fake_voucherify is not None
        else f"Record what the webhooks never delivered (a backfill; {scheduled}), then see the reconciler:",
        f"  {cli_command(cfg.aws_port, env=api)} reconcile --local --since {backfill_since()}",
        f"  {cli_command(cfg.aws_port)} reconcile --status --local",
    ]


def events_lines(stack: LocalStack) -> list[str]:
    """``events --local --follow`` as it pastes: the ledger's events, as the stream function publishes them."""
    assert stack.ledger_events is not None
    functions = ", ".join(stack.ledger_events.pollers)
    return [
        f"Follow the ledger's events ({functions} on the bus {', '.join(stack.ledger_events.buses)}; Ctrl-C stops):",
        f"  {cli_command(stack.config.aws_port)} events --local --follow",
    ]


def sam_local_lines(stack: LocalStack, env_file: Path, events_dir: Path) -> list[str]:
    """``sam local invoke`` of a function in Docker against this stack: ``env_file`` gives each function its
    environment for the ports in use (``events/env.json`` is the default ports')."""
    shown = _display_path(env_file)
    event = events_dir / "redemption_succeeded.json"
    lines = [f"Invoke a function in Docker against this stack (after `sam build`): --env-vars {shown}, for these ports"]
    if event.is_file() and "RedemptionSucceededFunction" in resources("AWS::Serverless::Function"):
        lines.append(f"  sam local invoke RedemptionSucceededFunction -e {_display_path(event)} --env-vars {shown}")
    if stack.config.aws_host not in ("0.0.0.0", "::"):  # a container reaches loopback only through Docker Desktop
        lines.append(f"  (on Linux: {AWS_HOST_ENV}=0.0.0.0 make run, and --add-host host.docker.internal:host-gateway)")
    return lines


def cli_command(aws_port: int, cwd: Path | None = None, *, env: Mapping[str, str] | None = None) -> str:
    """``redemption-ledger`` as it pastes into a shell here: the venv's script (relative to ``cwd`` when inside it),
    after ``LOCAL_AWS_PORT=…`` when the embedded AWS is not on its default port (what ``--local`` reads), and after
    ``env``'s other variables (NAME=value, each as given)."""
    script = Path(sys.executable).parent / "redemption-ledger"
    shown = str(script) if script.exists() else "redemption-ledger"
    if script.exists():
        with contextlib.suppress(ValueError):
            shown = str(script.relative_to(cwd or Path.cwd()))
    variables = {AWS_PORT_ENV: str(aws_port)} if aws_port != DEFAULT_AWS_PORT else {}
    variables.update(env or {})
    return "".join(f"{name}={shlex.quote(value)} " for name, value in variables.items()) + shown


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
    from voucherify_ledger.webhooks.routes import REDEMPTION_ROLLBACK_SUCCEEDED, REDEMPTION_SUCCEEDED

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
    from voucherify_ledger.webhooks.auth import SIGNATURE_HEADER, sign

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
