"""The rollback worker end to end: SQS (moto) → the real handler → the fake Voucherify over HTTP → the ledger.

Every test drives the queue with the poller (real SQS events, partial batch responses, redrive) and the
handler loaded from template.yaml with its template environment; the fake counts the API calls.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from ledger_dev.harness.apigw import LambdaContext, http_api_event, response_parts
from ledger_dev.harness.functions import load_handler
from support.documents import PAYLOADS, payload
from support.functions import SIGNING_SECRET, Aws, emitted_metrics
from support.worker import R1, R2, Harness, metrics_emitted, record_redemption, redeemed
from voucherify_ledger.ledger.claims import RedemptionClaims
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.redemptions import RedemptionStore
from voucherify_ledger.ledger.rollback_requests import RollbackRequestStore
from voucherify_ledger.models.rollback_request import RollbackRequest
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData

EMAIL = "annie@lemon.com"


# --- outcomes -------------------------------------------------------------------------------------
def test_success_records_the_rollback_and_the_redemption_is_rolled_back(harness: Harness) -> None:
    record_redemption(harness.ledger, R1)
    harness.send(
        redemption_id=R1,
        reason="Order cancelled",
        tracking_id="track_1",
        customer={"id": "cust_1", "email": EMAIL},
        metadata={"channel": "web"},
        request_id="cancel-1",
    )

    (result,) = harness.drain()

    assert result.deleted and not result.failed
    rollback_id = harness.fake.rollback_id(R1)
    view = harness.ledger.redemptions.get(R1)
    assert view["status"] == "ROLLED_BACK"
    assert view["rollback_ids"] == [rollback_id]
    assert [(r["rollback_id"], r["source"], r["result"]) for r in view["rollbacks"]] == [
        (rollback_id, "worker", "SUCCESS")
    ]
    request = harness.request(R1, "cancel-1")
    assert (request["state"], request["rollback_id"], request["attempts"], request["api_calls"]) == (
        "SUCCEEDED",
        rollback_id,
        1,
        1,
    )
    assert "customer" not in request and EMAIL not in json.dumps(request)  # sent, never stored
    (sent,) = harness.fake.requests
    assert sent.query == {"reason": "Order cancelled", "tracking_id": "track_1"}
    assert sent.body == {"customer": {"id": "cust_1", "email": EMAIL}, "metadata": {"channel": "web"}}
    assert sent.user_agent == "voucherify-redemption-ledger/0.1.0"
    assert harness.fake.calls(R1) == 1
    assert harness.queue_depth() == 0 and harness.queue_depth(harness.dlq_url) == 0
    # The call ran under the worker's claim on the redemption's item, released by the write that recorded the
    # rollback, which noted the request finished; no other record was kept.
    (item,) = [i for i in harness.aws.items() if i["pk"]["S"] == f"REDEMPTION#{R1}" and i["sk"]["S"] == "REDEMPTION"]
    assert not {"worker_claim", "worker_claim_until", "worker_answer"} & item.keys()
    assert item["finished#cancel-1"] == {"M": {"state": {"S": "SUCCEEDED"}, "rollback_id": {"S": rollback_id}}}
    assert not [i for i in harness.aws.items() if i["pk"]["S"].startswith("IDEMPOTENCY#")]


def test_a_failure_result_is_recorded_as_a_permanent_failure(harness: Harness) -> None:
    record_redemption(harness.ledger, R1)
    harness.fake.fail("failure", failure_code="customer_rules_violated", failure_message="Not this customer")
    harness.send(redemption_id=R1, request_id="req-f")

    harness.drain()

    request = harness.request(R1, "req-f")
    assert request["state"] == "FAILED"
    assert request["error"] == {"status": 200, "key": "customer_rules_violated", "message": "Not this customer"}
    view = harness.ledger.redemptions.get(R1)
    assert view["status"] == "SUCCEEDED"  # a failed rollback leaves the redemption as it was
    assert view["failed_rollback_ids"] == [request["rollback_id"]]
    assert harness.fake.calls(R1) == 1
    assert harness.queue_depth() == 0 and harness.queue_depth(harness.dlq_url) == 0


def test_already_rolled_back_in_voucherify_is_the_goal_reached(harness: Harness) -> None:
    harness.fake.add_redemption(R1).rollback_id = "rr_0e3ac8762299fef1e3"  # undone in the dashboard
    harness.send(redemption_id=R1, request_id="req-a")

    harness.drain()

    request = harness.request(R1, "req-a")
    assert request["state"] == "ALREADY_ROLLED_BACK"
    assert request["confirmed_by"] == "api" and "error" not in request
    assert request["voucherify_resource_id"].startswith("rrf_")
    assert harness.ledger.redemptions.get(R1)["status"] == "ROLLED_BACK"
    assert harness.fake.calls(R1) == 1
    assert harness.queue_depth() == 0 and harness.queue_depth(harness.dlq_url) == 0


def test_a_redemption_rolled_back_in_the_ledger_is_not_sent_again(harness: Harness) -> None:
    rollback = EventRedemptionRollbackSucceededData.model_validate(payload("redemption_rollback_succeeded"))
    from datetime import UTC, datetime

    harness.ledger.redemptions.record_rollback(
        rollback, Delivery(b"{}", "redemption-rollback-succeeded", datetime.now(UTC))
    )
    harness.send(redemption_id=rollback.redemption_id, request_id="req-l")

    harness.drain()

    request = harness.request(rollback.redemption_id, "req-l")
    assert (request["state"], request["confirmed_by"]) == ("ALREADY_ROLLED_BACK", "ledger")
    assert request["rollback_ids"] == [rollback.redemption_rollback.id]
    assert harness.fake.calls() == 0


def test_a_stacked_parent_is_rolled_back_with_the_stack_endpoint(harness: Harness) -> None:
    parent, children = "r_parent0000000000001", ["r_child00000000000001", "r_child00000000000002"]
    harness.fake.add_stack(parent, children, order_id="ord_stack000000000001")
    harness.send(redemption_id=parent, request_id="req-s")

    harness.drain()

    assert [r.endpoint for r in harness.fake.requests] == ["rollback", "rollbacks"]
    request = harness.request(parent, "req-s")
    assert request["state"] == "SUCCEEDED" and request["stacked"] is True
    assert request["rollback_id"] == harness.fake.rollback_id(parent)
    assert sorted(request["child_rollback_ids"]) == sorted(harness.fake.rollback_id(c) for c in children)
    for redemption_id in (parent, *children):
        view = harness.ledger.redemptions.get(redemption_id)
        assert view["status"] == "ROLLED_BACK"
        assert view["rollback_ids"] == [harness.fake.rollback_id(redemption_id)]
    assert harness.queue_depth() == 0


@pytest.mark.parametrize(
    ("setup", "key", "status"),
    [
        ("unknown", "not_found", 404),
        ("stack_child", "invalid_redemption_parent", 400),
        ("invalid_order", "invalid_order", 400),
        ("invalid_customer", "invalid_customer", 400),
    ],
)
def test_client_errors_are_permanent_failures_not_retried(
    make_harness: Callable[..., Harness], setup: str, key: str, status: int
) -> None:
    harness = make_harness(known=() if setup == "unknown" else (R1, R2))
    target = R1
    if setup == "stack_child":
        harness.fake.add_stack("r_parent0000000000009", [R1])
    elif setup.startswith("invalid_"):
        harness.fake.fail("error", key=key)
    harness.send(redemption_id=target, request_id="req-e")

    harness.drain()

    request = harness.request(target, "req-e")
    assert request["state"] == "FAILED"
    assert (request["error"]["status"], request["error"]["key"]) == (status, key)
    assert request["error"]["message"] and request["error"]["details"]
    assert harness.fake.calls(target) == 1
    assert harness.queue_depth() == 0 and harness.queue_depth(harness.dlq_url) == 0


def test_auth_failures_are_retried_and_counted_not_dropped(
    make_harness: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    harness = make_harness(app_token="the-rotated-token")  # the secret still has the old token
    harness.send(redemption_id=R1, request_id="req-401")

    first = harness.poll()

    assert first.failed == [first.failed[0]] and not first.deleted
    request = harness.request(R1, "req-401")
    assert (request["state"], request["error"]["status"], request["error"]["key"]) == ("RETRYING", 401, "unauthorized")
    assert metrics_emitted(capsys).get("VoucherifyAuthFailures", 0) >= 1

    harness.fake.app_token = "local-app-token"  # Voucherify accepts the key again
    harness.drain()

    assert harness.request(R1, "req-401")["state"] == "SUCCEEDED"
    assert harness.queue_depth() == 0 and harness.queue_depth(harness.dlq_url) == 0


def test_a_429_is_retried_no_sooner_than_voucherify_says(harness: Harness) -> None:
    harness.fake.fail("rate_limit", retry_after=1)
    harness.send(redemption_id=R1, request_id="req-429")

    first = harness.poll()
    assert first.failed and harness.fake.calls(R1) == 1
    request = harness.request(R1, "req-429")
    assert (request["state"], request["error"]["status"]) == ("RETRYING", 429)
    assert request["next_attempt_at"] > request["updated_at"]  # hidden for at least Retry-After

    assert harness.poll().received == 0  # still hidden: no second call before Retry-After
    assert harness.fake.calls(R1) == 1

    for _ in range(40):  # the message comes back after Retry-After (bounded wait, nothing timed)
        if harness.poll().received:
            break
        time.sleep(0.1)
    assert harness.request(R1, "req-429")["state"] == "SUCCEEDED"
    assert harness.fake.calls(R1) == 2


def test_transient_errors_are_retried_in_process(harness: Harness) -> None:
    harness.fake.fail("status", status=503, times=1)
    harness.fake.fail("drop", times=1)
    harness.send(redemption_id=R1, request_id="req-5xx")

    (result,) = harness.drain()

    assert result.deleted
    request = harness.request(R1, "req-5xx")
    assert (request["state"], request["attempts"], request["api_calls"]) == ("SUCCEEDED", 1, 3)
    assert harness.fake.calls(R1) == 3


def test_a_lost_answer_is_retried_and_ends_already_rolled_back(harness: Harness) -> None:
    # Voucherify rolls back but the answer never arrives (read timeout); the retry says already_rolled_back.
    harness.fake.fail("timeout", seconds=3, apply=True)
    harness.send(redemption_id=R1, request_id="req-t")

    harness.drain()

    request = harness.request(R1, "req-t")
    assert (request["state"], request["api_calls"]) == ("ALREADY_ROLLED_BACK", 2)
    assert harness.ledger.redemptions.get(R1)["status"] == "ROLLED_BACK"
    assert harness.fake.calls(R1) == 2


def test_persistent_5xx_goes_to_the_dead_letter_queue_after_max_receive_count(harness: Harness) -> None:
    harness.fake.fail("status", status=500, times=None)
    message_id = harness.send(redemption_id=R1, request_id="req-dlq")
    max_receive = int(harness.env["ROLLBACK_MAX_RECEIVE_COUNT"])

    results = harness.drain()

    assert [len(r.failed) for r in results] == [1] * max_receive
    request = harness.request(R1, "req-dlq")
    assert (request["state"], request["dead_lettered"], request["attempts"]) == ("FAILED", True, max_receive)
    assert request["error"]["status"] == 500 and "dead-letter" in request["error"]["message"]
    assert harness.fake.calls(R1) == max_receive * 3  # 1 + 2 in-process retries per attempt
    assert harness.queue_depth() == 0
    dead = harness.sqs.receive_message(QueueUrl=harness.dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert [m["MessageId"] for m in dead] == [message_id]


def test_a_malformed_message_is_recorded_and_not_retried(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    bad = [
        harness.send_raw("not json"),
        harness.send_raw(json.dumps({"redemption_id": R1, "order_id": "ord_x0000000000000001"})),
        harness.send_raw(json.dumps({"redemption_id": R1, "customer": EMAIL, "email": EMAIL})),
    ]

    (result,) = harness.drain()

    assert sorted(result.deleted) == sorted(bad) and not result.failed
    for message_id in bad:
        request = harness.ledger.requests.get(message_id)
        assert (request["state"], request["error"]["key"]) == ("FAILED", "invalid_request")
        assert request["errors"]
    errors = harness.ledger.requests.get(bad[2])["errors"]
    assert any(e.startswith("customer:") for e in errors) and any(e.startswith("email:") for e in errors)
    assert EMAIL not in json.dumps([harness.ledger.requests.get(m) for m in bad])
    assert EMAIL not in capsys.readouterr().out  # nor in the logs
    assert harness.fake.calls() == 0
    assert harness.queue_depth() == 0 and harness.queue_depth(harness.dlq_url) == 0


def test_a_batch_reports_only_its_failed_records(harness: Harness) -> None:
    harness.fake.fail("status", status=502, times=None, redemption_id=R2)
    ok = harness.send(redemption_id=R1)
    failing = harness.send(redemption_id=R2)
    malformed = harness.send_raw("{}")

    result = harness.poll()

    assert result.received == 3
    assert result.response == {"batchItemFailures": [{"itemIdentifier": failing}]}
    assert sorted(result.deleted) == sorted([ok, malformed])
    assert harness.request(R1, ok)["state"] == "SUCCEEDED"
    assert harness.request(R2, failing)["state"] == "RETRYING"


# --- never twice ----------------------------------------------------------------------------------
HELD_SECONDS = 10.0  # the longest the fake holds a call's answer (the gate opens long before)


def hold_the_calls(harness: Harness) -> threading.Event:
    """The fake answers no rollback call until the returned gate opens (or ``HELD_SECONDS`` pass). A fixed
    latency instead let the first call finish, on a loaded machine, before the other messages got to it."""
    gate = threading.Event()
    harness.fake.fail("latency", seconds=HELD_SECONDS, until=gate, times=None)
    return gate


def open_when_requeued(harness: Harness, gate: threading.Event, *, others: int) -> threading.Thread:
    """Opens ``gate`` once ``others`` of the received messages are visible on the queue again: each found the
    call in progress and was made visible at once for its retry (``ROLLBACK_RETRY_BASE_SECONDS=0``)."""
    sqs = boto3.client("sqs")

    def watch() -> None:
        deadline = time.monotonic() + HELD_SECONDS
        while time.monotonic() < deadline:
            attributes = sqs.get_queue_attributes(
                QueueUrl=harness.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            if int(attributes["ApproximateNumberOfMessages"]) >= others:
                break
            time.sleep(0.02)
        gate.set()

    watcher = threading.Thread(target=watch, name="open-when-requeued", daemon=True)
    watcher.start()
    return watcher


def test_duplicate_and_concurrent_messages_make_one_api_call(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(env={"VOUCHERIFY_READ_TIMEOUT_SECONDS": "15"})  # a held answer is no timeout
    body = RollbackRequest(redemption_id=R1, request_id="req-dup").to_message()
    for _ in range(3):
        harness.send_raw(body)  # the same request delivered three times
    harness.send(redemption_id=R1, request_id="req-other")  # and another request for the same redemption
    gate = hold_the_calls(harness)  # the first call is still in flight while the others are handled
    handler, watchers = harness.poller.handler, []

    def handle_the_batch(event: dict[str, Any], context: Any) -> Any:  # received: watch for the retries
        watchers.append(open_when_requeued(harness, gate, others=3))
        return handler(event, context)

    harness.poller.handler = handle_the_batch
    first = harness.poll()
    harness.poller.handler = handler
    for watcher in watchers:
        watcher.join(HELD_SECONDS)
    assert first.received == 4 and len(first.deleted) == 1  # the others found the call in progress
    harness.drain()

    assert harness.fake.calls(R1) == 1
    assert len(harness.rollback_items()) == 1
    # Whichever message's call ran (a batch's records run concurrently, in no set order), its request
    # SUCCEEDED with the one rollback; the other request then found the redemption ROLLED_BACK in the ledger.
    requests = {r: harness.request(R1, r) for r in ("req-dup", "req-other")}
    (winner,) = [r for r, item in requests.items() if item["state"] == "SUCCEEDED"]
    (other,) = requests.keys() - {winner}
    assert (requests[winner]["rollback_id"], requests[winner]["api_calls"]) == (harness.fake.rollback_id(R1), 1)
    assert (requests[other]["state"], requests[other]["confirmed_by"]) == ("ALREADY_ROLLED_BACK", "ledger")
    assert harness.queue_depth() == 0


@pytest.mark.filterwarnings("ignore:No application metrics")  # three instances share Powertools' metric set
def test_concurrent_invocations_for_one_redemption_make_one_api_call(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(env={"VOUCHERIFY_READ_TIMEOUT_SECONDS": "15"})
    messages = []
    for request_id in ("req-c1", "req-c2", "req-c3"):
        harness.send(redemption_id=R1, request_id=request_id)
    for _ in range(3):
        messages += harness.poller.receive(wait_time_seconds=0)
    assert len(messages) == 3
    results: list[Any] = []
    instances = [load_handler("RollbackWorkerFunction") for _ in messages]  # three Lambda instances
    watcher = open_when_requeued(harness, hold_the_calls(harness), others=2)

    def invoke(handler: Any, message: dict[str, Any]) -> None:
        context = LambdaContext("RollbackWorkerFunction", timeout_seconds=30)
        results.append(handler(harness.poller.event([message]), context))

    threads = [threading.Thread(target=invoke, args=pair) for pair in zip(instances, messages, strict=True)]
    for thread in threads:
        thread.start()
    for thread in [*threads, watcher]:
        thread.join(20)

    assert harness.fake.calls(R1) == 1
    assert sum(1 for r in results if not r["batchItemFailures"]) == 1
    states = sorted(harness.request(R1, r)["state"] for r in ("req-c1", "req-c2", "req-c3"))
    assert states == ["RETRYING", "RETRYING", "SUCCEEDED"]


def test_a_retry_after_a_failed_ledger_write_replays_the_answer_without_calling_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voucherify_ledger.ledger.dynamo import StorageError

    original = RollbackRequestStore.record_worker_rollback
    failures = iter([StorageError("DynamoDB refused the rollback write: ProvisionedThroughputExceededException")])

    def flaky(self: RollbackRequestStore, *args: Any, **kwargs: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RollbackRequestStore, "record_worker_rollback", flaky)
    harness.send(redemption_id=R1, request_id="req-w")

    results = harness.drain()

    assert [bool(r.failed) for r in results] == [True, False]
    request = harness.request(R1, "req-w")
    assert (request["state"], request["attempts"]) == ("SUCCEEDED", 2)
    assert request["rollback_id"] == harness.fake.rollback_id(R1)
    assert harness.fake.calls(R1) == 1  # the second attempt used the kept answer


# --- orders ---------------------------------------------------------------------------------------
def test_an_order_request_rolls_back_each_succeeded_redemption_of_the_order(harness: Harness) -> None:
    order = "ord_p6B1A0y805yUQQaCw4bC6Fbk"
    single_a, single_b, done = "r_order00000000000001", "r_order00000000000002", "r_order00000000000003"
    parent, child_1, child_2 = "r_ostack000000000001", "r_ostack000000000002", "r_ostack000000000003"
    for redemption_id in (single_a, single_b, done):
        redeemed(harness, redemption_id, order_id=order)
    for child in (child_1, child_2):  # the ledger holds a stack's children (their parent is not in it)
        record_redemption(harness.ledger, child, order_id=order, parent_id=parent)
    harness.fake.add_stack(parent, [child_1, child_2], order_id=order)
    harness.fake.add_redemption(done).rollback_id = "rr_done0000000000001"
    from datetime import UTC, datetime

    rolled = payload("redemption_rollback_succeeded")
    rolled["redemption"]["id"] = rolled["redemption_rollback"]["redemption"] = done
    harness.ledger.redemptions.record_rollback(
        EventRedemptionRollbackSucceededData.model_validate(rolled),
        Delivery(b"{}", "redemption-rollback-succeeded", datetime.now(UTC)),
    )
    harness.send(order_id=order, reason="Order cancelled", request_id="cancel-order")

    harness.drain()

    (order_request,) = harness.ledger.requests.of_order(order)
    assert order_request["state"] == "FANNED_OUT"
    assert sorted(order_request["redemption_ids"]) == sorted([single_a, single_b, parent])
    assert order_request["already_rolled_back_ids"] == [done]
    for redemption_id in (single_a, single_b, parent):
        request = harness.request(redemption_id, f"cancel-order:{redemption_id}")
        assert (request["state"], request["parent_request_id"]) == ("SUCCEEDED", "cancel-order")
    for redemption_id in (single_a, single_b, parent, child_1, child_2):
        assert harness.ledger.redemptions.get(redemption_id)["status"] == "ROLLED_BACK"
    assert {r: harness.fake.calls(r) for r in (single_a, single_b, parent, child_1, child_2, done)} == {
        single_a: 1,
        single_b: 1,
        parent: 2,  # /rollback answers invalid_redemption, /rollbacks rolls the stack back
        child_1: 0,
        child_2: 0,
        done: 0,
    }
    assert all(r.query.get("reason") == "Order cancelled" for r in harness.fake.requests)
    assert harness.queue_depth() == 0


def test_an_order_the_ledger_does_not_know_fails_without_calls(harness: Harness) -> None:
    harness.send(order_id="ord_unknown0000000001", request_id="order-x")

    harness.drain()

    (request,) = harness.ledger.requests.of_order("ord_unknown0000000001")
    assert (request["state"], request["error"]["key"]) == ("FAILED", "order_not_in_ledger")
    assert harness.fake.calls() == 0 and harness.queue_depth() == 0


# --- the webhook and the worker -------------------------------------------------------------------
class _WebhookApi(ThreadingHTTPServer):
    """POST /webhooks/... → an API Gateway v2 event → the real webhook handler (as the local stack does)."""

    daemon_threads = True

    def __init__(self, handler: Callable[[dict[str, Any], Any], Any]) -> None:
        self.function = handler
        self.answers: list[tuple[int, dict[str, Any]]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(inner) -> None:
                raw = inner.rfile.read(int(inner.headers["content-length"]))
                event = http_api_event("POST", inner.path, raw, dict(inner.headers.items()))
                status, _, body = response_parts(
                    self.function(event, LambdaContext("RedemptionRollbackSucceededFunction"))
                )
                self.answers.append((status, json.loads(body)))
                inner.send_response(status)
                inner.send_header("content-length", str(len(body)))
                inner.end_headers()
                inner.wfile.write(body)

            def log_message(inner, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/webhooks/redemption-rollback-succeeded"


@pytest.fixture
def webhook_api(
    aws: Aws, function_env: Callable[..., dict[str, str]], make_harness: Callable[..., Harness]
) -> Iterator[_WebhookApi]:
    function_env("RedemptionRollbackSucceededFunction")
    server = _WebhookApi(load_handler("RedemptionRollbackSucceededFunction"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("first", ["worker", "webhook"])
def test_the_webhook_and_the_worker_record_the_rollback_once_in_either_order(
    make_harness: Callable[..., Harness], webhook_api: _WebhookApi, first: str
) -> None:
    harness = make_harness(
        webhook_url=webhook_api.url,
        webhook_secret=SIGNING_SECRET,
        webhook_before_response=first == "webhook",  # Voucherify's webhook beats the worker's write
        # the answer waits for the webhook's handler, loaded on first use: more than the harness's 0.5 s
        env={"VOUCHERIFY_READ_TIMEOUT_SECONDS": "10"},
    )
    record_redemption(harness.ledger, R1)
    harness.send(redemption_id=R1, request_id="req-loop")

    harness.drain()
    harness.fake.deliver_webhooks()  # worker first: the webhook arrives a few moments later

    rollback_id = harness.fake.rollback_id(R1)
    assert [w.status for w in harness.fake.webhooks] == [200]
    ((status, answer),) = webhook_api.answers
    assert (status, answer["rollback_id"]) == (200, rollback_id)
    assert answer["status"] == ("duplicate" if first == "worker" else "recorded")
    (item,) = harness.rollback_items()
    assert item["source"]["S"] == first
    view = harness.ledger.redemptions.get(R1)
    assert (view["status"], view["rollback_ids"]) == ("ROLLED_BACK", [rollback_id])
    request = harness.request(R1, "req-loop")
    assert (request["state"], request["rollback_id"]) == ("SUCCEEDED", rollback_id)
    assert request.get("recorded_by") == ("webhook" if first == "webhook" else None)
    assert harness.fake.calls(R1) == 1


# --- pacing ---------------------------------------------------------------------------------------
def test_pacing_persists_across_warm_invocations(make_harness: Callable[..., Harness]) -> None:
    # A budget of 2 calls a minute for one execution: one call now, the next not before ~30 s.
    harness = make_harness(
        env={
            "VOUCHERIFY_REQUESTS_PER_MINUTE": "3",
            "RECONCILE_REQUESTS_PER_MINUTE": "1",  # the reconciler's share: the worker's is 2
            "ROLLBACK_MAX_CONCURRENCY": "1",
        }
    )
    harness.send(redemption_id=R1, request_id="req-p1")
    assert harness.poll().deleted  # invocation 1

    harness.send(redemption_id=R2, request_id="req-p2")
    second = harness.poll()  # invocation 2 of the same (warm) instance

    assert second.failed and harness.fake.calls(R2) == 0
    request = harness.request(R2, "req-p2")
    assert (request["state"], request["error"]["key"]) == ("RETRYING", "paced")
    assert request["next_attempt_at"] > request["updated_at"]


# --- sam local invoke event -----------------------------------------------------------------------
def test_the_sam_local_invoke_event_is_a_valid_sqs_event_for_the_worker(harness: Harness) -> None:
    from aws_lambda_powertools.utilities.data_classes import SQSEvent

    event = json.loads((PAYLOADS.parent / "rollback_worker_sqs.json").read_text(encoding="utf-8"))
    parsed = SQSEvent(event)
    for record in parsed.records:
        assert hashlib.md5(record.body.encode()).hexdigest() == record.md5_of_body
        RollbackRequest.model_validate_json(record.body)
        assert record.attributes.approximate_receive_count == "1"

    answer = harness.handler(event, LambdaContext("RollbackWorkerFunction", timeout_seconds=30))

    assert answer == {"batchItemFailures": []}
    redemption_id = json.loads(event["Records"][0]["body"])["redemption_id"]
    assert harness.request(redemption_id, "cancel-1001")["state"] == "SUCCEEDED"


# --- no message crashes the worker ----------------------------------------------------------------
# Redemption ids an earlier version of the webhooks stored, which the request model refuses.
DOTTED = "r_a5.dot"
TOO_LONG = "r_" + "a" * 170
TRAILING_NEWLINE = "r_0e2500291ae016ade\n"
NOT_ROLLBACK_TARGETS = "redemption id(s) of the order are not r_ followed by 1-100 letters or digits: not rolled back"
SAFE_REQUEST_ID = re.compile(r"^[0-9A-Za-z._:@+=-]{1,256}$")  # the RequestId bound of the message contract


def store_redemption_as_an_earlier_version_did(aws: Aws, redemption_id: str, *, order_id: str, like: str) -> None:
    """Copies the stored item of ``like`` under ``redemption_id``: the ledger then lists a redemption of
    ``order_id`` whose id today's webhooks (and the request model) would refuse."""
    (item,) = [i for i in aws.items() if i["pk"]["S"] == f"REDEMPTION#{like}" and i["sk"]["S"] == "REDEMPTION"]
    item = {**item, "pk": {"S": f"REDEMPTION#{redemption_id}"}, "redemption_id": {"S": redemption_id}}
    item["order_id"] = {"S": order_id}
    aws.dynamodb.put_item(TableName=aws.table_name, Item=item)


