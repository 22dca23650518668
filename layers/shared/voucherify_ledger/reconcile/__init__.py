"""Reconciling the ledger with Voucherify's list of redemptions and rollbacks: walking ``GET /v1/redemptions`` in
windows a query can page through (``windows``)."""
