"""The ledger a run must end with: what the corpora say (``expected_ledger``), what the table holds (``scan_ledger``)
and every difference between the two (``compare_ledger``), raw deliveries included."""

from __future__ import annotations

import json
import zlib
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

from ledger_dev.payloads.corpus import (
    Corpus,
)
from voucherify_ledger.ledger.keys import (
    REDEMPTION_PREFIX,
    REDEMPTION_SK,
    ROLLBACK_IDS,
    ROLLBACK_PREFIX,
    ROLLED_BACK,
    SUCCEEDED,
    iso,
    redeemed_day,
)
from voucherify_ledger.ledger.redemptions import REDEMPTION_FAILED, redemption_summary, rollback_summary, summary_digest
from voucherify_ledger.models.webhooks import (
    EventRedemptionRollbackSucceededData,
    EventRedemptionSucceededData,
)

# Attributes whose value depends on when a write happened, not on what was delivered.
TIMING_ATTRIBUTES = frozenset({"updated_at", "redemption_recorded_at", "recorded_at"})
AUDIT_ATTRIBUTES = frozenset({"redemption_delivery", "delivery"})


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "value") and isinstance(value.value, bytes):  # boto3 Binary
        return bytes(value.value)
    return value


def scan_ledger(client: Any, table_name: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every item of the table (a consistent scan), keyed (pk, sk), as plain Python values."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True):
        for raw in page.get("Items", []):
            item = {k: _plain(deserializer.deserialize(v)) for k, v in raw.items()}
            items[(item["pk"], item["sk"])] = item
    return items


def _as_the_corpus_says(target: dict[str, Any], truth: Mapping[str, Any]) -> None:
    """``truth`` (the corpus's own account: a value, or None for absent) over what the summaries say."""
    for name, value in truth.items():
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value


def expected_ledger(corpora: Sequence[Corpus]) -> dict[tuple[str, str], dict[str, Any]]:
    """What the ledger must hold after every delivery of ``corpora`` was accepted once: per redemption its
    summary (a rollback's copy of the redemption fills only what the redemption's own delivery left out,
    whichever came first), its status and rollback ids, and per rollback its summary (the attribute
    ``rollback#<rr_…>``); a failed redemption FAILED, a failed rollback in ``failed_rollback_ids`` without a
    change of status. Where the corpus knows what the ledger must hold (its ``truth``: status, each redeemable's
    own discount, the stack's marks, units, card balances, rewards, what a rollback gave back) that wins over the
    ledger's own summaries, so a wrong summary shows as a difference. Timing and audit attributes are left out
    (checked separately)."""
    expected: dict[tuple[str, str], dict[str, Any]] = {}
    for corpus in corpora:
        for redemption_id, data in corpus.redemptions.items():
            parsed = EventRedemptionSucceededData.model_validate(data)
            item = {"pk": REDEMPTION_PREFIX + redemption_id, "sk": REDEMPTION_SK, "entity": "redemption"}
            summary = redemption_summary(parsed, parsed.redemption)
            item.update(_plain(summary))  # as a scan reads it back (a fraction's Decimal as a float)
            item["redemption_digest"] = summary_digest(summary)  # what a conflicting redelivery is told apart by
            if isinstance(summary.get("redeemed_at"), str):  # ByRedeemedDay: written with the redemption itself
                item["redeemed_day"] = redeemed_day(summary["redeemed_at"])
            item["status"] = REDEMPTION_FAILED if redemption_id in corpus.failed else SUCCEEDED
            _as_the_corpus_says(item, corpus.truth.get(redemption_id, {}))
            expected[(item["pk"], item["sk"])] = item
        for rollback_id, data in corpus.rollbacks.items():
            _expect_rollback(expected, corpus, rollback_id, data)
    return expected


def _expect_rollback(
    expected: dict[tuple[str, str], dict[str, Any]], corpus: Corpus, rollback_id: str, data: Mapping[str, Any]
) -> None:
    parsed = EventRedemptionRollbackSucceededData.model_validate(data)
    redemption_id = parsed.redemption_id
    key = (REDEMPTION_PREFIX + redemption_id, REDEMPTION_SK)
    item = expected.setdefault(key, {"pk": key[0], "sk": key[1], "entity": "redemption"})
    if parsed.redemption is not None and parsed.redemption.id == redemption_id:
        for name, value in redemption_summary(parsed, parsed.redemption).items():
            item.setdefault(name, _plain(value))
    item.setdefault("redemption_id", redemption_id)
    if rollback_id in corpus.failed:  # noted, the status left as it is
        item["failed_rollback_ids"] = sorted({*item.get("failed_rollback_ids", []), rollback_id})
    else:
        item["status"] = ROLLED_BACK
        item["rolled_back_at"] = iso(parsed.redemption_rollback.date)
        item["rollback_ids"] = sorted({*item.get("rollback_ids", []), rollback_id})
    # the rollback: an attribute of its redemption's item, named by its id (which it does not repeat)
    summary = rollback_summary(parsed.redemption_rollback, redemption_id, parsed)
    entry = {"source": "webhook", **{k: _plain(v) for k, v in summary.items() if k not in ROLLBACK_IDS}}
    _as_the_corpus_says(entry, corpus.truth.get(rollback_id, {}))
    item[ROLLBACK_PREFIX + rollback_id] = entry


def _comparable(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item without timing and audit attributes, also inside its rollbacks (``rollback#<rr_…>``)."""
    hidden = TIMING_ATTRIBUTES | AUDIT_ATTRIBUTES
    shown = {k: v for k, v in item.items() if k not in hidden}
    for name, value in shown.items():
        if name.startswith(ROLLBACK_PREFIX) and isinstance(value, Mapping):
            shown[name] = {k: v for k, v in value.items() if k not in hidden}
    return shown


def _documents(corpora: Sequence[Corpus]) -> dict[str, list[Any]]:
    """entity → the JSON documents delivered for it (a stored raw delivery must be one of them)."""
    found: dict[str, list[Any]] = {}
    for corpus in corpora:
        for delivery in corpus.deliveries:
            if not delivery.duplicate:
                found.setdefault(delivery.entity, []).append(json.loads(delivery.body))
    return found


def compare_ledger(
    expected: Mapping[tuple[str, str], Mapping[str, Any]],
    actual: Mapping[tuple[str, str], Mapping[str, Any]],
    documents: Mapping[str, list[Any]],
    allowed: Collection[tuple[str, str]] = (),
) -> list[str]:
    """The differences between the expected and the scanned ledger (empty when exact). ``allowed``: keys of items
    a phase caused beside the expected ones (quarantine records, conflicts, raw deliveries kept out of line), checked
    by that phase; a raw delivery kept out of line (``raw_item``) is read from its ``RAW#`` item in ``actual``."""
    problems: list[str] = []
    for key in sorted(expected.keys() - actual.keys()):
        problems.append(f"missing {key[0]} / {key[1]}")
    for key in sorted(actual.keys() - expected.keys() - set(allowed)):
        problems.append(f"unexpected {key[0]} / {key[1]}")
    for key in sorted(expected.keys() & actual.keys()):
        want, got = expected[key], actual[key]
        shown = _comparable(got)
        if shown != _comparable(want):
            differing = sorted(k for k in want.keys() | shown.keys() if want.get(k) != shown.get(k))
            detail = ", ".join(f"{k}: want {want.get(k)!r} got {shown.get(k)!r}" for k in differing[:4])
            problems.append(f"{key[0]} / {key[1]} differs: {detail}")
        # the raw deliveries: the redemption's, and each rollback's inside its attribute
        audits = [
            (
                "redemption_delivery",
                f"redemption:{key[0].removeprefix(REDEMPTION_PREFIX)}",
                got.get("redemption_delivery"),
            )
        ]
        audits += [
            (f"{name}.delivery", f"rollback:{name.removeprefix(ROLLBACK_PREFIX)}", value.get("delivery"))
            for name, value in sorted(got.items())
            if name.startswith(ROLLBACK_PREFIX) and isinstance(value, Mapping)
        ]
        for audit_name, entity, audit in audits:
            compressed = audit.get("raw_zlib") if isinstance(audit, dict) else None
            if isinstance(audit, dict) and compressed is None and audit.get("raw_item"):
                compressed = (actual.get((key[0], str(audit["raw_item"]))) or {}).get("raw_zlib")
                if compressed is None:
                    problems.append(f"{key[0]} / {key[1]}: {audit_name} names {audit['raw_item']}, which is missing")
                    continue
            if compressed is None:
                problems.append(f"{key[0]} / {key[1]}: no {audit_name} (its delivery was never recorded)")
                continue
            raw = json.loads(zlib.decompress(compressed))
            if raw not in documents.get(entity, []):
                problems.append(f"{key[0]} / {key[1]}: the stored delivery is none of those sent for {entity}")
    return problems
