"""The benchmark's warm section runs the real handlers on every seed event and reports, per function, the ratio to
the plain floor (held to the target) and to the reachable floor (no timing assertions: the machine may be busy)."""

from __future__ import annotations

from ledger_dev import bench


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
        assert reachable.target is None and against_it.target is None  # shown, not held to a target
        assert all(v and v > 0 for v in (everything.value, everything.floor, reachable.value))
