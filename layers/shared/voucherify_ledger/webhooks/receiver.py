"""Receiving a Voucherify webhook delivered through API Gateway (HTTP API, payload format 2.0): the checks, in
their deliberate order, and the answer of each (the table is in ``docs/ARCHITECTURE.md`` and the README).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from voucherify_ledger.aws import webhook_dynamodb_client, webhook_secrets_client
from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.dynamo import StorageError, StorageRefusedError
from voucherify_ledger.ledger.redemptions import WriteOutcome
from voucherify_ledger.secrets import SecretUnavailableError, secret_fetcher
from voucherify_ledger.settings import WebhookSettings
from voucherify_ledger.webhooks.auth import AuthResult, WebhookAuthenticator
from voucherify_ledger.webhooks.reading import STORAGE_REFUSED, DeliveryReader, Invalid, Malformed
from voucherify_ledger.webhooks.routes import Route


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


class _Request:
    """What a delivery is read from in an API Gateway HTTP API (payload 2.0) event, header names lower-cased as
    API Gateway sends them. (Powertools' ``APIGatewayProxyEventV2`` reads the same keys, but importing it loads
    every event source's data class during init.)"""

    __slots__ = ("body", "headers", "is_base64_encoded")

    def __init__(self, event: Mapping[str, Any]) -> None:
        self.body: Any = event.get("body")
        self.is_base64_encoded: Any = event.get("isBase64Encoded")
        self.headers: dict[str, Any] = {str(k).lower(): v for k, v in dict(event.get("headers") or {}).items()}

    def raw_body(self) -> bytes:
        """The body's bytes, or ValueError saying why there are none."""
        body = self.body or ""
        if not isinstance(body, str):
            raise ValueError("body must be a string")
        if self.is_base64_encoded:
            try:
                return base64.b64decode(body.encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError):
                raise ValueError("body is flagged base64 but is not valid base64") from None
        return body.encode("utf-8", "surrogatepass")


def _source_ip(event: Mapping[str, Any]) -> str | None:
    """``requestContext.http.sourceIp``: the TCP peer as API Gateway saw it (not a header a caller can set)."""
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, Mapping) else None
    source_ip = http.get("sourceIp") if isinstance(http, Mapping) else None
    return source_ip if isinstance(source_ip, str) else None


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
        self.reader = DeliveryReader(route)
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
        dynamodb = dynamodb or webhook_dynamodb_client()
        fetch = None
        if settings.webhook_secret_id and not settings.allow_unauthenticated_webhooks:
            # The secret's client and provider are made during init, like the DynamoDB client, not on a delivery.
            fetch = secret_fetcher(
                settings.secret_max_age_seconds, secrets or webhook_secrets_client(), what="webhook secret"
            )
        authenticator = WebhookAuthenticator(
            settings.webhook_secret_id,
            settings.webhook_token_header,
            methods=settings.webhook_auth,
            allow_unauthenticated=settings.allow_unauthenticated_webhooks,
            fetch=fetch,
            max_age=settings.secret_max_age_seconds,
        )
        receiver = cls(route, settings, Ledger(settings.ledger_table_name, dynamodb), authenticator, logger, metrics)
        receiver.reader.prepare()
        return receiver

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The answer to one delivery, in the order of the checks: who calls, how large, authentic, JSON, valid,
        stored."""
        source_ip = _source_ip(event)
        if not self.settings.source_allowed(source_ip):
            # The address is logged (an operator must see a sender missing from the list), never answered.
            return self._reject(
                403, "forbidden", "the caller's address is not an allowed webhook sender", source_ip=source_ip
            )
        request = _Request(event)
        received_at = datetime.now(UTC)
        try:
            raw = request.raw_body()
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
        read = self.reader.read(raw, Delivery(raw=raw, route=self.route.name, received_at=received_at))
        if isinstance(read, Malformed):
            return self._reject(400, "bad_request", read.message)
        if isinstance(read, Invalid):
            return self._quarantine(read)
        return self._record(read.data, read.delivery, auth)

    def _record(self, data: Any, delivery: Delivery, auth: AuthResult) -> dict[str, Any]:
        try:
            outcome = self.route.record(self.ledger, data, delivery)
        except StorageError as exc:
            self.logger.exception("ledger write failed", route=self.route.name, delivery_id=delivery.delivery_id)
            return self._unavailable(f"the ledger could not be written ({exc}); retry later")
        except StorageRefusedError as refused:  # never storable as it is: a retry would fail again, 12 times
            self.metrics.add_metric(name="StorageRefused", unit="Count", value=1)
            return self._quarantine(Invalid(STORAGE_REFUSED, [refused.reason], delivery))
        self.metrics.add_metric(
            name="Recorded" if outcome.status == "recorded" else "Duplicates", unit="Count", value=1
        )
        if outcome.conflict_id:
            # The first record stands; the delivery that says otherwise is kept beside it for a person to judge.
            self.metrics.add_metric(name="ConflictingDuplicates", unit="Count", value=1)
            self._log(
                self.logger.warning,
                "duplicate delivery differs from the recorded redemption",
                delivery,
                redemption_id=outcome.redemption_id,
                conflict_id=outcome.conflict_id,
                conflicting_fields=list(outcome.conflicting_fields),
            )
        self._log(
            self.logger.info,
            f"delivery {outcome.status}",
            delivery,
            auth=auth.method,
            event_id=delivery.event_id,
            redemption_id=outcome.redemption_id,
            rollback_id=outcome.rollback_id,
            ledger_status=outcome.ledger_status,
        )
        return respond(200, _answer(outcome, delivery))

    def _quarantine(self, invalid: Invalid) -> dict[str, Any]:
        delivery = invalid.delivery
        try:
            outcome = self.ledger.quarantine.keep(
                delivery, invalid.errors, retention_days=self.settings.quarantine_retention_days, reason=invalid.reason
            )
        except StorageError as exc:
            self.logger.exception("quarantine write failed", route=self.route.name)
            return self._unavailable(f"the delivery failed validation and could not be quarantined ({exc})")
        self.metrics.add_metric(name="Quarantined", unit="Count", value=1)
        fields = {"quarantine_id": outcome.quarantine_id, "reason": invalid.reason, "errors": invalid.errors}
        self._log(self.logger.warning, "delivery quarantined", delivery, **fields)
        answer = {"status": "quarantined", "quarantine_id": outcome.quarantine_id, "reason": invalid.reason}
        return respond(202, {**answer, "errors": invalid.errors})

    def _log(self, log: Callable[..., Any], message: str, delivery: Delivery, **fields: Any) -> None:
        """A structured log line of this route about ``delivery``: its ids and event type (never its content)."""
        log(message, route=self.route.name, delivery_id=delivery.delivery_id, event_type=delivery.event_type, **fields)

    def _reject(self, status_code: int, status: str, message: str, **log_context: Any) -> dict[str, Any]:
        self.metrics.add_metric(name="Rejected", unit="Count", value=1)
        self.logger.warning(
            "delivery rejected", route=self.route.name, status_code=status_code, error=message, **log_context
        )
        return respond(status_code, {"status": status, "error": message})

    def _unavailable(self, message: str) -> dict[str, Any]:
        self.metrics.add_metric(name="StorageErrors", unit="Count", value=1)
        return respond(503, {"status": "error", "error": message})


def _answer(outcome: WriteOutcome, delivery: Delivery) -> dict[str, Any]:
    """The 200 answer: what became of the delivery (``rollback_id`` / ``conflict_id`` when there is one)."""
    answer = {
        "status": outcome.status,
        "event_type": delivery.event_type,
        "redemption_id": outcome.redemption_id,
        "ledger_status": outcome.ledger_status,
        "rollback_id": outcome.rollback_id,
        "conflict_id": outcome.conflict_id,
    }
    return {k: v for k, v in answer.items() if v is not None}
