"""Receiving a Voucherify webhook delivered through API Gateway (HTTP API, payload format 2.0).

The order of checks is deliberate, and so is every answer, because Voucherify retries anything but a
2xx and disables a webhook after 12 failed attempts:

0. caller outside ``ALLOWED_SOURCE_CIDRS`` (if set)  → 403, nothing read or stored
1. body larger than ``MAX_BODY_BYTES``              → 413, nothing stored
2. missing or wrong signature / token              → 401, nothing stored
3. body that is not a JSON object                  → 400, nothing stored
4. authentic but invalid, or the wrong event type  → 202 ``quarantined``: stored whole with the errors,
                                                     so a poison payload is neither lost nor retried
5. valid                                           → 200 ``recorded`` or ``duplicate`` (a duplicate that says
                                                     something else is kept as a conflict: ``conflict_id``)
6. valid, but DynamoDB refuses it as it is          → 202 ``quarantined`` with the reason (``StorageRefused``)
7. the secret or the ledger cannot be reached      → 503, so Voucherify retries later
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from pydantic import BaseModel, create_model

from voucherify_ledger.auth import (
    SecretUnavailableError,
    WebhookAuthenticator,
    powertools_secret_fetcher,
    secrets_client,
)
from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.dynamo import StorageError, StorageRefusedError
from voucherify_ledger.ledger.redemptions import WriteOutcome
from voucherify_ledger.models.webhooks import (
    VOUCHERIFY_EVENT_TYPES,
    EventRedemptionRollbackSucceededData,
    EventRedemptionSucceededData,
    WebhookEnvelope,
    is_envelope,
)
from voucherify_ledger.settings import WebhookSettings

MAX_REPORTED_ERRORS = 20


@functools.cache
def envelope_of(model: type[BaseModel]) -> type[WebhookEnvelope]:
    """``WebhookEnvelope`` whose ``data`` is ``model``: a whole v2024 delivery validated in one pass."""
    return create_model(f"{model.__name__}Envelope", __base__=WebhookEnvelope, data=(model, ...))


@dataclass(frozen=True)
class Route:
    name: str
    schema: str  # the event whose data schema the route validates
    event_types: frozenset[str]
    model: type[BaseModel]
    record: Callable[[Ledger, Any, Delivery], WriteOutcome]

    @property
    def envelope_model(self) -> type[WebhookEnvelope]:
        return envelope_of(self.model)


REDEMPTION_SUCCEEDED = Route(
    name="redemption-succeeded",
    schema="redemption.succeeded",
    # customer.redemption.succeeded is the distribution twin of redemption.succeeded, with the same data.
    event_types=frozenset({"redemption.succeeded", "customer.redemption.succeeded"}),
    model=EventRedemptionSucceededData,
    record=lambda ledger, data, delivery: ledger.redemptions.record(data, delivery),
)

REDEMPTION_ROLLBACK_SUCCEEDED = Route(
    name="redemption-rollback-succeeded",
    schema="redemption.rollback.succeeded",
    event_types=frozenset({"customer.redemption.rollback.succeeded", "redemption.rollback.succeeded"}),
    model=EventRedemptionRollbackSucceededData,
    record=lambda ledger, data, delivery: ledger.redemptions.record_rollback(data, delivery),
)

# Route.name → route: a quarantine record names the route that received it (``redemption-ledger quarantine replay``).
ROUTES: dict[str, Route] = {route.name: route for route in (REDEMPTION_SUCCEEDED, REDEMPTION_ROLLBACK_SUCCEEDED)}


def message_as_is(message: Any) -> Any:
    """The webhook functions' Logger ``json_deserializer``: Powertools runs it on every str message, hoping for a
    JSON document to nest in the log line. These functions log plain sentences (the data goes in keys), so the
    default ``json.loads`` could only fail, raising and catching a JSONDecodeError per log line."""
    return message


def respond(status_code: int, body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status_code,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body, separators=(",", ":")),
    }


def describe_errors(exc: ValidationError, prefix: str = "") -> list[str]:
    """``field.path: what was expected`` for each problem; never the offending value (it may be personal)."""
    described = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        location = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        described.append(f"{location or 'body'}: {error['msg']}")
    if len(described) > MAX_REPORTED_ERRORS:
        described = [*described[:MAX_REPORTED_ERRORS], f"… and {len(described) - MAX_REPORTED_ERRORS} more"]
    return described


@dataclass(frozen=True)
class Replayed:
    """What ``WebhookReceiver.replay`` made of a delivery: ``recorded``, ``duplicate`` or ``still_invalid``."""

    status: str
    delivery: Delivery
    reason: str | None = None
    errors: tuple[str, ...] = ()
    outcome: WriteOutcome | None = None


class _Request:
    """What a delivery is read from in an API Gateway HTTP API (payload 2.0) event, header names lower-cased as
    API Gateway sends them. (Powertools' ``APIGatewayProxyEventV2`` reads the same keys, but importing it loads
    every event source's data class during init.)"""

    __slots__ = ("body", "headers", "is_base64_encoded")

    def __init__(self, event: Mapping[str, Any]) -> None:
        self.body: Any = event.get("body")
        self.is_base64_encoded: Any = event.get("isBase64Encoded")
        self.headers: dict[str, Any] = {str(k).lower(): v for k, v in dict(event.get("headers") or {}).items()}


class _Quarantine(Exception):
    def __init__(self, reason: str, errors: list[str]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors


class WebhookReceiver:
    """Authenticates, validates and records the deliveries of one route."""

    def __init__(
        self,
        route: Route,
        settings: WebhookSettings,
        ledger: Ledger,
        authenticator: WebhookAuthenticator,
        logger: Any,
        metrics: Any,
    ) -> None:
        self.route = route
        self.settings = settings
        self.ledger = ledger
        self.authenticator = authenticator
        self.logger = logger
        self.metrics = metrics
        if settings.allow_unauthenticated_webhooks:
            logger.warning(
                "ALLOW_UNAUTHENTICATED_WEBHOOKS is on: deliveries are NOT authenticated. Local use only.",
                route=route.name,
            )

    @classmethod
    def from_env(
        cls, route: Route, *, logger: Any, metrics: Any, dynamodb: Any = None, secrets: Any = None
    ) -> WebhookReceiver:
        settings = WebhookSettings.from_env()
        if dynamodb is None:
            import boto3
            from botocore.config import Config

            dynamodb = boto3.client(
                "dynamodb",
                config=Config(
                    # Two attempts of at most 1 s + 1.5 s fit the function's 5 s with room for the answer.
                    connect_timeout=1,
                    read_timeout=1.5,
                    retries={"max_attempts": 2, "mode": "standard"},
                    # botocore's client-side check of each request against the API model walks every attribute
                    # value of the write: ~90 µs (redemption) to ~125 µs (rollback) of a warm delivery's ~0.6 ms
                    # CPU. The ledger builds its requests with typed helpers and DynamoDB validates them anyway:
                    # a malformed one is refused (ValidationException: ClientError → StorageError → 503) as
                    # surely as here (ParamValidationError: BotoCoreError → StorageError → 503).
                    parameter_validation=False,
                ),
            )
        fetch = None
        if settings.webhook_secret_id and not settings.allow_unauthenticated_webhooks:
            # The secret's client and provider are made during init, like the DynamoDB client, not on a delivery.
            fetch = powertools_secret_fetcher(settings.secret_max_age_seconds, secrets or secrets_client())
        authenticator = WebhookAuthenticator(
            settings.webhook_secret_id,
            settings.webhook_token_header,
            methods=settings.webhook_auth,
            allow_unauthenticated=settings.allow_unauthenticated_webhooks,
            fetch=fetch,
            max_age=settings.secret_max_age_seconds,
        )
        receiver = cls(route, settings, Ledger(settings.ledger_table_name, dynamodb), authenticator, logger, metrics)
        receiver.prepare()
        return receiver

    def prepare(self) -> None:
        """Builds this route's validators (the envelope's, the route model's and the route's whole-envelope model,
        which Powertools' parser keeps one of per model) now, during init, rather than on the first delivery."""
        for model in (WebhookEnvelope, self.route.model, self.route.envelope_model):
            with contextlib.suppress(ValidationError):
                parse(event={}, model=model)

    # --- the steps ------------------------------------------------------------------------------
    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        source_ip = _source_ip(event)
        if not self.settings.source_allowed(source_ip):
            # The address is logged (an operator must see a sender missing from the list), never answered.
            return self._reject(
                403, "forbidden", "the caller's address is not an allowed webhook sender", source_ip=source_ip
            )
        request = _Request(event)
        received_at = datetime.now(UTC)
        try:
            raw = self._raw_body(request)
        except ValueError as exc:
            return self._reject(400, "bad_request", str(exc))
        if len(raw) > self.settings.max_body_bytes:
            return self._reject(
                413, "too_large", f"body of {len(raw)} bytes exceeds the limit of {self.settings.max_body_bytes} bytes"
            )
        try:
            auth = self.authenticator.authenticate(request.headers, raw)
        except SecretUnavailableError as exc:
            self.logger.exception("webhook secret unavailable", route=self.route.name)
            return self._unavailable(f"cannot authenticate the delivery now ({exc}); retry later")
        if not auth.ok:
            # Its own metric (and alarm): a rotated secret makes every delivery a 401 until the secret is fixed.
            self.metrics.add_metric(name="Unauthorized", unit="Count", value=1)
            return self._reject(401, "unauthorized", auth.reason)

        try:
            text = raw.decode("utf-8")  # JSON on the wire is UTF-8 (RFC 8259), nothing else
        except UnicodeDecodeError as exc:
            return self._reject(400, "bad_request", f"body is not valid JSON: {_json_problem(exc)}")
        delivery = Delivery(raw=raw, route=self.route.name, received_at=received_at)
        read = self._read_in_one_pass(text, delivery)
        if read is not None:
            data, delivery = read
        else:  # step by step, for the answer that says what is wrong
            try:
                body = json.loads(text)
            except (ValueError, RecursionError) as exc:  # RecursionError: [[[[… nested too deep
                return self._reject(400, "bad_request", f"body is not valid JSON: {_json_problem(exc)}")
            if not isinstance(body, dict):
                return self._reject(400, "bad_request", f"body must be a JSON object, got {_json_kind(body)}")
            try:
                data, delivery, prefix = self._unwrap(body, delivery)
                self._check_event_type(data, delivery)
                data = self._validate(data, prefix)
            except _Quarantine as problem:
                return self._quarantine(problem, delivery)

        try:
            outcome = self.route.record(self.ledger, data, delivery)
        except StorageError as exc:
            self.logger.exception("ledger write failed", route=self.route.name, delivery_id=delivery.delivery_id)
            return self._unavailable(f"the ledger could not be written ({exc}); retry later")
        except StorageRefusedError as refused:  # never storable as it is: a retry would fail again, 12 times
            self.metrics.add_metric(name="StorageRefused", unit="Count", value=1)
            return self._quarantine(
                _Quarantine("the ledger cannot store this delivery as it is", [refused.reason]), delivery
            )

        self.metrics.add_metric(
            name="Recorded" if outcome.status == "recorded" else "Duplicates", unit="Count", value=1
        )
        answer = {
            "status": outcome.status,
            "event_type": delivery.event_type,
            "redemption_id": outcome.redemption_id,
            "ledger_status": outcome.ledger_status,
        }
        if outcome.rollback_id:
            answer["rollback_id"] = outcome.rollback_id
        if outcome.conflict_id:
            # The first record stands; the delivery that says otherwise is kept beside it for a person to judge.
            answer["conflict_id"] = outcome.conflict_id
            self.metrics.add_metric(name="ConflictingDuplicates", unit="Count", value=1)
            self.logger.warning(
                "duplicate delivery differs from the recorded redemption",
                route=self.route.name,
                redemption_id=outcome.redemption_id,
                conflict_id=outcome.conflict_id,
                conflicting_fields=list(outcome.conflicting_fields),
            )
        self.logger.info(
            f"delivery {outcome.status}",
            route=self.route.name,
            auth=auth.method,
            delivery_id=delivery.delivery_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            redemption_id=outcome.redemption_id,
            rollback_id=outcome.rollback_id,
            ledger_status=outcome.ledger_status,
        )
        return respond(200, {k: v for k, v in answer.items() if v is not None})

    @staticmethod
    def _raw_body(request: _Request) -> bytes:
        body = request.body or ""
        if not isinstance(body, str):
            raise ValueError("body must be a string")
        if request.is_base64_encoded:
            try:
                return base64.b64decode(body.encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError):
                raise ValueError("body is flagged base64 but is not valid base64") from None
        return body.encode("utf-8", "surrogatepass")

    def _read_in_one_pass(self, text: str, delivery: Delivery) -> tuple[Any, Delivery] | None:
        """The usual delivery (valid, of this URL's event type) read and validated by one Powertools ``parse`` of
        the body's text (pydantic's ``validate_json``), instead of ``json.loads`` building the whole document as
        Python objects for pydantic to walk again. None for anything else (not JSON, not an object, invalid, the
        wrong event type, an envelope guessed to be a bare payload or the reverse …): the step-by-step reading then
        gives the answer, so every answer is the one it always was."""
        envelope = '"event"' in text and '"data"' in text  # only a guess at the shape: what follows decides
        try:
            parsed = parse(event=text, model=self.route.envelope_model if envelope else self.route.model)
        except ValidationError:
            return None
        if envelope:
            if parsed.event.type not in self.route.event_types:
                return None
            data = parsed.data
            delivery = replace(
                delivery,
                event_type=parsed.event.type,
                delivery_id=_plain_id(parsed.id),
                event_id=_plain_id(parsed.event.id),
            )
        else:
            data = parsed
            extra = parsed.model_extra or {}
            if "event" in extra and "data" in extra:  # an envelope after all (``is_envelope``)
                return None
        if "redemption_rollback" in (data.model_extra or {}):  # a bare rollback at the redemption URL
            return None
        return data, delivery

    def _unwrap(self, body: dict[str, Any], delivery: Delivery) -> tuple[Any, Delivery, str]:
        """The event's data, the delivery with the envelope's ids, and where the data sits in the body."""
        if not is_envelope(body):
            return body, delivery, ""
        try:
            envelope = parse(event=body, model=WebhookEnvelope)
        except ValidationError as exc:
            raise _Quarantine("the v2024-01-01 envelope is invalid", describe_errors(exc)) from None
        delivery = replace(
            delivery,
            event_type=known_event_type(envelope.event.type),
            delivery_id=_plain_id(envelope.id),
            event_id=_plain_id(envelope.event.id),
        )
        if delivery.event_type is None:
            raise _Quarantine(
                "wrong event type for this webhook URL",
                [f"event.type: not a Voucherify event name, this URL accepts {self._accepted()}"],
            )
        return envelope.data, delivery, "data"

    def _accepted(self) -> str:
        return " or ".join(sorted(self.route.event_types))

    def _check_event_type(self, data: Any, delivery: Delivery) -> None:
        accepted = self._accepted()
        if delivery.event_type is not None and delivery.event_type not in self.route.event_types:
            raise _Quarantine(
                "wrong event type for this webhook URL",
                [f"event.type: got {delivery.event_type!r}, this URL accepts {accepted}"],
            )
        if "redemption_rollback" in data and "redemption_rollback" not in self.route.model.model_fields:
            # A bare rollback also carries ``redemption``: without this it would pass as a redemption.
            raise _Quarantine(
                "wrong event type for this webhook URL",
                [f"redemption_rollback: a rollback event, this URL accepts {accepted}"],
            )

    def _validate(self, data: Any, prefix: str) -> Any:
        try:
            return parse(event=data, model=self.route.model)
        except ValidationError as exc:
            raise _Quarantine(
                f"the payload does not match the {self.route.schema} schema",
                describe_errors(exc, prefix),
            ) from None

    # --- replay of a quarantined delivery (the operator's CLI, after a model fix) -------------------
    @classmethod
    def for_replay(cls, route: Route, ledger: Ledger, *, logger: Any, metrics: Any = None) -> WebhookReceiver:
        """A receiver that only replays: it holds no webhook secret, so ``handle`` answers 503 to a live delivery."""

        def no_secret(secret_id: str, force: bool) -> None:
            raise SecretUnavailableError("a replay-only receiver holds no webhook secret")

        class Uncounted:  # an operator's replay is not a delivery: nothing to add to the functions' metrics
            def add_metric(self, **kwargs: Any) -> None:
                pass

        settings = WebhookSettings(ledger_table_name=ledger.table_name, webhook_secret_id="-")
        authenticator = WebhookAuthenticator("-", settings.webhook_token_header, fetch=no_secret)
        return cls(route, settings, ledger, authenticator, logger, Uncounted() if metrics is None else metrics)

    def replay(self, raw: bytes, *, received_at: datetime, replayed_from: str | None = None) -> Replayed:
        """``handle`` from step 3 for a delivery authenticated when it arrived: the same checks with today's models
        and, when they pass, the same idempotent ledger write (``recorded`` or ``duplicate``). Nothing is quarantined,
        counted or answered; a StorageError propagates."""
        delivery = Delivery(raw=raw, route=self.route.name, received_at=received_at, replayed_from=replayed_from)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return Replayed("still_invalid", delivery, "body is not valid JSON", (_json_problem(exc),))
        if not isinstance(body, dict):
            return Replayed("still_invalid", delivery, "body must be a JSON object", (_json_kind(body),))
        try:
            data, delivery, prefix = self._unwrap(body, delivery)
            self._check_event_type(data, delivery)
            data = self._validate(data, prefix)
        except _Quarantine as problem:
            return Replayed("still_invalid", delivery, problem.reason, tuple(problem.errors))
        try:
            outcome = self.route.record(self.ledger, data, delivery)
        except StorageRefusedError as refused:  # still not storable as it is: it stays quarantined, saying why
            return Replayed(
                "still_invalid", delivery, "the ledger cannot store this delivery as it is", (refused.reason,)
            )
        return Replayed(outcome.status, delivery, outcome=outcome)

    # --- answers --------------------------------------------------------------------------------
    def _quarantine(self, problem: _Quarantine, delivery: Delivery) -> dict[str, Any]:
        try:
            outcome = self.ledger.quarantine.keep(
                delivery,
                problem.errors,
                retention_days=self.settings.quarantine_retention_days,
                reason=problem.reason,
            )
        except StorageError as exc:
            self.logger.exception("quarantine write failed", route=self.route.name)
            return self._unavailable(f"the delivery failed validation and could not be quarantined ({exc})")
        self.metrics.add_metric(name="Quarantined", unit="Count", value=1)
        self.logger.warning(
            "delivery quarantined",
            route=self.route.name,
            quarantine_id=outcome.quarantine_id,
            delivery_id=delivery.delivery_id,
            event_type=delivery.event_type,
            reason=problem.reason,
            errors=problem.errors,
        )
        return respond(
            202,
            {
                "status": "quarantined",
                "quarantine_id": outcome.quarantine_id,
                "reason": problem.reason,
                "errors": problem.errors,
            },
        )

    def _reject(self, status_code: int, status: str, message: str, **log_context: Any) -> dict[str, Any]:
        self.metrics.add_metric(name="Rejected", unit="Count", value=1)
        self.logger.warning(
            "delivery rejected", route=self.route.name, status_code=status_code, error=message, **log_context
        )
        return respond(status_code, {"status": status, "error": message})

    def _unavailable(self, message: str) -> dict[str, Any]:
        self.metrics.add_metric(name="StorageErrors", unit="Count", value=1)
        return respond(503, {"status": "error", "error": message})


def known_event_type(value: object) -> str | None:
    """``event.type`` when it is a Voucherify event name, else None: a sender's own string is never repeated."""
    return value if isinstance(value, str) and value in VOUCHERIFY_EVENT_TYPES else None


_PLAIN_ID = re.compile(r"^[0-9A-Za-z_-]{1,100}$")


def _plain_id(value: object) -> str | None:
    """An envelope id (``whs_…``, ``evcus_…``) as it is, when it looks like one; otherwise it is not kept."""
    return value if isinstance(value, str) and _PLAIN_ID.match(value) else None


def _source_ip(event: Mapping[str, Any]) -> str | None:
    """``requestContext.http.sourceIp``: the TCP peer as API Gateway saw it (not a header a caller can set)."""
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, Mapping) else None
    source_ip = http.get("sourceIp") if isinstance(http, Mapping) else None
    return source_ip if isinstance(source_ip, str) else None


def _json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type (``list`` is an array, ``None`` is null …)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "the bytes are not valid UTF-8"
    if isinstance(exc, RecursionError):
        return "arrays or objects nested too deeply"
    return type(exc).__name__
