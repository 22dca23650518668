"""The fake Voucherify's history, without sockets: seeded deterministically over the days asked (stacks, rollbacks,
failed attempts), listed as ``GET /v1/redemptions`` documents its query (paging, total, bounds, order, filters),
and consistent with its webhooks: the webhook of each object and the object read back through the reconciler's
``webhook_data`` tell the ledger the same redemptions, statuses and rollback ids."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger_dev.fake_voucherify import FakeVoucherify
from ledger_dev.fake_voucherify.history import History
from ledger_dev.fake_voucherify.listing import InvalidQuery, parse_query
from ledger_dev.fake_voucherify.seeding import seed_history
from voucherify_ledger.ledger.summaries import ledger_status, redemption_summary, rollback_succeeded
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData
from voucherify_ledger.reconcile.objects import webhook_data
from voucherify_ledger.reconcile.windows import created_at
from voucherify_ledger.webhooks.routes import REDEMPTION_ROLLBACK_SUCCEEDED, REDEMPTION_SUCCEEDED

END = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeded() -> list[dict[str, Any]]:
    return seed_history(2_000, days=90, end=END, seed=7).objects


def history_of(objects: list[dict[str, Any]]) -> History:
    history = History()
    history.extend(objects)
    return history


def query(history: History, *pairs: tuple[str, str]) -> dict[str, Any]:
    return history.list(parse_query(list(pairs)))


# --- seeding ----------------------------------------------------------------------------------------------
def test_a_seed_gives_the_same_history_and_another_seed_another() -> None:
    first, again = seed_history(500, end=END, seed=3), seed_history(500, end=END, seed=3)
    assert json.dumps(first.objects) == json.dumps(again.objects)
    assert [r.id for r in first.redemptions] == [r.id for r in again.redemptions]
    assert {o["id"] for o in seed_history(500, end=END, seed=4).objects}.isdisjoint({o["id"] for o in first.objects})


def test_the_history_spreads_over_the_days_asked_with_every_kind_of_object(seeded: list[dict[str, Any]]) -> None:
    dates = [created_at(o) for o in seeded]
    assert len(seeded) == 2_000 and all(d is not None for d in dates)
    assert dates == sorted(dates)  # type: ignore[type-var]
    assert END - timedelta(days=90) <= min(dates) and max(dates) <= END  # type: ignore[type-var, operator]
    assert max(dates) - min(dates) > timedelta(days=85)  # type: ignore[operator]
    prefixes = defaultdict(int)
    for obj in seeded:
        prefixes[obj["id"].split("_")[0]] += 1
        assert obj["object"] == ("redemption_rollback" if obj["id"].startswith("rr") else "redemption")
    assert prefixes["rr"] >= 0.10 * len(seeded)
    assert prefixes["rf"] > 0 and prefixes["rrf"] > 0
    for obj in seeded:
        if obj["id"].startswith("rf_"):
            assert (obj["result"], obj["status"], obj["order"]) == ("FAILURE", "FAILED", None)


def test_stacks_are_seeded_and_a_rolled_back_stack_has_a_rollback_for_the_parent_and_each_child(
    seeded: list[dict[str, Any]],
) -> None:
    by_id = {o["id"]: o for o in seeded}
    parents = [o for o in seeded if o["object"] == "redemption" and o["related_object_type"] == "redemption"]
    assert parents
    rollbacks_of = defaultdict(list)
    for obj in seeded:
        if obj["object"] == "redemption_rollback" and obj["result"] == "SUCCESS":
            rollbacks_of[obj["redemption"]].append(obj["id"])
    rolled = [p for p in parents if p["id"] in rollbacks_of]
    assert rolled
    for parent in parents:
        children = parent["order"]["redemptions"][parent["id"]]["stacked"]
        assert len(children) >= 2 and all(by_id[c]["redemption"] == parent["id"] for c in children)
        for member in [parent["id"], *children]:
            expected = "ROLLED_BACK" if parent in rolled else "SUCCEEDED"
            assert by_id[member]["status"] == expected
            ids = [r["id"] for r in (by_id[member].get("related_redemptions") or {}).get("rollbacks", [])]
            assert ids == rollbacks_of.get(member, [])


def test_seeded_redemptions_are_known_to_the_rollback_endpoints_with_their_rollbacks() -> None:
    fake = FakeVoucherify()
    counts = fake.seed_history(300, end=END, seed=1)
    objects = fake.history()
    rolled = {o["redemption"]: o["id"] for o in objects if o["id"].startswith("rr_")}
    assert counts["objects"] == 300 and rolled
    for redemption_id, rollback_id in rolled.items():
        assert fake.rollback_id(redemption_id) == rollback_id
    lone = next(o["id"] for o in objects if o["id"].startswith("r_") and o["status"] == "SUCCEEDED")
    assert fake.rollback_id(lone) is None
    assert fake.state()["redemptions"] == [] and fake.state()["history"]["objects"] == 300  # counts, not objects


def test_seeding_ten_thousand_objects_is_quick() -> None:
    started = time.perf_counter()
    FakeVoucherify().seed_history(10_000, end=END)
    assert time.perf_counter() - started < 2.0


# --- listing ----------------------------------------------------------------------------------------------
def test_pages_and_total(seeded: list[dict[str, Any]]) -> None:
    history = history_of(seeded)
    default = query(history)
    assert set(default) == {"object", "data_ref", "redemptions", "total"}
    assert (default["object"], default["data_ref"], default["total"], len(default["redemptions"])) == (
        "list",
        "redemptions",
        2_000,
        10,
    )
    newest_first = [o["id"] for o in reversed(seeded)]
    pages = [query(history, ("limit", "100"), ("page", str(p)))["redemptions"] for p in range(1, 22)]
    assert [o["id"] for page in pages for o in page] == newest_first
    assert [len(p) for p in pages[-2:]] == [100, 0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "ten"),
        ("page", "0"),
        ("page", "100"),
        ("order", "date"),
        ("created_at[after]", "yesterday"),
        ("result", "MAYBE"),
        ("filters[nope][conditions][$is]", "x"),
        ("filters[object][conditions][$like]", "x"),
        ("filters[junction]", "xor"),
    ],
)
def test_what_the_api_refuses(name: str, value: str) -> None:
    with pytest.raises(InvalidQuery):
        parse_query([(name, value)])


def test_the_limit_and_page_bounds_accepted() -> None:
    assert (parse_query([("limit", "1"), ("page", "99")]).limit, parse_query([("page", "99")]).page) == (1, 99)
    assert parse_query([("limit", "100")]).limit == 100


def test_ordering_both_ways_and_by_id(seeded: list[dict[str, Any]]) -> None:
    history = history_of(seeded)
    oldest = query(history, ("order", "created_at"), ("limit", "100"))["redemptions"]
    newest = query(history, ("order", "-created_at"), ("limit", "100"))["redemptions"]
    assert [o["id"] for o in oldest] == [o["id"] for o in seeded[:100]]
    assert [o["id"] for o in newest] == [o["id"] for o in seeded[::-1][:100]]
    by_id = query(history, ("order", "id"), ("limit", "100"))["redemptions"]
    assert [o["id"] for o in by_id] == sorted(o["id"] for o in seeded)[:100]
    by_id_desc = query(history, ("order", "-id"), ("limit", "5"))["redemptions"]
    assert [o["id"] for o in by_id_desc] == sorted((o["id"] for o in seeded), reverse=True)[:5]


def test_the_time_bounds_are_exclusive(seeded: list[dict[str, Any]]) -> None:
    history = history_of(seeded)
    a, b = seeded[500]["date"], seeded[1500]["date"]
    inside = [o["id"] for o in seeded if a < o["date"] < b]
    answer = query(
        history, ("created_at[after]", a), ("created_at[before]", b), ("order", "created_at"), ("limit", "100")
    )
    assert answer["total"] == len(inside) and [o["id"] for o in answer["redemptions"]] == inside[:100]
    just_before = (datetime.fromisoformat(a) - timedelta(milliseconds=1)).isoformat()
    at_a = [o["id"] for o in seeded if o["date"] == a]
    widened = query(history, ("created_at[after]", just_before), ("created_at[before]", b), ("order", "created_at"))
    assert [o["id"] for o in widened["redemptions"]][: len(at_a)] == at_a
    assert query(history, ("created_at[after]", b), ("created_at[before]", a))["total"] == 0
    day = query(history, ("created_at[after]", "2025-02-27"), ("created_at[before]", "2025-02-28"))
    assert day["total"] == sum(1 for o in seeded if o["date"].startswith("2025-02-27"))


def test_filters_and_junction(seeded: list[dict[str, Any]]) -> None:
    history = history_of(seeded)

    def total(*pairs: tuple[str, str]) -> int:
        return query(history, *pairs)["total"]

    rollbacks = [o for o in seeded if o["object"] == "redemption_rollback"]
    assert total(("filters[object][conditions][$is]", "redemption_rollback")) == len(rollbacks)
    assert total(("filters[object][conditions][$is_not]", "redemption_rollback")) == len(seeded) - len(rollbacks)
    assert total(("result", "FAILURE")) == sum(1 for o in seeded if o["result"] == "FAILURE")
    parent = next(o for o in seeded if o["related_object_type"] == "redemption")
    children = parent["order"]["redemptions"][parent["id"]]["stacked"]
    answer = query(history, ("filters[parent_redemption_id][conditions][$is]", parent["id"]))
    assert sorted(o["id"] for o in answer["redemptions"]) == sorted(children)
    code = next(o["voucher"]["code"] for o in seeded if o.get("voucher"))
    with_code = [o for o in seeded if (o.get("voucher") or {}).get("code") == code]
    assert total(("filters[voucher_code][conditions][$is]", code)) == len(with_code)
    pair = [with_code[0]["related_object_id"], parent["id"]]
    in_pairs = [("filters[related_object_id][conditions][$in]", v) for v in pair]
    assert total(*in_pairs) == sum(1 for o in seeded if o["related_object_id"] in pair)
    indexed = [
        ("filters[related_object_id][conditions][$in][0]", pair[0]),
        ("filters[related_object_id][conditions][$in][1]", pair[1]),
    ]
    assert total(*indexed) == total(*in_pairs)
    failed_or_rolled = [
        ("filters[result][conditions][$is]", "FAILURE"),
        ("filters[object][conditions][$is]", "redemption_rollback"),
    ]
    both = sum(1 for o in seeded if o["result"] == "FAILURE" and o["object"] == "redemption_rollback")
    either = sum(1 for o in seeded if o["result"] == "FAILURE" or o["object"] == "redemption_rollback")
    assert total(*failed_or_rolled) == both > 0
    assert total(*failed_or_rolled, ("filters[junction]", "or")) == either > both


# --- webhooks and API objects tell the ledger the same ------------------------------------------------------
def ledger_view(datas: list[Any]) -> dict[str, dict[str, Any]]:
    """What the ledger would hold of each redemption after recording ``datas`` (in any order)."""
    view: dict[str, dict[str, Any]] = {}
    for data in datas:
        if isinstance(data, EventRedemptionRollbackSucceededData):
            entry = view.setdefault(data.redemption_id, {"rollbacks": set(), "failed_rollbacks": set()})
            rollback = data.redemption_rollback
            if rollback_succeeded(rollback):
                entry["rollbacks"].add(rollback.id)
            else:
                entry["failed_rollbacks"].add(rollback.id)
        else:
            entry = view.setdefault(data.redemption.id, {"rollbacks": set(), "failed_rollbacks": set()})
            summary = redemption_summary(data, data.redemption)
            summary.pop("voucherify_status")  # the webhook's is the status when it was sent, the list's today's
            entry.update(status=ledger_status(data.redemption), summary=summary)
    for entry in view.values():
        if entry["rollbacks"]:
            entry["status"] = "ROLLED_BACK"
    return view


def test_every_objects_webhook_and_the_object_itself_tell_the_ledger_the_same() -> None:
    fake = FakeVoucherify()
    fake.seed_history(400, end=END, seed=11)
    objects = fake.history()
    from_api = ledger_view([webhook_data(obj) for obj in objects])  # UnreadableObject would fail here

    routes = {
        "/webhooks/redemption-succeeded": REDEMPTION_SUCCEEDED,
        "/webhooks/redemption-rollback-succeeded": REDEMPTION_ROLLBACK_SUCCEEDED,
    }
    datas, events = [], defaultdict(int)
    for path, body in fake.history_webhooks():
        route = routes[path]
        envelope = route.envelope_model.model_validate_json(body)
        assert (
            envelope.event.type in route.event_types and route.disagreement(envelope.event.type, envelope.data) is None
        )
        events[envelope.event.type] += 1
        datas.append(envelope.data)
    from_webhooks = ledger_view(datas)

    assert len(datas) == len(objects)
    assert set(events) == {
        "redemption.succeeded",
        "redemption.failed",
        "redemption.rollback.succeeded",
        "redemption.rollback.failed",
    }
    assert from_webhooks == from_api
    statuses = {entry["status"] for entry in from_api.values()}
    assert statuses == {"SUCCEEDED", "FAILED", "ROLLED_BACK"}
    assert any(e["summary"].get("stack_role") == "child" for e in from_api.values())


def test_a_share_of_the_webhooks_is_seeded() -> None:
    fake = FakeVoucherify()
    fake.seed_history(300, end=END)
    some = fake.history_webhooks(share=0.5, seed=2)
    assert some == fake.history_webhooks(share=0.5, seed=2)
    assert 100 < len(some) < 200 and set(some) < set(fake.history_webhooks(seed=2))
