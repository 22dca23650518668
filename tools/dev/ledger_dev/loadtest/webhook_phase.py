"""The ``load`` and ``faults`` phases: a corpus sent (with write faults, for ``faults``), every answer checked, the
whole ledger compared with what the deliveries say."""

from __future__ import annotations

from collections import Counter

from ledger_dev.loadtest.common import PhaseReport, percentile
from ledger_dev.loadtest.hooks import DynamoFaults, SdkRetries
from ledger_dev.loadtest.ledger_check import _documents, compare_ledger, expected_ledger, scan_ledger
from ledger_dev.loadtest.sending import SendResult, send_corpus
from ledger_dev.local_stack import LocalStack
from ledger_dev.payloads.corpus import (
    Corpus,
)


def check_answers(
    corpus: Corpus, result: SendResult, faults: DynamoFaults | None, retries: SdkRetries | None = None
) -> tuple[list[str], Counter[str]]:
    """Problems with the HTTP answers, and the count of each answer (``200 recorded``, ``503`` …; attempts
    without one are ``connection_errors``). A connection error is no problem in itself: the delivery was resent
    (a delivery never answered is), but its request may have been handled, so, like a lost answer, its entity
    need not have been answered ``recorded``; nor need one whose write botocore retried after a timeout
    (``retries``)."""
    problems: list[str] = []
    answers: Counter[str] = Counter()
    recorded: Counter[str] = Counter()
    lost: set[str] = set()
    seen: dict[str, list[str]] = {}  # entity → its attempts, as reported with a problem
    for attempt in result.attempts:
        delivery = corpus.deliveries[attempt.delivery]
        injected = faults.by_attempt.get(attempt.tag, []) if faults is not None else []
        attempt.faults = tuple(injected)
        answered = (
            "no answer" if attempt.status is None else f"{attempt.status} {(attempt.answer or {}).get('status', '')}"
        )
        retried = retries is not None and attempt.tag in retries.by_attempt
        noted = [*injected, "sdk_retry"] if retried else list(injected)
        seen.setdefault(delivery.entity, []).append(f"{attempt.tag} {answered.strip()} {noted}")
        if "lost_answer" in injected or attempt.status is None or retried:
            lost.add(delivery.entity)
        if attempt.status is None:
            continue
        label = f"{attempt.status} {attempt.answer.get('status')}" if attempt.answer and attempt.status == 200 else ""
        answers[label or str(attempt.status)] += 1
        if attempt.status >= 500 and not injected:
            problems.append(f"delivery {attempt.tag} ({delivery.entity}): {attempt.status} while storage was healthy")
        elif attempt.status < 500 and injected:
            problems.append(f"delivery {attempt.tag} ({delivery.entity}): {attempt.status} despite faults {injected}")
        elif attempt.status < 500 and attempt.status != 200:
            problems.append(f"delivery {attempt.tag} ({delivery.entity}): answered {attempt.status} {attempt.answer}")
        if attempt.status == 200 and attempt.answer and attempt.answer.get("status") == "recorded":
            recorded[delivery.entity] += 1
    entities = {d.entity for d in corpus.deliveries}
    for entity in sorted(entities):
        if recorded[entity] > 1:
            problems.append(f"{entity} answered 'recorded' {recorded[entity]} times: {'; '.join(seen[entity])}")
        elif recorded[entity] == 0 and entity not in lost:
            problems.append(f"{entity} never answered 'recorded': {'; '.join(seen.get(entity, []))}")
    if result.unsent:
        problems.append(f"{result.unsent} deliveries were not sent before the deadline")
    if result.gave_up:
        problems.append(f"{result.gave_up} deliveries never got a 2xx")
    return problems, answers


def connection_errors(result: SendResult) -> Counter[str]:
    """Attempts that got no answer, by exception (``ConnectionResetError`` …)."""
    return Counter((a.error or "?").split(":", 1)[0] for a in result.attempts if a.status is None)


