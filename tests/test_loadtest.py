"""`make loadtest` in small: the ledger stays exact under concurrent, duplicated, reordered deliveries, under
DynamoDB faults and with a misbehaving Voucherify; and the checks themselves notice what they must notice."""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import threading
import zlib
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from conftest import Aws, payload

from ledger_tools import loadtest
from ledger_tools.corpus import build_corpus
from ledger_tools.fake_voucherify import FakeVoucherify
from ledger_tools.local_stack import serialize_moto_dynamodb
from ledger_tools.template import create_table
from voucherify_ledger.ledger import Delivery, StorageError
from voucherify_ledger.models import EventRedemptionRollbackSucceededData, EventRedemptionSucceededData


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SAM_LOCAL", "VOUCHERIFY_API_URL"):
        monkeypatch.delenv(name, raising=False)


def test_small_load_fault_and_chaos_runs_leave_the_ledger_exact(clean_env: None) -> None:
    options = loadtest.Options(
        deliveries=240, fault_deliveries=120, fault_share=0.2, chaos_requests=15, senders=16, max_seconds=90
    )

    reports = {report.name: report for report in loadtest.run(options)}

    assert list(reports) == ["load", "faults", "chaos"]
    for report in reports.values():
        assert report.ok, (report.name, report.problems[:10])
    load, faults, chaos = reports["load"].figures, reports["faults"].figures, reports["chaos"].figures
    assert load["deliveries"] == 240 and load["duplicates"] == 72
    assert load["rollbacks_before_their_redemption"] > 0
    assert set(load["discounts"]) == {"PERCENT", "AMOUNT", "UNIT", "FIXED"}
    assert load["stacks"] > 0 and load["null_customers"] > 0 and load["envelopes"] and load["bare"]
    assert set(load["answers"]) == {"200 recorded", "200 duplicate"}  # no 5xx while storage is healthy
    assert load["ledger_differences"] == 0 == load["records_lost"]
    assert sum(faults["faults_injected"].values()) > 0
    assert faults["faulted_attempts"] == faults["faulted_attempts_answered_5xx"] > 0
    assert faults["ledger_differences"] == 0 == faults["records_lost"]
    assert chaos["requests"] == 15 and set(chaos["states"]) <= {"SUCCEEDED", "ALREADY_ROLLED_BACK", "FAILED"}
    assert chaos["dead_lettered"] == chaos["in_dead_letter_queue"]


