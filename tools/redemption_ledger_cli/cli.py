"""``redemption-ledger``: read the ledger and request rollbacks from a terminal.

    redemption-ledger show r_0e2500291ae016adea --local          # the `make run` stack
    redemption-ledger show r_0e2500291ae016adea --stack my-stack # table from the stack's LedgerTableName
    redemption-ledger list --order ord_3VYCHwdV0YOOch2nm1RsTKNI --table voucherify-ledger --region eu-west-1
    redemption-ledger list --order-source-id 1001 --stack my-stack      # by your own order id
    redemption-ledger rollback r_0e2500291ae016adea --reason "Order cancelled" --local --wait 60
    redemption-ledger rollback --order ord_3VYCHwdV0YOOch2nm1RsTKNI --reason Refund --stack my-stack
    redemption-ledger rollback --order-source-id 1001 --reason Refund --stack my-stack
    redemption-ledger quarantine list --stack my-stack                # authentic deliveries that failed validation
    redemption-ledger quarantine replay --all --stack my-stack        # after a fix: record those that now pass
    redemption-ledger quarantine replay q_… --route redemption-succeeded --stack my-stack  # where q_… belongs
    redemption-ledger reconcile --since 2026-08-01 --local            # record what the webhooks never delivered
    redemption-ledger reconcile --since 2026-08-01 --until 2026-09-01 --stack my-stack  # a backfill job, started now
    redemption-ledger reconcile --since 2026-08-01 --dry-run --stack my-stack  # count it here, write nothing
    redemption-ledger reconcile --status --stack my-stack             # checkpoint, running job, last run
    redemption-ledger events --local --follow                         # the ledger's events, as they are published
    redemption-ledger events --stack my-stack                         # how to keep the stack's events to read them

``rollback`` puts a RollbackRequest (``docs/rollback-request.schema.json``) on the rollback queue: the queue of
``make run`` (``--local``), the stack's ``RollbackQueueUrl`` output (``--stack``), ``--queue-url`` or
``$ROLLBACK_QUEUE_URL``. With ``--wait`` it then follows the request in the ledger until it ends.

Where the ledger is (one of): ``--local`` (the moto server of ``make run``, 127.0.0.1:$LOCAL_AWS_PORT,
dummy credentials), ``--stack NAME`` (CloudFormation output ``LedgerTableName``), ``--table NAME``;
without any, ``$LEDGER_TABLE_NAME``. AWS credentials and region come from the usual AWS configuration
(``--region`` overrides the region). ``where`` finds them; ``local`` holds the conventions ``make run`` follows.

Exit codes: 0 found, 1 nothing found, 2 wrong usage, 3 the ledger cannot be reached or read.
``reconcile`` walks Voucherify's ``GET /v1/redemptions`` over a time range and records what the ledger lacks, as a
backfill job of the reconciler: run here to its end (``--local``), or started in a deployed stack.

``events`` prints the ledger's events (EventBridge, source ``voucherify.ledger``) from the log group a rule on the
bus keeps them in: ``make run``'s own (``--local``), or one subscribed to a deployed stack's bus (``--log-group``).

Each subcommand is a ``register_*`` function in ``COMMANDS`` (``list`` in ``listing``, ``rollback`` in ``rollback``,
``reconcile`` in ``reconcile``, ``events`` in ``events``):
add one to add a command. It may import the layer package, boto3 and the standard library, nothing else
(``tests/e2e/test_cli_installs_alone.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from redemption_ledger_cli.events import register_events
from redemption_ledger_cli.listing import register_list
from redemption_ledger_cli.reconcile import EXIT_BUSY, register_reconcile
from redemption_ledger_cli.rollback import register_rollback
from redemption_ledger_cli.where import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_ROLLBACK_FAILED,
    EXIT_STILL_PENDING,
    EXIT_USAGE,
    PROG,
    CliError,
    at,
    print_json,
    read,
    resolve_target,
    target_options,
)

# Every exit code of every command, here where the commands are (``cli.EXIT_…``).
__all__ = [
    "EXIT_BUSY",
    "EXIT_ERROR",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_ROLLBACK_FAILED",
    "EXIT_STILL_INVALID",
    "EXIT_STILL_PENDING",
    "EXIT_USAGE",
    "build_parser",
    "main",
]


# --- commands -------------------------------------------------------------------------------------
def run_show(args: argparse.Namespace, out: TextIO) -> int:
    target = resolve_target(args)
    view = read(target, lambda ledger: ledger.redemptions.get(args.redemption_id))
    if view is None:
        raise CliError(f"no redemption {args.redemption_id} in table {target.table_name}{at(target)}", EXIT_NOT_FOUND)
    print_json(view, out)
    return EXIT_OK


def register_show(commands: Any, parent: argparse.ArgumentParser) -> None:
    show = commands.add_parser(
        "show",
        parents=[parent],
        help="a redemption with its status and rollbacks",
        description="Prints the ledger's view of a redemption (status SUCCEEDED or ROLLED_BACK, rollbacks).",
    )
    show.add_argument("redemption_id", metavar="REDEMPTION_ID", help="Voucherify redemption id (r_…)")
    show.set_defaults(run=run_show)


# --- quarantine: deliveries that were authentic but failed validation --------------------------------
EXIT_STILL_INVALID = 4  # quarantine replay: some deliveries still fail today's checks (they are kept)
# The names of ``voucherify_ledger.webhooks.routes.ROUTES``, for the help (written out so that building the parser
# does not import the webhook models; a test holds them equal). ``--route`` is checked against ROUTES itself.
ROUTE_NAMES = ("redemption-rollback-succeeded", "redemption-succeeded")


def _expires(record: dict[str, Any]) -> dict[str, Any]:
    from datetime import UTC, datetime

    from voucherify_ledger.ledger.keys import iso

    if isinstance(record.get("expires_at"), int):
        return {**record, "expires": iso(datetime.fromtimestamp(record["expires_at"], UTC))}
    return record


def run_quarantine_list(args: argparse.Namespace, out: TextIO) -> int:
    target = resolve_target(args)
    found = [_expires(r) for r in read(target, lambda ledger: ledger.quarantine.records())]
    print_json(found, out)
    if not found:
        print(f"{PROG}: nothing is quarantined in table {target.table_name}{at(target)}", file=sys.stderr)
        return EXIT_NOT_FOUND
    return EXIT_OK


def run_quarantine_replay(args: argparse.Namespace, out: TextIO) -> int:
    from redemption_ledger_cli.replay import Replayer, summarize, unknown_route
    from voucherify_ledger.webhooks.routes import ROUTES

    route: str | None = args.route
    if route is not None:  # checked before the ledger is looked for: a typo touches nothing
        if route not in ROUTES:
            raise CliError(f"--route {unknown_route(route)}", EXIT_USAGE)
        if args.all:
            raise CliError(
                "--route says where the named deliveries belong: name them (ID …) instead of --all "
                "(without --route, each delivery is replayed on the route its content names)",
                EXIT_USAGE,
            )
    target = resolve_target(args)
    replayer = Replayer(target.ledger())
    if args.all:
        ids = [r["quarantine_id"] for r in read(target, lambda ledger: ledger.quarantine.records())]
    else:
        ids = list(dict.fromkeys(args.quarantine_ids))
    results: dict[str, dict[str, Any]] = {}
    for quarantine_id in ids:
        try:
            results[quarantine_id] = read(target, lambda _ledger, q=quarantine_id: replayer.replay(q, route=route))
        except CliError as exc:
            results[quarantine_id] = {"status": "error", "error": str(exc)}
    summary = summarize(results)
    print_json(summary, out)
    for quarantine_id, result in results.items():
        if result["status"] == "not_found":
            print(
                f"{PROG}: no quarantined delivery {quarantine_id} in table {target.table_name}{at(target)} "
                "(already replayed, expired, or a mistyped id: see `quarantine list`)",
                file=sys.stderr,
            )
        elif result["status"] == "error":
            print(f"{PROG}: {quarantine_id}: {result['error']}", file=sys.stderr)
    if summary.get("error"):
        return EXIT_ERROR
    if summary.get("not_found"):
        return EXIT_NOT_FOUND
    if summary["still_invalid"]:
        print(f"{PROG}: {summary['still_invalid']} delivery(ies) still fail and stay quarantined", file=sys.stderr)
        return EXIT_STILL_INVALID
    if args.all and not ids:
        print(f"{PROG}: nothing is quarantined in table {target.table_name}{at(target)}", file=sys.stderr)
    return EXIT_OK


class _UnbrokenNamesFormatter(argparse.HelpFormatter):
    """argparse's help layout, but a line never breaks inside a hyphenated name (``redemption-rollback-succeeded``)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return textwrap.fill(
            " ".join(text.split()), width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
        )


