"""A corpus of webhook deliveries for the load test, built from Voucherify's published schemas (dev only).

``build_corpus(deliveries=5000, seed=…)`` makes, with one ``random.Random(seed)`` (the purchases themselves are
``ledger_dev.payloads.purchases``'):

- ``redemption.succeeded`` deliveries (a share as the distribution twin ``customer.redemption.succeeded``) of
  single redemptions with a voucher whose discount is PERCENT, AMOUNT, UNIT (one unit or several) or FIXED, of
  promotion-tier, gift card and loyalty card redemptions (paying with points, for a material reward, for gift
  credits redeemed automatically), and of stacked redemptions (a parent, marked as Voucherify marks it, plus one
  redemption per redeemable whose ``redemption`` names the parent and whose order carries its own share), some
  without a customer (``customer`` null), with non-ASCII codes, names and reasons;
- ``redemption.failed`` deliveries of failed attempts (``rf_…``);
- for a share of them a rollback (``customer.redemption.rollback.succeeded`` or ``redemption.rollback.succeeded``;
  a stack is rolled back as a whole: one rollback per child and one for the parent), and for some a failed one
  (``redemption.rollback.failed``, ``rrf_…``);
- each unique delivery either a v2024-01-01 envelope or the bare data object (Raw payload), half and half;
- duplicates (a share of all deliveries): mostly the same bytes again (Voucherify's retries, the Audit log's
  resend), some re-formatted with whitespace (a proxy's doing; the signature still checks out);
- everything shuffled, so many rollbacks arrive before their redemption.

Payload content comes from ``SchemaPayloads`` (the OpenAPI schemas); the corpus pins only what identifies a
delivery and what makes it a coherent story (ids, the stack's parent, the order shared by a stack, the
rollback naming its redemption), and keeps in ``truth`` what the ledger must hold of each redemption and rollback.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ledger_dev.harness.template import PROJECT_ROOT
from ledger_dev.payloads.purchases import DISCOUNT_SCHEMAS, UNICODE_CODES, UNICODE_NAMES, CorpusBuilder
from ledger_dev.payloads.schema_payloads import dumps

__all__ = [
    "DISCOUNT_SCHEMAS",
    "REDEMPTION_ROUTE",
    "ROLLBACK_ROUTE",
    "UNICODE_CODES",
    "UNICODE_NAMES",
    "Corpus",
    "CorpusBuilder",
    "CorpusDelivery",
    "build_corpus",
    "load_openapi_webhooks",
]

SHARED_DIR_ENV = "VOUCHERIFY_SHARED_DIR"
REDEMPTION_ROUTE = "redemption-succeeded"
ROLLBACK_ROUTE = "redemption-rollback-succeeded"


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
    failed: bool = False  # a failed redemption (rf_…) or a failed rollback (rrf_…)

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
    failed: set[str] = field(default_factory=set)  # failed redemptions (rf_…) and rollbacks (rrf_…)
    # r_… / rf_… / rr_… / rrf_… → attributes the ledger must hold of it (None: absent), as the corpus made it
    truth: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def unique(self) -> int:
        return sum(1 for d in self.deliveries if not d.duplicate)

    def bodies_of(self, entity: str) -> list[bytes]:
        return [d.body for d in self.deliveries if d.entity == entity]


def _delivery(
    builder: CorpusBuilder, index: int, kind: str, event_type: str, data: dict[str, Any], envelope: bool
) -> CorpusDelivery:
    document = builder.gen.envelope(data, event_type) if envelope else data
    body = dumps(document)
    if kind == "rollback":
        rollback = data["redemption_rollback"]
        return CorpusDelivery(
            index,
            "rollback",
            ROLLBACK_ROUTE,
            event_type,
            envelope,
            body,
            body,
            rollback["redemption"],
            rollback["id"],
            failed=rollback["id"] in builder.failed,
        )
    redemption_id = data["redemption"]["id"]
    return CorpusDelivery(
        index,
        "redemption",
        REDEMPTION_ROUTE,
        event_type,
        envelope,
        body,
        body,
        redemption_id,
        failed=redemption_id in builder.failed,
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
                failed=original.failed,
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
    sent = set(redemptions) | set(rollbacks)
    failed = builder.failed & sent
    truth = {entity: facts for entity, facts in builder.truth.items() if entity in sent}
    return Corpus(seed, all_deliveries, redemptions, rollbacks, rollbacks_of, stacks, builder.stats, failed, truth)
