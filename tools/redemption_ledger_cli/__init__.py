"""``redemption-ledger``: the operator's CLI (read the ledger, queue rollbacks, replay quarantined deliveries).

It imports only the layer package (``voucherify_ledger``), boto3 and the standard library, so ``pip install .``
gives a working CLI against a deployed stack, with no checkout and no dev extras (a test holds it to that).
"""
