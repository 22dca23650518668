"""The Powertools idempotency records of the rollback worker's API calls, kept in the ledger's table
(``IDEMPOTENCY#rollback-worker`` / ``rollback-call#…``, TTL ``expires_at``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from voucherify_ledger.ledger.keys import IDEMPOTENCY_PK

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any


def idempotency_store(table_name: str, client: DynamoDBClient) -> DynamoDBPersistenceLayer:
    """The persistence layer of ``idempotent_function``, on the ledger's table and keys."""
    return DynamoDBPersistenceLayer(
        table_name=table_name,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value=IDEMPOTENCY_PK,
        expiry_attr="expires_at",
        boto3_client=client,
    )
