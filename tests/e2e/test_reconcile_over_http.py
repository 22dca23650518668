"""The reconciler over `make run`'s stack: the fake Voucherify holds a history whose webhooks mostly never came, a
backfill (`redemption-ledger reconcile --local --since …`, in-process) records what the ledger lacked with the status
the history says, and the stack's scheduled ReconcilerFunction records on its own what was created in the last hour
and never delivered."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger_dev import local_stack
from ledger_dev.fake_voucherify import FakeVoucherify
from ledger_dev.local_stack import LocalStack
from redemption_ledger_cli import reconcile
from support.cli import cli_json
from voucherify_ledger.ledger.keys import iso, parse_iso

HISTORY = {"history": 300, "history_webhooks": 0.3, "history_seed": 7}
# A run a second, within a budget that lets a call a second through (VoucherifyRequestsPerMinute is 100).
SCHEDULED = {"reconcile_seconds": 1, "parameter_overrides": {"ReconcileRequestsPerMinute": "60"}}
STATUSES = ("SUCCEEDED", "FAILED", "ROLLED_BACK")


def never_delivered(fake: FakeVoucherify, stack: LocalStack) -> dict[str, str]:
    """Redemption id → status in the history, for every redemption none of whose webhooks reached the ledger (its
    own, or a rollback's, which carries it)."""
    assert stack.history_webhooks is None or stack.history_webhooks.wait(30), "the history's webhooks still going"
    delivered = {
        d.rollback_id or d.redemption_id
        for d in (stack.history_webhooks.deliveries if stack.history_webhooks else [])
        if d.status == 200
    }
    history = fake.history()
    reached = {o.get("redemption") for o in history if o["object"] == "redemption_rollback" and o["id"] in delivered}
    return {
        o["id"]: o["status"]
        for o in history
        if o["object"] == "redemption" and o["id"] not in delivered and o["id"] not in reached
    }


def shown(redemption_id: str) -> tuple[int, Any]:
    return cli_json("show", redemption_id, "--local")


@pytest.mark.parametrize("stack_config", [HISTORY])
def test_a_backfill_records_what_the_webhooks_never_delivered_with_the_historys_status(stack: LocalStack) -> None:
    fake = stack.fake_voucherify
    assert fake is not None and stack.reconciler is None
    missing = never_delivered(fake, stack)
    samples = {status: next(rid for rid, s in missing.items() if s == status) for status in STATUSES}
    before = {rid: shown(rid)[0] for rid in samples.values()}
    since = iso(datetime.now(UTC) - timedelta(days=91))

    # In a shell of its own the CLI paces itself to LOCAL_REQUESTS_PER_MINUTE; in-process it would read the stack's
    # RECONCILE_REQUESTS_PER_MINUTE (the template's 10, for the deployed function) from the shared environment.
    pace = str(reconcile.LOCAL_REQUESTS_PER_MINUTE)
    code, summary = cli_json("reconcile", "--local", "--since", since, "--requests-per-minute", pace)

    assert code == 0, summary
    assert summary["done"] and summary["error"] is None
    assert summary["recorded"] >= len(missing) > 0
    assert summary["listed"] == len(fake.history())
    assert all(code != 0 for code in before.values()), before  # not in the ledger before the backfill
    for status, redemption_id in samples.items():
        code, item = shown(redemption_id)
        assert code == 0, (status, redemption_id)
        assert (item["redemption_id"], item["status"]) == (redemption_id, status)


@pytest.mark.parametrize("stack_config", [SCHEDULED])
def test_the_scheduled_reconciler_records_a_redemption_of_the_last_hour_whose_webhook_never_came(
    stack: LocalStack,
) -> None:
    fake, reconciler = stack.fake_voucherify, stack.reconciler
    assert fake is not None and reconciler is not None and stack.history_webhooks is None
    assert "reconciler    ReconcilerFunction every 1 s" in stack.banner()
    fake.seed_history(12, days=0.5 / 24, seed=3)  # the last half hour; none of their webhooks is sent
    recent = never_delivered(fake, stack)
    redemption_id, status = next(iter(recent.items()))
    created = parse_iso(next(o["date"] for o in fake.history() if o["id"] == redemption_id))
    assert created is not None and created > datetime.now(UTC) - timedelta(hours=1)

    deadline = time.monotonic() + 15
    code, item = shown(redemption_id)
    while code != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        code, item = shown(redemption_id)

    assert code == 0, f"not recorded after 15 s; the reconciler's runs: {reconciler.runs}"
    assert (item["redemption_id"], item["status"]) == (redemption_id, status)
    deadline = time.monotonic() + 10  # the run that recorded it answers once it has saved where it got to
    while not any(run["recorded"] for run in reconciler.runs) and time.monotonic() < deadline:
        reconciler.wait_for_runs(len(reconciler.runs) + 1, timeout=0.5)
    assert any(run["recorded"] for run in reconciler.runs), reconciler.runs
    assert reconciler.failures == 0
    assert all(run["job_id"] is None for run in reconciler.runs)  # scheduled runs, no backfill


@pytest.mark.parametrize(
    "stack_config", [{"reconcile_seconds": 1, "parameter_overrides": {"ReconcileSchedule": "Off"}}]
)
def test_with_the_schedule_off_nothing_is_scheduled_and_the_banner_says_how_to_backfill(stack: LocalStack) -> None:
    assert stack.reconciler is None and stack.fake_voucherify is not None
    banner = stack.banner()

    assert "reconciler    not scheduled" in banner
    backfill = re.search(r"^  ((?:\S+=\S+ )*)(\S*redemption-ledger) reconcile --local --since (\S+)$", banner, re.M)
    status = re.search(r"^  ((?:\S+=\S+ )*)(\S*redemption-ledger) reconcile --status --local$", banner, re.M)
    assert backfill and status, banner
    variables = dict(pair.split("=", 1) for pair in backfill.group(1).split())
    assert variables == {
        local_stack.AWS_PORT_ENV: str(stack.config.aws_port),
        local_stack.VOUCHERIFY_PORT_ENV: stack.fake_voucherify.url.rsplit(":", 1)[1],
    }
    since = parse_iso(backfill.group(3))
    assert since is not None and abs(datetime.now(UTC) - timedelta(days=91) - since) < timedelta(minutes=1)
    assert status.group(1) == f"{local_stack.AWS_PORT_ENV}={stack.config.aws_port} "
