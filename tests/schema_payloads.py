"""Moved to ``ledger_dev.payloads.schema_payloads`` (the load test's corpus uses it too); re-exported for the tests."""

from ledger_dev.payloads.schema_payloads import (
    CUSTOMER_ROLLBACK_SUCCEEDED,
    REDEMPTION_SUCCEEDED,
    ROLLBACK_SUCCEEDED,
    STRINGS,
    SchemaPayloads,
    dumps,
    json_schema,
)

__all__ = [
    "CUSTOMER_ROLLBACK_SUCCEEDED",
    "REDEMPTION_SUCCEEDED",
    "ROLLBACK_SUCCEEDED",
    "STRINGS",
    "SchemaPayloads",
    "dumps",
    "json_schema",
]
