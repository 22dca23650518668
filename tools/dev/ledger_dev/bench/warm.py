"""Warm cost per seed event against the plain and the reachable floor and the textbook, in one child per webhook
function (``programs/warm_handler.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from ledger_dev.bench.children import ChildScript, child_environment, run_child
from ledger_dev.bench.cold import first_answers
from ledger_dev.bench.report import TARGETS, Report, Row, median, ratio
from ledger_dev.bench.seeds import LAYER_DIR, WEBHOOK_FUNCTIONS, SeedEvent, function_dir
from ledger_dev.bench.textbook import textbook_dir
from ledger_dev.harness.template import PROJECT_ROOT


def measure_warm(report: Report, repeat: int, events: Sequence[SeedEvent]) -> None:
    """Warm cost per seed event vs json.loads + put_item through the same client and vs the textbook webhook, in one
    child per function; every AWS call answered in-process."""
    for logical_id in WEBHOOK_FUNCTIONS:
        mine_events = [s for s in events if s.function == logical_id]
        spec = {
            "paths": [str(LAYER_DIR), str(function_dir(logical_id)), str(PROJECT_ROOT / "tools" / "dev")],
            "textbook": str(textbook_dir(logical_id) / "app.py"),
            "events": [s.event for s in mine_events],
            "answers": first_answers(logical_id),
            "function": logical_id,
            "repeat": repeat,
            "inner": 20,
        }
        script = ChildScript("warm_handler.py", spec=spec)
        answer = run_child(script, child_environment(logical_id))
        for i, seed in enumerate(mine_events):
            mine = median(answer["mine"][str(i)]) * 1000
            floor = median(answer["floor"][str(i)]) * 1000
            textbook = median(answer["textbook"][str(i)]) * 1000
            report.add(
                Row(
                    "warm",
                    f"{seed.name}",
                    mine,
                    floor,
                    "ms",
                    TARGETS["warm"],
                    note=f"{logical_id}, {repeat}×20",
                    textbook=textbook,
                )
            )
        all_mine = median(v for values in answer["mine"].values() for v in values) * 1000
        all_textbook = median(v for values in answer["textbook"].values() for v in values) * 1000
        all_floor = median(v for values in answer["floor"].values() for v in values) * 1000
        all_reachable = median(v for values in answer["reachable"].values() for v in values) * 1000
        reachable_ratio = ratio(all_reachable, all_floor) or 0.0
        report.add(
            Row(
                "warm",
                f"{logical_id} (all seed events)",
                all_mine,
                all_floor,
                "ms",
                TARGETS["warm"],
                note=f"HMAC + validation alone already cost {reachable_ratio:.2f}× this floor (next row); textbook:"
                " every delivery new (3 DynamoDB calls answered in-process)",
                textbook=all_textbook,
            ),
            Row(
                "warm",
                f"{logical_id} reachable floor",
                all_reachable,
                all_floor,
                "ms",
                note="floor + HMAC check (cached secret) + Powertools-parser validation: what any handler meeting the"
                " spec must do before it writes",
            ),
            Row(
                "warm",
                f"{logical_id} vs reachable floor",
                all_mine,
                all_reachable,
                "ms",
                note="what the handler adds to that: zlib of the raw delivery, the ledger's real write instead of a"
                " 3-attribute put_item, one Logger line, one EMF flush",
            ),
        )
