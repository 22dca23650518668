"""The bench's cost per million: Lambda's billed duration from measured CPU, every priced thing at its list price,
the table with the prices' date and what is assumed."""

from __future__ import annotations

import math

import pytest

from ledger_dev.bench import cost


def test_billed_duration_stretches_cpu_by_the_memory_share_adds_the_waits_and_rounds_up() -> None:
    assert cost.billed_ms(1.0, 0.0, 512) == math.ceil(1769 / 512)  # 3.46 → 4 ms at 512 MB
    assert cost.billed_ms(1.0, 5.0, 512) == 9
    assert cost.billed_ms(1.0, 0.0, 3538) == 1  # a whole vCPU or more: no stretch
    assert cost.billed_ms(0.0, 0.0, 512) == 1  # Lambda bills at least 1 ms
    assert cost.gb_seconds(1000, 1024) == 1.0
    assert cost.gb_seconds(100, 512) == 0.05


def test_every_priced_thing_costs_its_list_price_per_million() -> None:
    usage = cost.Usage(
        http_requests=1,
        lambda_requests=1,
        lambda_gb_seconds=0.5,
        write_units=2,
        read_units=4,
        events=1,
        sqs_requests=3,
        log_bytes=1024**3 / 1_000_000,  # a GB per million
    )
    dollars = cost.cost_per_million(usage)
    assert dollars["HTTP API"] == pytest.approx(1.00)
    assert dollars["Lambda requests"] == pytest.approx(0.20)
    assert dollars["Lambda duration"] == pytest.approx(0.5 * 1_000_000 * 0.0000133334)
    assert dollars["DynamoDB writes"] == pytest.approx(2 * 0.625)
    assert dollars["DynamoDB reads"] == pytest.approx(4 * 0.125)
    assert dollars["EventBridge"] == pytest.approx(1.00)
    assert dollars["SQS"] == pytest.approx(3 * 0.40)
    assert dollars["CloudWatch Logs"] == pytest.approx(0.50)
    assert cost.line("x", "bundle", usage).total == pytest.approx(sum(dollars.values()))
    assert cost.line("x", "textbook", None).total is None


def test_usages_add_and_scale_field_by_field() -> None:
    a = cost.Usage(http_requests=1, write_units=2)
    b = cost.Usage(http_requests=1, write_units=4, events=1)
    mix = (a + b).scaled(0.5)
    assert (mix.http_requests, mix.write_units, mix.events) == (1.0, 3.0, 0.5)


def test_an_invocation_is_one_request_and_its_billed_gb_seconds() -> None:
    usage = cost.invocation(2.0, 10.0, 512, log_bytes=700)
    assert usage.lambda_requests == 1.0 and usage.log_bytes == 700
    assert usage.lambda_gb_seconds == pytest.approx(cost.billed_ms(2.0, 10.0, 512) / 1000 * 0.5)


def test_a_reconciled_object_pays_a_strongly_consistent_read_and_a_hundredth_of_a_page() -> None:
    usage = cost.reconcile_usage(1500, 300.0)
    assert usage.read_units == 1.0 and usage.write_units == 0
    page_ms = cost.billed_ms(0.0, 300.0 + cost.ASSUMED.dynamodb_call_ms, cost.memory_mb("ReconcilerFunction"))
    assert usage.lambda_gb_seconds == pytest.approx(cost.gb_seconds(page_ms, 512) / 100)
    assert cost.reconcile_usage(5000, 300.0).read_units == 2.0  # over 4 KB


def test_the_memory_size_is_the_templates() -> None:
    assert cost.memory_mb("RedemptionSucceededFunction") == 512


def test_the_cost_table_names_the_prices_date_and_what_is_assumed() -> None:
    lines = [
        cost.line("deliveries", "bundle", cost.Usage(http_requests=1)),
        cost.line("reconciled objects", "textbook", None, "the textbook has no reconciler"),
    ]
    text = "\n".join(cost.cost_markdown(lines))
    assert "as published on 2026-12-01" in text and "us-east-1" in text
    assert "| deliveries | bundle | $1.00 |" in text
    assert "the textbook has no reconciler" in text
    assert "Assumed, not measured:" in text and "dynamodb_call_ms" in text
    assert any("$1.00" in row for row in cost.cost_text(lines))


def test_prices_are_written_without_an_exponent() -> None:
    text = "\n".join(cost.cost_markdown([cost.line("deliveries", "bundle", cost.Usage())]))
    assert "lambda_arm64_per_gb_second 0.0000133334" in text and "e-05" not in text
