"""``redemption-ledger rollback``: put a RollbackRequest (``docs/rollback-request.schema.json``) on the rollback queue —
one redemption, every redemption of an order by Voucherify's id (``--order ord_…``) or by the merchant's own
(``--order-source-id 1001``) — and, with ``--wait``, follow it in the ledger until it ends.

The queue is ``make run``'s (``--local``), the stack's ``RollbackQueueUrl`` output (``--stack``), ``--queue-url`` or
``$ROLLBACK_QUEUE_URL``; ``--wait`` reads the ledger found as every command finds it. Imports the layer package, boto3
and the standard library only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, TextIO

from redemption_ledger_cli.where import (
    EXIT_OK,
    EXIT_ROLLBACK_FAILED,
    EXIT_STILL_PENDING,
    EXIT_USAGE,
    PROG,
    CliError,
    aws_problem,
    print_json,
    read,
    resolve_queue,
    resolve_target,
)

TERMINAL_STATES = ("SUCCEEDED", "ALREADY_ROLLED_BACK", "FAILED")


def rollback_request(args: argparse.Namespace) -> Any:
    """The RollbackRequest the arguments describe, checked by the layer's model (a usage error otherwise)."""
    from voucherify_ledger.models.rollback_request import RollbackRequest, validation_errors

    fields: dict[str, Any] = {
        "redemption_id": args.redemption_id,
        "order_id": args.order,
        "order_source_id": args.order_source_id,
        "reason": args.reason,
        "tracking_id": args.tracking_id,
        "request_id": args.request_id,
    }
    try:
        return RollbackRequest.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValueError as exc:  # pydantic's ValidationError (a ValueError): the layer's model, not a CLI dependency
        raise CliError("not a valid rollback request: " + "; ".join(validation_errors(exc)), EXIT_USAGE) from None


def request_states(ledger: Any, request: Any, request_id: str) -> list[dict[str, Any]]:
    """The ledger's items of the request: one for a redemption; for an order, the order request followed by
    the requests it queued per redemption (``child_request_ids``: ``<request id>:<r_…>``, or a hash of a long
    request id in its place)."""
    if request.redemption_id:
        item = ledger.requests.get(request_id, request.redemption_id)
        return [item] if item else []
    by, order_key = request.order_target()
    requests = ledger.requests.of_order(order_key, by=by)
    order = next((r for r in requests if r["request_id"] == request_id), None)
    if order is None:
        return []
    targets = order.get("redemption_ids") or []
    child_ids = order.get("child_request_ids") or [f"{request_id}:{rid}" for rid in targets]
    children = [ledger.requests.get(child_id, rid) for child_id, rid in zip(child_ids, targets, strict=False)]
    return [order, *children]


def finished(items: list[dict[str, Any]]) -> bool:
    if not items or None in items:
        return False
    head, children = items[0], items[1:]
    if head.get("state") == "FANNED_OUT":
        return bool(children) and all(c.get("state") in TERMINAL_STATES for c in children)
    return all(item.get("state") in TERMINAL_STATES for item in items)


def run_rollback(args: argparse.Namespace, out: TextIO) -> int:
    request = rollback_request(args)
    if args.wait and not (args.local or args.stack or args.table or os.environ.get("LEDGER_TABLE_NAME")):
        raise CliError(
            "--wait reads the ledger: also say where it is (--local, --stack NAME or --table NAME)", EXIT_USAGE
        )
    queue = resolve_queue(args)
    from voucherify_ledger.rollbacks.queue import enqueue_rollback

    try:
        message_id = enqueue_rollback(queue.client, queue.url, request)
    except CliError:
        raise
    except Exception as exc:
        raise CliError(f"cannot queue the request on {queue.url}: {aws_problem(exc)}") from None
    request_id = request.request_id or message_id
    by, target = request.order_target() or ("redemption_id", request.redemption_id)
    queued = {"queued": True, "request_id": request_id, "message_id": message_id, by: target, "queue_url": queue.url}
    if not args.wait:
        print_json(queued, out)
        return EXIT_OK
    ledger_target = resolve_target(args)
    deadline = time.monotonic() + args.wait
    items: list[dict[str, Any]] = []
    while True:
        items = read(ledger_target, lambda ledger: request_states(ledger, request, request_id))
        if finished(items) or time.monotonic() >= deadline:
            break
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    done = finished(items)
    print_json({**queued, "finished": done, "requests": [i for i in items if i]}, out)
    if not done:
        print(f"{PROG}: request {request_id} has not finished after {args.wait:g} s (it stays queued)", file=sys.stderr)
        return EXIT_STILL_PENDING
    return EXIT_ROLLBACK_FAILED if any(i.get("state") == "FAILED" for i in items) else EXIT_OK


def register_rollback(commands: Any, parent: argparse.ArgumentParser) -> None:
    rollback = commands.add_parser(
        "rollback",
        parents=[parent],
        help="queue a rollback of a redemption, or of every redemption of an order",
        description="Puts a rollback request on the rollback queue; the rollback worker sends it to Voucherify "
        "and records the outcome in the ledger (see `show`). A stacked redemption is rolled back as a whole, "
        "through its parent: name the parent (a child is refused, its error names the parent).",
        epilog="Exit codes: 0 queued (with --wait: rolled back or already rolled back), 2 wrong usage, 3 AWS "
        "cannot be reached, 4 Voucherify refused (the ledger says why), 5 not finished within --wait.",
    )
    what = rollback.add_mutually_exclusive_group(required=True)
    what.add_argument("redemption_id", metavar="REDEMPTION_ID", nargs="?", help="Voucherify redemption id (r_…)")
    what.add_argument("--order", metavar="ORD", help="roll back every SUCCEEDED redemption of this order (ord_…)")
    what.add_argument(
        "--order-source-id",
        dest="order_source_id",
        metavar="ID",
        help="the same, by your own order id (Voucherify's order.source_id, e.g. 1001)",
    )
    rollback.add_argument("--reason", metavar="TEXT", help="reason for the rollback, kept by Voucherify")
    rollback.add_argument("--tracking-id", dest="tracking_id", metavar="ID", help="the customer's source_id")
    rollback.add_argument(
        "--request-id", dest="request_id", metavar="ID", help="your id of the request (default: SQS message id)"
    )
    rollback.add_argument(
        "--queue-url", dest="queue_url", metavar="URL", help="the rollback queue (default $ROLLBACK_QUEUE_URL)"
    )
    rollback.add_argument(
        "--wait", type=float, metavar="SECONDS", default=0.0, help="follow the request in the ledger until it ends"
    )
    rollback.set_defaults(run=run_rollback)
