"""A corpus of webhook deliveries for the load test, built from Voucherify's published schemas (dev only).

``build_corpus(deliveries=5000, seed=…)`` makes, with one ``random.Random(seed)``:

- ``redemption.succeeded`` deliveries (a share as the distribution twin ``customer.redemption.succeeded``) of
  single redemptions with a voucher whose discount is PERCENT, AMOUNT, UNIT (one unit or several) or FIXED, of
  promotion-tier redemptions, and of stacked redemptions (a parent plus one redemption per redeemable whose
  ``redemption`` names the parent, as Voucherify sends them), some without a customer (``customer`` null), with
  non-ASCII codes, names and reasons;
- for a share of them a rollback (``customer.redemption.rollback.succeeded`` or ``redemption.rollback.succeeded``;
  a stack is rolled back as a whole: one rollback per child and one for the parent);
- each unique delivery either a v2024-01-01 envelope or the bare data object (Raw payload), half and half;
- duplicates (a share of all deliveries): mostly the same bytes again (Voucherify's retries, the Audit log's
  resend), some re-formatted with whitespace (a proxy's doing; the signature still checks out);
- everything shuffled, so many rollbacks arrive before their redemption.

Payload content comes from ``SchemaPayloads`` (the OpenAPI schemas); the corpus pins only what identifies a
delivery and what makes it a coherent story (ids, the stack's parent, the order shared by a stack, the
rollback naming its redemption).
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ledger_dev.harness.template import PROJECT_ROOT
from ledger_dev.payloads.schema_payloads import CUSTOMER_ROLLBACK_SUCCEEDED, ROLLBACK_SUCCEEDED, SchemaPayloads, dumps

SHARED_DIR_ENV = "VOUCHERIFY_SHARED_DIR"
REDEMPTION_ROUTE = "redemption-succeeded"
ROLLBACK_ROUTE = "redemption-rollback-succeeded"

# Discount schemas of the OpenAPI file, by the discount type they carry.
DISCOUNT_SCHEMAS = (
    ("PERCENT", "DiscountPercent"),
    ("AMOUNT", "DiscountAmount"),
    ("UNIT", "DiscountUnit"),
    ("UNIT", "DiscountUnitMultiple"),
    ("FIXED", "DiscountFixed"),
)
UNICODE_CODES = ("ZAŻÓŁĆ-10", "東京-割引-5", "🎉PARTY-20", "ĄĘŚ-ÜBER-€5", "ПРОМО-15", "שלום-7", "ÇA-VA-3")
UNICODE_NAMES = (
    "Zażółć gęślą jaźń",
    "東京の割引",
    "emoji 🎉 party",
    "Ünïcödé 'quoted' \"campaign\"",
    "tab\tand\nnewline",
)


def openapi_webhooks_path() -> Path:
    shared = Path(os.environ.get(SHARED_DIR_ENV) or PROJECT_ROOT.parent / "shared")
    return shared / "reference" / "voucherify" / "OpenAPIWebhooks.json"


def load_openapi_webhooks(path: Path | None = None) -> dict[str, Any]:
    path = path or openapi_webhooks_path()
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found: the corpus is built from Voucherify's OpenAPIWebhooks.json (set {SHARED_DIR_ENV} "
            "to the folder that holds reference/voucherify/)"
        ) from None


@dataclass(frozen=True)
class CorpusDelivery:
    """One HTTP delivery: what to POST where, and what it is about."""

    index: int  # position in the unique deliveries (a duplicate has its original's index)
    kind: Literal["redemption", "rollback"]
    route: str  # the receiver's route name: redemption-succeeded / redemption-rollback-succeeded
    event_type: str
    envelope: bool
    body: bytes  # as sent
    signed_body: bytes  # what the signature is computed over (compact JSON)
    redemption_id: str
    rollback_id: str | None = None
    duplicate: bool = False
    reformatted: bool = False

    @property
    def entity(self) -> str:
        return f"rollback:{self.rollback_id}" if self.rollback_id else f"redemption:{self.redemption_id}"


@dataclass
class Corpus:
    seed: int
    deliveries: list[CorpusDelivery]  # in sending order
    redemptions: dict[str, dict[str, Any]]  # r_… → the redemption event's data
    rollbacks: dict[str, dict[str, Any]]  # rr_… → the rollback event's data
    rollbacks_of: dict[str, list[str]]  # r_… → its rollbacks (rr_…)
    stacks: dict[str, list[str]]  # parent r_… → children r_…
    stats: Counter[str] = field(default_factory=Counter)

    @property
    def unique(self) -> int:
        return sum(1 for d in self.deliveries if not d.duplicate)

    def bodies_of(self, entity: str) -> list[bytes]:
        return [d.body for d in self.deliveries if d.entity == entity]


class CorpusBuilder:
    def __init__(self, spec: Mapping[str, Any], seed: int, *, rollback_share: float = 0.35) -> None:
        self.gen = SchemaPayloads(spec, seed)
        self.rng = self.gen.rng
        self.rollback_share = rollback_share
        self.stats: Counter[str] = Counter()
        self._discount_turn = 0

    # --- one redemption ---------------------------------------------------------------------------
    def redemption(
        self,
        *,
        style: Literal["voucher", "promotion_tier", "stack_parent"],
        order: dict[str, Any] | None,
        customer: dict[str, Any] | None,
        parent_id: str | None = None,
    ) -> dict[str, Any]:
        gen, rng = self.gen, self.rng
        data = gen.redemption_succeeded()
        redemption = data["redemption"]
        redemption.update(status="SUCCEEDED", result="SUCCESS", object="redemption")
        redemption.pop("failure_code", None)
        redemption.pop("failure_message", None)
        redemption.pop("order", None)  # the event's order says it (shared by a stack)
        if parent_id:
            redemption["redemption"] = parent_id
        else:
            redemption.pop("redemption", None)
        data["order"] = copy.deepcopy(order)
        data["customer"] = copy.deepcopy(customer)
        data["holder"] = copy.deepcopy(customer) if customer and rng.random() < 0.5 else None
        if customer is None:
            redemption["customer_id"] = None
            redemption.pop("customer", None)
            self.stats["null_customer"] += 1
        else:
            redemption["customer_id"] = customer["id"]
            redemption.pop("customer", None)
        data["promotion_stack"] = None
        redemption.pop("voucher", None)
        redemption.pop("promotion_tier", None)
        if style == "voucher":
            voucher = gen.instance("SimpleVoucher", nullable_ok=False)
            voucher["id"] = gen.voucherify_id("v_")
            discount_type, schema = DISCOUNT_SCHEMAS[self._discount_turn % len(DISCOUNT_SCHEMAS)]
            self._discount_turn += 1
            voucher["discount"] = gen.instance(schema, nullable_ok=False)
            voucher["discount"]["type"] = discount_type
            self.stats[f"discount_{discount_type}"] += 1
            if rng.random() < 0.25:
                voucher["code"] = f"{rng.choice(UNICODE_CODES)}-{gen.token(4)}"
                voucher["campaign"] = rng.choice(UNICODE_NAMES)
                self.stats["unicode_code"] += 1
            else:
                voucher["code"] = gen.token(rng.randint(6, 12)).upper()
            data["voucher"] = voucher
            data["promotion_tier"] = None
            if rng.random() < 0.5:
                redemption["voucher"] = copy.deepcopy(voucher)
        elif style == "promotion_tier":
            tier = gen.instance("SimplePromotionTier", nullable_ok=False)
            tier["id"] = gen.voucherify_id("promo_")
            if rng.random() < 0.3:
                tier["name"] = rng.choice(UNICODE_NAMES)
            data["promotion_tier"] = tier
            data["voucher"] = None
            if rng.random() < 0.5:
                redemption["promotion_tier"] = copy.deepcopy(tier)
            self.stats["promotion_tier"] += 1
        else:  # the stack's own redemption: no voucher, no tier
            data["voucher"] = None
            data["promotion_tier"] = None
            self.stats["stack_parent"] += 1
        return data

    def rollback(self, redemption_data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        event_type, schema = (
            ("customer.redemption.rollback.succeeded", CUSTOMER_ROLLBACK_SUCCEEDED)
            if self.rng.random() < 0.5
            else ("redemption.rollback.succeeded", ROLLBACK_SUCCEEDED)
        )
        data = self.gen.rollback_succeeded(redemption_data, schema=schema)
        for name in ("customer", "order", "voucher", "holder", "promotion_tier", "campaign"):
            data[name] = copy.deepcopy(redemption_data.get(name))  # the same story as the redemption
        data["promotion_stack"] = None
        rollback = data["redemption_rollback"]
        rollback.pop("order", None)
        rollback["customer_id"] = (redemption_data.get("customer") or {}).get("id")
        if self.rng.random() < 0.3:
            rollback["reason"] = self.rng.choice(UNICODE_NAMES)
        return event_type, data

    def order(self, customer: dict[str, Any] | None) -> dict[str, Any] | None:
        if self.rng.random() < 0.1:
            return None
        order = self.gen.instance("SimpleOrder", nullable_ok=False)
        order["id"] = self.gen.voucherify_id("ord_")
        order["customer_id"] = customer["id"] if customer else None
        return order

    def customer(self) -> dict[str, Any] | None:
        if self.rng.random() < 0.2:
            return None
        customer = self.gen.instance("SimpleCustomer", nullable_ok=False)
        customer["id"] = self.gen.voucherify_id("cust_")
        if self.rng.random() < 0.3:
            customer["name"] = self.rng.choice(UNICODE_NAMES)
        return customer

    # --- one purchase: a redemption or a stack, maybe rolled back ----------------------------------
    def purchase(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(kind, event_type, data)`` of one purchase's events, in the order Voucherify would send them."""
        rng = self.rng
        customer = self.customer()
        order = self.order(customer)
        roll_back = rng.random() < self.rollback_share
        events: list[tuple[str, str, dict[str, Any]]] = []
        if rng.random() < 0.15:  # a stacked redemption: one per redeemable, plus the stack's own
            parent = self.redemption(style="stack_parent", order=order, customer=customer)
            parent_id = parent["redemption"]["id"]
            children = [
                self.redemption(
                    style="voucher" if rng.random() < 0.6 else "promotion_tier",
                    order=order,
                    customer=customer,
                    parent_id=parent_id,
                )
                for _ in range(rng.randint(2, 4))
            ]
            self.stats["stacks"] += 1
            self.stats["stack_children"] += len(children)
            group = [*children, parent]
        else:
            group = [
                self.redemption(
                    style="voucher" if rng.random() < 0.7 else "promotion_tier", order=order, customer=customer
                )
            ]
        for data in group:
            event_type = "customer.redemption.succeeded" if rng.random() < 0.2 else "redemption.succeeded"
            events.append(("redemption", event_type, data))
        if roll_back:
            for data in group:
                event_type, rollback = self.rollback(data)
                events.append(("rollback", event_type, rollback))
        return events


