"""What `redemption-ledger list --order` makes of an order's redemptions (``redemption_ledger_cli.listing``): each
stack as one tree, and a total discount that counts every redemption once."""

from __future__ import annotations

from typing import Any

from redemption_ledger_cli.listing import discount_totals, order_view, stack_tree


def redemption(redemption_id: str, discount: int | None = None, **fields: Any) -> dict[str, Any]:
    return {"redemption_id": redemption_id, "status": "SUCCEEDED", "discount_amount": discount, **fields}


def test_a_parent_listed_after_its_children_takes_the_place_of_the_stacks_first_redemption() -> None:
    items = [
        redemption("r_lone", 100),
        redemption("r_child1", 200, parent_redemption_id="r_parent", stack_role="child"),
        redemption("r_parent", 500, stack_role="parent"),
        redemption("r_child2", 300, parent_redemption_id="r_parent", stack_role="child"),
    ]

    tree = stack_tree(items)

    assert [(n["redemption_id"], [c["redemption_id"] for c in n.get("children", [])]) for n in tree] == [
        ("r_lone", []),
        ("r_parent", ["r_child1", "r_child2"]),
    ]
    assert tree[1]["discount_amount"] == 500 and "listed" not in tree[1]


def test_a_stack_parent_is_not_counted_twice_even_without_its_stack_role() -> None:
    """An item written before the ledger kept ``stack_role`` is a parent because a child names it."""
    items = [
        redemption("r_parent", 500),
        redemption("r_child1", 200, parent_redemption_id="r_parent"),
        redemption("r_child2", 300, parent_redemption_id="r_parent"),
    ]

    assert discount_totals(items) == {"total_discount_amount": 500, "rolled_back_discount_amount": 0}
    assert [c["redemption_id"] for c in stack_tree(items)[0]["children"]] == ["r_child1", "r_child2"]


def test_failed_attempts_are_not_discounts_and_rolled_back_ones_are_counted_apart() -> None:
    items = [
        redemption("r_a", 400),
        redemption("r_b", 250, status="ROLLED_BACK"),
        redemption("rf_c", 999, status="FAILED"),
        redemption("r_d"),  # no discount_amount recorded
    ]

    assert discount_totals(items) == {"total_discount_amount": 650, "rolled_back_discount_amount": 250}


def test_amounts_of_different_units_are_not_added_up() -> None:
    items = [redemption("r_a", 400, amount_unit="currency"), redemption("r_b", 50, amount_unit="points")]

    assert discount_totals(items) == {
        "total_discount_amount": None,
        "rolled_back_discount_amount": None,
        "amount_units": ["currency", "points"],
    }
    assert discount_totals(items[:1])["amount_unit"] == "currency"


def test_the_order_view_names_the_order_by_the_id_asked_and_lists_its_other_ids() -> None:
    items = [redemption("r_a", 1, order_id="ord_1", order_source_id="1001")]

    assert order_view("order", "ord_1", items)["order_source_ids"] == ["1001"]
    view = order_view("order_source_id", "1001", items)
    assert (view["order_source_id"], view["order_ids"], view["redemption_count"]) == ("1001", ["ord_1"], 1)
