"""Reconciling the ledger with Voucherify's list of redemptions and rollbacks: walking ``GET /v1/redemptions`` in
windows a query can page through (``windows``), one page of it within the reconciler's budget (``listing``), the
API's objects as the ledger's writes take them (``objects``), and one run (``run``)."""