def request_items(aws: Aws) -> dict[tuple[str, str], dict[str, Any]]:
    """Every request item of the ledger (redemption, order and rejected requests), by (pk, sk)."""
    from boto3.dynamodb.types import TypeDeserializer

    plain = TypeDeserializer().deserialize
    return {
        (i["pk"]["S"], i["sk"]["S"]): {k: plain(v) for k, v in i.items()}
        for i in aws.items()
        if i["sk"]["S"].startswith("REQUEST") and not i["pk"]["S"].startswith("IDEMPOTENCY#")
    }


def test_an_order_holding_malformed_redemption_ids_queues_the_valid_ones_and_lists_the_others(
    capsys: pytest.CaptureFixture[str], harness: Harness
) -> None:
    order = "ord_malformed000000001"
    record_redemption(harness.ledger, R1, order_id=order)
    for bad in (DOTTED, TOO_LONG, TRAILING_NEWLINE):
        store_redemption_as_an_earlier_version_did(harness.aws, bad, order_id=order, like=R1)
    message_id = harness.send(order_id=order, reason="Order cancelled", request_id="cancel-mixed")

    results = harness.drain()

    assert all(not r.failed for r in results)  # nothing retried: every message ended
    (order_request,) = harness.ledger.requests.of_order(order)
    assert {k: v for k, v in order_request.items() if k not in ("created_at", "updated_at")} == {
        "request_id": "cancel-mixed",
        "source_order_id": order,
        "state": "FANNED_OUT",
        "attempts": 1,
        "message_id": message_id,
        "receive_count": 1,
        "reason": "Order cancelled",
        "redemption_ids": [R1],
        "child_request_ids": [f"cancel-mixed:{R1}"],
        "already_rolled_back_ids": [],
        "invalid_redemption_ids": sorted([DOTTED, TOO_LONG, TRAILING_NEWLINE]),
        "invalid_redemption_count": 3,
        "error": {
            "key": "invalid_redemption_ids",
            "message": f"3 {NOT_ROLLBACK_TARGETS}",
        },
    }
    child = harness.request(R1, f"cancel-mixed:{R1}")
    assert (child["state"], child["parent_request_id"]) == ("SUCCEEDED", "cancel-mixed")
    assert harness.fake.calls(R1) == 1 and harness.fake.calls() == 1
    # no request was made, nor queued, for the malformed ids
    assert {pk for pk, _ in request_items(harness.aws)} == {f"ORDER#{order}", f"REDEMPTION#{R1}"}
    assert harness.queue_depth() == 0 and harness.queue_depth(harness.dlq_url) == 0
    assert metrics_emitted(capsys).get("RollbackRedemptionIdsInvalid") == 3