def _delivery(
    builder: CorpusBuilder, index: int, kind: str, event_type: str, data: dict[str, Any], envelope: bool
) -> CorpusDelivery:
    document = builder.gen.envelope(data, event_type) if envelope else data
    body = dumps(document)
    if kind == "rollback":
        rollback = data["redemption_rollback"]
        return CorpusDelivery(
            index, "rollback", ROLLBACK_ROUTE, event_type, envelope, body, body, rollback["redemption"], rollback["id"]
        )
    return CorpusDelivery(
        index, "redemption", REDEMPTION_ROUTE, event_type, envelope, body, body, data["redemption"]["id"]
    )


def build_corpus(
    deliveries: int = 5000,
    *,
    seed: int = 2024,
    duplicate_share: float = 0.3,
    rollback_share: float = 0.35,
    spec: Mapping[str, Any] | None = None,
) -> Corpus:
    """``deliveries`` deliveries (``duplicate_share`` of them duplicates), shuffled. See the module."""
    if deliveries < 2:
        raise ValueError("deliveries must be at least 2")
    if not 0 <= duplicate_share < 1:
        raise ValueError("duplicate_share must be in [0, 1)")
    builder = CorpusBuilder(spec or load_openapi_webhooks(), seed, rollback_share=rollback_share)
    rng = builder.rng
    unique_target = max(1, round(deliveries * (1 - duplicate_share)))
    unique: list[CorpusDelivery] = []
    redemptions: dict[str, dict[str, Any]] = {}
    rollbacks: dict[str, dict[str, Any]] = {}
    rollbacks_of: dict[str, list[str]] = {}
    stacks: dict[str, list[str]] = {}
    while len(unique) < unique_target:
        events = builder.purchase()
        if len(unique) + len(events) > unique_target and unique:
            events = [e for e in events if e[0] == "redemption"][: unique_target - len(unique)]
            if not events:
                break
        for kind, event_type, data in events:
            envelope = rng.random() < 0.5
            delivery = _delivery(builder, len(unique), kind, event_type, data, envelope)
            unique.append(delivery)
            builder.stats["envelope" if envelope else "bare"] += 1
            builder.stats[event_type] += 1
            if kind == "redemption":
                redemptions[delivery.redemption_id] = data
                parent = data["redemption"].get("redemption")
                if parent:
                    stacks.setdefault(parent, []).append(delivery.redemption_id)
            else:
                assert delivery.rollback_id
                rollbacks[delivery.rollback_id] = data
                rollbacks_of.setdefault(delivery.redemption_id, []).append(delivery.rollback_id)
    all_deliveries = list(unique)
    for _ in range(deliveries - len(unique)):
        original = rng.choice(unique)
        reformatted = rng.random() < 0.15
        body = original.body
        if reformatted:
            body = json.dumps(json.loads(original.body), indent=2, ensure_ascii=False).encode("utf-8")
            builder.stats["duplicates_reformatted"] += 1
        all_deliveries.append(
            CorpusDelivery(
                original.index,
                original.kind,
                original.route,
                original.event_type,
                original.envelope,
                body,
                original.signed_body,
                original.redemption_id,
                original.rollback_id,
                duplicate=True,
                reformatted=reformatted,
            )
        )
    rng.shuffle(all_deliveries)
    first: dict[str, int] = {}
    for position, delivery in enumerate(all_deliveries):
        first.setdefault(delivery.entity, position)
    builder.stats["duplicates"] = len(all_deliveries) - len(unique)
    builder.stats["rollbacks_before_their_redemption"] = sum(
        1
        for rollback_id, data in rollbacks.items()
        if first[f"rollback:{rollback_id}"] < first.get(f"redemption:{data['redemption_rollback']['redemption']}", 0)
    )
    builder.stats["redemptions"] = len(redemptions)
    builder.stats["rollbacks"] = len(rollbacks)
    return Corpus(seed, all_deliveries, redemptions, rollbacks, rollbacks_of, stacks, builder.stats)
