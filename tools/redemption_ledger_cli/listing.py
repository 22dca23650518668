"""``redemption-ledger list``: the redemptions of an order, a customer or a voucher code, from the ledger's indexes.

An order — by Voucherify's id (``--order ord_…``) or by the merchant's own (``--order-source-id 1001``) — is shown as
one object: its redemptions oldest first, each stack as one entry (the parent with its ``children``, each with its
``promotion_tier_id`` where the ledger has one), and the order's true total discount. A stack's parent carries the
whole stack's discount (``discount_amount``), each child its own share, so the total adds up every redemption but
the parents. A customer or a voucher code is a plain list. Imports the layer package, boto3 and the standard library
only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from redemption_ledger_cli.where import EXIT_NOT_FOUND, EXIT_OK, PROG, at, print_json, read, resolve_target

LIST_KEYS = {
    "order": "order",
    "order_source_id": "order source id",
    "customer": "customer",
    "voucher_code": "voucher code",
}
# An order's two ids: what each listing of an order is keyed on, and the other one its redemptions also carry.
ORDER_VIEWS = {"order": ("order_id", "order_source_ids"), "order_source_id": ("order_source_id", "order_ids")}
OTHER_ID = {"order_source_ids": "order_source_id", "order_ids": "order_id"}


def stack_parents(items: Iterable[Mapping[str, Any]]) -> set[str]:
    """The redemptions that are a stack's parent: ``stack_role`` parent, or named by a child's
    ``parent_redemption_id`` (an item written before the ledger kept ``stack_role``)."""
    found = list(items)
    return {str(i["redemption_id"]) for i in found if i.get("stack_role") == "parent"} | {
        str(i["parent_redemption_id"]) for i in found if i.get("parent_redemption_id")
    }


def stack_tree(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The listing with each stack as one entry: the parent's item with ``children`` (oldest first), in the place of
    the stack's first redemption. A parent the listing does not hold (its item lacks this order's id) stands in as
    ``{"redemption_id": …, "listed": false, "children": […]}``."""
    parents = stack_parents(items)
    stacks: dict[str, dict[str, Any]] = {}
    tree: list[dict[str, Any]] = []
    for item in items:
        redemption_id, parent = item.get("redemption_id"), item.get("parent_redemption_id")
        if parent:
            if parent not in stacks:
                stacks[parent] = {"redemption_id": parent, "listed": False, "children": []}
                tree.append(stacks[parent])
            stacks[parent]["children"].append(item)
        elif redemption_id in parents:
            node = stacks.setdefault(str(redemption_id), {"children": []})
            children = node["children"]
            if not node.get("redemption_id"):
                tree.append(node)
            node.clear()
            node.update(item, children=children)
        else:
            tree.append(item)
    return tree


def discount_totals(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The order's discount: ``total_discount_amount`` over its redemptions but the stacks' parents (whose
    ``discount_amount`` is their stack's total) and failed attempts, of which ``rolled_back_discount_amount`` was
    rolled back since. Amounts of different ``amount_unit`` are not added up: the total is then null and
    ``amount_units`` names them."""
    parents = stack_parents(items)
    counted = [
        i
        for i in items
        if i.get("stack_role") != "parent" and i.get("redemption_id") not in parents and i.get("status") != "FAILED"
    ]
    units = sorted({str(i["amount_unit"]) for i in counted if i.get("amount_unit") is not None})
    amounts = [(i, i["discount_amount"]) for i in counted if isinstance(i.get("discount_amount"), int | float)]
    if len(units) > 1:
        return {"total_discount_amount": None, "rolled_back_discount_amount": None, "amount_units": units}
    totals: dict[str, Any] = {
        "total_discount_amount": sum(amount for _, amount in amounts),
        "rolled_back_discount_amount": sum(amount for i, amount in amounts if i.get("status") == "ROLLED_BACK"),
    }
    if units:
        totals["amount_unit"] = units[0]
    return totals


def order_view(key: str, value: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``list --order`` / ``--order-source-id`` prints: the order by the id asked, its other ids, its
    redemptions as a tree and its totals."""
    asked, others = ORDER_VIEWS[key]
    return {
        asked: value,
        others: sorted({str(i[OTHER_ID[others]]) for i in items if i.get(OTHER_ID[others])}),
        "redemption_count": len(items),
        **discount_totals(items),
        "redemptions": stack_tree(items),
    }


def run_list(args: argparse.Namespace, out: TextIO) -> int:
    key = next(k for k in LIST_KEYS if getattr(args, k))
    value = getattr(args, key)
    target = resolve_target(args)
    found = read(target, lambda ledger: ledger.redemptions.list_by(key, value))
    print_json(order_view(key, value, found) if key in ORDER_VIEWS else found, out)
    if not found:
        print(
            f"{PROG}: no redemptions of {LIST_KEYS[key]} {value} in table {target.table_name}{at(target)}",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    return EXIT_OK


def register_list(commands: Any, parent: argparse.ArgumentParser) -> None:
    listing = commands.add_parser(
        "list",
        parents=[parent],
        help="the redemptions of an order, a customer or a voucher code",
        description="Prints the redemptions of an order, a customer or a voucher code, oldest first. An order is one "
        "object: its stacks as trees (the parent with its children) and its total discount, counting each "
        "redemption once (a stack's parent carries its children's sum).",
    )
    which = listing.add_mutually_exclusive_group(required=True)
    which.add_argument("--order", metavar="ORD", help="order id (ord_…)")
    which.add_argument(
        "--order-source-id",
        dest="order_source_id",
        metavar="ID",
        help="your own order id (Voucherify's order.source_id, e.g. 1001)",
    )
    which.add_argument("--customer", metavar="CUST", help="customer id (cust_…)")
    which.add_argument("--voucher-code", dest="voucher_code", metavar="CODE", help="voucher code")
    listing.set_defaults(run=run_list)