def test_an_order_holding_only_malformed_redemption_ids_fails_with_a_clear_key(harness: Harness) -> None:
    order = "ord_malformed000000002"
    record_redemption(harness.ledger, R1, order_id="ord_other000000000001")
    for bad in (DOTTED, TOO_LONG):
        store_redemption_as_an_earlier_version_did(harness.aws, bad, order_id=order, like=R1)
    message_id = harness.send(order_id=order, request_id="cancel-bad")

    (result,) = harness.drain()

    assert result.deleted == [message_id] and not result.failed
    (order_request,) = harness.ledger.requests.of_order(order)
    assert {k: v for k, v in order_request.items() if k not in ("created_at", "updated_at")} == {
        "request_id": "cancel-bad",
        "source_order_id": order,
        "state": "FAILED",
        "attempts": 1,
        "message_id": message_id,
        "receive_count": 1,
        "already_rolled_back_ids": [],
        "invalid_redemption_ids": sorted([DOTTED, TOO_LONG]),
        "invalid_redemption_count": 2,
        "error": {
            "key": "invalid_redemption_ids",
            "message": f"2 {NOT_ROLLBACK_TARGETS}",
        },
    }
    assert harness.fake.calls() == 0
    assert harness.queue_depth() == 0 and harness.queue_depth(harness.dlq_url) == 0