def run_webhook_phase(
    stack: LocalStack,
    name: str,
    corpus: Corpus,
    loaded: list[Corpus],
    *,
    senders: int,
    deadline: float,
    faults: DynamoFaults | None = None,
    retries: SdkRetries | None = None,
) -> PhaseReport:
    """Sends ``corpus`` (with ``faults`` enabled, if given), then checks the answers and that the whole ledger
    equals ``loaded`` + ``corpus`` exactly."""
    report = PhaseReport(name)
    if retries is not None:
        retries.clear()
    if faults is not None:
        faults.enabled = True
    try:
        result = send_corpus(stack, corpus, senders=senders, deadline=deadline, resend_5xx=faults is not None)
    finally:
        if faults is not None:
            faults.enabled = False
    loaded.append(corpus)
    problems, answers = check_answers(corpus, result, faults, retries)
    report.fail(problems)
    actual = scan_ledger(stack.aws_client("dynamodb"), stack.config.table_name)
    expected = expected_ledger(loaded)
    differences = compare_ledger(expected, actual, _documents(loaded))
    report.fail(differences)
    latencies = [a.seconds for a in result.attempts if a.status is not None]
    errors = connection_errors(result)
    faulted = [a for a in result.attempts if a.faults and a.status is not None]  # answered
    report.figures = {
        "deliveries": len(corpus.deliveries),
        "unique_deliveries": corpus.unique,
        "duplicates": corpus.stats["duplicates"],
        "duplicates_reformatted": corpus.stats["duplicates_reformatted"],
        "redemptions": len(corpus.redemptions),
        "rollbacks": len(corpus.rollbacks),
        "rollbacks_before_their_redemption": corpus.stats["rollbacks_before_their_redemption"],
        "envelopes": corpus.stats["envelope"],
        "bare": corpus.stats["bare"],
        "discounts": {
            k.removeprefix("discount_"): v for k, v in sorted(corpus.stats.items()) if k.startswith("discount_")
        },
        "stacks": corpus.stats["stacks"],
        "stack_children": corpus.stats["stack_children"],
        "promotion_tier_redemptions": corpus.stats["promotion_tier"],
        "gift_card_redemptions": corpus.stats["gift"],
        "loyalty_redemptions": {
            k.removeprefix("loyalty_"): v for k, v in sorted(corpus.stats.items()) if k.startswith("loyalty_")
        },
        "failed_redemptions": corpus.stats["failed_redemptions"],
        "failed_rollbacks": corpus.stats["failed_rollbacks"],
        "null_customers": corpus.stats["null_customer"],
        "unicode_codes": corpus.stats["unicode_code"],
        "senders": senders,
        "requests": len(result.attempts),
        "seconds": round(result.seconds, 2),
        "deliveries_per_second": round(len(result.attempts) / result.seconds, 1) if result.seconds else 0.0,
        "latency_ms_p50": round(percentile(latencies, 0.5) * 1000, 1),
        "latency_ms_p99": round(percentile(latencies, 0.99) * 1000, 1),
        "answers": dict(sorted(answers.items())),
        "connection_errors": sum(errors.values()),
        "connection_errors_by_kind": dict(sorted(errors.items())),
        "sdk_retries": dict(sorted(retries.kinds.items())) if retries is not None else {},
        "ledger_items_expected": len(expected),
        "ledger_items_scanned": len(actual),
        "ledger_differences": len(differences),
        "records_lost": sum(1 for d in differences if d.startswith("missing")),
    }
    if faults is not None:
        report.figures.update(
            {
                "fault_share": faults.share,
                "faults_injected": dict(sorted(faults.injected.items())),
                "faulted_attempts": len(faulted),
                "faulted_attempts_answered_5xx": sum(1 for a in faulted if a.status is not None and a.status >= 500),
                "resends": sum(1 for a in result.attempts if a.attempt > 1),
            }
        )
        faults.injected.clear()
        faults.by_attempt.clear()
    return report
