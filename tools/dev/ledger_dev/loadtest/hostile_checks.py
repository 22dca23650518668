"""The ``hostile`` phase's checks: each answer (``check_hostile_answer``), the attack's answers together
(``check_hostile_attempts``), the records the attack caused in the ledger (``hostile_ledger_items``)."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from ledger_dev.loadtest.hostile_cases import HostileCase
from ledger_dev.loadtest.sending import HostileAttempt
from voucherify_ledger.ledger.keys import (
    CONFLICT_SK_PREFIX,
    QUARANTINE_PREFIX,
    QUARANTINE_SK,
    RAW_SK_PREFIX,
    REDEMPTION_PREFIX,
    REDEMPTION_SK,
    ROLLBACK_PREFIX,
)
from voucherify_ledger.models.webhooks import (
    VOUCHERIFY_EVENT_TYPES,
)


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            yield str(key)
            yield from _strings(inner)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for inner in value:
            yield from _strings(inner)


def repeated(strings: Sequence[str], text: str, answer: Any) -> list[str]:
    """Those of ``strings`` an answer repeats: in its text as sent, or in any string of it once parsed (where a
    non-ASCII string is no longer escaped)."""
    values = list(_strings(answer))
    return [s for s in strings if s and (s in text or any(s in v for v in values))]


def shorten(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")


def check_hostile_answer(
    case: HostileCase, status: int | None, answer: Mapping[str, Any] | None, text: str, never: Sequence[str] = ()
) -> list[str]:
    """What is wrong with one answer to ``case`` (empty when it is the expected one): its status and ``status``,
    the 401's error or the 202's reason and quarantine id, a conflict's ``conflict_id``, a storable delivery's
    ``recorded`` / ``duplicate`` without a conflict; and no attacker string (nor any of ``never``) repeated."""
    where = f"{case.kind} at {case.route}"
    answer = answer if isinstance(answer, Mapping) else {}
    got = answer.get("status")
    wanted = ("recorded", "duplicate") if case.storable else (case.answer,)
    problems: list[str] = []
    if status != case.status or got not in wanted:
        problems.append(f"{where}: answered {status} {got!r}, want {case.status} {' or '.join(wanted)}")
    elif case.status == 401 and answer.get("error") != case.reason:
        problems.append(f"{where}: 401 says {answer.get('error')!r}, want {case.reason!r}")
    elif case.status == 202 and (answer.get("reason"), answer.get("quarantine_id")) != (
        case.reason,
        case.quarantine_id,
    ):
        problems.append(
            f"{where}: quarantined as {answer.get('quarantine_id')} {answer.get('reason')!r}, "
            f"want {case.quarantine_id} {case.reason!r}"
        )
    elif case.status == 200 and answer.get("redemption_id") != case.redemption_id:
        problems.append(f"{where}: answered for {answer.get('redemption_id')}, want {case.redemption_id}")
    elif case.status == 200 and answer.get("conflict_id") != case.conflict_id:
        problems.append(f"{where}: conflict_id {answer.get('conflict_id')}, want {case.conflict_id}")
    for value in repeated([*case.attacker_strings, *never], text, answer):
        problems.append(f"{where}: the answer repeats {shorten(value)}")
    return problems


def check_hostile_attempts(
    plan: Sequence[HostileCase], attempts: Sequence[HostileAttempt], never: Sequence[str] = ()
) -> tuple[list[str], Counter[str]]:
    """Problems with the attack's answers (``check_hostile_answer`` for each, every case answered at least once, a
    storable delivery ``recorded`` exactly once) and the count of each answer by kind (``crafted_256kb: 401
    unauthorized``). A request without an answer is resent, not a problem; its delivery may then be heard
    ``duplicate`` only."""
    problems: list[str] = []
    answers: Counter[str] = Counter()
    answered: set[int] = set()
    recorded: Counter[int] = Counter()
    unanswered: set[int] = set()
    for attempt in attempts:
        case = plan[attempt.case]
        if attempt.status is None:
            unanswered.add(attempt.case)
            answers[f"{case.kind}: no answer"] += 1
            continue
        answered.add(attempt.case)
        got = (attempt.answer or {}).get("status") if isinstance(attempt.answer, Mapping) else None
        answers[f"{case.kind}: {attempt.status} {got or ''}".strip()] += 1
        problems.extend(check_hostile_answer(case, attempt.status, attempt.answer, attempt.text, never))
        if case.storable and got == "recorded":
            recorded[attempt.case] += 1
    for index, case in enumerate(plan):
        if index not in answered:
            problems.append(f"{case.kind} at {case.route} ({index}) was never answered")
        elif case.storable and recorded[index] != 1 and not (recorded[index] == 0 and index in unanswered):
            problems.append(f"{case.kind} {case.redemption_id} answered 'recorded' {recorded[index]} times")
    return problems, answers


def hostile_ledger_items(
    actual: Mapping[tuple[str, str], Mapping[str, Any]],
    plan: Sequence[HostileCase],
    *,
    replayed: Collection[str] = (),
) -> tuple[set[tuple[str, str]], Counter[str], list[str]]:
    """The items the attack itself caused, checked, as ``(their keys, counts, problems)``: the quarantine record of
    each delivery answered 202 (route, reason, its raw copy; no attacker string outside that copy, an ``event_type``
    only if Voucherify's) except those ``replayed`` onto their route, which must be gone; the ``CONFLICT#`` record
    of each conflicting duplicate (its id, the differing fields, the delivery's raw copy); and each ``RAW#`` item an
    audit map of its redemption's item names. Any other item is left for ``compare_ledger`` to call unexpected."""
    caused: set[tuple[str, str]] = set()
    counts: Counter[str] = Counter()
    problems: list[str] = []
    quarantined = {case.quarantine_id: case for case in plan if case.quarantine_id}
    for quarantine_id, case in sorted(quarantined.items()):
        key = (QUARANTINE_PREFIX + quarantine_id, QUARANTINE_SK)
        item = actual.get(key)
        where = f"{case.kind} {quarantine_id}"
        if quarantine_id in replayed:
            if item is not None:
                problems.append(f"{where}: replayed onto {case.replay_route}, yet still quarantined")
            continue
        if item is None:
            problems.append(f"{where}: answered 202, but no quarantine record")
            continue
        caused.add(key)
        counts["quarantine_records"] += 1
        if (item.get("route"), item.get("reason")) != (case.route, case.reason):
            problems.append(f"{where}: recorded as {item.get('route')} {item.get('reason')!r}, want {case.reason!r}")
        if item.get("event_type") is not None and item.get("event_type") not in VOUCHERIFY_EVENT_TYPES:
            problems.append(f"{where}: the record names event type {shorten(str(item.get('event_type')))}")
        shown = {name: value for name, value in item.items() if name != "raw_zlib"}
        for value in repeated(case.attacker_strings, "", shown):
            problems.append(f"{where}: the record repeats {shorten(value)} outside its raw copy")
        raw = item.get("raw_zlib")
        if not isinstance(raw, bytes) or zlib.decompress(raw) != case.body:
            problems.append(f"{where}: the record's raw copy is not the delivery")
    conflicts = {
        (REDEMPTION_PREFIX + (case.redemption_id or ""), CONFLICT_SK_PREFIX + case.conflict_id.removeprefix("c_")): case
        for case in plan
        if case.conflict_id
    }
    for key, case in sorted(conflicts.items()):
        item = actual.get(key)
        where = f"{case.kind} {case.redemption_id}"
        if item is None:
            problems.append(f"{where}: answered conflict_id {case.conflict_id}, but no {key[1]} record")
            continue
        caused.add(key)
        counts["conflict_records"] += 1
        raw = (item.get("delivery") or {}).get("raw_zlib")
        if item.get("conflict_id") != case.conflict_id or not item.get("conflicting_fields"):
            problems.append(f"{where}: conflict record {item.get('conflict_id')} {item.get('conflicting_fields')}")
        if not isinstance(raw, bytes) or zlib.decompress(raw) != case.body:
            problems.append(f"{where}: the conflict record's raw copy is not the conflicting delivery")
    for pk, sk in actual:
        if not sk.startswith(RAW_SK_PREFIX):
            continue
        owner = actual.get((pk, REDEMPTION_SK)) or {}
        audits = [owner.get("redemption_delivery")] + [
            value.get("delivery")
            for name, value in owner.items()
            if name.startswith(ROLLBACK_PREFIX) and isinstance(value, Mapping)
        ]
        if any(isinstance(audit, Mapping) and audit.get("raw_item") == sk for audit in audits):
            caused.add((pk, sk))
            counts["raw_items"] += 1
    return caused, counts, problems