def test_a_250_character_request_id_fans_out_child_ids_that_fit_and_are_the_same_every_time(harness: Harness) -> None:
    order = "ord_longrequest00000001"
    request_id = "refund-" + "x" * 243
    assert len(request_id) == 250
    long_tail = "r_" + "b" * 100  # the longest redemption id the contract accepts
    for redemption_id in (R1, long_tail):
        redeemed(harness, redemption_id, order_id=order)
    body = RollbackRequest(order_id=order, reason="Refund", request_id=request_id).to_message()
    sent = [harness.send_raw(body), harness.send_raw(body)]  # the same request delivered twice
    received: list[dict[str, Any]] = []
    while len(received) < 2:  # both order messages in one batch, before any child is handled
        received += harness.poller.receive(wait_time_seconds=0)
    answer = harness.handler(
        harness.poller.event(received), LambdaContext("RollbackWorkerFunction", timeout_seconds=30)
    )
    for message in received:
        harness.sqs.delete_message(QueueUrl=harness.queue_url, ReceiptHandle=message["ReceiptHandle"])
    children_results = harness.drain()

    assert answer == {"batchItemFailures": []} and sorted(m["MessageId"] for m in received) == sorted(sent)
    assert sum(r.received for r in children_results) >= 4  # each delivery queued both children
    from voucherify_ledger.models.rollback_request import child_request_id

    children = {r: child_request_id(request_id, r) for r in (R1, long_tail)}
    assert len(set(children.values())) == 2
    for redemption_id, child_id in children.items():
        assert len(child_id) <= 256 and SAFE_REQUEST_ID.match(child_id) and child_id.endswith(f":{redemption_id}")
        # the one request per redemption: the redelivered order queued the same child ids
        (request,) = harness.ledger.redemptions.get(redemption_id)["rollback_requests"]
        assert (request["request_id"], request["state"], request["parent_request_id"]) == (
            child_id,
            "SUCCEEDED",
            request_id,
        )
        assert harness.fake.calls(redemption_id) == 1
    (order_request,) = harness.ledger.requests.of_order(order)
    assert (order_request["state"], order_request["attempts"]) == ("FANNED_OUT", 2)
    assert order_request["redemption_ids"] == [R1, long_tail]
    assert order_request["child_request_ids"] == [children[R1], children[long_tail]]
    assert harness.queue_depth() == 0 and harness.queue_depth(harness.dlq_url) == 0


