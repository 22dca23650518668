"""Writes ``events/``: API Gateway HTTP API (payload 2.0) events for ``sam local invoke``, and ``env.json``.

    python -m ledger_dev.payloads.make_events          # (re)write the files
    python -m ledger_dev.payloads.make_events --check  # exit 1 when a committed file differs from a fresh one

    sam local invoke RedemptionSucceededFunction -e events/redemption_succeeded.json --env-vars events/env.json

Every event is what API Gateway hands the function (``ledger_dev.harness.apigw.http_api_event``) for one
Voucherify delivery of a payload from ``events/payloads/``: bare ("Raw payload") or wrapped in a
v2024-01-01 envelope, compact JSON as Voucherify sends it, signed (``x-voucherify-signature``) with the
documented local dev secret. Ids and times are derived from the payloads, so regeneration is stable.

``env.json`` gives each function its template environment resolved to the local stack's resources, with
``AWS_ENDPOINT_URL`` pointing at the ``make run`` moto server, and the worker's ``VOUCHERIFY_API_URL`` at
the ``make run`` fake Voucherify, as seen from the SAM container.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from ledger_dev.harness.apigw import http_api_event
from ledger_dev.harness.queues import local_queue_name
from ledger_dev.harness.template import PROJECT_ROOT, function_environment, http_routes, load_template, resources
from ledger_dev.local_stack import config
from voucherify_ledger.webhooks.auth import SIGNATURE_HEADER, sign

EVENTS_DIR = PROJECT_ROOT / "events"
PAYLOADS_DIR = EVENTS_DIR / "payloads"
ENV_FILE = "env.json"

SIGNING_SECRET = config.DEFAULT_SIGNING_SECRET  # documented local dev secret
# The `make run` moto server as a `sam local` container reaches it (Docker Desktop; on Linux run
# `sam local invoke --add-host host.docker.internal:host-gateway` and LOCAL_AWS_HOST=0.0.0.0 make run).
CONTAINER_AWS_ENDPOINT = f"http://host.docker.internal:{config.DEFAULT_AWS_PORT}"
CONTAINER_VOUCHERIFY_URL = f"http://host.docker.internal:{config.DEFAULT_VOUCHERIFY_PORT}"  # the fake
LOCAL_API = f"{config.HOST}:{config.DEFAULT_API_PORT}"  # where `sam local start-api` listens
PROJECT_ID = "proj_5T4Rpl4T1nuM"  # the example project id of Voucherify's OpenAPI file
USER_AGENT = "Voucherify-Webhooks"
DISTRIBUTION_TYPE = "Redemption ledger: rollback succeeded"  # the user-chosen "Event name" of a distribution

Wrap = Literal["bare", "webhook", "distribution"]
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class WebhookEventFile:
    """One ``events/<name>.json``: a payload delivered to a function's HttpApi route."""

    name: str
    function: str  # logical id
    payload: str  # events/payloads/<payload>.json
    event_type: str  # the Voucherify event (event.type of an envelope)
    wrap: Wrap = "bare"
    base64: bool = False
    description: str = ""


