"""Deterministic webhook payloads generated from Voucherify's OpenAPI schemas.

``SchemaPayloads(spec, seed)`` walks ``components.schemas`` of ``OpenAPIWebhooks.json`` the way a JSON
Schema instance generator does: it follows ``$ref``, merges ``allOf``, picks one branch of ``oneOf``,
draws enum members, writes ``date-time`` strings in the formats Voucherify uses, sends ``null`` for
``nullable`` properties now and then, always sends required properties, sends optional ones at random
and sometimes adds unknown properties (where ``additionalProperties`` is not ``false``). Every choice
comes from one ``random.Random(seed)``, so a seed always gives the same payloads.

On top of the schema, the event builders pin what identifies a delivery and what the event name
promises (nothing the schema forbids):
- ``redemption.succeeded`` always carries ``redemption`` (the schema makes it optional and nullable,
  but a redemption event without a redemption cannot be recorded), with an ``r_…`` id, ``result`` SUCCESS
  (or none) and a ``status`` that is no failure (SUCCEEDED, ROLLED BACK or null);
- ``redemption.failed`` the same with an ``rf_…`` id, ``result`` FAILURE, ``status`` FAILED, a
  ``failure_code`` and a ``failure_message``;
- a rollback carries ``redemption_rollback`` with an ``rr_…`` id, ``result`` SUCCESS / ``status``
  SUCCEEDED (it is a *succeeded* rollback; a failed one, ``redemption.rollback.failed``, has an ``rrf_…`` id,
  FAILURE / FAILED and a failure code) and ``redemption`` naming the redemption it undoes; the event's
  ``redemption`` object, when sent, has that same id.

JSON Schema ``number`` properties are integers or, about a third of the time, fractions (``percent_off`` and
``unit_off`` always fractions), as the schema allows. One liberty, documented so nobody mistakes it for the
schema's: strings are drawn from a pool that includes non-ASCII text, quotes, backslashes and runs of whitespace,
to give the signature check's whitespace stripping something to get wrong.
"""

from __future__ import annotations

import copy
import json
import random
import string
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

Schema = dict[str, Any]

REDEMPTION_SUCCEEDED = "EventRedemptionSucceededData"
REDEMPTION_FAILED = "EventRedemptionFailedData"
CUSTOMER_ROLLBACK_SUCCEEDED = "EventCustomerRedemptionRollbackSucceededData"
ROLLBACK_SUCCEEDED = "EventRedemptionRollbackSucceededData"
ROLLBACK_FAILED = "EventRedemptionRollbackFailedData"
# The data schema of each event the bundle receives.
EVENT_SCHEMAS = {
    "redemption.succeeded": REDEMPTION_SUCCEEDED,
    "customer.redemption.succeeded": REDEMPTION_SUCCEEDED,
    "redemption.failed": REDEMPTION_FAILED,
    "customer.redemption.rollback.succeeded": CUSTOMER_ROLLBACK_SUCCEEDED,
    "redemption.rollback.succeeded": ROLLBACK_SUCCEEDED,
    "redemption.rollback.failed": ROLLBACK_FAILED,
}

# JSON Schema "number" properties that are always fractional in Voucherify's data; other numbers are sometimes.
FRACTIONAL_NUMBERS = frozenset({"percent_off", "unit_off"})
FRACTION_RATE = 0.3
# failure_code values of Voucherify's failed redemptions and rollbacks (the schemas' examples and error keys).
REDEMPTION_FAILURES = (("no_applicable_redeemables", "No applicable redeemables"), ("voucher_expired", "Expired"))
ROLLBACK_FAILURES = (("already_rolled_back", "Already rolled back"), ("invalid_redemption", "Invalid redemption"))

# Prefixes of Voucherify ids, by the schema that holds an ``id`` or by the name of an ``…_id`` property.
ID_PREFIX_BY_SCHEMA = {
    "SimpleCustomer": "cust_",
    "SimpleOrder": "ord_",
    "SimpleCampaign": "camp_",
    "SimpleVoucher": "v_",
    "SimpleRedemption": "r_",
    "SimplePromotionTier": "promo_",
    "SimplePromotionStack": "stack_",
    "SimpleProduct": "prod_",
    "SimpleSku": "sku_",
    "SimpleProductDiscountUnit": "prod_",
    "SimpleSkuDiscountUnit": "sku_",
    "Category": "cat_",
    "SimpleRedemptionRewardResult": "rew_",
}
ID_PREFIX_BY_PROPERTY = {
    "customer_id": "cust_",
    "holder_id": "cust_",
    "referrer_id": "cust_",
    "order_id": "ord_",
    "campaign_id": "camp_",
    "category_id": "cat_",
    "product_id": "prod_",
    "sku_id": "sku_",
    "loyalty_tier_id": "ltr_",
    "assignment_id": "rewa_",
    "channel_id": "user_",
    "redemption": "r_",  # a redemption's string ``redemption``: the parent (stacks) or the redemption undone
}

