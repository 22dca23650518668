"""The models of what the bundle receives: Voucherify's id shapes, objects and webhook payloads, and the rollback
queue's message contract."""
