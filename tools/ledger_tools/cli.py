"""``redemption-ledger``: read the ledger from a terminal.

    redemption-ledger show r_0e2500291ae016adea --local          # the `make run` stack
    redemption-ledger show r_0e2500291ae016adea --stack my-stack # table from the stack's LedgerTableName
    redemption-ledger list --order ord_3VYCHwdV0YOOch2nm1RsTKNI --table voucherify-ledger --region eu-west-1

Where the ledger is (one of): ``--local`` (the moto server of ``make run``, 127.0.0.1:$LOCAL_AWS_PORT,
dummy credentials), ``--stack NAME`` (CloudFormation output ``LedgerTableName``), ``--table NAME``;
without any, ``$LEDGER_TABLE_NAME``. AWS credentials and region come from the usual AWS configuration
(``--region`` overrides the region).

Exit codes: 0 found, 1 nothing found, 2 wrong usage, 3 the ledger cannot be reached or read.
Each subcommand is a ``register_*`` function in ``COMMANDS``: add one to add a command.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ledger_tools import local_stack

PROG = "redemption-ledger"
STACK_OUTPUT = "LedgerTableName"
EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Target:
    """The ledger table a command reads, and how it was found (for messages)."""

    table_name: str
    client: Any
    where: str

    def ledger(self) -> Any:
        from voucherify_ledger.ledger import Ledger

        return Ledger(self.table_name, self.client)


# --- where the ledger is ---------------------------------------------------------------------------
def target_options() -> argparse.ArgumentParser:
    """The options every command that reads AWS shares (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    where = parent.add_argument_group("where the ledger is, one of (default: --table $LEDGER_TABLE_NAME)")
    where.add_argument(
        "--local",
        action="store_true",
        help=f"the `make run` stack: moto on {local_stack.HOST}:${local_stack.AWS_PORT_ENV} "
        f"(default {local_stack.DEFAULT_AWS_PORT}), table {local_stack.TABLE_NAME}",
    )
    where.add_argument("--stack", metavar="NAME", help=f"a deployed stack: its {STACK_OUTPUT} output")
    where.add_argument("--table", metavar="NAME", help="a DynamoDB table name")
    where.add_argument("--region", metavar="R", help="AWS region (default: your AWS configuration)")
    return parent


def _aws_client(service: str, region: str | None) -> Any:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    config = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
    try:
        return boto3.session.Session(region_name=region).client(service, config=config)
    except BotoCoreError as exc:
        raise CliError(_aws_problem(exc)) from None


def _aws_problem(exc: BaseException) -> str:
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(exc, NoRegionError):
        return "no AWS region: pass --region or set AWS_DEFAULT_REGION"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials: configure them (aws configure, AWS_PROFILE, ...) or use --local"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"AWS refused the request: {error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
    return f"AWS could not be reached: {type(exc).__name__}: {exc}"


def _listening(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_target(args: argparse.Namespace) -> Target:
    chosen = [option for option in ("local", "stack", "table") if getattr(args, option)]
    if len(chosen) > 1:
        raise CliError(f"use one of --local, --stack, --table (got --{' and --'.join(chosen)})", EXIT_USAGE)
    if args.local:
        try:
            config = local_stack.LocalConfig.from_env()
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        endpoint = config.aws_endpoint
        host, port = endpoint.rsplit("//", 1)[1].rsplit(":", 1)
        if not _listening(host, int(port)):
            raise CliError(
                f"nothing is listening on {endpoint} (the local stack's embedded AWS): is `make run` running? "
                f"(if it uses another port, set {local_stack.AWS_PORT_ENV})"
            )
        client = local_stack.aws_client("dynamodb", endpoint, args.region or config.region)
        return Target(config.table_name, client, f"the local stack ({endpoint})")
    if args.stack:
        table = _table_of_stack(args.stack, args.region)
        return Target(table, _aws_client("dynamodb", args.region), f"stack {args.stack}")
    table = args.table or os.environ.get("LEDGER_TABLE_NAME", "")
    if not table:
        raise CliError("say where the ledger is: --local, --stack NAME or --table NAME", EXIT_USAGE)
    return Target(table, _aws_client("dynamodb", args.region), "")


def _table_of_stack(stack: str, region: str | None) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    cloudformation = _aws_client("cloudformation", region)
    where = f"region {cloudformation.meta.region_name}"
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":
            raise CliError(f"no CloudFormation stack {stack} in {where} (check --stack and --region)") from None
        raise CliError(_aws_problem(exc)) from None
    except BotoCoreError as exc:
        raise CliError(_aws_problem(exc)) from None
    outputs = {o.get("OutputKey"): o.get("OutputValue") for o in (stacks[0].get("Outputs") or [])} if stacks else {}
    table = outputs.get(STACK_OUTPUT)
    if not table:
        status = stacks[0].get("StackStatus", "?") if stacks else "?"
        raise CliError(
            f"stack {stack} ({where}, {status}) has no output {STACK_OUTPUT}: "
            "is it this bundle's stack, fully deployed?"
        )
    return str(table)


def _read(target: Target, read: Callable[[Any], Any]) -> Any:
    from voucherify_ledger.ledger import StorageError

    try:
        return read(target.ledger())
    except StorageError as exc:
        cause = exc.__cause__
        code = ""
        if cause is not None and hasattr(cause, "response"):
            code = str(cause.response.get("Error", {}).get("Code", ""))
        if code == "ResourceNotFoundException":
            raise CliError(f"table {target.table_name} does not exist{_at(target)}") from None
        detail = _aws_problem(cause) if cause is not None else str(exc)
        raise CliError(f"cannot read table {target.table_name}{_at(target)}: {detail}") from None


def _at(target: Target) -> str:
    return f" in {target.where}" if target.where else ""


def _print_json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


# --- commands -------------------------------------------------------------------------------------
def run_show(args: argparse.Namespace, out: TextIO) -> int:
    target = resolve_target(args)
    view = _read(target, lambda ledger: ledger.get_redemption(args.redemption_id))
    if view is None:
        raise CliError(f"no redemption {args.redemption_id} in table {target.table_name}{_at(target)}", EXIT_NOT_FOUND)
    _print_json(view, out)
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


LIST_KEYS = {"order": "order", "customer": "customer", "voucher_code": "voucher code"}


def run_list(args: argparse.Namespace, out: TextIO) -> int:
    key = next(k for k in LIST_KEYS if getattr(args, k))
    value = getattr(args, key)
    target = resolve_target(args)
    found = _read(target, lambda ledger: ledger.redemptions_by(key, value))
    _print_json(found, out)
    if not found:
        print(
            f"{PROG}: no redemptions of {LIST_KEYS[key]} {value} in table {target.table_name}{_at(target)}",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    return EXIT_OK


def register_list(commands: Any, parent: argparse.ArgumentParser) -> None:
    listing = commands.add_parser(
        "list",
        parents=[parent],
        help="the redemptions of an order, a customer or a voucher code",
        description="Prints the redemptions of an order, a customer or a voucher code, oldest first.",
    )
    which = listing.add_mutually_exclusive_group(required=True)
    which.add_argument("--order", metavar="ORD", help="order id (ord_…)")
    which.add_argument("--customer", metavar="CUST", help="customer id (cust_…)")
    which.add_argument("--voucher-code", dest="voucher_code", metavar="CODE", help="voucher code")
    listing.set_defaults(run=run_list)


COMMANDS: list[Callable[[Any, argparse.ArgumentParser], None]] = [register_show, register_list]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Reads the Voucherify redemption ledger (DynamoDB).",
        epilog="Exit codes: 0 found, 1 nothing found, 2 wrong usage, 3 the ledger cannot be reached or read.",
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