def register_quarantine(commands: Any, parent: argparse.ArgumentParser) -> None:
    quarantine = commands.add_parser(
        "quarantine",
        help="deliveries that were authentic but failed validation: list them, replay them after a fix",
        description="A delivery that is authentic but fails validation (or came to the wrong URL) is answered 202 "
        "and kept in a quarantine record (q_…) with its errors, for QuarantineRetentionDays.",
    )
    actions = quarantine.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        parents=[parent],
        help="every quarantined delivery with its reason and errors, oldest first",
        description="Prints every quarantine record (from the sparse Quarantine index: no raw delivery), oldest first.",
        epilog="Exit codes: 0 found, 1 nothing is quarantined, 2 wrong usage, 3 the ledger cannot be read.",
    )
    listing.set_defaults(run=run_quarantine_list)
    replay = actions.add_parser(
        "replay",
        parents=[parent],
        formatter_class=_UnbrokenNamesFormatter,
        help="run quarantined deliveries through today's checks again; record those that now pass",
        description="Runs each quarantined delivery through the receiver of the route it belongs to again (today's "
        "models): the route --route names, else the one its content names (a v2024 envelope's event.type, a bare "
        "body's shape: redemption_rollback or redemption), else the route that received it; so a delivery sent to "
        "the wrong URL is recorded where it belongs. One that passes is recorded exactly as a live delivery would be "
        "(recorded, or duplicate) and its quarantine record is removed; one that still fails is kept with today's "
        "errors and replay_attempts + 1. Safe to repeat and to run while deliveries arrive. Prints a JSON summary; "
        "each result says the route used (route), why (routed_by: operator, content or received_route; "
        "route_evidence) and where the delivery arrived (received_route).",
        epilog="Exit codes: 0 every replayed delivery is now in the ledger (or nothing was quarantined), 1 an ID is "
        "not quarantined, 2 wrong usage, 3 the ledger cannot be reached, 4 some still fail (they stay quarantined).",
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("quarantine_ids", metavar="ID", nargs="*", default=[], help="quarantine id(s) (q_…)")
    which.add_argument("--all", action="store_true", help="every quarantined delivery")
    replay.add_argument(
        "--route",
        metavar="NAME",
        help=f"replay the named deliveries on this route, whatever their content or the URL they reached said (one "
        f"of {', '.join(ROUTE_NAMES)}; not with --all); today's checks of that route still apply",
    )
    replay.set_defaults(run=run_quarantine_replay)


COMMANDS: list[Callable[[Any, argparse.ArgumentParser], None]] = [
    register_show,
    register_list,
    register_rollback,
    register_quarantine,
    register_reconcile,
    register_events,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Reads the Voucherify redemption ledger (DynamoDB), queues rollback requests and reconciles "
        "the ledger with Voucherify's list of redemptions.",
        epilog="Exit codes: 0 found, 1 nothing found, 2 wrong usage, 3 the ledger cannot be reached or read "
        "(rollback, reconcile, events: see their --help).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parent = target_options()
    for register in COMMANDS:
        register(commands, parent)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args, out or sys.stdout))
    except CliError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
