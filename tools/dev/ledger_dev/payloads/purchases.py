"""One purchase's webhook events for the load test's corpus (dev only), built on ``SchemaPayloads``.

A purchase is a lone redemption — a discount voucher (PERCENT, AMOUNT, UNIT with one unit or several, FIXED, in
turn), a promotion tier, a gift card, a loyalty card paying with points (COIN reward), for a material reward, or for
gift credits redeemed automatically (CAMPAIGN reward, channel AUTO_REDEEM) —, a stack (its parent and one child per
redeemable, each child's order carrying its own share and the running total), or a failed attempt (``rf_…``). A
share of them is rolled back (a stack as a whole), and some lone redemptions get a failed rollback (``rrf_…``).

The builder pins what makes each story coherent (ids, the order shared by a stack, the shares, the card balances
before and after) and notes in ``truth`` what the ledger must then hold (status, ``discount_amount``,
``stack_role``, units, balances, rewards; ``None``: absent), decided here and not by the ledger's own code.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ledger_dev.payloads.schema_payloads import CUSTOMER_ROLLBACK_SUCCEEDED, ROLLBACK_SUCCEEDED, SchemaPayloads

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
# Lone redemptions by style, with their weights; a loyalty card's reward in turn (``LOYALTY_STYLES``).
LONE_STYLES = (("voucher", 50), ("promotion_tier", 20), ("gift", 10), ("loyalty", 20))
LOYALTY_STYLES = ("loyalty_points", "loyalty_material", "loyalty_gift_credits")
VOUCHER_TYPE_OF_STYLE = {"voucher": "DISCOUNT_VOUCHER", "gift": "GIFT_VOUCHER"}
ORDER_DISCOUNT_FIELDS = (
    "discount_amount",
    "applied_discount_amount",
    "items_discount_amount",
    "items_applied_discount_amount",
    "total_discount_amount",
    "total_applied_discount_amount",
)
Event = tuple[str, str, dict[str, Any]]  # (kind, event_type, data)


def _unit(style: str) -> str:
    return "gift_credits" if style == "gift" else "loyalty_points" if style.startswith("loyalty") else "currency"


class CorpusBuilder:
    def __init__(
        self,
        spec: Mapping[str, Any],
        seed: int,
        *,
        rollback_share: float = 0.35,
        failed_share: float = 0.07,
        failed_rollback_share: float = 0.12,
    ) -> None:
        self.gen = SchemaPayloads(spec, seed)
        self.rng = self.gen.rng
        self.rollback_share = rollback_share
        self.failed_share = failed_share
        self.failed_rollback_share = failed_rollback_share
        self.stats: Counter[str] = Counter()
        self.truth: dict[str, dict[str, Any]] = {}  # r_… / rf_… / rr_… / rrf_… → what the ledger must hold
        self.failed: set[str] = set()  # failed redemptions (rf_…) and failed rollbacks (rrf_…)
        self._discount_turn = 0
        self._loyalty_turn = 0

    # --- the order and its discounts --------------------------------------------------------------
    def order(self, customer: dict[str, Any] | None) -> dict[str, Any] | None:
        if self.rng.random() < 0.1:
            return None  # a redemption without an order
        order = self.gen.instance("SimpleOrder", nullable_ok=False)
        order["id"] = self.gen.voucherify_id("ord_")
        order["customer_id"] = customer["id"] if customer else None
        return order

    def share(self) -> int:
        return self.rng.randint(100, 5_000)

    def _discounts(self, order: dict[str, Any], share: int | None, running: int | None) -> None:
        """Writes this redemption's ``share`` of ``order``'s discount one of the ways Voucherify may (the whole
        applied total; the order-level part plus each item's; the order-level part alone), and the order's
        ``running`` total of every discount so far; ``share`` None: the order says nothing of discounts."""
        for name in ORDER_DISCOUNT_FIELDS:
            order.pop(name, None)
        items = [item for item in order.get("items") or [] if isinstance(item, dict)]
        for item in items:
            item.pop("applied_discount_amount", None)
            item.pop("discount_amount", None)
        if share is None:
            return
        order["total_discount_amount"] = running if running is not None else share
        way = self.rng.randrange(3)
        if way == 0 or not items:
            order["total_applied_discount_amount"] = share
        elif way == 1:
            order_level = self.rng.randint(0, share)
            order["applied_discount_amount"] = order_level
            parts = self._split(share - order_level, len(items))
            for item, part in zip(items, parts, strict=True):
                item["applied_discount_amount"] = part
            self.stats["share_by_items"] += 1
        else:
            order["applied_discount_amount"] = share

    def _split(self, total: int, count: int) -> list[int]:
        cuts = sorted(self.rng.randint(0, total) for _ in range(count - 1))
        return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]

    # --- one redemption -----------------------------------------------------------------------------
    def _base(
        self, data: dict[str, Any], order: dict[str, Any] | None, customer: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The event's people, order and redeemable slots as one story (the style fills the redeemable)."""
        redemption = data["redemption"]
        for name in ("order", "customer", "voucher", "promotion_tier", "reward", "redemption"):
            redemption.pop(name, None)  # the event's order says it (shared by a stack); the style sets the rest
        data["order"] = copy.deepcopy(order)
        data["customer"] = copy.deepcopy(customer)
        data["holder"] = copy.deepcopy(customer) if customer and self.rng.random() < 0.5 else None
        redemption["customer_id"] = customer["id"] if customer else None
        if customer is None:
            self.stats["null_customer"] += 1
        data["promotion_stack"] = None
        data["voucher"] = None
        data["promotion_tier"] = None
        return data

    def redemption(
        self,
        *,
        style: str,
        order: dict[str, Any] | None,
        customer: dict[str, Any] | None,
        parent_id: str | None = None,
        share: int | None = None,
        running: int | None = None,
        redemption_id: str | None = None,
    ) -> dict[str, Any]:
        """A succeeded redemption of ``style`` (``LONE_STYLES``, or ``stack_parent``), its truth noted."""
        data = self._base(self.gen.redemption_succeeded(), order, customer)
        redemption = data["redemption"]
        redemption.update(status="SUCCEEDED", result="SUCCESS", object="redemption")
        if redemption_id:
            redemption["id"] = redemption_id
        redemption.pop("failure_code", None)
        redemption.pop("failure_message", None)
        if parent_id:
            redemption["redemption"] = parent_id
        if style == "loyalty_material":
            share = None  # a product, not a discount on the order
        elif share is None:
            share = self.share()
        if data["order"] is not None:
            self._discounts(data["order"], share, running)
        truth: dict[str, Any] = {
            "status": "SUCCEEDED",
            "discount_amount": share if data["order"] is not None else None,
            "amount_unit": _unit(style),
            "stack_role": "child" if parent_id else None,
            "parent_redemption_id": parent_id,
        }
        if style in VOUCHER_TYPE_OF_STYLE or style.startswith("loyalty"):
            truth["voucher_type"] = VOUCHER_TYPE_OF_STYLE.get(style, "LOYALTY_CARD")
        truth.update(self._redeemable(style, data, share))
        self.truth[redemption["id"]] = truth
        self.stats[style] += 1
        return data

    def _redeemable(self, style: str, data: dict[str, Any], share: int | None) -> dict[str, Any]:
        """Fills the redeemable of ``style`` in; returns what the ledger must hold of it."""
        if style == "voucher":
            self._discount_voucher(data)
            return {}
        if style == "promotion_tier":
            tier = self.gen.instance("SimplePromotionTier", nullable_ok=False)
            tier["id"] = self.gen.voucherify_id("promo_")
            if self.rng.random() < 0.3:
                tier["name"] = self.rng.choice(UNICODE_NAMES)
            data["promotion_tier"] = tier
            if self.rng.random() < 0.5:
                data["redemption"]["promotion_tier"] = copy.deepcopy(tier)
            return {"promotion_tier_id": tier["id"]}
        if style == "stack_parent":  # the stack's own redemption: no voucher, no tier
            return {}
        if style == "gift":
            return self._gift_card(data, share or 0)
        return self._loyalty_card(style, data, share)

    def _voucher(self, voucher_type: str) -> dict[str, Any]:
        gen, rng = self.gen, self.rng
        voucher = gen.instance("SimpleVoucher", nullable_ok=False)
        voucher.update(id=gen.voucherify_id("v_"), type=voucher_type)
        for name in ("gift", "loyalty_card", "discount"):
            voucher.pop(name, None)
        if rng.random() < 0.25:
            voucher["code"] = f"{rng.choice(UNICODE_CODES)}-{gen.token(4)}"
            voucher["campaign"] = rng.choice(UNICODE_NAMES)
            self.stats["unicode_code"] += 1
        else:
            voucher["code"] = gen.token(rng.randint(6, 12)).upper()
        return voucher

    def _place(self, data: dict[str, Any], voucher: dict[str, Any]) -> None:
        data["voucher"] = voucher
        if self.rng.random() < 0.5:
            data["redemption"]["voucher"] = copy.deepcopy(voucher)

    def _discount_voucher(self, data: dict[str, Any]) -> None:
        voucher = self._voucher("DISCOUNT_VOUCHER")
        discount_type, schema = DISCOUNT_SCHEMAS[self._discount_turn % len(DISCOUNT_SCHEMAS)]
        self._discount_turn += 1
        voucher["discount"] = self.gen.instance(schema, nullable_ok=False)
        voucher["discount"]["type"] = discount_type
        self.stats[f"discount_{discount_type}"] += 1
        self._place(data, voucher)

    def _gift_card(self, data: dict[str, Any], used: int) -> dict[str, Any]:
        """A gift card paying ``used`` credits (its ``amount``, and the order's discount): its balance after."""
        voucher = self._voucher("GIFT_VOUCHER")
        balance: int | float = self.rng.randint(0, 20_000)
        if self.rng.random() < 0.3:
            balance += 0.5  # the schema types a gift's balance number
        voucher["gift"] = {"amount": balance + used + self.rng.randint(0, 5_000), "balance": balance}
        data["redemption"]["amount"] = used
        self._place(data, voucher)
        return {"amount": used, "gift_balance": balance}

    def _loyalty_card(self, style: str, data: dict[str, Any], share: int | None) -> dict[str, Any]:
        """A loyalty card paying points for a reward (pay with points, a product, or gift credits redeemed
        automatically): the points, the card's points and balance after, the reward."""
        gen, rng = self.gen, self.rng
        voucher = self._voucher("LOYALTY_CARD")
        points = rng.randint(10, 2_000)
        card = {"points": rng.randint(points, 50_000), "balance": rng.randint(0, 10_000)}
        voucher["loyalty_card"] = card
        reward: dict[str, Any] = {"id": gen.voucherify_id("rew_"), "object": "reward", "name": "Reward"}
        if style == "loyalty_points":
            ratio = {"exchange_ratio": max(1, (share or 0) // points), "points_ratio": 1}
            reward.update(type="COIN", parameters={"coin": ratio})
        elif style == "loyalty_material":
            product = {"id": gen.voucherify_id("prod_"), "sku_id": None}
            reward.update(type="MATERIAL", parameters={"product": product}, product={"id": product["id"]})
        else:
            credits = {"id": gen.voucherify_id("camp_"), "type": "GIFT_VOUCHERS", "balance": rng.randint(100, 5_000)}
            reward.update(type="CAMPAIGN", parameters={"campaign": credits})
            data["redemption"]["channel"] = {"channel_id": gen.voucherify_id("rewa_"), "channel_type": "AUTO_REDEEM"}
        data["redemption"].update(amount=points, reward=reward)
        self._place(data, voucher)
        truth = {"amount": points, "loyalty_points": card["points"], "loyalty_balance": card["balance"]}
        truth.update(reward_id=reward["id"], reward_type=reward["type"])
        if style == "loyalty_gift_credits":
            truth["channel_type"] = "AUTO_REDEEM"
        return truth

    def failed_redemption(self, order: dict[str, Any] | None, customer: dict[str, Any] | None) -> dict[str, Any]:
        """A failed attempt (``rf_…``), of a discount voucher or with no redeemable at all."""
        data = self._base(self.gen.redemption_failed(), order, customer)
        if data["order"] is not None:
            self._discounts(data["order"], None, None)
        if self.rng.random() < 0.7:
            self._discount_voucher(data)
        redemption = data["redemption"]
        self.failed.add(redemption["id"])
        self.truth[redemption["id"]] = {
            "status": "FAILED",
            "discount_amount": None,
            "amount": None,
            "failure_code": redemption["failure_code"],
            "stack_role": None,
        }
        self.stats["failed_redemptions"] += 1
        return data

    # --- rollbacks ------------------------------------------------------------------------------------
    def rollback(self, redemption_data: Mapping[str, Any], *, failed: bool = False) -> tuple[str, dict[str, Any]]:
        if failed:  # beside a rollback's copy of the redemption, never other content: the same redemption
            event_type, data = "redemption.rollback.failed", self.gen.rollback_failed(redemption_data)
            data["redemption"] = copy.deepcopy(redemption_data["redemption"]) if self.rng.random() < 0.7 else None
        else:
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
        for name in ("order", "voucher", "amount"):
            rollback.pop(name, None)
        rollback["customer_id"] = (redemption_data.get("customer") or {}).get("id")
        if self.rng.random() < 0.3:
            rollback["reason"] = self.rng.choice(UNICODE_NAMES)
        self.truth[rollback["id"]] = self._given_back(redemption_data, data, failed)
        if failed:
            if isinstance(data.get("redemption"), dict) and self.rng.random() < 0.5:
                data["redemption"]["status"] = "ROLLED_BACK"  # as Voucherify's own redemption.rollback.failed example
            self.failed.add(rollback["id"])
            self.stats["failed_rollbacks"] += 1
        return event_type, data

    def _given_back(self, redemption_data: Mapping[str, Any], data: dict[str, Any], failed: bool) -> dict[str, Any]:
        """A rollback of a gift or loyalty card redemption gives its credits or points back (``amount`` negative,
        the card's balance after in the event's voucher); a failed one gives nothing back."""
        used = redemption_data["redemption"].get("amount")
        voucher = data.get("voucher") or {}
        if voucher.get("type") == "GIFT_VOUCHER" and not failed:
            data["redemption_rollback"]["amount"] = -used
            voucher["gift"]["balance"] += used
            return {"amount_unit": "gift_credits", "credits_restored": used, "gift_balance": voucher["gift"]["balance"]}
        if voucher.get("type") == "LOYALTY_CARD" and not failed:
            data["redemption_rollback"]["amount"] = -used
            voucher["loyalty_card"]["balance"] += used
            balance = voucher["loyalty_card"]["balance"]
            return {"amount_unit": "loyalty_points", "points_restored": used, "loyalty_balance": balance}
        return {"credits_restored": None, "points_restored": None}

    def customer(self) -> dict[str, Any] | None:
        if self.rng.random() < 0.2:
            return None
        customer = self.gen.instance("SimpleCustomer", nullable_ok=False)
        customer["id"] = self.gen.voucherify_id("cust_")
        if self.rng.random() < 0.3:
            customer["name"] = self.rng.choice(UNICODE_NAMES)
        return customer

    # --- one purchase: a redemption, a stack or a failed attempt, maybe rolled back --------------------
    def stack(self, order: dict[str, Any] | None, customer: dict[str, Any] | None) -> list[dict[str, Any]]:
        """A stacked redemption: one child per redeemable (each with its share and the running total), and the
        stack's own redemption, whose share is the stack's total and whose order entry lists the children."""
        rng = self.rng
        parent_id = self.gen.voucherify_id("r_")
        shares = [self.share() for _ in range(rng.randint(2, 4))]
        children = [
            self.redemption(
                style="voucher" if rng.random() < 0.6 else "promotion_tier",
                order=order,
                customer=customer,
                parent_id=parent_id,
                share=share,
                running=sum(shares[: n + 1]),
            )
            for n, share in enumerate(shares)
        ]
        parent = self.redemption(
            style="stack_parent", order=order, customer=customer, share=sum(shares), redemption_id=parent_id
        )
        truth = self.truth[parent_id]
        truth["stack_role"] = "parent"
        child_ids = [child["redemption"]["id"] for child in children]
        marks = rng.choice(("both", "entry", "related_object_type")) if parent["order"] is not None else "none"
        if marks in ("both", "related_object_type", "none"):
            parent["redemption"].update(related_object_type="redemption", related_object_id=parent_id)
        if marks in ("both", "entry"):
            entry = {"date": parent["redemption"]["date"], "related_object_type": "redemption", "stacked": child_ids}
            parent["order"]["redemptions"] = {parent_id: {**entry, "related_object_id": parent_id}}
            truth["child_redemption_ids"] = child_ids
        else:
            truth["child_redemption_ids"] = None
        self.stats["stacks"] += 1
        self.stats["stack_children"] += len(children)
        return [*children, parent]

    def purchase(self) -> list[Event]:
        """``(kind, event_type, data)`` of one purchase's events, in the order Voucherify would send them."""
        rng = self.rng
        customer = self.customer()
        order = self.order(customer)
        if rng.random() < self.failed_share:
            return [("redemption", "redemption.failed", self.failed_redemption(order, customer))]
        roll_back = rng.random() < self.rollback_share
        if rng.random() < 0.15:  # a stacked redemption: one per redeemable, plus the stack's own
            group = self.stack(order, customer)
        else:
            styles, weights = zip(*LONE_STYLES, strict=True)
            style = rng.choices(styles, weights)[0]
            if style == "loyalty":
                style = LOYALTY_STYLES[self._loyalty_turn % len(LOYALTY_STYLES)]
                self._loyalty_turn += 1
            group = [self.redemption(style=style, order=order, customer=customer)]
        events: list[Event] = []
        for data in group:
            event_type = "customer.redemption.succeeded" if rng.random() < 0.2 else "redemption.succeeded"
            events.append(("redemption", event_type, data))
        if len(group) == 1 and rng.random() < self.failed_rollback_share:
            events.append(("rollback", *self.rollback(group[0], failed=True)))
        if roll_back:
            for data in group:
                events.append(("rollback", *self.rollback(data)))
        return events