STRINGS = (
    "Spring Discounts",
    "Jane Doe",
    "jane@jane.io",
    "Zażółć gęślą jaźń",
    "東京の割引",
    "emoji 🎉 party",
    'quote " inside',
    "back\\slash",
    "  spaced  out  ",
    "tab\tand\nnewline",
    '{"looks": "like json"}',
    "IF(ORDER_AMOUNT > 150;15;10)",
    "",
)
ALPHANUMERIC = string.ascii_letters + string.digits
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


class SchemaPayloads:
    """Payloads built from ``spec['components']['schemas']`` with one ``random.Random(seed)``."""

    def __init__(
        self,
        spec: Mapping[str, Any],
        seed: int,
        *,
        optional_rate: float = 0.5,
        null_rate: float = 0.15,
        extra_rate: float = 0.1,
    ) -> None:
        self.schemas: Mapping[str, Schema] = spec["components"]["schemas"]
        self.rng = random.Random(seed)
        self.optional_rate = optional_rate
        self.null_rate = null_rate
        self.extra_rate = extra_rate
        self._ids: set[str] = set()

    # --- schema walking ----------------------------------------------------------------------------
    def resolve(self, schema: Schema) -> tuple[Schema, str | None]:
        """The schema behind a ``$ref`` (siblings of ``$ref`` such as ``nullable`` kept) and its name."""
        name = None
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**self.schemas[name], **siblings}
        return schema, name

    def flatten(self, schema: Schema) -> tuple[Schema, str | None]:
        """Resolves ``$ref`` and merges ``allOf`` parts into one schema (properties and required united)."""
        schema, name = self.resolve(schema)
        if "allOf" not in schema:
            return schema, name
        merged: Schema = {k: v for k, v in schema.items() if k != "allOf"}
        properties = dict(merged.get("properties") or {})
        required = list(merged.get("required") or [])
        for part in schema["allOf"]:
            flat, part_name = self.flatten(part)
            name = name or part_name
            properties = {**(flat.get("properties") or {}), **properties}
            required += [r for r in flat.get("required") or [] if r not in required]
            for key, value in flat.items():
                if key not in ("properties", "required", "description", "example"):
                    merged.setdefault(key, value)
        if properties:
            merged["properties"] = properties
        if required:
            merged["required"] = required
        return merged, name

    def instance(self, schema: Schema | str, *, name: str = "", nullable_ok: bool = True) -> Any:
        """One value valid against ``schema`` (a schema or the name of a component schema)."""
        if isinstance(schema, str):
            schema = {"$ref": f"#/components/schemas/{schema}"}
        flat, schema_name = self.flatten(schema)
        if nullable_ok and flat.get("nullable") and self.rng.random() < self.null_rate:
            return None
        if "oneOf" in flat:
            branch = self.rng.choice(flat["oneOf"])
            rest = {k: v for k, v in flat.items() if k not in ("oneOf", "type", "nullable")}
            return self.instance({**rest, "allOf": [branch]} if rest else branch, name=name, nullable_ok=False)
        if "enum" in flat:
            return self.rng.choice([value for value in flat["enum"] if value is not None])
        kind = flat.get("type") or ("object" if "properties" in flat else "string")
        if kind == "object":
            return self._object(flat, schema_name)
        if kind == "array":
            low = int(flat.get("minItems", 0))
            return [self.instance(flat.get("items") or {}) for _ in range(self.rng.randint(low, low + 2))]
        if kind == "integer":
            return self._integer(flat)
        if kind == "number":
            if name in FRACTIONAL_NUMBERS or self.rng.random() < FRACTION_RATE:
                return round(self.rng.uniform(0.5, 99.5), self.rng.choice((1, 2)))
            return self._integer(flat)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if flat.get("format") == "date-time":
            return self.timestamp()
        if "default" in flat and self.rng.random() < 0.8:
            return flat["default"]
        return self._string(name)

    def _object(self, schema: Schema, schema_name: str | None) -> dict[str, Any]:
        properties: Mapping[str, Schema] = schema.get("properties") or {}
        if not properties:  # free-form object such as metadata
            return {self.token(6).lower(): self._scalar() for _ in range(self.rng.randint(0, 3))}
        required = set(schema.get("required") or [])
        value: dict[str, Any] = {}
        for prop, prop_schema in properties.items():
            if prop not in required and self.rng.random() >= self.optional_rate:
                continue
            if prop == "id" and schema_name in ID_PREFIX_BY_SCHEMA and not self._is_enum(prop_schema):
                generated: Any = self.voucherify_id(ID_PREFIX_BY_SCHEMA[schema_name])
                if self.flatten(prop_schema)[0].get("nullable") and self.rng.random() < self.null_rate:
                    generated = None
            else:
                generated = self.instance(prop_schema, name=prop)
            value[prop] = generated
        if schema.get("additionalProperties", True) is not False and self.rng.random() < self.extra_rate:
            for _ in range(self.rng.randint(1, 2)):
                value[f"x_unknown_{self.token(5).lower()}"] = self._extra()
        return value

    def _is_enum(self, schema: Schema) -> bool:
        return "enum" in self.flatten(schema)[0]

    def _integer(self, schema: Schema) -> int:
        low = int(schema.get("minimum", -5_000))
        high = int(schema.get("maximum", 1_000_000))
        return self.rng.randint(low, high)

    def _string(self, name: str) -> str:
        if name in ID_PREFIX_BY_PROPERTY:
            return self.voucherify_id(ID_PREFIX_BY_PROPERTY[name])
        if self.rng.random() < 0.5:
            return self.rng.choice(STRINGS)
        return self.token(self.rng.randint(1, 16))

    def _scalar(self) -> Any:
        return self.rng.choice((self._string(""), self.rng.randint(-100, 10_000), self.rng.random() < 0.5, None))

    def _extra(self) -> Any:
        if self.rng.random() < 0.3:
            return {"nested": self._scalar(), "list": [self._scalar(), self._scalar()]}
        return self._scalar()

    # --- values shaped like Voucherify's ---------------------------------------------------------
    def token(self, length: int) -> str:
        return "".join(self.rng.choice(ALPHANUMERIC) for _ in range(length))

    def voucherify_id(self, prefix: str) -> str:
        """``r_0e2500291ae016adea`` style: prefix and 18 lowercase hex digits, unique within this generator."""
        while True:
            candidate = f"{prefix}{self.rng.getrandbits(72):018x}"
            if candidate not in self._ids:
                self._ids.add(candidate)
                return candidate

    def timestamp(self) -> str:
        moment = EPOCH + timedelta(milliseconds=self.rng.randint(0, 6 * 365 * 86_400_000))
        style = self.rng.randrange(4)
        if style == 0:
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        if style == 1:
            return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if style == 2:
            return moment.isoformat(timespec="milliseconds")  # +00:00
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "+02:00"

    # --- events ------------------------------------------------------------------------------------
    def redemption_succeeded(self) -> dict[str, Any]:
        """``data`` of ``redemption.succeeded``: the schema's object, with a redemption ``r_…`` that did not fail."""
        data = self.instance(REDEMPTION_SUCCEEDED, nullable_ok=False)
        redemption = data.get("redemption") or self.instance("SimpleRedemption", nullable_ok=False)
        redemption["id"] = self.voucherify_id("r_")
        redemption["result"] = "SUCCESS"
        if self.rng.random() < 0.1:
            del redemption["result"]  # optional in the schema
        statuses = ("SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "ROLLED BACK", None)  # the schema spells it so
        redemption["status"] = self.rng.choice(statuses)
        redemption.pop("failure_code", None)
        redemption.pop("failure_message", None)
        data["redemption"] = redemption
        return data

    def redemption_failed(self) -> dict[str, Any]:
        """``data`` of ``redemption.failed``: the schema's object, with a failed redemption ``rf_…``."""
        data = self.instance(REDEMPTION_FAILED, nullable_ok=False)
        redemption = data.get("redemption") or self.instance("SimpleRedemption", nullable_ok=False)
        code, message = self.rng.choice(REDEMPTION_FAILURES)
        redemption.update(
            id=self.voucherify_id("rf_"), result="FAILURE", status="FAILED", failure_code=code, failure_message=message
        )
        data["redemption"] = redemption
        return data

    def rollback_succeeded(
        self, redemption_data: Mapping[str, Any], *, schema: str = CUSTOMER_ROLLBACK_SUCCEEDED
    ) -> dict[str, Any]:
        """``data`` of a rollback of the redemption in ``redemption_data`` (a ``redemption_succeeded()``)."""
        redemption_id = redemption_data["redemption"]["id"]
        data = self.instance(schema, nullable_ok=False)
        rollback = data.get("redemption_rollback") or self.instance("SimpleRedemption", nullable_ok=False)
        rollback.update(
            id=self.voucherify_id("rrf_" if schema == ROLLBACK_FAILED else "rr_"),
            redemption=redemption_id,
            result="SUCCESS",
            status="SUCCEEDED",
            object="redemption_rollback",
        )
        rollback.pop("failure_code", None)
        rollback.pop("failure_message", None)
        if schema == ROLLBACK_FAILED:
            code, message = self.rng.choice(ROLLBACK_FAILURES)
            rollback.update(result="FAILURE", status="FAILED", failure_code=code, failure_message=message)
        data["redemption_rollback"] = rollback
        choice = self.rng.random()
        if choice < 0.6:  # as Voucherify sends it: the redemption being undone
            data["redemption"] = copy.deepcopy(redemption_data["redemption"])
        elif choice < 0.8:  # schema-random content, the same redemption id
            data["redemption"] = self.instance("SimpleRedemption", nullable_ok=False)
            data["redemption"]["id"] = redemption_id
        else:  # ``redemption`` is nullable and optional: the rollback's ``redemption`` field names it
            if self.rng.random() < 0.5:
                data["redemption"] = None
            else:
                data.pop("redemption", None)
        return data

    def envelope(self, data: Mapping[str, Any], event_type: str, *, distribution: bool | None = None) -> dict[str, Any]:
        """A v2024-01-01 delivery of ``data``: ``WebhookProjectSettingPayload`` or ``WebhookDistributionPayload``
        generated from the schema, with the event name in ``event.type``. For a distribution the top-level
        ``type`` is the name the user typed in the dashboard."""
        if distribution is None:
            distribution = event_type.startswith("customer.")
        schema = "WebhookDistributionPayload" if distribution else "WebhookProjectSettingPayload"
        body = self.instance(schema, nullable_ok=False)
        body["id"] = self.voucherify_id("whs_")
        body["project_id"] = "proj_" + self.token(8)
        body["type"] = self.rng.choice(("My rollbacks", "ledger", "rollback-to-aws")) if distribution else event_type
        body["data"] = dict(data)
        body["source"]["object"] = "distribution" if distribution else "webhook"
        body["event"]["type"] = event_type
        body["event"]["id"] = self.voucherify_id("evred_")
        return body

    def rollback_failed(self, redemption_data: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` of ``redemption.rollback.failed`` for the redemption in ``redemption_data``: an ``rrf_…``."""
        return self.rollback_succeeded(redemption_data, schema=ROLLBACK_FAILED)

    def batch(
        self, redemptions: int, rollback_share: float = 0.5, failed_share: float = 0.15
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(event_type, data)`` for ``redemptions`` redemptions (about ``failed_share`` of them failed attempts)
        and rollbacks of about ``rollback_share`` of the others (about ``failed_share`` of those failed)."""
        for _ in range(redemptions):
            if self.rng.random() < failed_share:
                yield "redemption.failed", self.redemption_failed()
                continue
            data = self.redemption_succeeded()
            yield "redemption.succeeded", data
            if self.rng.random() < rollback_share:
                choice = self.rng.random()
                if choice < failed_share:
                    yield "redemption.rollback.failed", self.rollback_failed(data)
                elif choice < 0.5:
                    yield "customer.redemption.rollback.succeeded", self.rollback_succeeded(data)
                else:
                    yield "redemption.rollback.succeeded", self.rollback_succeeded(data, schema=ROLLBACK_SUCCEEDED)


# --- the schema as JSON Schema, to check what the generator makes ------------------------------------
def json_schema(spec: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``components.schemas[name]`` as a JSON Schema (2020-12) document: ``nullable`` becomes a ``null``
    alternative and ``oneOf`` becomes ``anyOf`` (Voucherify's branches overlap: an object without
    required properties matches several, so ``oneOf`` would reject valid data)."""

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key in ("nullable", "example", "examples", "description", "discriminator"):
                continue
            if key == "$ref":
                out["$ref"] = "#/$defs/" + value.rsplit("/", 1)[-1]
            elif key == "oneOf":
                out["anyOf"] = convert(value)
            elif key in ("properties", "$defs"):
                out[key] = {k: convert(v) for k, v in value.items()}
            else:
                out[key] = convert(value)
        if node.get("nullable"):
            return {"anyOf": [out, {"type": "null"}]}
        return out

    defs = {key: convert(value) for key, value in spec["components"]["schemas"].items()}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs, "$ref": f"#/$defs/{name}"}


def dumps(document: Any, *, pretty: bool = False) -> bytes:
    """JSON bytes: compact as Voucherify sends it, or pretty-printed (same bytes once whitespace is stripped)."""
    if pretty:
        return json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8")
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
