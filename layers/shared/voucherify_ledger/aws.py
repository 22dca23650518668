"""The AWS clients of the functions, each with the timeouts and retries that fit its function's time budget.
Made once, during init (never on an event); boto3 is imported here, when a client is made."""

from __future__ import annotations

from typing import Any


def webhook_dynamodb_client() -> Any:
    """The webhook functions' DynamoDB client: two attempts of at most 1 s + 1.5 s fit the function's 5 s with room
    for the answer."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        config=Config(
            connect_timeout=1,
            read_timeout=1.5,
            retries={"max_attempts": 2, "mode": "standard"},
            # botocore's client-side check of each request against the API model walks every attribute value of
            # the write: ~90 µs (redemption) to ~125 µs (rollback) of a warm delivery's ~0.6 ms CPU. The ledger
            # builds its requests with typed helpers and DynamoDB validates them anyway: a malformed one is refused
            # (ValidationException: ClientError → StorageError → 503) as surely as here (ParamValidationError:
            # BotoCoreError → StorageError → 503).
            parameter_validation=False,
        ),
    )


def webhook_secrets_client() -> Any:
    """The webhook functions' Secrets Manager client, with timeouts that fit their few seconds: a stalled call ends
    in a clean 503."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "secretsmanager",
        config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 2, "mode": "standard"}),
    )


def worker_clients(batch_threads: int) -> tuple[Any, Any, Any]:
    """The rollback worker's DynamoDB, SQS and Secrets Manager clients, sharing one configuration whose connection
    pool serves every record of a batch at once."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=1,
        read_timeout=3,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=batch_threads + 2,
    )
    # DynamoDB's requests are the ledger's typed helpers' (see webhook_dynamodb_client): botocore's check of each
    # against the API model is ~1 ms of a rollback's three writes, and DynamoDB refuses a malformed one anyway.
    return (
        boto3.client("dynamodb", config=config.merge(Config(parameter_validation=False))),
        boto3.client("sqs", config=config),
        boto3.client("secretsmanager", config=config),
    )


def reconciler_clients() -> tuple[Any, Any]:
    """The reconciler's DynamoDB and Secrets Manager clients: one run at a time, a few calls a second, minutes to
    spend — more patient than the webhooks' (a throttled batch read is tried again rather than ending the run)."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 5, "mode": "standard"})
    return boto3.client("dynamodb", config=config), boto3.client("secretsmanager", config=config)
