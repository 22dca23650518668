"""The warm cost of one webhook function per seed event, against two floors (``make bench``'s warm section).

    python warm_handler.py OUT SPEC

SPEC is a JSON file: ``paths`` (put first on sys.path: the layer, the function's folder, the dev tools), ``events``
(the function's seed events), ``write`` ([operation, answer]: the DynamoDB call of a new delivery, as the stub
answers it), ``secret`` (the webhook secret as Secrets Manager returns it), ``function`` (its logical id), ``repeat``
and ``inner`` (rounds, and calls per event per round). Every event runs through the handler once first (the secret
fetched and cached, lazy paths taken), then ``repeat`` × ``inner`` times through each of:

- ``handler``: the handler, its DynamoDB calls answered by botocore's Stubber;
- ``floor``: ``json.loads`` of the body and one ``put_item`` through the same stubbed client;
- ``reachable``: the floor plus what any handler meeting the spec must do before it writes (the HMAC check with the
  cached secret, the payload's validation as one Powertools ``parse`` of the body).

Writes ``{"mine": {i: [s, …]}, "floor": …, "reachable": …}`` (seconds per call, ``i`` the event's position) to OUT.
"""

import gc
import json
import sys
import time

with open(sys.argv[2], encoding="utf-8") as spec_file:
    spec = json.load(spec_file)
sys.path[:0] = spec["paths"]

import app  # type: ignore[import-not-found]  # noqa: E402
from aws_lambda_powertools.utilities.parser import parse  # noqa: E402
from botocore import xform_name  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402
from botocore.client import BaseClient  # noqa: E402
from botocore.stub import Stubber  # noqa: E402

from ledger_dev.bench.seeds import raw_body  # noqa: E402
from ledger_dev.harness.apigw import LambdaContext  # noqa: E402
from voucherify_ledger.models.webhooks import is_envelope  # noqa: E402

events = spec["events"]
op, answer = spec["write"]
answers = {"update_item": {"Attributes": {"status": {"S": "SUCCEEDED"}}}, op: answer}
clients = {c.meta.service_model.service_name: c for c in gc.get_objects() if isinstance(c, BaseClient)}
dynamodb, secrets = clients["dynamodb"], clients["secretsmanager"]
secret_stub = Stubber(secrets)
secret_stub.add_response("get_secret_value", spec["secret"])
secret_stub.activate()
context = LambdaContext(function_name=spec["function"])
calls: list[str] = []


def probe(model, **kwargs):  # the DynamoDB calls the ledger makes, answered as the stub answers them below
    calls.append(xform_name(model.name))
    return AWSResponse(None, 200, {}, None), answers.get(calls[-1], {})


dynamodb.meta.events.register("before-call.dynamodb.*", probe, unique_id="bench-probe")
writes = {}
for event in events:  # warm: the secret is fetched and cached, lazy paths run once
    calls.clear()
    app.lambda_handler(event, context)
    writes[id(event)] = list(calls)
dynamodb.meta.events.unregister("before-call.dynamodb.*", unique_id="bench-probe")
stub = Stubber(dynamodb)
stub.activate()


def handler(event):
    for call in writes[id(event)]:
        stub.add_response(call, answers.get(call, {}))
    t = time.perf_counter()
    result = app.lambda_handler(event, context)
    elapsed = time.perf_counter() - t
    assert result["statusCode"] == 200, result
    return elapsed


def floor(event):
    stub.add_response("put_item", {})
    t = time.perf_counter()
    body = raw_body(event).decode("utf-8")
    json.loads(body)
    dynamodb.put_item(TableName="t", Item={"pk": {"S": "k"}, "sk": {"S": "k"}, "body": {"S": body}})
    return time.perf_counter() - t


receiver = app.receiver
shape = {
    id(e): receiver.route.envelope_model if is_envelope(json.loads(raw_body(e))) else receiver.route.model
    for e in events
}


def reachable(event):  # the floor plus what the spec demands of any handler before it may write
    stub.add_response("put_item", {})
    t = time.perf_counter()
    raw = raw_body(event)
    headers = {str(k).lower(): v for k, v in event["headers"].items()}
    assert receiver.authenticator.authenticate(headers, raw).ok  # HMAC with the cached secret
    body = raw.decode("utf-8")
    parse(event=body, model=shape[id(event)])  # the floor's json.loads, as one validating read (Powertools parser)
    dynamodb.put_item(TableName="t", Item={"pk": {"S": "k"}, "sk": {"S": "k"}, "body": {"S": body}})
    return time.perf_counter() - t


for event in events:  # warm: the secret is fetched and cached, lazy paths run once
    handler(event)
    floor(event)
    reachable(event)
mine = {i: [] for i in range(len(events))}
base = {i: [] for i in range(len(events))}
reach = {i: [] for i in range(len(events))}
for _ in range(spec["repeat"]):
    for i, event in enumerate(events):
        for _ in range(spec["inner"]):
            mine[i].append(handler(event))
            base[i].append(floor(event))
            reach[i].append(reachable(event))
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump({"mine": mine, "floor": base, "reachable": reach}, out)