EVENT_FILES: tuple[WebhookEventFile, ...] = (
    WebhookEventFile(
        "redemption_succeeded",
        "RedemptionSucceededFunction",
        "redemption_succeeded",
        "redemption.succeeded",
        description="redemption.succeeded, raw payload (the data object only)",
    ),
    WebhookEventFile(
        "redemption_succeeded_envelope",
        "RedemptionSucceededFunction",
        "redemption_succeeded",
        "redemption.succeeded",
        wrap="webhook",
        description="redemption.succeeded from Project settings > Webhooks (v2024-01-01 envelope)",
    ),
    WebhookEventFile(
        "redemption_succeeded_base64",
        "RedemptionSucceededFunction",
        "redemption_succeeded",
        "redemption.succeeded",
        base64=True,
        description="redemption.succeeded, raw payload, body base64-encoded by API Gateway",
    ),
    WebhookEventFile(
        "customer_redemption_rollback_succeeded",
        "RedemptionRollbackSucceededFunction",
        "customer_redemption_rollback_succeeded",
        "customer.redemption.rollback.succeeded",
        description="customer.redemption.rollback.succeeded, raw payload of a distribution",
    ),
    WebhookEventFile(
        "customer_redemption_rollback_succeeded_distribution",
        "RedemptionRollbackSucceededFunction",
        "customer_redemption_rollback_succeeded",
        "customer.redemption.rollback.succeeded",
        wrap="distribution",
        description="customer.redemption.rollback.succeeded from a distribution (v2024-01-01 envelope)",
    ),
    WebhookEventFile(
        "redemption_rollback_succeeded_envelope",
        "RedemptionRollbackSucceededFunction",
        "redemption_rollback_succeeded",
        "redemption.rollback.succeeded",
        wrap="webhook",
        description="redemption.rollback.succeeded from Project settings > Webhooks (v2024-01-01 envelope)",
    ),
    # The failed events arrive at the same URLs: a failed redemption (rf_…) is recorded FAILED, a failed rollback
    # (rrf_…) on its redemption without changing its status.
    WebhookEventFile(
        "redemption_failed",
        "RedemptionSucceededFunction",
        "redemption_failed",
        "redemption.failed",
        description="redemption.failed, raw payload (the data object only)",
    ),
    WebhookEventFile(
        "redemption_failed_envelope",
        "RedemptionSucceededFunction",
        "redemption_failed",
        "redemption.failed",
        wrap="webhook",
        description="redemption.failed from Project settings > Webhooks (v2024-01-01 envelope)",
    ),
    WebhookEventFile(
        "redemption_rollback_failed_envelope",
        "RedemptionRollbackSucceededFunction",
        "redemption_rollback_failed",
        "redemption.rollback.failed",
        wrap="webhook",
        description="redemption.rollback.failed from Project settings > Webhooks (v2024-01-01 envelope)",
    ),
)


def _id(prefix: str, *parts: str) -> str:
    """A stable Voucherify-looking id (``whs_0e16e42bc6e0c65b57``)."""
    return prefix + hashlib.sha256("/".join(parts).encode("utf-8")).hexdigest()[:18]


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clf(value: datetime) -> str:
    """API Gateway's requestContext.time, locale-independent: ``15/Jan/2024:12:20:41 +0000``."""
    value = value.astimezone(UTC)
    return f"{value.day:02d}/{_MONTHS[value.month - 1]}/{value.year}:{value:%H:%M:%S} +0000"


def compact(document: Any) -> bytes:
    """JSON as Voucherify sends it: compact, UTF-8."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def load_payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def route_path(function: str) -> str:
    paths = [route.path for route in http_routes() if route.function == function]
    if not paths:
        raise ValueError(f"{function} has no HttpApi route in template.yaml")
    return paths[0]


def _event_time(data: dict[str, Any]) -> datetime:
    """When the event happened: the rollback's date, else the data's created_at, else the redemption's date."""
    rollback = data.get("redemption_rollback") or {}
    for value in (rollback.get("date"), data.get("created_at"), (data.get("redemption") or {}).get("date")):
        if value:
            return _parse_time(str(value))
    raise ValueError("the payload carries no date to derive the event time from")


def envelope(spec: WebhookEventFile, data: dict[str, Any], target_url: str) -> dict[str, Any]:
    """The v2024-01-01 envelope Voucherify wraps ``data`` in (project-settings webhook or distribution)."""
    happened = _event_time(data)
    rollback = data.get("redemption_rollback") or {}
    entity_id = rollback.get("id") or (data.get("redemption") or {}).get("id")
    distribution = spec.wrap == "distribution"
    return {
        "id": _id("whs_", spec.name),
        "project_id": PROJECT_ID,
        "created_at": _iso(happened + timedelta(seconds=2)),
        "type": DISTRIBUTION_TYPE if distribution else spec.event_type,
        "data": data,
        "source": {
            "id": _id("distr_" if distribution else "wh_", spec.name, "source"),
            "object": "distribution" if distribution else "webhook",
            "target_url": target_url,
        },
        "event": {
            "id": _id("evred_", spec.name, "event"),
            "type": spec.event_type,
            "created_at": _iso(happened),
            "entity_id": entity_id,
            "group_id": _id("v-", spec.name, "group"),
            "event_source": {"channel": "API"},
        },
    }


