"""The integration tier: AWS emulated by moto in-process and the fake Voucherify on 127.0.0.1, driven through the
real handlers (the fixtures shared with the infrastructure tier, ``aws``, ``lambda_app``, ``make_harness``…, are in
tests/conftest.py)."""
