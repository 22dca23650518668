"""The bundle's dev tools: never deployed, never installed by ``pip install .``, never imported by the operator CLI.

- ``harness``: what runs the functions here as AWS would (template reader, function loader, API Gateway events and
  HTTP API emulator, SQS poller, moto's server and the patches it needs);
- ``local_stack``: the whole bundle on 127.0.0.1 (``make run``);
- ``fake_voucherify``: Voucherify's rollback API, with faults on demand;
- ``payloads``: Voucherify-shaped payloads from the published schemas, the load test's corpus, ``events/``;
- ``bench``: ``make bench``; ``loadtest``: ``make loadtest`` / ``make chaos``.
"""
