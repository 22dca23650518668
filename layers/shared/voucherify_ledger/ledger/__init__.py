"""The DynamoDB ledger: one table (``keys``), reached only through ``dynamo.Table``, and its stores — redemptions
with their rollbacks, quarantine records, rollback requests and the rollback worker's claims, the reconciler's state.
Only this package talks to DynamoDB.

``Ledger(table_name, client)`` holds the stores; the item layout is in ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any


class Ledger:
    """The ledger table's stores: ``redemptions``, ``quarantine``, ``requests`` (with the worker's ``claims``) and
    ``reconciliation``, sharing one client."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        # Imported here, not with the package: a module that needs only ``ledger.keys`` (the ledger-events
        # function) does not load every store and the payload models they read.
        from voucherify_ledger.ledger.claims import RedemptionClaims
        from voucherify_ledger.ledger.dynamo import Table
        from voucherify_ledger.ledger.quarantine import QuarantineStore
        from voucherify_ledger.ledger.reconciliation import ReconcileStore
        from voucherify_ledger.ledger.redemptions import RedemptionStore
        from voucherify_ledger.ledger.rollback_requests import RollbackRequestStore

        self.table = Table(table_name, client)
        self.redemptions = RedemptionStore(self.table)
        self.quarantine = QuarantineStore(self.table)
        self.claims = RedemptionClaims(self.table)
        self.requests = RollbackRequestStore(self.table, self.redemptions, self.claims)
        self.reconciliation = ReconcileStore(self.table)

    @property
    def table_name(self) -> str:
        return self.table.table_name

    @property
    def client(self) -> DynamoDBClient:
        return self.table.client

    @client.setter
    def client(self, client: DynamoDBClient) -> None:  # every store uses the new one (tests record the calls)
        self.table.client = client
