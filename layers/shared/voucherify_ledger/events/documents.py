"""The published documents of the ledger's events (``docs/events/``): a JSON Schema and an example event per detail
type, from the models of ``voucherify_ledger.events.details``. ``make schema`` writes them
(``python -m voucherify_ledger.events.documents docs/events``); a unit test fails when they are stale. Not imported by
any function.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voucherify_ledger.events.details import (
    DETAILS,
    SOURCE,
    DeliveryQuarantined,
    Detail,
    ReconciledMissing,
    RedemptionFailed,
    RedemptionRecorded,
    RedemptionRolledBack,
    RollbackRequestFailed,
    event_id,
)

SCHEMA_SUFFIX = ".schema.json"
EXAMPLES_DIR = "examples"


def json_schema(model: type[Detail]) -> dict[str, Any]:
    """The JSON Schema of ``model``'s ``detail`` (draft 2020-12)."""
    schema = model.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": model.SLUG + SCHEMA_SUFFIX,
        "title": model.DETAIL_TYPE,
        "description": f"The detail of a {SOURCE} event of detail-type {model.DETAIL_TYPE}. {model.SUMMARY}",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


_R = "r_0e2500291ae016adea"  # the seed redemption of events/payloads/redemption_succeeded.json, its ids below
_ORDER = "ord_3VYCHwdV0YOOch2nm1RsTKNI"
_CUSTOMER = "cust_1g637SqVZnkdPNdAIZ7Ra879"
_RECORDED_AT = "2024-01-15T12:20:41.102Z"


def examples() -> list[Detail]:
    """One detail of each type, as the ledger's sample deliveries give them."""
    return [
        RedemptionRecorded(
            event_id=event_id(RedemptionRecorded.DETAIL_TYPE, _R),
            redemption_id=_R,
            status="SUCCEEDED",
            voucherify_status="SUCCEEDED",
            result="SUCCESS",
            redeemed_at="2024-01-15T12:20:38.635Z",
            recorded_at=_RECORDED_AT,
            recorded_by="webhook",
            customer_id=_CUSTOMER,
            order_id=_ORDER,
            order_amount=7000,
            order_total_amount=6000,
            discount_amount=1000,
            amount_unit="currency",
            voucher_code="Always-add-prods-5",
            voucher_id="v_VZgTRbJvauZR7Ub7exOtAg0MqxXljPpA",
            voucher_type="DISCOUNT_VOUCHER",
            campaign_id="camp_kwMyXFKquedx8FzXNpVPN7QU",
        ),
        RedemptionFailed(
            event_id=event_id(RedemptionFailed.DETAIL_TYPE, "rf_0e3ac5685ba431c104"),
            redemption_id="rf_0e3ac5685ba431c104",
            status="FAILED",
            voucherify_status="FAILED",
            result="FAILURE",
            failure_code="no_applicable_redeemables",
            redeemed_at="2024-02-02T12:12:12.918Z",
            recorded_at="2024-02-02T12:12:15.240Z",
            recorded_by="webhook",
            customer_id=_CUSTOMER,
            amount_unit="currency",
        ),
        RedemptionRolledBack(
            event_id=event_id(RedemptionRolledBack.DETAIL_TYPE, _R, "rr_0e3ac8762299fef1e3"),
            redemption_id=_R,
            rollback_id="rr_0e3ac8762299fef1e3",
            status="ROLLED_BACK",
            rolled_back_at="2024-01-16T09:02:11.520Z",
            recorded_at="2024-01-16T09:02:13.004Z",
            recorded_by="worker",
            voucherify_status="SUCCEEDED",
            result="SUCCESS",
            amount=-1000,
            amount_unit="currency",
            order_status="CANCELED",
            customer_id=_CUSTOMER,
            order_id=_ORDER,
            voucher_code="Always-add-prods-5",
            campaign_id="camp_kwMyXFKquedx8FzXNpVPN7QU",
        ),
        RollbackRequestFailed(
            event_id=event_id(RollbackRequestFailed.DETAIL_TYPE, "REDEMPTION#" + _R, "REQUEST#cancel-1001", "1"),
            request_id="cancel-1001",
            redemption_id=_R,
            state="FAILED",
            attempts=1,
            rollback_id="rrf_0e3ac8762299fef1e4",
            error_status=200,
            error_key="customer_rules_violated",
            failed_at="2024-01-16T09:02:13.004Z",
        ),
        DeliveryQuarantined(
            event_id=event_id(
                DeliveryQuarantined.DETAIL_TYPE, "q_78efad7307421debd3e0e08df1f2147c", "2024-01-15T12:20:41.102Z"
            ),
            quarantine_id="q_78efad7307421debd3e0e08df1f2147c",
            reason="the payload does not match the redemption.succeeded schema",
            route="redemption-succeeded",
            event_type="redemption.succeeded",
            delivery_id="whs_0e16e42bc6e0c65b57",
            received_at="2024-01-15T12:20:41.102Z",
            expires_at="2024-02-14T12:20:41.000Z",
        ),
        ReconciledMissing(
            event_id=event_id(ReconciledMissing.DETAIL_TYPE, "r_0e6ff48b91cfa02e97"),
            redemption_id="r_0e6ff48b91cfa02e97",
            status="SUCCEEDED",
            result="SUCCESS",
            redeemed_at="2024-03-01T10:00:02.310Z",
            recorded_at="2024-03-01T11:00:14.871Z",
            order_id="ord_p6B1A0y805yUQQaCw4bC6Fbk",
            customer_id=_CUSTOMER,
        ),
    ]


def example_event(detail: Detail) -> dict[str, Any]:
    """The whole event a rule's target receives for ``detail``, as EventBridge delivers it."""
    time = str(getattr(detail, "recorded_at", None) or getattr(detail, "failed_at", None) or _RECORDED_AT)
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, detail.event_id)),
        "detail-type": detail.DETAIL_TYPE,
        "source": SOURCE,
        "account": "123456789012",
        "time": time[:19] + "Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": json.loads(detail.as_json()),
    }


def _text(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def documents() -> dict[str, str]:
    """File (relative to docs/events) → the text it holds: every schema, then every example."""
    found = {model.SLUG + SCHEMA_SUFFIX: _text(json_schema(model)) for model in DETAILS}
    for detail in examples():
        found[f"{EXAMPLES_DIR}/{detail.SLUG}.json"] = _text(example_event(detail))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voucherify_ledger.events.documents",
        description="Writes the ledger events' JSON Schemas and example events.",
    )
    parser.add_argument("directory", nargs="?", default="docs/events", type=Path)
    parser.add_argument("--check", action="store_true", help="only report the files that differ")
    args = parser.parse_args(argv)
    stale = []
    for name, text in documents().items():
        path = args.directory / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for name in stale:
        print(f"{args.directory / name} is out of date", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":  # make schema (docs/events/)
    sys.exit(main())
