"""Voucherify redemption ledger: shared code of the bundle's Lambda functions (shipped as a layer)."""
