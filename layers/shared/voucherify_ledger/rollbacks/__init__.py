"""Rolling redemptions back: the queue (``queue``), pacing (``pacing``), what answers mean (``answers``), the
idempotent call (``calls``), order fan-out (``orders``), stacks (``stacks``), retries (``retries``), recording the
answer (``recording``), the worker (``worker``) and its concurrent batches (``batch``); the HTTP client is
``voucherify_ledger.voucherify_api``, shared with the reconciler."""
