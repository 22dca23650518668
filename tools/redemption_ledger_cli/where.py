"""Where the ledger and the rollback queue are: ``--local``, ``--stack``, ``--table``, ``--queue-url``.

``--local`` is the ``make run`` stack (``redemption_ledger_cli.local``: its embedded AWS on 127.0.0.1:$LOCAL_AWS_PORT,
dummy credentials); ``--stack NAME`` reads a deployed stack's outputs through CloudFormation (``LedgerTableName``,
``RollbackQueueUrl``); otherwise the name or URL given, or ``$LEDGER_TABLE_NAME`` / ``$ROLLBACK_QUEUE_URL``. AWS
credentials and region come from the usual AWS configuration (``--region`` overrides the region).

A problem is a ``CliError`` whose message says what to do and whose ``exit_code`` is one of the ``EXIT_*`` codes;
every answer is JSON on stdout (``print_json``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from redemption_ledger_cli import local

PROG = "redemption-ledger"
STACK_OUTPUT = "LedgerTableName"
QUEUE_OUTPUT = "RollbackQueueUrl"
EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3
EXIT_ROLLBACK_FAILED, EXIT_STILL_PENDING = 4, 5


def print_json(value: Any, out: TextIO) -> None:
    """A command's answer, as every command prints it."""
    out.write(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


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
        help=f"the `make run` stack: moto on {local.HOST}:${local.AWS_PORT_ENV} "
        f"(default {local.DEFAULT_AWS_PORT}), table {local.TABLE_NAME}",
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
        raise CliError(aws_problem(exc)) from None


def aws_problem(exc: BaseException) -> str:
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
        config = _local_aws()
        endpoint = config.endpoint
        if not _listening(*config.host_and_port):
            raise CliError(
                f"nothing is listening on {endpoint} (the local stack's embedded AWS): is `make run` running? "
                f"(if it uses another port, set {local.AWS_PORT_ENV})"
            )
        client = local.aws_client("dynamodb", endpoint, args.region or config.region)
        return Target(config.table_name, client, f"the local stack ({endpoint})")
    if args.stack:
        table = _stack_output(args.stack, args.region, STACK_OUTPUT)
        return Target(table, _aws_client("dynamodb", args.region), f"stack {args.stack}")
    table = args.table or os.environ.get("LEDGER_TABLE_NAME", "")
    if not table:
        raise CliError("say where the ledger is: --local, --stack NAME or --table NAME", EXIT_USAGE)
    return Target(table, _aws_client("dynamodb", args.region), "")


def _local_aws() -> local.LocalAws:
    try:
        return local.LocalAws.from_env()
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _stack_output(stack: str, region: str | None, output: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    cloudformation = _aws_client("cloudformation", region)
    where = f"region {cloudformation.meta.region_name}"
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":
            raise CliError(f"no CloudFormation stack {stack} in {where} (check --stack and --region)") from None
        raise CliError(aws_problem(exc)) from None
    except BotoCoreError as exc:
        raise CliError(aws_problem(exc)) from None
    outputs = {o.get("OutputKey"): o.get("OutputValue") for o in (stacks[0].get("Outputs") or [])} if stacks else {}
    value = outputs.get(output)
    if not value:
        status = stacks[0].get("StackStatus", "?") if stacks else "?"
        raise CliError(
            f"stack {stack} ({where}, {status}) has no output {output}: is it this bundle's stack, fully deployed?"
        )
    return str(value)


def read(target: Target, reading: Callable[[Any], Any]) -> Any:
    """``reading(ledger)`` on the target's ledger; a storage problem becomes a CliError that names the table."""
    from voucherify_ledger.ledger.dynamo import StorageError

    try:
        return reading(target.ledger())
    except StorageError as exc:
        cause = exc.__cause__
        code = ""
        if cause is not None and hasattr(cause, "response"):
            code = str(cause.response.get("Error", {}).get("Code", ""))
        if code == "ResourceNotFoundException":
            raise CliError(f"table {target.table_name} does not exist{at(target)}") from None
        detail = aws_problem(cause) if cause is not None else str(exc)
        raise CliError(f"cannot read table {target.table_name}{at(target)}: {detail}") from None


def at(target: Target) -> str:
    return f" in {target.where}" if target.where else ""


@dataclass
class Queue:
    """The rollback queue a command writes to, and how it was found (for messages)."""

    url: str
    client: Any
    where: str


def resolve_queue(args: argparse.Namespace) -> Queue:
    chosen = [option for option in ("local", "stack", "queue_url") if getattr(args, option)]
    if len(chosen) > 1:
        names = " and ".join("--" + option.replace("_", "-") for option in chosen)
        raise CliError(f"use one of --local, --stack, --queue-url (got {names})", EXIT_USAGE)
    if args.local:
        config = _local_aws()
        name = config.rollback_queue_name
        client = local.aws_client("sqs", config.endpoint, args.region or config.region)
        try:
            url = client.get_queue_url(QueueName=name)["QueueUrl"]
        except Exception as exc:  # nothing listening, or a moto server without the stack's queues
            raise CliError(
                f"the local stack's rollback queue {name} cannot be reached at {config.endpoint}: is `make run` "
                f"running? ({aws_problem(exc)})"
            ) from None
        return Queue(str(url), client, f"the local stack ({config.endpoint})")
    if args.stack:
        url = _stack_output(args.stack, args.region, QUEUE_OUTPUT)
        return Queue(url, _aws_client("sqs", args.region), f"stack {args.stack}")
    url = args.queue_url or os.environ.get("ROLLBACK_QUEUE_URL", "")
    if not url:
        raise CliError("say where the rollback queue is: --local, --stack NAME or --queue-url URL", EXIT_USAGE)
    return Queue(url, _aws_client("sqs", args.region), "")
