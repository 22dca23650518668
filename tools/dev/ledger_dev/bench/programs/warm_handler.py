"""The warm cost of one webhook function per seed event, against two floors and the textbook (``make bench``'s warm
section).

    python warm_handler.py OUT SPEC

SPEC is a JSON file: ``paths`` (put first on sys.path: the layer, the function's folder, the dev tools), ``textbook``
(the textbook webhook's ``app.py``), ``events`` (the function's seed events), ``answers`` (``{service: {operation:
answer}}``: how the in-process AWS answers, an unlisted call ``{}``), ``function`` (its logical id), ``repeat`` and
``inner`` (rounds, and calls per event per round). Every AWS call of every client is answered before it is sent
(botocore's ``before-call`` event; the request is built and serialized as for a real call). Every event runs through
each side once first (the secret fetched and cached, lazy paths taken), then ``repeat`` × ``inner`` times through
each of, in turn:

- ``handler``: the bundle's handler;
- ``floor``: ``json.loads`` of the body and one ``put_item`` through the handler's DynamoDB client;
- ``reachable``: the floor plus what any handler meeting the spec must do before it writes (the HMAC check with the
  cached secret, the payload's validation as one Powertools ``parse`` of the body);
- ``textbook``: the textbook webhook (``bench/textbook/webhook``), every delivery new (its idempotency record's
  conditional put answered as a success).

Writes ``{"mine": {i: [s, …]}, "floor": …, "reachable": …, "textbook": …}`` (seconds per call, ``i`` the event's
position) to OUT.
"""

import gc
import importlib.util
import json
import os
import sys
import time

with open(sys.argv[2], encoding="utf-8") as spec_file:
    spec = json.load(spec_file)
sys.path[:0] = spec["paths"]

import app  # type: ignore[import-not-found]  # noqa: E402
import botocore.session  # noqa: E402
from aws_lambda_powertools.utilities.parser import parse  # noqa: E402
from botocore import xform_name  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402
from botocore.client import BaseClient  # noqa: E402

from ledger_dev.bench.seeds import raw_body  # noqa: E402
from ledger_dev.harness.apigw import LambdaContext  # noqa: E402
from voucherify_ledger.models.webhooks import is_envelope  # noqa: E402

# The textbook under a service name of its own: Powertools' Logger would otherwise reuse the bundle's logger.
_service = os.environ.get("POWERTOOLS_SERVICE_NAME", "")
os.environ["POWERTOOLS_SERVICE_NAME"] = "voucherify-ledger-textbook"
_spec = importlib.util.spec_from_file_location("textbook_app", spec["textbook"])
assert _spec and _spec.loader
textbook_app = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(textbook_app)
os.environ["POWERTOOLS_SERVICE_NAME"] = _service

events = spec["events"]
answers = spec["answers"]


def answer(model, **kwargs):  # every AWS call answered in-process, after it is built and serialized
    return AWSResponse(None, 200, {}, None), answers.get(model.service_model.service_name, {}).get(
        xform_name(model.name), {}
    )


def hook(client) -> None:
    client.meta.events.register("before-call.*.*", answer, unique_id="bench-answer")


_create_client = botocore.session.Session.create_client


def created(self, *args, **kwargs):  # a client made later (Powertools' secret provider, on first use) too
    client = _create_client(self, *args, **kwargs)
    hook(client)
    return client


botocore.session.Session.create_client = created
clients = [c for c in gc.get_objects() if isinstance(c, BaseClient)]
for client in clients:
    hook(client)
floor_client = app.receiver.ledger.client  # the floors write through the handler's own client
context = LambdaContext(function_name=spec["function"])


def handler(event):
    t = time.perf_counter()
    result = app.lambda_handler(event, context)
    elapsed = time.perf_counter() - t
    assert result["statusCode"] == 200, result
    return elapsed


def floor(event):
    t = time.perf_counter()
    body = raw_body(event).decode("utf-8")
    json.loads(body)
    floor_client.put_item(TableName="t", Item={"pk": {"S": "k"}, "sk": {"S": "k"}, "body": {"S": body}})
    return time.perf_counter() - t


receiver = app.receiver
shape = {
    id(e): receiver.route.envelope_model if is_envelope(json.loads(raw_body(e))) else receiver.route.model
    for e in events
}


def reachable(event):  # the floor plus what the spec demands of any handler before it may write
    t = time.perf_counter()
    raw = raw_body(event)
    headers = {str(k).lower(): v for k, v in event["headers"].items()}
    assert receiver.authenticator.authenticate(headers, raw).ok  # HMAC with the cached secret
    body = raw.decode("utf-8")
    parse(event=body, model=shape[id(event)])  # the floor's json.loads, as one validating read (Powertools parser)
    floor_client.put_item(TableName="t", Item={"pk": {"S": "k"}, "sk": {"S": "k"}, "body": {"S": body}})
    return time.perf_counter() - t


def textbook(event):
    t = time.perf_counter()
    result = textbook_app.lambda_handler(event, context)
    elapsed = time.perf_counter() - t
    assert result["statusCode"] == 200, result
    return elapsed


sides = {"mine": handler, "floor": floor, "reachable": reachable, "textbook": textbook}
for event in events:  # warm: the secret is fetched and cached, lazy paths run once
    for side in sides.values():
        side(event)
times = {name: {i: [] for i in range(len(events))} for name in sides}
for _ in range(spec["repeat"]):
    for i, event in enumerate(events):
        for _ in range(spec["inner"]):
            for name, side in sides.items():
                times[name][i].append(side(event))
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump(times, out)
