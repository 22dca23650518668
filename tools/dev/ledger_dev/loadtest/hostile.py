"""The ``hostile`` phase: a quiet genuine stream, the crafted bodies alone, then a genuine stream under attack;
answers, replays and the ledger checked, latency against the quiet baseline."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ledger_dev.loadtest.common import PhaseReport, percentile
from ledger_dev.loadtest.hooks import HandlerTimes, SdkRetries
from ledger_dev.loadtest.hostile_cases import (
    CRAFTED_ALONE_ROUNDS,
    CRAFTED_LARGE_BYTES,
    CRAFTED_SMALL_BYTES,
    GENUINE_AFTER_CRAFTED,
    HostileCase,
    HostilePlanner,
)
from ledger_dev.loadtest.hostile_checks import check_hostile_attempts, hostile_ledger_items, repeated, shorten
from ledger_dev.loadtest.ledger_check import _documents, compare_ledger, expected_ledger, scan_ledger
from ledger_dev.loadtest.sending import Attempt, HostileAttempt, SendResult, send_corpus, send_hostile
from ledger_dev.loadtest.webhook_phase import check_answers, connection_errors
from ledger_dev.local_stack import LocalStack
from ledger_dev.payloads.corpus import (
    Corpus,
    CorpusDelivery,
    build_corpus,
)
from voucherify_ledger.webhooks.auth import SIGNATURE_HEADER, sign


def _window(result: SendResult, within: tuple[float, float] | None = None) -> list[Attempt]:
    """The answered attempts; with ``within`` only those sent and answered inside that window."""
    return [
        a
        for a in result.attempts
        if a.status is not None and (within is None or (within[0] <= a.started and a.started + a.seconds <= within[1]))
    ]


def _ms(values: Sequence[float], share: float) -> float:
    return round(percentile(values, share) * 1000, 1)


def _ratio(values: Sequence[float], baseline: Sequence[float], share: float) -> float | None:
    if not values or not baseline or percentile(baseline, share) <= 0:
        return None
    return round(percentile(values, share) / percentile(baseline, share), 2)


def _stream_figures(
    corpus: Corpus, result: SendResult, answers: Counter[str], measured: Sequence[Attempt], handler: Sequence[float]
) -> dict[str, Any]:
    latencies = [a.seconds for a in measured]
    return {
        "deliveries": len(corpus.deliveries),
        "requests": len(result.attempts),
        "measured": len(latencies),
        "seconds": round(result.seconds, 2),
        "latency_ms_p50": _ms(latencies, 0.5),
        "latency_ms_p99": _ms(latencies, 0.99),
        "latency_ms_max": round(max(latencies, default=0.0) * 1000, 1),
        "handler_ms_p50": _ms(handler, 0.5),
        "handler_ms_p99": _ms(handler, 0.99),
        "answers": dict(sorted(answers.items())),
    }


def _crafted_figures(
    plan: Sequence[HostileCase], attempts: Sequence[HostileAttempt], times: HandlerTimes
) -> dict[str, Any]:
    """Answer latency (and handler time) of the crafted bodies by size, and of the genuine deliveries sent right
    after them."""
    by_size: dict[str, list[HostileAttempt]] = {}
    for attempt in attempts:
        kind = plan[attempt.case].kind
        if attempt.status is not None and (kind.startswith("crafted_") or kind == GENUINE_AFTER_CRAFTED):
            by_size.setdefault(kind.removeprefix("crafted_"), []).append(attempt)
    figures: dict[str, Any] = {}
    handler: dict[str, list[float]] = {}
    for size, answered in sorted(by_size.items()):
        values = [a.seconds for a in answered]
        handler[size] = times.taken([a.tag for a in answered])
        figures[size] = {
            "answers": len(values),
            "p50_ms": _ms(values, 0.5),
            "p99_ms": _ms(values, 0.99),
            "handler_ms_p50": _ms(handler[size], 0.5),
            "handler_ms_p99": _ms(handler[size], 0.99),
        }
    large, small = by_size.get("256kb", []), by_size.get("4kb", [])
    figures["p50_ratio_256kb_to_4kb"] = _ratio([a.seconds for a in large], [a.seconds for a in small], 0.5)
    figures["handler_p50_ratio_256kb_to_4kb"] = _ratio(handler.get("256kb", []), handler.get("4kb", []), 0.5)
    return figures


def run_hostile_phase(
    stack: LocalStack,
    loaded: list[Corpus],
    *,
    deliveries: int,
    requests: int,
    attackers: int,
    senders: int,
    seed: int,
    deadline: float,
    retries: SdkRetries | None = None,
) -> PhaseReport:
    """A quiet stream of genuine deliveries (the baseline), the crafted bodies alone, then a second genuine stream
    while ``attackers`` send the attack (``HostilePlanner``) until it is done; every answer checked, the wrong-URL
    deliveries replayed, and the whole ledger compared with the genuine deliveries (``loaded`` and this phase's)."""
    report = PhaseReport("hostile")
    secret, token = stack.config.signing_secret, stack.config.header_token
    token_header = (
        stack.function("RedemptionRollbackSucceededFunction").environment.get("WEBHOOK_TOKEN_HEADER")
        or "x-voucherify-token"
    ).lower()
    never = (secret, token)
    times = HandlerTimes()
    times.install(stack)
    baseline = build_corpus(deliveries, seed=seed, duplicate_share=0.3)
    attack = build_corpus(deliveries, seed=seed + 1, duplicate_share=0.3)

    # 1. the quiet baseline
    if retries is not None:
        retries.clear()
    quiet = send_corpus(stack, baseline, senders=senders, deadline=deadline, resend_5xx=False)
    problems, quiet_answers = check_answers(baseline, quiet, None, retries)
    report.fail([f"baseline: {p}" for p in problems])
    loaded.append(baseline)
    quiet_measured = _window(quiet)
    quiet_handler = times.taken([a.tag for a in quiet_measured])

    # 2. the crafted bodies alone, one at a time, each followed by a genuine (already recorded) signed delivery
    planner = HostilePlanner(baseline, secret=secret, token_header=token_header, token=token, seed=seed + 2)
    crafted = planner.crafted_then_genuine()
    times.clear()
    alone = send_hostile(
        stack,
        crafted,
        attackers=1,
        limit=len(crafted) * CRAFTED_ALONE_ROUNDS,
        stop=threading.Event(),  # never set: every round is sent
        deadline=deadline,
    )
    alone_problems, _ = check_hostile_attempts(crafted, alone, never)
    report.fail([f"crafted alone: {p}" for p in alone_problems])
    crafted_alone = _crafted_figures(crafted, alone, times)

    # 3. the attack, with a genuine stream (some rollbacks by the token alone: that URL takes either credential)
    plan, storable = planner.cases()
    stop = threading.Event()
    sent: list[HostileAttempt] = []
    attack_thread = threading.Thread(
        target=lambda: sent.extend(
            send_hostile(stack, plan, attackers=attackers, limit=max(requests, len(plan)), stop=stop, deadline=deadline)
        ),
        name="loadtest-attack",
        daemon=True,
    )
    by_token = {d.index for d in attack.deliveries if d.kind == "rollback" and d.index % 3 == 0}

    def credentials(delivery: CorpusDelivery) -> Mapping[str, str]:
        if delivery.kind == "rollback" and delivery.index in by_token:
            return {token_header: token}
        return {SIGNATURE_HEADER: sign(secret, delivery.signed_body)}

    if retries is not None:
        retries.clear()
    times.clear()
    attack_started = time.perf_counter()
    attack_thread.start()
    loud = send_corpus(stack, attack, senders=senders, deadline=deadline, resend_5xx=False, credentials=credentials)
    stop.set()
    attack_thread.join(max(1.0, deadline - time.monotonic() + 90))
    attack_ended = max((a.started + a.seconds for a in sent), default=attack_started)
    problems, loud_answers = check_answers(attack, loud, None, retries)
    report.fail([f"under attack: {p}" for p in problems])
    loaded.extend([attack, storable])
    attack_problems, attack_answers = check_hostile_attempts(plan, sent, never)
    report.fail(attack_problems)
    leaks = [
        f"genuine delivery {a.tag}: the answer repeats {shorten(s)}"
        for result in (quiet, loud)
        for a in result.attempts
        for s in repeated(never, "", a.answer)
    ]
    report.fail(leaks)
    loud_measured = _window(loud, (attack_started, attack_ended))
    loud_handler = times.taken([a.tag for a in loud_measured])
    crafted_loud = _crafted_figures(plan, sent, times)

    # 4. the deliveries sent to the wrong URL, replayed: by content, onto the route they belong to (duplicates)
    from redemption_ledger_cli.replay import Replayer
    from voucherify_ledger.ledger import Ledger

    ledger_client = stack.aws_client("dynamodb")
    replayer = Replayer(Ledger(stack.config.table_name, ledger_client))
    replayed: dict[str, dict[str, Any]] = {}
    for case in plan:
        if case.replay_route and case.quarantine_id and case.quarantine_id not in replayed:
            result = replayer.replay(case.quarantine_id)
            replayed[case.quarantine_id] = result
            got = (result.get("status"), result.get("routed_by"), result.get("route"), result.get("quarantine_removed"))
            if got != ("duplicate", "content", case.replay_route, True):
                report.fail(
                    [f"{case.kind} {case.quarantine_id}: replay gave {got}, want duplicate on {case.replay_route}"]
                )

    # 5. the ledger: exactly what the genuine deliveries say, beside the records the attack caused
    actual = scan_ledger(ledger_client, stack.config.table_name)
    caused, caused_counts, ledger_problems = hostile_ledger_items(actual, plan, replayed=replayed)
    report.fail(ledger_problems)
    expected = expected_ledger(loaded)
    differences = compare_ledger(expected, actual, _documents(loaded), allowed=caused)
    report.fail(differences)

    quiet_latencies = [a.seconds for a in quiet_measured]
    loud_latencies = [a.seconds for a in loud_measured]
    errors = connection_errors(quiet) + connection_errors(loud)
    kinds: dict[str, dict[str, int]] = {}
    for label, count in sorted(attack_answers.items()):
        kind, answer = label.split(": ", 1)
        kinds.setdefault(kind, {})[answer] = count
    report.figures = {
        "genuine_senders": senders,
        "attackers": attackers,
        "baseline": _stream_figures(baseline, quiet, quiet_answers, quiet_measured, quiet_handler),
        "under_attack": {
            **_stream_figures(attack, loud, loud_answers, loud_measured, loud_handler),
            "rollbacks_by_token_alone": sum(
                1 for d in attack.deliveries if d.kind == "rollback" and d.index in by_token
            ),
        },
        "ratio_under_attack_to_baseline": {
            "latency_p50": _ratio(loud_latencies, quiet_latencies, 0.5),
            "latency_p99": _ratio(loud_latencies, quiet_latencies, 0.99),
            "handler_p50": _ratio(loud_handler, quiet_handler, 0.5),
            "handler_p99": _ratio(loud_handler, quiet_handler, 0.99),
        },
        "crafted_body_bytes": {"256kb": CRAFTED_LARGE_BYTES, "4kb": CRAFTED_SMALL_BYTES},
        "crafted_alone": crafted_alone,
        "crafted_under_attack": crafted_loud,
        "attack_cases": len(plan),
        "attack_requests": len(sent),
        "attack_passes": round(len(sent) / len(plan), 1) if plan else 0,
        "attack_seconds": round(attack_ended - attack_started, 2),
        "attack_answers": kinds,
        "answers_repeating_attacker_strings": sum(
            1 for p in attack_problems + alone_problems if "the answer repeats" in p
        )
        + len(leaks),
        "replayed": dict(sorted(Counter(str(r.get("status")) for r in replayed.values()).items())),
        **{name: caused_counts.get(name, 0) for name in ("quarantine_records", "conflict_records", "raw_items")},
        "connection_errors": sum(errors.values()) + sum(1 for a in [*alone, *sent] if a.status is None),
        "sdk_retries": dict(sorted(retries.kinds.items())) if retries is not None else {},
        "ledger_items_expected": len(expected),
        "ledger_items_scanned": len(actual),
        "ledger_differences": len(differences),
        "records_lost": sum(1 for d in differences if d.startswith("missing")),
    }
    return report
