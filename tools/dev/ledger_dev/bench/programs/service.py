"""What the rollback worker talks to, in a process of its own (``make bench``'s worker section).

    python service.py aws                 # moto's server (DynamoDB serialized, as in ``make run``)
    python service.py fake RATE LATENCY   # the fake Voucherify: 429 beyond RATE calls a minute, LATENCY s a call

Prints its URL (a JSON string) on the first line, then answers a command a line on stdin: ``cpu`` (the process's
CPU seconds so far) or ``requests`` (the fake's answered API calls, ``[[redemption id, status], …]``). Closing stdin
stops it.
"""

import json
import logging
import sys
import time

logging.getLogger("werkzeug").setLevel(logging.WARNING)
if sys.argv[1] == "aws":
    from ledger_dev.harness.moto_patches import MotoServer, serialize_moto_dynamodb

    serialize_moto_dynamodb()
    server = MotoServer("127.0.0.1", 0, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server.get_host_and_port()[1]}"

    def requests():
        return []

else:
    from ledger_dev.fake_voucherify import FakeVoucherify

    # lenient: the bench rolls back ids made up on the fly (r_bench…, r_drain…), no webhook ever named them
    server = FakeVoucherify(rate_limit_per_minute=int(sys.argv[2]), lenient=True).start()
    server.fail("latency", seconds=float(sys.argv[3]), times=None)
    url = server.url

    def requests():
        return [[r.redemption_id, r.status] for r in server.requests]


print(json.dumps(url), flush=True)
for line in sys.stdin:  # a command a line; stdin closed: stop
    if line.strip() == "cpu":
        print(json.dumps(time.process_time()), flush=True)
    elif line.strip() == "requests":
        print(json.dumps(requests()), flush=True)
server.stop()