# --- the checks notice what they must ---------------------------------------------------------------------
def _ledger_as_stored(corpus: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """What an exact ledger scan looks like: the expected items plus their audit blobs."""
    stored = copy.deepcopy(loadtest.expected_ledger([corpus]))
    for (pk, _), item in stored.items():
        body = corpus.bodies_of(f"redemption:{pk.removeprefix('REDEMPTION#')}")[0]
        item["redemption_delivery"] = {"raw_zlib": zlib.compress(body)}
        for name, rollback in item.items():
            if name.startswith("rollback#"):  # a rollback, with its own delivery
                body = corpus.bodies_of(f"rollback:{name.removeprefix('rollback#')}")[0]
                rollback.update(recorded_at="2026-01-01T00:00:00.000Z", delivery={"raw_zlib": zlib.compress(body)})
        item["updated_at"] = "2026-01-01T00:00:00.000Z"
    return stored


def test_ledger_comparison_finds_missing_extra_changed_and_foreign_records() -> None:
    corpus = build_corpus(60, seed=5)
    documents = loadtest._documents([corpus])
    expected = loadtest.expected_ledger([corpus])
    stored = _ledger_as_stored(corpus)
    assert loadtest.compare_ledger(expected, stored, documents) == []

    rolled_back = next(k for k, v in stored.items() if v.get("status") == "ROLLED_BACK")
    single = next(k for k, v in stored.items() if v.get("status") == "SUCCEEDED")
    broken = copy.deepcopy(stored)
    del broken[single]
    broken[("REDEMPTION#r_extra", "REDEMPTION")] = {"pk": "REDEMPTION#r_extra", "sk": "REDEMPTION"}
    broken[rolled_back]["status"] = "SUCCEEDED"
    other = next(k for k, v in stored.items() if k[1] == "REDEMPTION" and k not in (rolled_back, single))
    broken[other]["redemption_delivery"] = {"raw_zlib": zlib.compress(b'{"not": "sent"}')}

    problems = loadtest.compare_ledger(expected, broken, documents)

    assert any(p.startswith(f"missing {single[0]}") for p in problems)
    assert any(p.startswith("unexpected REDEMPTION#r_extra") for p in problems)
    assert any(p.startswith(f"{rolled_back[0]} / REDEMPTION differs: status") for p in problems)
    assert any(p.startswith(f"{other[0]} / REDEMPTION: the stored delivery is none") for p in problems)


def test_expected_ledger_does_not_depend_on_arrival_order() -> None:
    corpus = build_corpus(80, seed=9)
    shuffled = copy.copy(corpus)
    shuffled.deliveries = list(reversed(corpus.deliveries))
    assert loadtest.expected_ledger([corpus]) == loadtest.expected_ledger([shuffled])
    assert corpus.stats["rollbacks_before_their_redemption"] > 0


def test_answer_check_flags_a_healthy_5xx_a_faulted_2xx_and_a_double_record() -> None:
    corpus = build_corpus(10, seed=3, duplicate_share=0.0)
    first, second = corpus.deliveries[0], corpus.deliveries[1]
    faults = loadtest.DynamoFaults(0.5)
    faults.by_attempt = {"1.1": ["throttling"]}
    attempts = [
        loadtest.Attempt(0, 1, 503, 0.01),
        loadtest.Attempt(0, 2, 200, 0.01, {"status": "recorded"}),
        loadtest.Attempt(1, 1, 200, 0.01, {"status": "recorded"}),
        *[loadtest.Attempt(i, 1, 200, 0.01, {"status": "recorded"}) for i in range(2, len(corpus.deliveries))],
        loadtest.Attempt(0, 3, 200, 0.01, {"status": "recorded"}),
    ]
    result = loadtest.SendResult(attempts, 1.0, unsent=0, gave_up=0)

    problems, answers = loadtest.check_answers(corpus, result, faults)

    assert any(f"0.1 ({first.entity}): 503 while storage was healthy" in p for p in problems)
    assert any(f"1.1 ({second.entity}): 200 despite faults" in p for p in problems)
    assert any(p.startswith(f"{first.entity} answered 'recorded' 2 times: 0.1 503 [];") for p in problems)
    assert answers["503"] == 1


def test_a_connection_error_is_resent_and_counted_not_a_problem() -> None:
    corpus = build_corpus(10, seed=3, duplicate_share=0.0)
    reset = "ConnectionResetError: [Errno 104] Connection reset by peer"
    attempts = [
        loadtest.Attempt(0, 1, None, 1.05, error=reset),  # handled or not: the sender cannot know
        loadtest.Attempt(0, 2, 200, 0.01, {"status": "duplicate"}),  # it was: the resend is a duplicate
        loadtest.Attempt(1, 1, None, 0.01, error="RemoteDisconnected: Remote end closed connection"),
        loadtest.Attempt(1, 2, 200, 0.01, {"status": "recorded"}),
        *[loadtest.Attempt(i, 1, 200, 0.01, {"status": "recorded"}) for i in range(2, len(corpus.deliveries))],
    ]
    result = loadtest.SendResult(attempts, 1.0, unsent=0, gave_up=0)

    problems, answers = loadtest.check_answers(corpus, result, None)

    assert problems == []
    assert answers == {"200 recorded": len(corpus.deliveries) - 1, "200 duplicate": 1}
    assert loadtest.connection_errors(result) == {"ConnectionResetError": 1, "RemoteDisconnected": 1}
    # never answered at all: that is a problem (the sender gave up), as is a second 'recorded'
    gave_up = loadtest.SendResult([*attempts[:1], *attempts[4:]], 1.0, unsent=0, gave_up=1)
    assert "1 deliveries never got a 2xx" in loadtest.check_answers(corpus, gave_up, None)[0]
    twice = loadtest.SendResult([*attempts, loadtest.Attempt(1, 3, 200, 0.01, {"status": "recorded"})], 1.0, 0, 0)
    (problem,) = loadtest.check_answers(corpus, twice, None)[0]
    attempts_seen = "1.1 no answer []; 1.2 200 recorded []; 1.3 200 recorded []"
    assert problem == f"{corpus.deliveries[1].entity} answered 'recorded' 2 times: {attempts_seen}"


def test_a_write_the_sdk_retried_after_a_late_answer_may_be_answered_duplicate(aws: Aws) -> None:
    """On a loaded machine moto's answer can come after the functions' read timeout: botocore retries the
    conditional write the first try applied, and the delivery that wrote the item hears ``duplicate``. The run
    counts the retry and does not expect that entity's ``recorded``."""
    retries = loadtest.SdkRetries()
    events = aws.dynamodb.meta.events
    events.register("needs-retry.dynamodb", retries._needs_retry)
    late = iter([True])

    def answer_late(request: Any, **_: Any) -> None:  # after moto (a handler of before-send) applied the write
        target = request.headers.get("X-Amz-Target") or b""
        if target.endswith(b".UpdateItem" if isinstance(target, bytes) else ".UpdateItem") and next(late, False):
            raise ReadTimeoutError(endpoint_url=request.url)  # ... its answer is lost

    events.register_last("before-send", answer_late)
    data = EventRedemptionSucceededData.model_validate(payload("redemption_succeeded"))
    delivery = Delivery(raw=b"{}", route="redemption-succeeded", received_at=loadtest_now())
    handler = retries._wrap(lambda event, context: aws.ledger.record_redemption(data, delivery))

    outcome = handler({"headers": {loadtest.TAG_HEADER: "0.1"}}, None)

    assert outcome.status == "duplicate" and len(aws.items()) == 1  # its own write, retried
    assert (retries.kinds, retries.by_attempt) == ({"ReadTimeoutError": 1}, {"0.1": 1})
    corpus = build_corpus(10, seed=3, duplicate_share=0.0)
    attempts = [loadtest.Attempt(i, 1, 200, 0.01, {"status": "recorded"}) for i in range(1, len(corpus.deliveries))]
    result = loadtest.SendResult([loadtest.Attempt(0, 1, 200, 0.01, {"status": "duplicate"}), *attempts], 1.0, 0, 0)
    assert loadtest.check_answers(corpus, result, None, retries)[0] == []
    (problem,) = loadtest.check_answers(corpus, result, None)[0]
    assert problem.endswith("never answered 'recorded': 0.1 200 duplicate []")


@pytest.mark.parametrize("server", ["local API", "fake Voucherify"])
def test_a_burst_of_connections_is_queued_while_the_server_is_busy(server: str) -> None:
    """16 loadtest senders connect at once while the accept loop waits for the GIL. With socketserver's
    listen backlog of 5 the kernel dropped the 7th SYN; a second later, the queue still full, a sender got
    ``Connection reset by peer`` and its delivery no answer. No accept loop runs here: the backlog alone
    must hold the burst."""
    from ledger_tools import fake_voucherify, local_stack

    if server == "local API":
        listening: Any = local_stack._ApiServer(("127.0.0.1", 0), stack=None)  # type: ignore[arg-type]
    else:
        listening = fake_voucherify._Server(("127.0.0.1", 0), FakeVoucherify())
    with listening, contextlib.ExitStack() as connections:
        for _ in range(40):  # 16 senders, a batch's 10 worker threads: with room to spare
            connections.enter_context(socket.create_connection(listening.server_address, timeout=0.5))


# --- the fault hook, on a handler-like client -------------------------------------------------------------
def _rollback_data() -> EventRedemptionRollbackSucceededData:
    corpus = build_corpus(40, seed=11, duplicate_share=0.0)
    data = next(iter(corpus.rollbacks.values()))
    return EventRedemptionRollbackSucceededData.model_validate(data)


def _in_handler(faults: loadtest.DynamoFaults, call: Any) -> tuple[Any, list[str]]:
    """Runs ``call`` as the wrapped handler would, tagged as delivery 0.1; returns its result and the faults."""
    outcome: list[Any] = []
    handler = faults._wrap(lambda event, context: outcome.append(call()))
    try:
        handler({"headers": {loadtest.TAG_HEADER: "0.1"}}, None)
    except Exception as exc:
        outcome.append(exc)
    return outcome[0], faults.by_attempt["0.1"]


@pytest.mark.parametrize(
    ("kind", "codes"),
    [
        ("throttling", ("ThrottlingException", "ProvisionedThroughputExceededException")),
        ("transaction_conflict", ("TransactionConflictException",)),  # a rollback is one UpdateItem
    ],
)
def test_an_injected_write_fault_is_a_storage_error_and_writes_nothing(
    aws: Aws, kind: str, codes: tuple[str, ...]
) -> None:
    faults = loadtest.DynamoFaults(1.0, kinds=[kind])
    faults.enabled = True
    aws.dynamodb.meta.events.register("before-call.dynamodb", faults._before)
    aws.dynamodb.meta.events.register("after-call.dynamodb", faults._after)
    data = _rollback_data()
    delivery = Delivery(raw=b"{}", route="redemption-rollback-succeeded", received_at=loadtest_now())

    raised, injected = _in_handler(faults, lambda: aws.ledger.record_rollback(data, delivery))

    assert injected == [kind]
    assert isinstance(raised, StorageError) and any(code in str(raised) for code in codes)  # 503, not "duplicate"
    assert aws.items() == []


def test_a_lost_answer_is_written_but_raises_and_the_resend_is_a_duplicate(aws: Aws) -> None:
    faults = loadtest.DynamoFaults(1.0, kinds=["lost_answer"])
    faults.enabled = True
    aws.dynamodb.meta.events.register("before-call.dynamodb", faults._before)
    aws.dynamodb.meta.events.register("after-call.dynamodb", faults._after)
    data = _rollback_data()
    delivery = Delivery(raw=b"{}", route="redemption-rollback-succeeded", received_at=loadtest_now())

    raised, injected = _in_handler(faults, lambda: aws.ledger.record_rollback(data, delivery))

    assert injected == ["lost_answer"] and isinstance(raised, StorageError)
    assert isinstance(raised.__cause__, ReadTimeoutError)
    (item,) = aws.items()  # the redemption with its rollback: written whole
    assert f"rollback#{data.redemption_rollback.id}" in item
    faults.enabled = False
    assert aws.ledger.record_rollback(data, delivery).status == "duplicate"
    assert aws.items() == [item]


def loadtest_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# --- moto's server under concurrent writes --------------------------------------------------------------
def test_moto_server_keeps_concurrent_writes_when_a_transaction_fails(clean_env: None) -> None:
    """Without ``serialize_moto_dynamodb`` moto puts back a whole-table copy when a transaction fails, undoing
    the writes other threads made meanwhile (found by the load test: redemptions recorded, then gone)."""
    from moto.server import ThreadedMotoServer

    serialize_moto_dynamodb()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client(
            "dynamodb",
            endpoint_url=f"http://{host}:{port}",
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        create_table(client, table_name="concurrency")
        client.put_item(TableName="concurrency", Item={"pk": {"S": "taken"}, "sk": {"S": "x"}})
        failing = {
            "Put": {
                "TableName": "concurrency",
                "Item": {"pk": {"S": "taken"}, "sk": {"S": "x"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

        def cancel_transactions() -> None:
            for _ in range(60):
                with pytest.raises(ClientError):
                    client.transact_write_items(TransactItems=[failing])

        canceller = threading.Thread(target=cancel_transactions)
        canceller.start()
        for n in range(60):
            client.put_item(TableName="concurrency", Item={"pk": {"S": f"item-{n}"}, "sk": {"S": "x"}})
        canceller.join(30)

        items = client.scan(TableName="concurrency", ConsistentRead=True)["Items"]
        assert len(items) == 61, json.dumps(sorted(i["pk"]["S"] for i in items))
    finally:
        server.stop()
