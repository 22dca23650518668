"""`make bench` leaves the checkout as it was: its report goes to a git-ignored folder unless it is published."""

from __future__ import annotations

import fnmatch

from ledger_dev.bench.seeds import REPORT_PATH
from ledger_dev.harness.template import PROJECT_ROOT


def test_the_default_report_is_written_where_git_ignores_it() -> None:
    relative = REPORT_PATH.relative_to(PROJECT_ROOT).as_posix()
    ignored = [line.strip() for line in (PROJECT_ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()]
    top = relative.split("/")[0] + "/"
    assert any(fnmatch.fnmatch(top, pattern) for pattern in ignored if pattern and not pattern.startswith("#"))
    assert not relative.startswith("docs/")


def test_bench_publish_writes_the_committed_report() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "ledger_dev.bench --output docs/PERFORMANCE.md" in makefile.split("bench-publish:")[1].split("\n\n")[0]


def test_the_report_carries_the_cost_table_with_its_prices_date_and_explains_the_textbook() -> None:
    from ledger_dev.bench import Report, markdown
    from ledger_dev.bench.cost import PRICES, Usage, line

    report = Report(1, costs=[line("deliveries", "bundle", Usage(http_requests=1)), line("x", "textbook", None)])
    text = markdown(report, "python -m ledger_dev.bench")
    assert f"## Cost per million (list prices, {PRICES.region}, as published on {PRICES.date})" in text
    assert "| deliveries | bundle | $1.00 |" in text
    how_to_read = text.split("## How to read it")[1]
    assert "textbook" in how_to_read and "Cost per million" in how_to_read
    assert "## Cost per million" not in markdown(Report(1), "x")  # no cost table without its figures
