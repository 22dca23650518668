"""The ``chaos`` phase: rollback requests through the queue, the worker and a misbehaving fake Voucherify; every
request must end, no redemption rolled back twice, the ledger as Voucherify says. The fake is strict: it rolls back
the redemptions it knows from the webhooks the earlier phases delivered (``local_stack.known``), as Voucherify would."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ledger_dev.loadtest.common import TERMINAL_STATES, PhaseReport
from ledger_dev.loadtest.ledger_check import scan_ledger
from ledger_dev.local_stack import WORKER_QUEUE, LocalStack
from ledger_dev.payloads.corpus import (
    Corpus,
)
from voucherify_ledger.ledger.claims import ANSWER, CLAIM
from voucherify_ledger.ledger.keys import (
    REDEMPTION_PREFIX,
    REDEMPTION_SK,
    REQUEST_SK_PREFIX,
    ROLLBACK_PREFIX,
    ROLLED_BACK,
    SUCCEEDED,
)

DEAD_LETTER_QUEUE = "RollbackDeadLetterQueue"

# The worker's settings for a chaos run: quick retries, a short read timeout, a budget that never paces.
CHAOS_ENVIRONMENT = {
    "ROLLBACK_RETRY_BASE_SECONDS": "0.2",
    "ROLLBACK_RETRY_MAX_SECONDS": "2",
    "VOUCHERIFY_CONNECT_TIMEOUT_SECONDS": "1",
    "VOUCHERIFY_READ_TIMEOUT_SECONDS": "2",
}
CHAOS_PARAMETERS = {"VoucherifyRequestsPerMinute": "100000"}


CHAOS_FAULTS: tuple[tuple[float, dict[str, Any]], ...] = (
    # (share of all API requests, Fault options); the first matching fault decides, so the probabilities are
    # derived from the shares in order.
    (0.10, {"kind": "status", "status": 500}),
    (0.05, {"kind": "status", "status": 502}),
    (0.05, {"kind": "status", "status": 503}),
    (0.10, {"kind": "rate_limit", "retry_after": 1}),
    (0.03, {"kind": "drop"}),
    (0.03, {"kind": "drop", "apply": True}),
    (0.02, {"kind": "timeout", "seconds": 2.5}),  # past the worker's read timeout (CHAOS_ENVIRONMENT)
)
CHAOS_LATENCY = {"kind": "latency", "seconds": 0.3, "probability": 0.05}


def chaos_faults(fake: Any) -> None:
    taken = 0.0
    for share, options in CHAOS_FAULTS:
        fake.fail(**options, times=None, probability=min(1.0, share / (1.0 - taken)))
        taken += share
    fake.fail(**CHAOS_LATENCY, times=None)


def chaos_targets(corpora: Sequence[Corpus]) -> list[tuple[str, list[str]]]:
    """Redemptions the corpora left SUCCEEDED with no rollback at all, as (target, children): a stack parent with its
    children (rolled back together, through the stack endpoint), or a single redemption that is not a stack child.
    A failed attempt (FAILED, ``rf_…``) is never a target."""
    targets: list[tuple[str, list[str]]] = []
    for corpus in corpora:
        children_of = {p: c for p, c in corpus.stacks.items() if p in corpus.redemptions}
        in_stacks = {child for children in corpus.stacks.values() for child in children}
        for redemption_id in corpus.redemptions:
            if redemption_id in corpus.rollbacks_of or redemption_id in corpus.failed:
                continue
            if redemption_id in children_of:
                children = children_of[redemption_id]
                if not any(c in corpus.rollbacks_of for c in children):
                    targets.append((redemption_id, children))
            elif redemption_id not in in_stacks:
                targets.append((redemption_id, []))
    return targets


def _known_to(fake: Any, target: str, children: Sequence[str]) -> bool:
    """``fake`` knows ``target``, not rolled back, as a lone redemption or as the parent of ``children``."""
    known = fake.known(target)
    if known is None or known.rollback_id is not None or known.parent_id is not None:
        return False
    return set(known.children) == set(children)


def _queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
        attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
    )


def run_chaos_phase(
    stack: LocalStack, corpora: Sequence[Corpus], *, requests: int, seed: int, deadline: float
) -> PhaseReport:
    """Queues ``requests`` rollback requests (about 15 % a second request for a redemption already asked for)
    against a misbehaving fake Voucherify, waits until every one is finished, then checks the outcome."""
    report = PhaseReport("chaos")
    fake, poller = stack.fake_voucherify, stack.rollback_poller
    if fake is None or poller is None or WORKER_QUEUE not in stack.queues:
        report.fail(["the local stack runs no rollback worker with a fake Voucherify"])
        return report
    rng = random.Random(seed)
    ledger_client = stack.aws_client("dynamodb")
    table = stack.config.table_name
    before = scan_ledger(ledger_client, table)
    candidates = chaos_targets(corpora)
    rng.shuffle(candidates)
    distinct = max(1, min(len(candidates), round(requests * 0.85)))
    chosen = candidates[:distinct]
    if not chosen:
        report.fail(["no SUCCEEDED redemption in the ledger to roll back"])
        return report
    # The fake knows each one from the webhooks the stack recorded (a stack's parent with its children): a rollback of
    # one it did not know would be a 404, as Voucherify answers, not the outcome this phase checks.
    unknown = [target for target, children in chosen if not _known_to(fake, target, children)]
    if unknown:
        report.fail([f"the fake Voucherify does not know {target} as the ledger holds it" for target in unknown])
        return report
    plan = [target for target, _ in chosen] + [rng.choice(chosen)[0] for _ in range(max(0, requests - distinct))]
    rng.shuffle(plan)
    request_ids = {f"chaos-{seed}-{n}": target for n, target in enumerate(plan)}
    chaos_faults(fake)
    sqs = stack.aws_client("sqs")
    queue_url = stack.queues[WORKER_QUEUE].url
    started = time.monotonic()
    bodies = [
        json.dumps({"redemption_id": target, "reason": "loadtest chaos — zwrot 🎉", "request_id": request_id})
        for request_id, target in request_ids.items()
    ]
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start : start + 10])]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)

    from voucherify_ledger.ledger import Ledger

    ledger = Ledger(table, ledger_client)
    states: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for request_id, target in request_ids.items():
            if states.get(request_id, {}).get("state") in TERMINAL_STATES:
                continue
            item = ledger.requests.get(request_id, target)
            if item is not None:
                states[request_id] = item
        if all(states.get(r, {}).get("state") in TERMINAL_STATES for r in request_ids):
            break
        time.sleep(1.0)
    finished = time.monotonic() - started
    fake.clear_faults()
    # The dead-lettered messages move to the dead-letter queue on the next receive after their last delay.
    dead_letter_url = stack.queues[DEAD_LETTER_QUEUE].url if DEAD_LETTER_QUEUE in stack.queues else None
    dead_lettered = {r for r, item in states.items() if item.get("dead_lettered")}
    while time.monotonic() < deadline and _queue_depth(sqs, queue_url) > 0:
        time.sleep(0.5)
    fake.wait_for_webhooks(max(1.0, min(30.0, deadline - time.monotonic())))
    in_dead_letter_queue = _queue_depth(sqs, dead_letter_url) if dead_letter_url else 0
    report.fail(_chaos_problems(fake, request_ids, states, dead_lettered, in_dead_letter_queue))

    # The ledger: targets rolled back exactly as Voucherify says, everything else as before.
    after = scan_ledger(ledger_client, table)
    targets = {parent: children for parent, children in chosen}
    touched = {REDEMPTION_PREFIX + r for parent, children in chosen for r in (parent, *children)}
    problems: list[str] = []
    for key in sorted(before.keys() | after.keys()):
        pk = key[0]
        if pk in touched:
            continue
        if before.get(key) != after.get(key):
            problems.append(f"{pk} / {key[1]} changed though no request named it")
    for parent, children in targets.items():
        for redemption_id in (parent, *children):
            pk = REDEMPTION_PREFIX + redemption_id
            item = after.get((pk, REDEMPTION_SK)) or {}
            rolled = fake.rollback_id(redemption_id)
            rollback_keys = sorted(name for name in item if name.startswith(ROLLBACK_PREFIX))
            if rolled:
                if item.get("status") != ROLLED_BACK or item.get("rollback_ids") != [rolled]:
                    problems.append(
                        f"{redemption_id}: Voucherify rolled it back as {rolled}, the ledger says "
                        f"{item.get('status')} {item.get('rollback_ids')}"
                    )
                if rollback_keys != [ROLLBACK_PREFIX + rolled]:
                    problems.append(f"{redemption_id}: rollbacks {rollback_keys}, want [{rolled}]")
            elif item.get("status") != SUCCEEDED or item.get("rollback_ids") or rollback_keys:
                problems.append(f"{redemption_id}: not rolled back in Voucherify, the ledger says {item.get('status')}")
            if CLAIM in item or ANSWER in item:  # every attempt that ended let go of the redemption
                problems.append(f"{redemption_id}: the worker's claim was left on it")
            # Voucherify's rollback webhook may fill in details the redemption lacked, never change one.
            before_item = before.get((pk, REDEMPTION_SK)) or {}
            changed = sorted(k for k, v in before_item.items() if k not in _CHANGES and item.get(k) != v)
            if changed:
                problems.append(f"{redemption_id}: the redemption's {', '.join(changed)} changed")
        request_keys = {
            sk.removeprefix(REQUEST_SK_PREFIX)
            for p, sk in after
            if p == REDEMPTION_PREFIX + parent and sk.startswith(REQUEST_SK_PREFIX)
        }
        wanted = {r for r, target in request_ids.items() if target == parent}
        if request_keys != wanted:
            problems.append(f"{parent}: request items {sorted(request_keys)}, want {sorted(wanted)}")
    report.fail(problems)

    requests_seen = fake.requests
    answers = Counter("no answer" if r.status is None else str(r.status) for r in requests_seen)
    report.figures = {
        "requests": len(request_ids),
        "redemptions": len(chosen),
        "stacks": sum(1 for _, children in chosen if children),
        "second_requests": len(request_ids) - len(chosen),
        "seconds": round(finished, 2),
        "api_calls": len(requests_seen),
        "api_answers": dict(sorted(answers.items())),
        "faults_configured": {
            **{
                f"{o['kind']}{'_' + str(o['status']) if 'status' in o else ''}{'_applied' if o.get('apply') else ''}": s
                for s, o in CHAOS_FAULTS
            },
            "latency_spike": CHAOS_LATENCY["probability"],
        },
        "states": dict(sorted(Counter(str(states.get(r, {}).get("state")) for r in request_ids).items())),
        "dead_lettered": len(dead_lettered),
        "in_dead_letter_queue": in_dead_letter_queue,
        "rolled_back_in_voucherify": sum(1 for target, _ in chosen if fake.rollback_id(target)),
        # Rollbacks made but never confirmed to the worker (a dropped connection after rolling back, a 200 after
        # the read timeout): the worker asked again and Voucherify said already_rolled_back.
        "confirmations_lost": sum(
            1
            for target, _ in chosen
            if fake.rollback_id(target)
            and not any(states.get(r, {}).get("state") == SUCCEEDED for r, t in request_ids.items() if t == target)
        ),
        "webhooks_back": dict(sorted(Counter(str(w.status) for w in fake.webhooks).items())),
    }
    return report


_CHANGES = frozenset({"status", "rollback_ids", "rolled_back_at", "updated_at"})


def _chaos_problems(
    fake: Any,
    request_ids: Mapping[str, str],
    states: Mapping[str, Mapping[str, Any]],
    dead_lettered: set[str],
    in_dead_letter_queue: int,
) -> list[str]:
    problems = []
    for request_id, target in request_ids.items():
        state = states.get(request_id, {}).get("state")
        if state not in TERMINAL_STATES:
            problems.append(f"request {request_id} ({target}) did not finish: {state}")
        elif state == "FAILED" and request_id not in dead_lettered:
            problems.append(f"request {request_id} ({target}) FAILED: {states[request_id].get('error')}")
    if in_dead_letter_queue != len(dead_lettered):
        problems.append(f"{len(dead_lettered)} requests dead-lettered, {in_dead_letter_queue} in the dead-letter queue")
    calls: dict[str, list[int | None]] = {}
    for request in sorted(fake.requests, key=lambda r: r.arrived):  # in the order made, not answered
        calls.setdefault(request.redemption_id or "", []).append(request.status)
    succeeded = {target for r, target in request_ids.items() if states.get(r, {}).get("state") == SUCCEEDED}
    for target in set(request_ids.values()):
        answers = calls.get(target, [])
        oks = answers.count(200)
        if oks > 1:
            problems.append(f"{target}: rolled back {oks} times (200 answers)")
        if target not in succeeded:
            # A 200 the worker never read (its read timeout came first): asking again is right, and Voucherify
            # answers already_rolled_back; the request says ALREADY_ROLLED_BACK and the webhook brings the id.
            continue
        if oks != 1:
            problems.append(f"{target}: a request SUCCEEDED with {oks} 200 answers")
        elif answers.index(200) != len(answers) - 1:
            problems.append(f"{target}: called again after the worker got Voucherify's 200: {answers}")
    return problems
