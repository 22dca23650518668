"""Concurrent webhook senders in a process of their own (``make bench``'s end-to-end section).

    python senders.py OUT SPEC

SPEC is a JSON file: ``url`` (the local API), ``senders`` (threads, each on its own keep-alive connection),
``seconds`` (how long to send), ``deliveries`` (``[[path, body, signature], …]``, each sent once, in order, until the
time is up). Writes ``{"sent", "statuses": {status: count}, "seconds", "cpu_seconds"}`` to OUT: what was answered, in
how long, and the CPU time this process (the senders) spent.
"""

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

with open(sys.argv[2], encoding="utf-8") as spec_file:
    spec = json.load(spec_file)
split = urlsplit(spec["url"])
deliveries = spec["deliveries"]
lock = threading.Lock()
position = iter(range(len(deliveries)))
statuses: dict[str, int] = {}
cpu_before = time.process_time()
started = time.monotonic()
deadline = started + spec["seconds"]


def next_index():
    with lock:
        return None if time.monotonic() > deadline else next(position, None)


def sender() -> None:
    connection = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
    try:
        while (index := next_index()) is not None:
            path, body, signature = deliveries[index]
            headers = {"content-type": "application/json", "x-voucherify-signature": signature}
            try:
                connection.request("POST", path, body=body.encode("utf-8"), headers=headers)
                response = connection.getresponse()
                response.read()
                status = str(response.status)
            except (OSError, http.client.HTTPException):
                status = "error"
                connection.close()
                connection = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
    finally:
        connection.close()


threads = [threading.Thread(target=sender, daemon=True) for _ in range(spec["senders"])]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
seconds = time.monotonic() - started
with open(sys.argv[1], "w", encoding="utf-8") as out:
    answer = {"sent": sum(statuses.values()), "statuses": statuses, "seconds": seconds}
    json.dump({**answer, "cpu_seconds": time.process_time() - cpu_before}, out)
