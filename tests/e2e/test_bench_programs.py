"""The benchmark's child programs run and report: the floor, a function answering the first seed event from
its stubs, the worker stack serving moto and the fake from their own processes."""

from __future__ import annotations

import pytest

from ledger_dev import bench


@pytest.mark.parametrize("logical_id", bench.COLD_FUNCTIONS)
def test_the_floor_child_runs_and_reports(logical_id: str) -> None:
    answer = bench.run_child(bench.child_script(logical_id, floor=True), bench.child_environment(logical_id))
    assert answer["init_ms"] > 0 and answer["rss_kb"] > 0 and answer["first_ms"] is None


def test_the_function_child_imports_the_handler_and_answers_the_first_seed_event_from_the_stubs() -> None:
    logical_id = "RedemptionSucceededFunction"
    event = next(s.event for s in bench.seed_events() if s.function == logical_id)
    for floor in (False, True):
        script = bench.child_script(logical_id, floor=floor, first_event=event)
        answer = bench.run_child(script, bench.child_environment(logical_id))
        assert answer["init_ms"] > 0 and answer["first_ms"] > 0  # the child asserts the handler answered 200


@pytest.mark.parametrize("logical_id", bench.WEBHOOK_FUNCTIONS)
def test_the_textbook_webhook_child_answers_the_first_seed_event_of_either_route(logical_id: str) -> None:
    event = next(s.event for s in bench.seed_events() if s.function == logical_id)
    script = bench.child_script(logical_id, floor=False, first_event=event, textbook=True)
    assert "textbook" in script.args[1]
    answer = bench.run_child(script, bench.child_environment(logical_id))
    assert answer["init_ms"] > 0 and answer["first_ms"] > 0  # the child asserts the textbook answered 200


@pytest.mark.parametrize("logical_id", [bench.WORKER_FUNCTION, bench.RECONCILER_FUNCTION, bench.LEDGER_EVENTS_FUNCTION])
def test_the_worker_reconciler_and_ledger_events_children_import_their_handlers(logical_id: str) -> None:
    scripts = [bench.child_script(logical_id, floor=False)]
    if logical_id in bench.TEXTBOOK_OF:
        scripts.append(bench.child_script(logical_id, floor=False, textbook=True))
    for script in scripts:
        answer = bench.run_child(script, bench.child_environment(logical_id))
        assert answer["init_ms"] > 0 and answer["rss_kb"] > 0


def test_the_worker_stack_serves_moto_and_the_fake_from_their_own_processes() -> None:
    """The worker's figures: the handler in this process, moto's server and the fake Voucherify in children."""
    import io
    import json
    from contextlib import redirect_stdout

    from ledger_dev.harness.apigw import LambdaContext

    with bench.worker_stack(600, 0.0) as (services, (sqs, queue_url), loader):
        assert services.aws.url != services.url and services.url.startswith("http://127.0.0.1:")
        assert sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        handler = loader()
        before = services.cpu()
        event = bench._sqs_event([json.dumps({"redemption_id": f"r_stack{i:04d}"}) for i in range(3)], 0)
        with redirect_stdout(io.StringIO()):
            answer = handler(event, LambdaContext(function_name=bench.WORKER_FUNCTION, timeout_seconds=30))
        assert answer == {"batchItemFailures": []}
        assert sorted((r.redemption_id, r.status) for r in services.requests) == [
            (f"r_stack{i:04d}", 200) for i in range(3)
        ]
        after = services.cpu()
        assert after[0] > before[0]  # moto's process did the DynamoDB work
    assert services.aws._process.poll() is not None and services.fake._process.poll() is not None  # stopped


def test_the_warm_section_reports_the_floor_and_the_reachable_floor_of_every_webhook_function() -> None:
    report = bench.Report(repeat=1)
    events = bench.seed_events()
    bench.measure_warm(report, 1, events)
    rows = {row.what: row for row in report.rows}
    assert {row.section for row in report.rows} == {"warm"}
    for function in bench.WEBHOOK_FUNCTIONS:
        for seed in (s for s in events if s.function == function):
            assert rows[seed.name].target == bench.TARGETS["warm"]
        everything = rows[f"{function} (all seed events)"]
        reachable = rows[f"{function} reachable floor"]
        against_it = rows[f"{function} vs reachable floor"]
        assert everything.target == bench.TARGETS["warm"]
        assert "HMAC + validation" in everything.note
        assert reachable.floor == everything.floor  # the same plain floor
        assert against_it.value == everything.value and against_it.floor == reachable.value
        assert everything.textbook and everything.textbook > 0  # the textbook webhook, in the same child
        assert reachable.target is None and against_it.target is None  # shown, not held to a target
        assert all(v and v > 0 for v in (everything.value, everything.floor, reachable.value))


def test_the_worker_capacity_counts_the_real_worker_and_the_textbook_against_moto_and_the_fake() -> None:
    """Whatever pattern the worker has: a new rollback makes one API call and DynamoDB calls that cost write units;
    its message redelivered makes no API call and no more DynamoDB calls than the rollback did."""
    report = bench.Report(repeat=1)
    found = bench.measure_worker_capacity(report, 1)
    for side in ("bundle", "textbook"):
        rollback, redelivery = found[side].rollback, found[side].redelivery
        assert found[side].api_calls == 1
        assert rollback.call_count >= 1 and rollback.write_units >= rollback.call_count - rollback.calls.count(
            "GetItem"
        )
        assert 1 <= redelivery.call_count <= rollback.call_count
    rows = {row.what: row for row in report.rows}
    assert rows["worker rollback: DynamoDB calls"].target == bench.TARGETS["worker_calls"]
    assert rows["worker rollback: write units"].textbook == found["textbook"].rollback.write_units
    assert rows["redelivered rollback request: DynamoDB calls"].value == found["bundle"].redelivery.call_count


def test_the_capacity_section_runs_every_seed_through_the_bundle_and_the_textbook() -> None:
    report = bench.Report(repeat=1)
    found = bench.measure_capacity(report, bench.seed_events())
    assert {f.bundle.status for f in found} == {"recorded", "duplicate"}
    assert all(f.textbook.status == "200" and f.textbook.write_units >= 1 for f in found)
    rows = {row.what: row for row in report.rows}
    duplicate = rows["duplicate delivery: DynamoDB calls"]
    assert duplicate.target == bench.TARGETS["duplicate_calls"] and duplicate.textbook is not None
    assert rows["new redemption: write units"].value == max(
        f.bundle.write_units
        for f in found
        if f.bundle.status == "recorded" and f.seed.function == bench.WEBHOOK_FUNCTIONS[0]
    )


def test_the_end_to_end_rounds_send_through_the_local_api_for_the_bundle_and_the_textbook() -> None:
    report = bench.Report(repeat=1)
    sides = bench.measure_end_to_end(report, rounds=1, seconds=0.3)
    for side in sides.values():
        assert side.sent > 0 and side.ok == side.sent  # every delivery new and answered 200
        assert 0 < side.function_cpu < side.stack_cpu  # the function's share of the stack's CPU, moto's the rest
    (rate, cpu) = report.rows
    assert rate.minimum and rate.value and rate.textbook and "moto" in rate.note
    assert cpu.value == pytest.approx(sides["bundle"].function_cpu / sides["bundle"].sent * 1000)