def body_of(spec: WebhookEventFile) -> bytes:
    data = load_payload(spec.payload)
    if spec.wrap == "bare":
        return compact(data)
    return compact(envelope(spec, data, f"http://{LOCAL_API}{route_path(spec.function)}"))


def build_event(spec: WebhookEventFile) -> dict[str, Any]:
    """The HTTP API event of ``spec``, with a fixed request id and time."""
    body = body_of(spec)
    path = route_path(spec.function)
    headers = {
        "content-length": str(len(body)),
        "content-type": "application/json",
        "host": LOCAL_API,
        "user-agent": USER_AGENT,
        SIGNATURE_HEADER: sign(SIGNING_SECRET, body),
    }
    event = http_api_event("POST", path, body, headers, base64_encoded=True if spec.base64 else None)
    received = _event_time(load_payload(spec.payload)) + timedelta(seconds=3)
    request_id = base64.b64encode(hashlib.sha256(f"request/{spec.name}".encode()).digest()[:11]).decode("ascii")
    event["requestContext"].update(
        {"requestId": request_id, "time": _clf(received), "timeEpoch": int(received.timestamp() * 1000)}
    )
    return event


def build_env() -> dict[str, dict[str, str]]:
    """``sam local invoke --env-vars`` file: per function, its environment for the `make run` resources."""
    refs = {**local_refs(CONTAINER_AWS_ENDPOINT), "VoucherifyApiUrl": CONTAINER_VOUCHERIFY_URL}
    files: dict[str, dict[str, str]] = {}
    for logical_id in resources("AWS::Serverless::Function"):
        env = function_environment(logical_id, refs)
        env.update(
            {
                "AWS_ENDPOINT_URL": CONTAINER_AWS_ENDPOINT,
                **config.DUMMY_CREDENTIALS,
                "AWS_DEFAULT_REGION": config.REGION,
                "AWS_REGION": config.REGION,
            }
        )
        files[logical_id] = env
    return files


def local_refs(endpoint: str) -> dict[str, str]:
    """What the template's intrinsics resolve to in the `make run` stack (the same names LocalStack uses)."""
    region, account = config.REGION, config.ACCOUNT_ID
    refs: dict[str, str] = {
        "AWS::Region": region,
        "AWS::AccountId": account,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": config.STACK_NAME,
        **{name: str(p.get("Default", "")) for name, p in (load_template().get("Parameters") or {}).items()},
    }
    for table_id in resources("AWS::DynamoDB::Table"):
        refs[table_id] = config.TABLE_NAME
        refs[f"{table_id}.Arn"] = f"arn:aws:dynamodb:{region}:{account}:table/{config.TABLE_NAME}"
    for queue_id, queue in resources("AWS::SQS::Queue").items():
        name = local_queue_name(queue_id, queue.get("Properties") or {}, refs)
        url = f"{endpoint}/{account}/{name}"
        arn = f"arn:aws:sqs:{region}:{account}:{name}"
        refs.update({queue_id: url, f"{queue_id}.Arn": arn, f"{queue_id}.QueueName": name, f"{queue_id}.QueueUrl": url})
    return refs


def _text(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


GENERATORS: dict[str, Callable[[], Any]] = {
    **{f"{spec.name}.json": (lambda spec=spec: build_event(spec)) for spec in EVENT_FILES},
    ENV_FILE: build_env,
}


def build_all() -> dict[str, str]:
    """File name (in ``events/``) → the text it must hold."""
    return {name: _text(generate()) for name, generate in GENERATORS.items()}


def stale_files(directory: Path = EVENTS_DIR) -> list[str]:
    return [
        name
        for name, text in build_all().items()
        if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != text
    ]


def write_all(directory: Path = EVENTS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in build_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger_dev.payloads.make_events", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="only report files that differ from fresh ones")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"events/{name} is out of date: run python -m ledger_dev.payloads.make_events", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all():
        print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
