"""One cold start, timed from its first statement (``make bench``'s cold section runs it in a fresh interpreter).

    python cold_start.py OUT floor SERVICES [SPEC]   # the floor: import boto3, create the SERVICES' clients (a,b,…)
    python cold_start.py OUT function PATHS [SPEC]   # the function: PATHS (os.pathsep-separated) first on sys.path,
                                                     # then ``import app``, as Lambda imports /var/task/app.py

Nothing is imported before the clock starts but ``time`` (``sys`` and ``os`` are loaded by the interpreter's start
anyway); what it needs to report (json, resource, botocore) is imported after the clock stops. With SPEC, a JSON
file ``{"event", "answers", "function"}``, it then makes a first invocation: the function's handler with the event
(every AWS call answered in-process, before it is sent, by ``answers``: ``{service: {operation: answer}}``, an
unlisted call answered ``{}``), or the floor's ``json.loads`` of the body and one ``put_item``. Writes
``{"init_ms", "rss_kb", "first_ms"}`` to OUT. The textbook (``bench/textbook/``) runs as a function: its folder in
PATHS.
"""

import time

_t0 = time.perf_counter()
import os  # noqa: E402 (already loaded: the interpreter's start imports it)
import sys  # noqa: E402 (built in)

if sys.argv[2] == "floor":
    import boto3

    _clients = [boto3.client(_name) for _name in sys.argv[3].split(",")]
else:
    sys.path[:0] = sys.argv[3].split(os.pathsep)
    import app  # type: ignore[import-not-found]
_t1 = time.perf_counter()

import json  # noqa: E402
import resource  # noqa: E402

_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_first_ms = None
if len(sys.argv) > 4:
    import base64
    import gc

    import botocore.session
    from botocore import xform_name
    from botocore.awsrequest import AWSResponse
    from botocore.client import BaseClient

    with open(sys.argv[4], encoding="utf-8") as _file:
        _spec = json.load(_file)
    _event = _spec["event"]
    _answers = _spec["answers"]
    _raw = base64.b64decode(_event["body"]).decode() if _event.get("isBase64Encoded") else _event["body"]

    def _answer(model, **kwargs):  # every AWS call answered in-process: {service: {operation: answer}}
        service = model.service_model.service_name
        return AWSResponse(None, 200, {}, None), _answers.get(service, {}).get(xform_name(model.name), {})

    def _hook(client) -> None:
        client.meta.events.register("before-call.*.*", _answer, unique_id="bench-answer")

    _create_client = botocore.session.Session.create_client

    def _created(self, *args, **kwargs):  # a client made on the first invocation (a lazy provider) is answered too
        client = _create_client(self, *args, **kwargs)
        _hook(client)
        return client

    botocore.session.Session.create_client = _created
    if sys.argv[2] == "floor":
        _client = next(c for c in _clients if c.meta.service_model.service_name == "dynamodb")

        def _first() -> None:
            json.loads(_raw)
            _client.put_item(TableName="t", Item={"pk": {"S": "k"}, "sk": {"S": "k"}, "body": {"S": _raw}})

    else:
        _clients = [o for o in gc.get_objects() if isinstance(o, BaseClient)]

        class _Context:
            function_name = _spec["function"]
            function_version = "$LATEST"
            memory_limit_in_mb = 512
            invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:" + function_name
            aws_request_id = "bench"
            log_group_name = "/aws/lambda/bench"
            log_stream_name = "bench"

            def get_remaining_time_in_millis(self) -> int:
                return 5000

        def _first() -> None:
            answer = app.lambda_handler(_event, _Context())
            assert answer["statusCode"] == 200, answer

    for _c in _clients:
        _hook(_c)
    _t2 = time.perf_counter()
    _first()
    _first_ms = (time.perf_counter() - _t2) * 1000
with open(sys.argv[1], "w", encoding="utf-8") as _out:
    json.dump({"init_ms": (_t1 - _t0) * 1000, "rss_kb": _rss, "first_ms": _first_ms}, _out)
