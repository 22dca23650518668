"""A seeded history (``seed_history``): redemptions and rollbacks spread over ``days`` up to ``end``, deterministic for
a seed — lone redemptions of a voucher or a promotion tier, stacks (a parent and 2–4 children, some rolled back
through ``/rollbacks``: the parent and every child get a rollback), failed attempts (``rf_…``), rollbacks (``rr_…``)
and a few failed rollbacks (``rrf_…``).

- ``count``: the history's objects, exactly (redemptions, failed attempts, rollbacks and failed rollbacks);
- ``rollback_share``: about this share of them are succeeded rollbacks (each of a redemption created before it);
- ``stack_share``: the share of redemption attempts that are stacks; ``failed_share``: that fail (``rf_…``);
- about 1 % of lone redemptions also get a failed rollback attempt (``rrf_…``), before or after a rollback.

Each redemption that can be rolled back comes with its ``FakeRedemption`` (``rollback_id`` set when the history
rolled it back), so the rollback endpoints know it.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger_dev.fake_voucherify.documents import FakeRedemption
from ledger_dev.fake_voucherify.objects import REDEMPTION, ROLLBACK, mark_rolled_back

FAILED_ROLLBACK_SHARE = 0.01
FAILURES = (  # redemptions.json's failure codes
    ("voucher_expired", "voucher expired"),
    ("quantity_exceeded", "quantity exceeded"),
    ("customer_rules_violated", "customer does not match validation rules"),
    ("order_rules_violated", "order does not match validation rules"),
    ("resource_not_found", "resource not found"),
)
CAMPAIGNS = ("Spring sale", "Loyalty welcome", "Newsletter 10%", "Black Friday")
_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Seeded:
    objects: list[dict[str, Any]]  # oldest first
    redemptions: list[FakeRedemption]  # what the rollback endpoints may be asked to roll back


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Maker:
    """The parts of the objects (ids, customers, vouchers, tiers, orders), all from one seeded generator."""

    def __init__(self, rng: random.Random, count: int, channel_id: str, taken: set[str]) -> None:
        self.rng = rng
        self.taken = taken
        self.orders = 0
        self.channel = {"channel_id": channel_id, "channel_type": "API"}
        self.customers = [
            {"id": "cust_" + self.token(24), "source_id": f"customer-{i:05d}", "metadata": {}, "object": "customer"}
            for i in range(max(5, count // 10))
        ]
        self.campaigns = [("camp_" + self.token(24), name) for name in CAMPAIGNS]
        self.vouchers = []
        for _ in range(max(20, count // 5)):
            campaign_id, campaign = rng.choice(self.campaigns)
            code = "HIST-" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
            voucher_id = "v_" + self.token(32)
            self.vouchers.append(
                {"id": voucher_id, "code": code, "campaign": campaign, "campaign_id": campaign_id, "object": "voucher"}
            )
        self.tiers = [
            {
                "id": "promo_" + self.token(24),
                "campaign": {"id": "camp_" + self.token(24), "object": "campaign"},
                "object": "promotion_tier",
            }
            for _ in range(3)
        ]

    def token(self, length: int) -> str:
        return "".join(self.rng.choices(_ALNUM, k=length))

    def new_id(self, prefix: str) -> str:
        while True:
            made = f"{prefix}{self.rng.getrandbits(72):018x}"
            if made not in self.taken:
                self.taken.add(made)
                return made

    def redeemable(self) -> dict[str, Any]:
        """What one redemption redeems: a voucher (4 in 5) or a promotion tier."""
        if self.rng.random() < 0.8:
            voucher = self.rng.choice(self.vouchers)
            return {"related_object_type": "voucher", "related_object_id": voucher["id"], "voucher": voucher}
        tier = self.rng.choice(self.tiers)
        return {
            "related_object_type": "promotion_tier",
            "related_object_id": tier["id"],
            "voucher": None,
            "promotion_tier": tier,
        }

    def order(self, customer: dict[str, Any], ms: int, top_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        self.orders += 1
        amount = self.rng.randrange(1_000, 50_000, 100)
        discount = self.rng.randrange(100, amount // 2, 100)
        return {
            "id": "ord_" + self.token(24),
            "source_id": f"order-{self.orders:06d}",
            "created_at": iso_ms(ms - 1_000),
            "updated_at": None,
            "status": "PAID",
            "amount": amount,
            "discount_amount": discount,
            "total_discount_amount": discount,
            "total_amount": amount - discount,
            "applied_discount_amount": discount,
            "total_applied_discount_amount": discount,
            "items": [],
            "metadata": {},
            "customer": {"id": customer["id"], "object": "customer"},
            "customer_id": customer["id"],
            "referrer_id": None,
            "object": "order",
            "redemptions": {top_id: {"date": iso_ms(ms), **entry}},
        }

    def redemption(self, rid: str, ms: int, customer: dict[str, Any], **fields: Any) -> dict[str, Any]:
        return {
            "id": rid,
            "object": REDEMPTION,
            "date": iso_ms(ms),
            "customer_id": customer["id"],
            "tracking_id": "track_" + customer["source_id"],
            "metadata": {},
            "redemption": None,
            "result": "SUCCESS",
            "status": "SUCCEEDED",
            "order": None,
            "channel": self.channel,
            "customer": customer,
            **fields,
        }

    def rollback(self, redemption: dict[str, Any], ms: int, *, failed: bool = False, **entry: Any) -> dict[str, Any]:
        """A rollback (or a failed one) of ``redemption`` at ``ms``; it is marked rolled back when it succeeds."""
        rollback_id = self.new_id("rrf_" if failed else "rr_")
        order = redemption["order"]
        if order is not None and not failed:
            top_id, top = next(iter(order["redemptions"].items()))
            rolled = {**top, "rollback_id": rollback_id, "rollback_date": iso_ms(ms), **entry}
            order = {**order, "status": "CANCELED", "updated_at": iso_ms(ms), "redemptions": {top_id: rolled}}
        obj = {
            "id": rollback_id,
            "object": ROLLBACK,
            "date": iso_ms(ms),
            "customer_id": redemption["customer_id"],
            "tracking_id": redemption["tracking_id"],
            "metadata": None,
            "redemption": redemption["id"],
            "reason": "Order cancelled",
            "result": "FAILURE" if failed else "SUCCESS",
            "status": "FAILED" if failed else "SUCCEEDED",
            "order": order,
            "channel": self.channel,
            "customer": redemption["customer"],
            "related_object_type": redemption["related_object_type"],
            "related_object_id": redemption["related_object_id"],
            "voucher": redemption.get("voucher"),
        }
        if redemption.get("promotion_tier"):
            obj["promotion_tier"] = redemption["promotion_tier"]
        if failed:
            obj.update(failure_code="customer_rules_violated", failure_message="Customer does not match the rules.")
        else:
            mark_rolled_back(redemption, obj)
        return obj


def _fake(obj: dict[str, Any], **extra: Any) -> FakeRedemption:
    order = obj.get("order") or {}
    return FakeRedemption(
        obj["id"],
        order.get("id"),
        obj["customer_id"],
        voucher_code=(obj.get("voucher") or {}).get("code"),
        date=obj["date"],
        order_source_id=order.get("source_id"),
        voucher_id=obj["related_object_id"] if obj["related_object_type"] == "voucher" else "v_" + obj["id"][2:],
        seeded=True,
        **extra,
    )


def seed_history(
    count: int,
    *,
    days: float = 90,
    end: datetime | None = None,
    rollback_share: float = 0.12,
    stack_share: float = 0.05,
    failed_share: float = 0.03,
    seed: int = 0,
    channel_id: str = "local-app-id",
    taken: set[str] | None = None,
) -> Seeded:
    """See the module. ``taken``: ids already in use (never made again; the new ones are added to it)."""
    if count < 0 or days <= 0:
        raise ValueError("count must be >= 0 and days > 0")
    for name, share in (("rollback_share", rollback_share), ("stack_share", stack_share), ("failed", failed_share)):
        if not 0.0 <= share < 1.0:
            raise ValueError(f"{name} must be in [0, 1)")
    if stack_share + failed_share >= 1.0:
        raise ValueError("stack_share + failed_share must be below 1")
    rng = random.Random(seed)
    make = _Maker(rng, count, channel_id, taken if taken is not None else set())
    end_ms = int((end or datetime.now(UTC)).timestamp() * 1000)
    span_ms = max(1, int(days * 86_400_000))
    # a succeeded redemption is rolled back with this probability, so that rollbacks are ~rollback_share of all
    p_rollback = min(1.0, rollback_share / ((1.0 - failed_share) * (1.0 - rollback_share)))
    objects: list[dict[str, Any]] = []
    fakes: list[FakeRedemption] = []
    while len(objects) < count:
        left = count - len(objects)
        ms = end_ms - rng.randrange(span_ms)
        customer = rng.choice(make.customers)
        later = ms + rng.randrange(1_000, max(1_001, end_ms - ms + 1))  # a rollback's time, at most end
        roll = rng.random() < p_rollback
        kind = rng.random()
        if kind < failed_share:
            code, message = rng.choice(FAILURES)
            failed = make.redemption(
                make.new_id("rf_"),
                ms,
                customer,
                result="FAILURE",
                status="FAILED",
                failure_code=code,
                failure_message=message,
                **make.redeemable(),
            )
            objects.append(failed)
            continue
        children = rng.randint(2, 4)
        if kind < failed_share + stack_share and left >= (children + 1) * (2 if roll else 1):
            objects += _stack(make, fakes, ms, later if roll else None, customer, children)
            continue
        rid = make.new_id("r_")
        entry = make.redeemable()
        order = make.order(customer, ms, rid, {k: entry[k] for k in ("related_object_type", "related_object_id")})
        redemption = make.redemption(rid, ms, customer, order=order, **entry)
        objects.append(redemption)
        made = [redemption]
        if roll and left >= 2:
            made.append(make.rollback(redemption, later))
        if rng.random() < FAILED_ROLLBACK_SHARE and left > len(made):
            made.append(make.rollback(redemption, ms + rng.randrange(1_000, max(1_001, end_ms - ms + 1)), failed=True))
        objects += made[1:]
        rolled_back = next((o["id"] for o in made[1:] if o["result"] == "SUCCESS"), None)
        fakes.append(_fake(redemption, rollback_id=rolled_back))
    objects.sort(key=lambda o: o["date"])  # ISO 8601 in UTC with milliseconds: sorts as the times do
    return Seeded(objects, fakes)


def _stack(
    make: _Maker, fakes: list[FakeRedemption], ms: int, rollback_ms: int | None, customer: dict[str, Any], size: int
) -> list[dict[str, Any]]:
    """A stack's parent and ``size`` children at ``ms``; with ``rollback_ms``, a rollback of each at that time."""
    parent_id = make.new_id("r_")
    child_ids = [make.new_id("r_") for _ in range(size)]
    top = {"related_object_type": "redemption", "related_object_id": parent_id, "stacked": child_ids}
    order = make.order(customer, ms, parent_id, top)
    share = max(100, order["total_applied_discount_amount"] // size // 100 * 100)
    parent = make.redemption(
        parent_id,
        ms,
        customer,
        order=order,
        related_object_type="redemption",
        related_object_id=parent_id,
        voucher=None,
    )
    children = []
    for child_id in child_ids:
        entry = make.redeemable()
        child_order = {
            **order,
            "applied_discount_amount": share,
            "total_applied_discount_amount": share,
            "redemptions": {
                parent_id: {"date": iso_ms(ms), "related_object_type": "redemption", "related_object_id": parent_id}
            },
        }
        children.append(make.redemption(child_id, ms, customer, order=child_order, redemption=parent_id, **entry))
    made = [parent, *children]
    rollbacks: dict[str, str] = {}
    if rollback_ms is not None:
        child_rollbacks = [make.rollback(child, rollback_ms) for child in children]
        rollbacks = {r["redemption"]: r["id"] for r in child_rollbacks}
        parent_rollback = make.rollback(parent, rollback_ms, rollback_stacked=[r["id"] for r in child_rollbacks])
        rollbacks[parent_id] = parent_rollback["id"]
        made += [*child_rollbacks, parent_rollback]
    fakes.append(_fake(parent, children=child_ids, rollback_id=rollbacks.get(parent_id)))
    fakes += [_fake(child, parent_id=parent_id, rollback_id=rollbacks.get(child["id"])) for child in children]
    return made
