"""`make loadtest` in small: the ledger stays exact under concurrent, duplicated, reordered deliveries, under
DynamoDB faults, under attack and with a misbehaving Voucherify; and the checks themselves notice what they must
notice."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import socket
import threading
import time
import zlib
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from ledger_dev import loadtest
from ledger_dev.fake_voucherify import FakeVoucherify
from ledger_dev.harness.moto_patches import serialize_moto_dynamodb
from ledger_dev.harness.template import create_table
from ledger_dev.local_stack import LocalConfig, LocalStack
from ledger_dev.payloads.corpus import build_corpus
from support.documents import payload
from support.functions import Aws
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.dynamo import StorageError
from voucherify_ledger.ledger.quarantine import quarantine_id_for
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData, EventRedemptionSucceededData
from voucherify_ledger.settings import WebhookSettings
from voucherify_ledger.webhooks.auth import strip_json_whitespace


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SAM_LOCAL", "VOUCHERIFY_API_URL"):
        monkeypatch.delenv(name, raising=False)


def test_small_load_fault_hostile_and_chaos_runs_leave_the_ledger_exact(clean_env: None) -> None:
    options = loadtest.Options(
        deliveries=240,
        fault_deliveries=120,
        fault_share=0.2,
        chaos_requests=15,
        senders=16,
        hostile_deliveries=60,
        hostile_requests=60,
        attackers=2,
        max_seconds=120,
    )

    reports = {report.name: report for report in loadtest.run(options)}

    assert list(reports) == ["load", "faults", "hostile", "chaos"]
    for report in reports.values():
        assert report.ok, (report.name, report.problems[:10])
    load, faults, chaos = reports["load"].figures, reports["faults"].figures, reports["chaos"].figures
    assert load["deliveries"] == 240 and load["duplicates"] == 72
    assert load["rollbacks_before_their_redemption"] > 0
    assert set(load["discounts"]) == {"PERCENT", "AMOUNT", "UNIT", "FIXED"}
    assert load["stacks"] > 0 and load["null_customers"] > 0 and load["envelopes"] and load["bare"]
    assert load["failed_redemptions"] > 0 and load["failed_rollbacks"] > 0 and load["gift_card_redemptions"] > 0
    assert set(load["loyalty_redemptions"]) == {"points", "material", "gift_credits"}
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


def test_ledger_comparison_finds_a_wrong_share_a_counted_failure_and_a_failed_rollback_that_rolled_back() -> None:
    """The expected ledger says what the corpus made (its ``truth``), not what the ledger's summaries compute: a
    stack child holding the order's running total, a failed attempt recorded SUCCEEDED or with a discount, a failed
    rollback that flipped its redemption, a gift card rollback that gave nothing back — each is a difference."""
    corpus = build_corpus(400, seed=5)
    documents = loadtest._documents([corpus])
    expected = loadtest.expected_ledger([corpus])
    stored = _ledger_as_stored(corpus)
    assert loadtest.compare_ledger(expected, stored, documents) == []
    key = {pk.removeprefix("REDEMPTION#"): (pk, sk) for pk, sk in stored}
    later_child = next(
        child
        for children in corpus.stacks.values()
        for child in children[1:]
        if child in corpus.redemptions and (corpus.redemptions[child]["order"] or {}).get("total_discount_amount")
    )
    failed = next(r for r in corpus.failed if r.startswith("rf_") and r in key)
    failed_rollback = next(r for r in corpus.failed if r.startswith("rrf_"))
    rolled_back_anyway = key[corpus.rollbacks[failed_rollback]["redemption_rollback"]["redemption"]]
    gift_rollback = next(r for r, t in corpus.truth.items() if t.get("credits_restored"))
    gift = key[corpus.rollbacks[gift_rollback]["redemption_rollback"]["redemption"]]
    broken = copy.deepcopy(stored)
    broken[key[later_child]]["discount_amount"] = corpus.redemptions[later_child]["order"]["total_discount_amount"]
    broken[key[failed]].update(status="SUCCEEDED", discount_amount=100)
    broken[rolled_back_anyway]["status"] = "ROLLED_BACK"
    broken[rolled_back_anyway]["rollback_ids"] = [failed_rollback]
    broken[gift][f"rollback#{gift_rollback}"].pop("credits_restored")

    problems = loadtest.compare_ledger(expected, broken, documents)

    assert any(p.startswith(f"{key[later_child][0]} / REDEMPTION differs: discount_amount") for p in problems)
    assert any(p.startswith(f"{key[failed][0]} / REDEMPTION differs: discount_amount") for p in problems)
    assert any(p.startswith(f"{rolled_back_anyway[0]} / REDEMPTION differs: rollback_ids") for p in problems)
    assert any(p.startswith(f"{gift[0]} / REDEMPTION differs: rollback#{gift_rollback}") for p in problems)


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
    handler = retries._wrap(lambda event, context: aws.ledger.redemptions.record(data, delivery))

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
    from ledger_dev.fake_voucherify import server as fake_voucherify
    from ledger_dev.harness import api_emulator as local_stack

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

    raised, injected = _in_handler(faults, lambda: aws.ledger.redemptions.record_rollback(data, delivery))

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

    raised, injected = _in_handler(faults, lambda: aws.ledger.redemptions.record_rollback(data, delivery))

    assert injected == ["lost_answer"] and isinstance(raised, StorageError)
    assert isinstance(raised.__cause__, ReadTimeoutError)
    (item,) = aws.items()  # the redemption with its rollback: written whole
    assert f"rollback#{data.redemption_rollback.id}" in item
    faults.enabled = False
    assert aws.ledger.redemptions.record_rollback(data, delivery).status == "duplicate"
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


# --- the hostile phase -----------------------------------------------------------------------------------
def test_a_small_hostile_run_is_answered_as_expected_and_leaves_the_ledger_exact(clean_env: None) -> None:
    options = loadtest.Options(
        phases=("hostile",), hostile_deliveries=120, hostile_requests=120, attackers=2, max_seconds=90
    )

    (report,) = loadtest.run(options)

    assert report.name == "hostile" and report.ok, report.problems[:10]
    figures = report.figures
    kinds = figures["attack_answers"]
    assert set(kinds) == {
        "crafted_256kb",
        "crafted_4kb",
        "forged_signature_with_token",
        "token_alone_on_redemption_url",
        "attacker_event_type",
        "unkeyable_redemption_id",
        "number_past_38_digits",
        "voucher_code_over_2048_bytes",
        "redemption_at_the_wrong_url",
        "rollback_at_the_wrong_url",
        "conflicting_duplicate",
        "raw_copy_out_of_line",
    }
    for kind in ("crafted_256kb", "crafted_4kb", "forged_signature_with_token", "token_alone_on_redemption_url"):
        assert set(kinds[kind]) == {"401 unauthorized"}, kind
    for kind in ("attacker_event_type", "unkeyable_redemption_id", "voucher_code_over_2048_bytes"):
        assert set(kinds[kind]) == {"202 quarantined"}, kind
    assert set(kinds["conflicting_duplicate"]) == {"200 duplicate"}
    assert kinds["raw_copy_out_of_line"]["200 recorded"] == 4
    for stream in ("baseline", "under_attack"):
        assert set(figures[stream]["answers"]) == {"200 recorded", "200 duplicate"}, stream  # never a 5xx, a 401
    assert figures["under_attack"]["rollbacks_by_token_alone"] > 0
    assert figures["under_attack"]["measured"] > 0 and figures["crafted_alone"]["256kb"]["answers"] == 20
    assert figures["answers_repeating_attacker_strings"] == 0
    assert figures["replayed"] == {"duplicate": 8}  # every wrong-URL delivery, back on its own route
    assert figures["conflict_records"] == 6 and figures["raw_items"] == 4 and figures["quarantine_records"] == 8
    assert figures["ledger_differences"] == 0 == figures["records_lost"]
    assert figures["ledger_items_scanned"] == figures["ledger_items_expected"] + 6 + 4 + 8


def test_the_hostile_run_fails_when_the_redemption_url_takes_the_token(clean_env: None) -> None:
    """The same run against a stack whose redemption URL accepts either credential (the defect the issue found):
    the token alone is then answered 200, and the forged redemption it carried is in the ledger. Both are noticed."""
    parameters = {**loadtest.CHAOS_PARAMETERS, "RedemptionWebhookAuth": "either", "LogLevel": "CRITICAL"}
    config = LocalConfig(aws_port=0, api_port=0, voucherify_port=0, parameter_overrides=parameters)
    with (
        loadtest.environment({**loadtest.CHAOS_ENVIRONMENT, **loadtest.QUIET_ENVIRONMENT}),
        LocalStack(config) as stack,
    ):
        report = loadtest.run_hostile_phase(
            stack, [], deliveries=60, requests=60, attackers=2, senders=2, seed=7, deadline=time.monotonic() + 60
        )

    assert not report.ok
    wrong = {p for p in report.problems if p.startswith("token_alone_on_redemption_url at redemption-succeeded")}
    assert (
        "token_alone_on_redemption_url at redemption-succeeded: answered 200 'recorded', want 401 unauthorized" in wrong
    )
    assert any("the answer repeats 'r_" in p for p in wrong)  # the forged redemption's id, now recorded
    assert sum(1 for p in report.problems if p.startswith("unexpected REDEMPTION#r_")) == 2  # bare and envelope
    assert report.figures["ledger_differences"] == 2


def test_a_crafted_body_is_the_largest_of_its_shape_the_webhooks_read() -> None:
    large, small = loadtest.crafted_body(loadtest.CRAFTED_LARGE_BYTES), loadtest.crafted_body(4_096)
    assert len(large) == loadtest.CRAFTED_LARGE_BYTES <= WebhookSettings.model_fields["max_body_bytes"].default
    assert len(small) == 4_095 and large.startswith(b'"\\"\\"') and large.endswith(b'\\"')
    assert strip_json_whitespace(large) == large  # never a closed string, nothing to strip: the scan's worst case


def _case(**overrides: Any) -> loadtest.HostileCase:
    fields: dict[str, Any] = {
        "kind": "attacker_event_type",
        "route": "redemption-succeeded",
        "body": b'{"event":{"type":"mallory@attacker.example"},"data":{}}',
        "credentials": (),
        "status": 202,
        "answer": "quarantined",
        "reason": loadtest.WRONG_EVENT_TYPE,
        "attacker_strings": (loadtest.ATTACKER_EVENT_TYPE,),
    }
    fields.update(overrides)
    if fields["status"] == 202 and "quarantine_id" not in overrides:
        fields["quarantine_id"] = quarantine_id_for(fields["body"])
    return loadtest.HostileCase(**fields)


def _answer(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return body, json.dumps(body, separators=(",", ":"))


def test_hostile_answer_check_wants_the_one_expected_answer() -> None:
    quarantined = _case()
    good = {"status": "quarantined", "quarantine_id": quarantined.quarantine_id, "reason": loadtest.WRONG_EVENT_TYPE}
    assert loadtest.check_hostile_answer(quarantined, 202, *_answer(good)) == []
    (problem,) = loadtest.check_hostile_answer(quarantined, 200, *_answer({"status": "recorded"}))
    assert problem == "attacker_event_type at redemption-succeeded: answered 200 'recorded', want 202 quarantined"
    (problem,) = loadtest.check_hostile_answer(quarantined, 202, *_answer({**good, "quarantine_id": "q_other"}))
    assert "quarantined as q_other" in problem
    (problem,) = loadtest.check_hostile_answer(quarantined, 202, *_answer({**good, "reason": "the payload is bad"}))
    assert "'the payload is bad'" in problem

    refused = _case(kind="crafted_256kb", status=401, answer="unauthorized", reason=loadtest.SIGNATURE_MISMATCH)
    unauthorized = {"status": "unauthorized", "error": loadtest.SIGNATURE_MISMATCH}
    assert loadtest.check_hostile_answer(refused, 401, *_answer(unauthorized)) == []
    (problem,) = loadtest.check_hostile_answer(refused, 401, *_answer({**unauthorized, "error": loadtest.SIGNED_ONLY}))
    assert problem.startswith("crafted_256kb at redemption-succeeded: 401 says 'missing x-voucherify-signature")
    assert loadtest.check_hostile_answer(refused, None, {}, "")  # no answer at all is not the answer either

    conflict = _case(
        kind="conflicting_duplicate", status=200, answer="duplicate", conflict_id="c_1", redemption_id="r_1"
    )
    duplicate = {"status": "duplicate", "redemption_id": "r_1", "conflict_id": "c_1"}
    assert loadtest.check_hostile_answer(conflict, 200, *_answer(duplicate)) == []
    (problem,) = loadtest.check_hostile_answer(conflict, 200, *_answer({**duplicate, "conflict_id": None}))
    assert problem.endswith("conflict_id None, want c_1")
    (problem,) = loadtest.check_hostile_answer(conflict, 200, *_answer({**duplicate, "redemption_id": "r_2"}))
    assert problem.endswith("answered for r_2, want r_1")

    storable = _case(kind="raw_copy_out_of_line", status=200, answer="recorded", redemption_id="r_1", storable=True)
    for status in ("recorded", "duplicate"):
        assert loadtest.check_hostile_answer(storable, 200, *_answer({"status": status, "redemption_id": "r_1"})) == []
    taken_for_a_conflict = {"status": "duplicate", "redemption_id": "r_1", "conflict_id": "c_9"}
    assert loadtest.check_hostile_answer(storable, 200, *_answer(taken_for_a_conflict))


def test_hostile_answer_check_finds_an_attacker_string_or_a_secret_repeated() -> None:
    code = "ŻÓŁW-" + "Ż" * 1_100
    case = _case(kind="voucher_code_over_2048_bytes", reason=loadtest.STORAGE_REFUSED, attacker_strings=(code,))
    good = {"status": "quarantined", "quarantine_id": case.quarantine_id, "reason": loadtest.STORAGE_REFUSED}
    echoed = {**good, "errors": [f"voucher_code: {code}"]}  # sent escaped (\u017b…): found once parsed
    assert "\\u017b" in json.dumps(echoed) and code not in json.dumps(echoed)
    (problem,) = loadtest.check_hostile_answer(case, 202, echoed, json.dumps(echoed))
    assert problem.startswith("voucher_code_over_2048_bytes at redemption-succeeded: the answer repeats 'ŻÓŁW-ŻŻ")

    event = _case()
    answer = {"status": "quarantined", "quarantine_id": event.quarantine_id, "reason": loadtest.WRONG_EVENT_TYPE}
    said = {**answer, "errors": ["event.type: got 'mallory@attacker.example', this URL accepts …"]}
    (problem,) = loadtest.check_hostile_answer(event, 202, *_answer(said))
    assert problem.endswith("the answer repeats 'mallory@attacker.example'")
    assert loadtest.check_hostile_answer(event, 202, *_answer(answer), never=("local-dev-token",)) == []
    with_token = {**answer, "errors": ["token local-dev-token"]}
    (problem,) = loadtest.check_hostile_answer(event, 202, *_answer(with_token), never=("local-dev-token",))
    assert problem.endswith("the answer repeats 'local-dev-token'")


def test_hostile_attempts_check_wants_every_case_answered_and_a_storable_one_recorded_once() -> None:
    refused = _case(kind="crafted_4kb", status=401, answer="unauthorized", reason=loadtest.SIGNATURE_MISMATCH)
    storable = _case(kind="raw_copy_out_of_line", status=200, answer="recorded", redemption_id="r_1", storable=True)
    plan = [refused, storable]
    unauthorized = {"status": "unauthorized", "error": loadtest.SIGNATURE_MISMATCH}

    def attempt(case: int, status: int | None, answer: dict[str, Any] | None) -> loadtest.HostileAttempt:
        return loadtest.HostileAttempt(case, status, 0.01, 0.0, answer, json.dumps(answer or {}))

    recorded = {"status": "recorded", "redemption_id": "r_1"}
    duplicate = {"status": "duplicate", "redemption_id": "r_1"}
    once = [attempt(0, 401, unauthorized), attempt(1, 200, recorded), attempt(1, 200, duplicate)]
    problems, answers = loadtest.check_hostile_attempts(plan, once)
    assert problems == []
    assert answers == {
        "crafted_4kb: 401 unauthorized": 1,
        "raw_copy_out_of_line: 200 recorded": 1,
        "raw_copy_out_of_line: 200 duplicate": 1,
    }
    twice = loadtest.check_hostile_attempts(plan, [*once, attempt(1, 200, recorded)])[0]
    assert twice == ["raw_copy_out_of_line r_1 answered 'recorded' 2 times"]
    never = loadtest.check_hostile_attempts(plan, [attempt(0, 401, unauthorized), attempt(1, 200, duplicate)])[0]
    assert never == ["raw_copy_out_of_line r_1 answered 'recorded' 0 times"]
    # its first answer lost (no answer, resent): a duplicate then is all it can hear
    lost = [attempt(0, 401, unauthorized), attempt(1, None, None), attempt(1, 200, duplicate)]
    assert loadtest.check_hostile_attempts(plan, lost)[0] == []
    unsent = loadtest.check_hostile_attempts(plan, [attempt(1, 200, recorded)])[0]
    assert unsent == ["crafted_4kb at redemption-succeeded (0) was never answered"]


def _now() -> datetime:
    return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_expected_ledger_is_what_the_layer_writes_for_a_corpus(aws: Aws) -> None:
    """expected_ledger (summaries, statuses, rollbacks, each redemption's digest) against the real ledger writes of
    a small corpus: exact. A digest that differs is a difference."""
    corpus = build_corpus(40, seed=12, duplicate_share=0.0)
    for delivery in corpus.deliveries:
        body = json.loads(delivery.body)
        data = body["data"] if delivery.envelope else body
        recorded = Delivery(raw=delivery.body, route=delivery.route, received_at=_now())
        if delivery.kind == "redemption":
            aws.ledger.redemptions.record(EventRedemptionSucceededData.model_validate(data), recorded)
        else:
            aws.ledger.redemptions.record_rollback(EventRedemptionRollbackSucceededData.model_validate(data), recorded)
    actual = loadtest.scan_ledger(aws.dynamodb, aws.table_name)
    expected = loadtest.expected_ledger([corpus])

    assert loadtest.compare_ledger(expected, actual, loadtest._documents([corpus])) == []
    key = next(iter(expected))
    expected[key]["redemption_digest"] = "0" * 32
    (problem,) = loadtest.compare_ledger(expected, actual, loadtest._documents([corpus]))
    assert problem.startswith(f"{key[0]} / REDEMPTION differs: redemption_digest")


def _planner(seed: int = 21) -> loadtest.HostilePlanner:
    baseline = build_corpus(60, seed=seed, duplicate_share=0.0)
    return loadtest.HostilePlanner(baseline, secret="s", token_header="x-voucherify-token", token="t", seed=seed)


def test_a_raw_copy_kept_out_of_line_is_compared_and_counted(aws: Aws) -> None:
    storable = _planner().storable(1)
    (delivery,) = storable.deliveries
    data = EventRedemptionSucceededData.model_validate(storable.redemptions[delivery.redemption_id])
    aws.ledger.redemptions.record(data, Delivery(raw=delivery.body, route=delivery.route, received_at=_now()))
    actual = loadtest.scan_ledger(aws.dynamodb, aws.table_name)
    (raw_key,) = [k for k in actual if k[1].startswith("RAW#")]  # the layer kept it out of line
    expected, documents = loadtest.expected_ledger([storable]), loadtest._documents([storable])

    caused, counts, problems = loadtest.hostile_ledger_items(actual, [])
    assert (caused, counts, problems) == ({raw_key}, {"raw_items": 1}, [])
    assert loadtest.compare_ledger(expected, actual, documents, allowed=caused) == []
    assert loadtest.compare_ledger(expected, actual, documents) == [f"unexpected {raw_key[0]} / {raw_key[1]}"]
    without = {k: v for k, v in actual.items() if k != raw_key}
    (problem,) = loadtest.compare_ledger(expected, without, documents)
    assert problem == f"{raw_key[0]} / REDEMPTION: redemption_delivery names {raw_key[1]}, which is missing"
    other = copy.deepcopy(actual)
    other[raw_key]["raw_zlib"] = zlib.compress(b'{"not": "sent"}')
    (problem,) = loadtest.compare_ledger(expected, other, documents, allowed=caused)
    assert problem.endswith("the stored delivery is none of those sent for " + f"redemption:{delivery.redemption_id}")
    # a RAW# item no audit names is not the attack's doing
    stray = {**actual, (raw_key[0], "RAW#" + "0" * 64): dict(actual[raw_key])}
    assert loadtest.hostile_ledger_items(stray, [])[0] == {raw_key}


def test_hostile_ledger_check_finds_each_record_of_the_attack_and_what_is_wrong_with_it(aws: Aws) -> None:
    planner = _planner()
    target = planner.recorded("redemption")[0]
    first = EventRedemptionSucceededData.model_validate(planner.baseline.redemptions[target.redemption_id])
    aws.ledger.redemptions.record(first, Delivery(raw=target.body, route=target.route, received_at=_now()))
    changed = copy.deepcopy(planner.baseline.redemptions[target.redemption_id])
    changed["redemption"]["amount"] = (changed["redemption"].get("amount") or 0) + 1_000
    conflicting = json.dumps(changed).encode()
    outcome = aws.ledger.redemptions.record(
        EventRedemptionSucceededData.model_validate(changed),
        Delivery(raw=conflicting, route=target.route, received_at=_now()),
    )
    assert outcome.conflict_id == "c_" + hashlib.sha256(conflicting).hexdigest()[:32]
    conflict = _case(
        kind="conflicting_duplicate",
        body=conflicting,
        status=200,
        answer="duplicate",
        conflict_id=outcome.conflict_id,
        redemption_id=target.redemption_id,
    )
    event = _case()
    wrong_url = _case(kind="redemption_at_the_wrong_url", body=target.body, attacker_strings=(), replay_route="x")
    for case in (event, wrong_url):
        aws.ledger.quarantine.keep(
            Delivery(raw=case.body, route=case.route, received_at=_now()),
            ["event.type: not a Voucherify event name"],
            retention_days=30,
            reason=loadtest.WRONG_EVENT_TYPE,
        )
    actual = loadtest.scan_ledger(aws.dynamodb, aws.table_name)
    plan = [conflict, event, wrong_url]

    caused, counts, problems = loadtest.hostile_ledger_items(actual, plan)
    assert problems == [] and counts == {"quarantine_records": 2, "conflict_records": 1}
    assert caused == {k for k in actual if k[1] != "REDEMPTION"}

    # replayed onto its route, its record must be gone
    problems = loadtest.hostile_ledger_items(actual, plan, replayed=[wrong_url.quarantine_id])[2]
    assert problems == [
        f"redemption_at_the_wrong_url {wrong_url.quarantine_id}: replayed onto x, yet still quarantined"
    ]
    # a record missing, with another reason, repeating the attacker's string, naming its event type
    key = ("QUARANTINE#" + str(event.quarantine_id), "QUARANTINE")
    missing = {k: v for k, v in actual.items() if k != key}
    assert loadtest.hostile_ledger_items(missing, plan)[2] == [
        f"attacker_event_type {event.quarantine_id}: answered 202, but no quarantine record"
    ]
    for change, wanted in (
        ({"reason": "the payload is bad"}, "recorded as redemption-succeeded 'the payload is bad'"),
        ({"errors": ["event.type: got 'mallory@attacker.example'"]}, "the record repeats 'mallory@attacker.example'"),
        ({"event_type": "mallory@attacker.example"}, "the record names event type 'mallory@attacker.example'"),
        ({"raw_zlib": zlib.compress(b"{}")}, "the record's raw copy is not the delivery"),
    ):
        broken = copy.deepcopy(actual)
        broken[key].update(change)
        problems = loadtest.hostile_ledger_items(broken, plan)[2]
        assert any(wanted in p for p in problems), (change, problems)
    # the conflict record: absent, or not the conflicting delivery's
    conflict_key = next(k for k in actual if k[1].startswith("CONFLICT#"))
    gone = {k: v for k, v in actual.items() if k != conflict_key}
    (problem,) = loadtest.hostile_ledger_items(gone, plan)[2]
    assert problem.startswith(f"conflicting_duplicate {target.redemption_id}: answered conflict_id")
    other = copy.deepcopy(actual)
    other[conflict_key]["delivery"]["raw_zlib"] = zlib.compress(target.body)
    (problem,) = loadtest.hostile_ledger_items(other, plan)[2]
    assert problem.endswith("the conflict record's raw copy is not the conflicting delivery")


def test_the_planned_attack_expects_what_each_request_must_get() -> None:
    """Each case's expectation is derived from its own bytes: the quarantine id a hash of the body, the conflict id
    a hash of the conflicting delivery; a conflict names a redemption the baseline recorded, with another amount."""
    planner = _planner()
    plan, storable = planner.cases()
    assert {c.kind for c in plan} >= {"crafted_256kb", "conflicting_duplicate", "rollback_at_the_wrong_url"}
    for case in plan:
        if case.status == 202:
            assert case.quarantine_id == quarantine_id_for(case.body) and case.reason
        if case.conflict_id:
            assert case.conflict_id == "c_" + hashlib.sha256(case.body).hexdigest()[:32]
            original = planner.baseline.redemptions[str(case.redemption_id)]["redemption"]
            assert json.loads(case.body).get("data", json.loads(case.body))["redemption"]["amount"] != original.get(
                "amount"
            )
        if case.replay_route:
            assert case.body in {d.body for d in planner.baseline.deliveries} and case.replay_route != case.route
        if case.status == 401:
            assert case.reason in (loadtest.SIGNATURE_MISMATCH, loadtest.SIGNED_ONLY)
    assert {c.redemption_id for c in plan if c.storable} == set(storable.redemptions)
    for delivery in storable.deliveries:
        assert len(zlib.compress(delivery.body)) > 32 * 1024  # the layer's INLINE_RAW_BYTES: kept out of line
