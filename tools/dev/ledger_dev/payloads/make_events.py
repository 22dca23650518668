"""Writes ``events/``: API Gateway HTTP API (payload 2.0) events for ``sam local invoke``, the ledger table's DynamoDB
stream event for ``LedgerEventsFunction``, and ``env.json``.

    python -m ledger_dev.payloads.make_events          # (re)write the files
    python -m ledger_dev.payloads.make_events --check  # exit 1 when a committed file differs from a fresh one

    sam local invoke RedemptionSucceededFunction -e events/redemption_succeeded.json --env-vars events/env.json

Every event is what API Gateway hands the function (``ledger_dev.harness.apigw.http_api_event``) for one
Voucherify delivery of a payload from ``events/payloads/``: bare ("Raw payload") or wrapped in a
v2024-01-01 envelope, compact JSON as Voucherify sends it, signed (``x-voucherify-signature``) with the
documented local dev secret. Ids and times are derived from the payloads, so regeneration is stable.

``ledger_events_stream.json`` is a batch of the ledger table's stream (NEW_AND_OLD_IMAGES) as Lambda hands it to
``LedgerEventsFunction``: the items the ledger writes for the same payloads — a redemption, a failed one, a rollback,
a rollback request that failed, a quarantined delivery, a redemption the reconciler recorded — one record for each
event type (``docs/events/``), and one that gives none.

``env.json`` gives each function its template environment resolved to the local stack's resources, with
``AWS_ENDPOINT_URL`` pointing at the ``make run`` moto server, and the worker's ``VOUCHERIFY_API_URL`` at
the ``make run`` fake Voucherify, as seen from the SAM container, on their default ports (5000, 8787). ``make run``
writes the same file for the ports it actually uses to ``build/local/env.json`` (``write_env``) and prints its path.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from ledger_dev.harness.apigw import http_api_event
from ledger_dev.harness.queues import local_queue_name
from ledger_dev.harness.template import PROJECT_ROOT, function_environment, http_routes, load_template, resources
from ledger_dev.local_stack import config
from voucherify_ledger.ledger.deliveries import Delivery, delivery_audit
from voucherify_ledger.ledger.dynamo import compress
from voucherify_ledger.ledger.keys import iso, redeemed_day
from voucherify_ledger.ledger.quarantine import quarantine_id_for
from voucherify_ledger.ledger.summaries import ledger_status, redemption_summary, rollback_summary, summary_digest
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData, EventRedemptionSucceededData
from voucherify_ledger.webhooks.auth import SIGNATURE_HEADER, sign

EVENTS_DIR = PROJECT_ROOT / "events"
PAYLOADS_DIR = EVENTS_DIR / "payloads"
ENV_FILE = "env.json"
STREAM_FILE = "ledger_events_stream.json"

SIGNING_SECRET = config.DEFAULT_SIGNING_SECRET  # documented local dev secret
# The `make run` moto server and fake Voucherify as a `sam local` container reaches them (Docker Desktop; on Linux
# run `sam local invoke --add-host host.docker.internal:host-gateway` and LOCAL_AWS_HOST=0.0.0.0 make run).
CONTAINER_HOST = "host.docker.internal"
LOCAL_AWS_ENDPOINT = f"http://{config.HOST}:{config.DEFAULT_AWS_PORT}"  # make run's, on its default ports
LOCAL_VOUCHERIFY_URL = f"http://{config.HOST}:{config.DEFAULT_VOUCHERIFY_PORT}"  # the fake
CONTAINER_AWS_ENDPOINT = f"http://{CONTAINER_HOST}:{config.DEFAULT_AWS_PORT}"
CONTAINER_VOUCHERIFY_URL = f"http://{CONTAINER_HOST}:{config.DEFAULT_VOUCHERIFY_PORT}"
LOCAL_ENV_FILE = PROJECT_ROOT / "build" / "local" / ENV_FILE  # what make run writes for the ports it uses
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "0.0.0.0", "::1"})
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


def container_url(url: str) -> str:
    """``url`` as a `sam local` container reaches it: a server on this machine's loopback (or every interface)
    through ``CONTAINER_HOST``; any other URL (a real Voucherify) as it is."""
    split = urlsplit(url)
    if split.hostname not in _LOOPBACK:
        return url
    port = f":{split.port}" if split.port else ""
    return urlunsplit((split.scheme, CONTAINER_HOST + port, split.path, split.query, split.fragment))


def build_env(
    aws_endpoint: str = LOCAL_AWS_ENDPOINT, voucherify_api_url: str = LOCAL_VOUCHERIFY_URL
) -> dict[str, dict[str, str]]:
    """``sam local invoke --env-vars`` file: per function, its environment for the `make run` resources, with its
    embedded AWS at ``aws_endpoint`` and the worker's and the reconciler's API at ``voucherify_api_url`` (as `make run`
    reaches them: the file has them as a container does, ``container_url``). The defaults, `make run` on its default
    ports, give the committed ``events/env.json``."""
    endpoint = container_url(aws_endpoint)
    refs = {**local_refs(endpoint), "VoucherifyApiUrl": container_url(voucherify_api_url)}
    files: dict[str, dict[str, str]] = {}
    for logical_id in resources("AWS::Serverless::Function"):
        env = function_environment(logical_id, refs)
        env.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
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
    for bus_id, bus in resources("AWS::Events::EventBus").items():
        # the stack's own bus, named as the template names it (else <stack name>-<logical id>)
        name = (bus.get("Properties") or {}).get("Name") or f"{config.STACK_NAME}-{bus_id}"
        if isinstance(name, dict) and "Fn::Sub" in name:
            name = re.sub(r"\$\{([^}]+)\}", lambda found: refs[found.group(1)], str(name["Fn::Sub"]))
        arn = f"arn:aws:events:{region}:{account}:event-bus/{name}"
        refs.update({bus_id: str(name), f"{bus_id}.Name": str(name), f"{bus_id}.Arn": arn})
    for queue_id, queue in resources("AWS::SQS::Queue").items():
        name = local_queue_name(queue_id, queue.get("Properties") or {}, refs)
        url = f"{endpoint}/{account}/{name}"
        arn = f"arn:aws:sqs:{region}:{account}:{name}"
        refs.update({queue_id: url, f"{queue_id}.Arn": arn, f"{queue_id}.QueueName": name, f"{queue_id}.QueueUrl": url})
    return refs


# --- the ledger table's stream (LedgerEventsFunction) ----------------------------------------------------------
STREAM_TABLE_ARN = f"arn:aws:dynamodb:{config.REGION}:{config.ACCOUNT_ID}:table/{config.TABLE_NAME}"
RECONCILED_ID = "r_0e6ff48b91cfa02e97"  # the seed redemption, as the reconciler found it in Voucherify's list


def _received(data: dict[str, Any]) -> datetime:
    return _event_time(data) + timedelta(seconds=3)


def _delivery(raw: bytes, route: str, received_at: datetime, **fields: Any) -> Delivery:
    return Delivery(raw=raw, route=route, received_at=received_at, **fields)


def redemption_item(data: dict[str, Any], delivery: Delivery) -> dict[str, Any]:
    """The item ``RedemptionStore.record`` writes for ``data`` (its raw copy inline)."""
    model = EventRedemptionSucceededData.model_validate(data)
    summary = redemption_summary(model, model.redemption)
    return {
        "pk": "REDEMPTION#" + model.redemption.id,
        "sk": "REDEMPTION",
        **summary,
        "entity": "redemption",
        "status": ledger_status(model.redemption),
        "redeemed_day": redeemed_day(summary["redeemed_at"]),
        "redemption_recorded_at": iso(delivery.received_at),
        "updated_at": iso(delivery.received_at),
        "redemption_digest": summary_digest(summary),
        "redemption_delivery": delivery_audit(delivery, compress(delivery.raw)),
    }


def rolled_back_item(data: dict[str, Any], delivery: Delivery) -> dict[str, Any]:
    """The item ``RedemptionStore.record_rollback`` writes when the rollback comes before its redemption."""
    model = EventRedemptionRollbackSucceededData.model_validate(data)
    rollback = model.redemption_rollback
    summary = rollback_summary(rollback, model.redemption_id, model)
    item: dict[str, Any] = {"pk": "REDEMPTION#" + model.redemption_id, "sk": "REDEMPTION"}
    if model.redemption is not None:
        item.update(redemption_summary(model, model.redemption))
    when = iso(delivery.received_at)
    entry = {k: v for k, v in summary.items() if k not in ("rollback_id", "redemption_id")}
    audit = delivery_audit(delivery, compress(delivery.raw))
    item.update(
        {
            "entity": "redemption",
            f"rollback#{rollback.id}": {"source": "webhook", "recorded_at": when, **entry, "delivery": audit},
            "status": "ROLLED_BACK",
            "rolled_back_at": iso(rollback.date),
            "rollback_ids": {rollback.id},
            "updated_at": when,
        }
    )
    return item


def _stream_value(value: Any) -> dict[str, Any]:
    """An attribute value in DynamoDB JSON as a stream event carries it (binary base64-encoded)."""
    if isinstance(value, bytes):
        return {"B": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {"M": {k: _stream_value(v) for k, v in value.items()}}
    if isinstance(value, (set, frozenset)):
        return {"SS": sorted(value)}
    if isinstance(value, list):
        return {"L": [_stream_value(v) for v in value]}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float, Decimal)):
        return {"N": str(value)}
    if value is None:
        return {"NULL": True}
    return {"S": str(value)}


def stream_record(
    number: int, when: datetime, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> dict[str, Any]:
    """One record of the ledger table's stream (NEW_AND_OLD_IMAGES), as Lambda hands it over."""
    item = new if new is not None else old
    assert item is not None
    stream: dict[str, Any] = {
        "ApproximateCreationDateTime": int(when.timestamp()),
        "Keys": {"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}},
    }
    if new is not None:
        stream["NewImage"] = {k: _stream_value(v) for k, v in new.items()}
    if old is not None:
        stream["OldImage"] = {k: _stream_value(v) for k, v in old.items()}
    stream["SequenceNumber"] = f"{4_000_000_000_000_000_000 + number}"
    stream["SizeBytes"] = len(json.dumps(stream, separators=(",", ":")))
    stream["StreamViewType"] = "NEW_AND_OLD_IMAGES"
    return {
        "eventID": hashlib.sha256(f"stream/{number}".encode()).hexdigest()[:32],
        "eventName": "INSERT" if old is None else ("MODIFY" if new is not None else "REMOVE"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": config.REGION,
        "dynamodb": stream,
        "eventSourceARN": f"{STREAM_TABLE_ARN}/stream/2024-01-01T00:00:00.000",
    }


def build_stream_event() -> dict[str, Any]:
    """A batch of the ledger's stream whose records give each event type of docs/events once."""
    succeeded, failed = load_payload("redemption_succeeded"), load_payload("redemption_failed")
    rollback = load_payload("redemption_rollback_succeeded")
    seed_at, failed_at, rollback_at = _received(succeeded), _received(failed), _received(rollback)
    seed = redemption_item(succeeded, _delivery(compact(succeeded), "redemption-succeeded", seed_at))
    # a duplicate of the seed writes nothing; the worker's request to roll it back fails (result FAILURE)
    request_at = seed_at + timedelta(hours=20)
    pending = {
        "pk": seed["pk"],
        "sk": "REQUEST#cancel-1001",
        "state": "PENDING",
        "entity": "rollback_request",
        "request_id": "cancel-1001",
        "redemption_id": seed["redemption_id"],
        "created_at": iso(request_at),
        "updated_at": iso(request_at),
        "message_id": "0b1c6e0a-5f0e-4c2e-9a51-1f6e0c2f7a01",
        "receive_count": 1,
        "reason": "Order cancelled by the customer",
        "attempts": 1,
    }
    request_failed = {
        **pending,
        "state": "FAILED",
        "updated_at": iso(request_at + timedelta(milliseconds=420)),
        "rollback_id": _id("rrf_", "stream", "request"),
        "error": {"status": 200, "key": "customer_rules_violated", "message": "Customer does not match the rules"},
        "api_calls": 1,
    }
    invalid = json.loads(json.dumps(succeeded))
    invalid["redemption"]["status"] = "PARTIALLY_SUCCEEDED"
    raw = compact(invalid)
    quarantine_at = seed_at + timedelta(minutes=5)
    quarantined = {
        "pk": "QUARANTINE#" + quarantine_id_for(raw),
        "sk": "QUARANTINE",
        "entity": "quarantine",
        "quarantine_id": quarantine_id_for(raw),
        "first_received_at": iso(quarantine_at),
        "raw_zlib": compress(raw),
        "last_received_at": iso(quarantine_at),
        "route": "redemption-succeeded",
        "reason": "the payload does not match the redemption.succeeded schema",
        "errors": ["redemption.status: Input should be 'SUCCEEDED', 'FAILED', 'ROLLED BACK' or 'ROLLED_BACK'"],
        "expires_at": int((quarantine_at + timedelta(days=30)).timestamp()),
        "deliveries": 1,
    }
    found = json.loads(json.dumps(succeeded))
    found["redemption"]["id"] = RECONCILED_ID
    reconciled_at = seed_at + timedelta(hours=1)
    reconciled = redemption_item(found, _delivery(compact(found["redemption"]), "reconciler", reconciled_at))
    records = [
        (seed_at, None, seed),
        (failed_at, None, redemption_item(failed, _delivery(compact(failed), "redemption-succeeded", failed_at))),
        (quarantine_at, None, quarantined),
        (reconciled_at, None, reconciled),
        (request_at, None, pending),  # gives no event
        (request_at + timedelta(milliseconds=420), pending, request_failed),
        (
            rollback_at,
            None,
            rolled_back_item(rollback, _delivery(compact(rollback), "redemption-rollback-succeeded", rollback_at)),
        ),
    ]
    records.sort(key=lambda r: r[0])
    return {"Records": [stream_record(n, when, old, new) for n, (when, old, new) in enumerate(records, start=1)]}


def _text(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_env(path: Path = LOCAL_ENV_FILE, **where: str) -> Path:
    """Writes ``build_env(**where)`` (``aws_endpoint``, ``voucherify_api_url``) to ``path``: what `make run` does for
    the ports it uses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_text(build_env(**where)), encoding="utf-8")
    return path


GENERATORS: dict[str, Callable[[], Any]] = {
    **{f"{spec.name}.json": (lambda spec=spec: build_event(spec)) for spec in EVENT_FILES},
    STREAM_FILE: build_stream_event,
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
            print(
                f"events/{name} is out of date: run .venv/bin/python -m ledger_dev.payloads.make_events",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path in write_all():
        print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
