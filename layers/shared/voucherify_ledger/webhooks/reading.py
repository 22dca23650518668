"""Reading a delivery's body for one route: the one read path of live deliveries and of quarantine replays alike.

The usual delivery (valid, of the route's event type) is read and validated in one pass (``read_in_one_pass``);
anything else is read step by step (``read_step_by_step``), which says what is wrong. Both give the same result
for what both read (a property test holds them equal).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, replace
from typing import Any, cast

from aws_lambda_powertools.utilities.parser import ValidationError, parse

from voucherify_ledger.errors import describe_errors
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.models.base import build
from voucherify_ledger.models.webhooks import VOUCHERIFY_EVENT_TYPES, WebhookEnvelope, is_envelope
from voucherify_ledger.webhooks.routes import Route

# Why an authentic delivery is quarantined (besides its own errors): the reasons a person reads in a quarantine record.
WRONG_EVENT = "wrong event type for this webhook URL"
EVENT_DISAGREES = "the event type and the payload disagree"  # e.g. a redemption.failed whose redemption succeeded
STORAGE_REFUSED = "the ledger cannot store this delivery as it is"  # DynamoDB would refuse the write for good
_PLAIN_ID = re.compile(r"^[0-9A-Za-z_-]{1,100}$")


@dataclass(frozen=True)
class Read:
    """A valid delivery of the route: its data (the route's model) and the delivery with the envelope's ids."""

    data: Any
    delivery: Delivery


@dataclass(frozen=True)
class Malformed:
    """Not a JSON object at all (answered 400): ``reason`` and what is wrong (``detail``), in one ``message``."""

    reason: str
    detail: str
    message: str


@dataclass(frozen=True)
class Invalid:
    """An authentic JSON object that is not a valid delivery of the route (quarantined): why, and each error."""

    reason: str
    errors: list[str]
    delivery: Delivery


def known_event_type(value: object) -> str | None:
    """``event.type`` when it is a Voucherify event name, else None: a sender's own string is never repeated."""
    return value if isinstance(value, str) and value in VOUCHERIFY_EVENT_TYPES else None


def _plain_id(value: object) -> str | None:
    """An envelope id (``whs_…``, ``evcus_…``) as it is, when it looks like one; otherwise it is not kept."""
    return value if isinstance(value, str) and _PLAIN_ID.match(value) else None


def _json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type (``list`` is an array, ``None`` is null …)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


def _not_json(exc: Exception) -> Malformed:
    if isinstance(exc, json.JSONDecodeError):
        detail = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    elif isinstance(exc, UnicodeDecodeError):
        detail = "the bytes are not valid UTF-8"
    elif isinstance(exc, RecursionError):
        detail = "arrays or objects nested too deeply"
    else:
        detail = type(exc).__name__
    return Malformed("body is not valid JSON", detail, f"body is not valid JSON: {detail}")


class DeliveryReader:
    """Reads the deliveries of one route (thread-safe: it keeps nothing between reads)."""

    def __init__(self, route: Route) -> None:
        self.route = route

    def prepare(self) -> None:
        """Builds this route's validators (the envelope's, the route model's and the route's whole-envelope model,
        which Powertools' parser keeps one of per model) now, during init, rather than on the first delivery: the
        models first (``models.base.build``: the whole-envelope model reuses the route model's schema), then the
        parser's adapter of each, which takes the model's validator as it is."""
        models = (WebhookEnvelope, self.route.model, self.route.envelope_model)
        build(*models)
        for model in models:
            with contextlib.suppress(ValidationError):
                parse(event={}, model=model)

    def read(self, raw: bytes, delivery: Delivery) -> Read | Malformed | Invalid:
        """What ``raw`` (the body as received, authentic) is for this route."""
        try:
            text = raw.decode("utf-8")  # JSON on the wire is UTF-8 (RFC 8259), nothing else
        except UnicodeDecodeError as exc:
            return _not_json(exc)
        return self.read_in_one_pass(text, delivery) or self.read_step_by_step(text, delivery)

    def read_in_one_pass(self, text: str, delivery: Delivery) -> Read | None:
        """The usual delivery (valid, of this URL's event type) read and validated by one Powertools ``parse`` of
        the body's text (pydantic's ``validate_json``), instead of ``json.loads`` building the whole document as
        Python objects for pydantic to walk again. None for anything else (not JSON, not an object, invalid, the
        wrong event type, an envelope guessed to be a bare payload or the reverse …): the step-by-step reading then
        gives the answer, so every answer is the one it always was."""
        envelope = '"event"' in text and '"data"' in text  # only a guess at the shape: what follows decides
        try:
            # cast: Powertools' parse validates a str with pydantic's validate_json, though its signature says dict.
            # Any: the envelope model's ``data`` is the route's model (``envelope_of``), which WebhookEnvelope's
            # ``dict`` cannot say.
            parsed: Any = parse(
                event=cast("dict[str, Any]", text), model=self.route.envelope_model if envelope else self.route.model
            )
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
        if self.route.disagreement(delivery.event_type, data) is not None:
            return None
        return Read(data, delivery)

    def read_step_by_step(self, text: str, delivery: Delivery) -> Read | Malformed | Invalid:
        """JSON, an object, the envelope (if it is one), the event type, then the route's model: the first step that
        fails says what is wrong."""
        try:
            body = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: [[[[… nested too deep
            return _not_json(exc)
        if not isinstance(body, dict):
            kind = _json_kind(body)
            return Malformed("body must be a JSON object", kind, f"body must be a JSON object, got {kind}")
        unwrapped = self._unwrap(body, delivery)
        if isinstance(unwrapped, Invalid):
            return unwrapped
        data, delivery, prefix = unwrapped
        wrong = self._wrong_event(data, delivery)
        if wrong is not None:
            return wrong
        try:
            parsed = parse(event=data, model=self.route.model)
        except ValidationError as exc:
            reason = f"the payload does not match the {self.route.schema} schema"
            return Invalid(reason, describe_errors(exc, prefix), delivery)
        disagreement = self.route.disagreement(delivery.event_type, parsed)
        if disagreement is not None:
            return Invalid(EVENT_DISAGREES, [disagreement], delivery)
        return Read(parsed, delivery)

    def _unwrap(self, body: dict[str, Any], delivery: Delivery) -> tuple[Any, Delivery, str] | Invalid:
        """The event's data, the delivery with the envelope's ids, and where the data sits in the body."""
        if not is_envelope(body):
            return body, delivery, ""
        try:
            envelope = parse(event=body, model=WebhookEnvelope)
        except ValidationError as exc:
            return Invalid("the v2024-01-01 envelope is invalid", describe_errors(exc), delivery)
        event_type = known_event_type(envelope.event.type)
        if event_type is None:  # kept as it arrived: nothing of the envelope's is repeated
            return Invalid(
                WRONG_EVENT, [f"event.type: not a Voucherify event name, this URL accepts {self._accepted()}"], delivery
            )
        delivery = replace(
            delivery, event_type=event_type, delivery_id=_plain_id(envelope.id), event_id=_plain_id(envelope.event.id)
        )
        return envelope.data, delivery, "data"

    def _accepted(self) -> str:
        return " or ".join(sorted(self.route.event_types))

    def _wrong_event(self, data: Any, delivery: Delivery) -> Invalid | None:
        accepted = self._accepted()
        if delivery.event_type is not None and delivery.event_type not in self.route.event_types:
            return Invalid(
                WRONG_EVENT, [f"event.type: got {delivery.event_type!r}, this URL accepts {accepted}"], delivery
            )
        if "redemption_rollback" in data and "redemption_rollback" not in self.route.model.model_fields:
            # A bare rollback also carries ``redemption``: without this it would pass as a redemption.
            return Invalid(
                WRONG_EVENT, [f"redemption_rollback: a rollback event, this URL accepts {accepted}"], delivery
            )
        return None