def test_child_request_ids_are_deterministic_and_always_fit() -> None:
    from voucherify_ledger.models.rollback_request import child_request_id

    assert child_request_id("cancel-1", R1) == f"cancel-1:{R1}"  # short ids stay readable, as before
    longest = "r_" + "c" * 100
    for parent in ("p" * 153, "p" * 154, "p" * 256, "a:b" * 85, "odd id/from a direct invocation"):
        child = child_request_id(parent, longest)
        assert child == child_request_id(parent, longest)
        assert len(child) <= 256 and SAFE_REQUEST_ID.match(child) and child.endswith(f":{longest}")
        RollbackRequest(redemption_id=longest, request_id=child)
    assert child_request_id("p" * 154, longest) != child_request_id("p" * 155, longest)


BUG = KeyError(EMAIL)  # a bug whose message carries data: it must reach neither the ledger nor the logs


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every record the worker logged, with its fields and any exception text (what CloudWatch would get)."""
    return "\n".join(
        f"{r.getMessage()} {json.dumps(r.__dict__, default=str)} {logging.Formatter().formatException(r.exc_info)}"
        if r.exc_info
        else f"{r.getMessage()} {json.dumps(r.__dict__, default=str)}"
        for r in caplog.records
    )


STORES = {"redemptions": RedemptionStore, "requests": RollbackRequestStore, "claims": RedemptionClaims}


def failing_read(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """``method`` (``"<store>.<name>"``: a store of the ledger and its method) raises BUG."""
    store, name = method.split(".")

    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise BUG

    monkeypatch.setattr(STORES[store], name, broken)


def test_an_unexpected_error_on_a_middle_receive_is_recorded_retrying_and_retried(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record_redemption(harness.ledger, R1)
    failing_read(monkeypatch, "claims.claim")
    caplog.set_level(logging.INFO, logger="voucherify-ledger")
    message_id = harness.send(redemption_id=R1, reason="Order cancelled", request_id="req-bug")

    first = harness.poll()

    assert first.failed == [message_id] and not first.deleted
    request = harness.request(R1, "req-bug")
    assert request["next_attempt_at"] >= request["updated_at"]
    assert {k: v for k, v in request.items() if k not in ("created_at", "updated_at", "next_attempt_at")} == {
        "request_id": "req-bug",
        "redemption_id": R1,
        "state": "RETRYING",
        "attempts": 1,
        "message_id": message_id,
        "receive_count": 1,
        "reason": "Order cancelled",
        "error": {"key": "worker_error", "message": "unexpected KeyError in the worker"},
    }
    out = capsys.readouterr().out
    assert emitted_metrics(out).get("RollbackWorkerErrors") == 1
    assert emitted_metrics(out).get("RollbackRetries") == 1
    (logged,) = [r for r in caplog.records if r.getMessage() == "unexpected error in the rollback worker"]
    assert (logged.levelname, logged.error, logged.request_id) == ("ERROR", "KeyError", "req-bug")
    assert not logged.exc_info and any("broken" in frame for frame in logged.traceback)  # where, not what
    assert EMAIL not in out + logged_text(caplog)
    assert EMAIL not in json.dumps(list(request_items(harness.aws).values()), default=str)
    assert harness.fake.calls() == 0 and harness.queue_depth() == 1

    monkeypatch.undo()  # the bug is fixed: the next receive rolls back
    harness.drain()

    request = harness.request(R1, "req-bug")
    assert (request["state"], request["attempts"], "error" in request) == ("SUCCEEDED", 2, False)
    assert harness.fake.calls(R1) == 1


@pytest.mark.parametrize("target", ["redemption", "order"])
def test_an_unexpected_error_on_the_last_receive_ends_failed_and_dead_lettered(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
) -> None:
    order = "ord_bug000000000000001"
    record_redemption(harness.ledger, R1, order_id=order)
    max_receive = int(harness.env["ROLLBACK_MAX_RECEIVE_COUNT"])
    caplog.set_level(logging.INFO, logger="voucherify-ledger")
    if target == "redemption":
        failing_read(monkeypatch, "claims.claim")
        message_id = harness.send(redemption_id=R1, request_id="req-dead")
    else:
        failing_read(monkeypatch, "redemptions.states")
        message_id = harness.send(order_id=order, request_id="req-dead")

    results = harness.drain()

    assert [r.failed for r in results] == [[message_id]] * max_receive
    if target == "redemption":
        request = harness.request(R1, "req-dead")
        identity = {"redemption_id": R1, "receive_count": max_receive}
    else:
        (request,) = harness.ledger.requests.of_order(order)
        identity = {"source_order_id": order, "receive_count": max_receive}
    assert {k: v for k, v in request.items() if k not in ("created_at", "updated_at")} == {
        "request_id": "req-dead",
        **identity,
        "state": "FAILED",
        "attempts": max_receive,
        "message_id": message_id,
        "dead_lettered": True,
        "error": {
            "key": "worker_error",
            "message": "unexpected KeyError in the worker; attempts exhausted, moved to the dead-letter queue",
        },
    }
    out = capsys.readouterr().out
    assert emitted_metrics(out).get("RollbackWorkerErrors") == max_receive
    assert emitted_metrics(out).get("RollbacksDeadLettered") == 1
    assert EMAIL not in out + logged_text(caplog)
    assert harness.fake.calls() == 0 and harness.queue_depth() == 0
    dead = harness.sqs.receive_message(QueueUrl=harness.dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert [m["MessageId"] for m in dead] == [message_id]


def test_an_unexpected_error_before_the_request_is_read_is_recorded_under_the_message_id(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise BUG

    monkeypatch.setattr(RollbackRequest, "model_validate_json", broken)
    caplog.set_level(logging.INFO, logger="voucherify-ledger")
    message_id = harness.send_raw(json.dumps({"redemption_id": R1}))
    max_receive = int(harness.env["ROLLBACK_MAX_RECEIVE_COUNT"])

    results = harness.drain()

    assert [r.failed for r in results] == [[message_id]] * max_receive
    request = harness.ledger.requests.get(message_id)
    assert request is not None and request["state"] == "FAILED"
    assert request["errors"] == [
        "worker_error: unexpected KeyError in the worker; attempts exhausted, moved to the dead-letter queue"
    ]
    assert (request["error"]["key"], request["dead_lettered"], request["attempts"]) == (
        "worker_error",
        True,
        max_receive,
    )
    assert "next_attempt_at" not in request
    assert set(request_items(harness.aws)) == {(f"REQUEST#{message_id}", "REQUEST")}
    out = capsys.readouterr().out
    assert emitted_metrics(out).get("RollbackWorkerErrors") == max_receive
    assert EMAIL not in out + logged_text(caplog)
    assert harness.queue_depth() == 0
    dead = harness.sqs.receive_message(QueueUrl=harness.dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert [m["MessageId"] for m in dead] == [message_id]


def test_a_request_whose_own_record_cannot_be_written_ends_recorded_under_the_message_id(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_read(monkeypatch, "claims.claim")
    failing_read(monkeypatch, "requests.update")  # the request's own key takes no record
    message_id = harness.send(redemption_id=R1, request_id="req-nokey")
    max_receive = int(harness.env["ROLLBACK_MAX_RECEIVE_COUNT"])

    results = harness.drain()

    assert [r.failed for r in results] == [[message_id]] * max_receive
    rejected = harness.ledger.requests.get(message_id)
    assert rejected is not None and rejected["state"] == "FAILED"
    assert rejected["errors"] == [
        "worker_error: unexpected KeyError in the worker; attempts exhausted, moved to the dead-letter queue"
    ]
    assert harness.ledger.requests.get("req-nokey", R1) is None  # its own key never took a record
    assert EMAIL not in json.dumps(list(request_items(harness.aws).values()), default=str)
    dead = harness.sqs.receive_message(QueueUrl=harness.dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert [m["MessageId"] for m in dead] == [message_id]


def test_an_unreadable_message_is_recorded_retrying_under_its_message_id_before_the_last_receive(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise BUG

    monkeypatch.setattr(RollbackRequest, "model_validate_json", broken)
    message_id = harness.send_raw(json.dumps({"redemption_id": R1}))

    (result,) = [harness.poll()]

    assert result.failed == [message_id]
    request = harness.ledger.requests.get(message_id)
    assert request is not None
    assert (request["state"], request["error"]["key"], request["receive_count"]) == ("RETRYING", "worker_error", 1)
    assert request["next_attempt_at"] and "dead_lettered" not in request


def test_a_write_the_ledger_refuses_for_good_ends_the_request_failed_at_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal (e.g. the redemption's item at DynamoDB's 400 KB) would be refused on every retry: the request
    ends FAILED (``ledger_refused``) on its first receive, saying to check Voucherify, and is not retried."""
    from voucherify_ledger.ledger.dynamo import StorageRefusedError

    def refused(self: RollbackRequestStore, *args: Any, **kwargs: Any) -> Any:
        raise StorageRefusedError("the rollback cannot be stored as it is: the item would exceed DynamoDB's 400 KB")

    monkeypatch.setattr(RollbackRequestStore, "record_worker_rollback", refused)
    message_id = harness.send(redemption_id=R1, request_id="req-refused")

    results = harness.drain()

    assert [r.failed for r in results][:1] == [[]] and message_id
    request = harness.request(R1, "req-refused")
    assert (request["state"], request["error"]["key"]) == ("FAILED", "ledger_refused")
    assert "400 KB" in request["error"]["message"] and "check the redemption there" in request["error"]["message"]
    assert harness.queue_depth() == 0
