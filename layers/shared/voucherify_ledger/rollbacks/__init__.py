"""Rolling redemptions back: the Voucherify client (``client``), the queue (``queue``), pacing (``pacing``), what
answers mean (``answers``), the idempotent call (``calls``), order fan-out (``orders``), retries (``retries``), the
worker (``worker``) and its concurrent batches (``batch``)."""
