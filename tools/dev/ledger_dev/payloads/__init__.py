"""Voucherify-shaped payloads: ``schema_payloads`` (instances of the published schemas), ``corpus`` (the load test's
deliveries), ``make_events`` (``events/`` for ``sam local invoke``)."""
