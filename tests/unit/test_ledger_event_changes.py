"""Which stream records of the ledger table give which events (voucherify_ledger.events.changes), read from images
built as the ledger writes its items: the summaries of the published payloads, the keys of ledger.keys."""

from __future__ import annotations

import base64
import itertools
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from support.documents import payload
from voucherify_ledger.events.changes import LedgerEvent, events_of
from voucherify_ledger.events.details import DETAIL_TYPES, event_id
from voucherify_ledger.ledger.keys import iso, redeemed_day
from voucherify_ledger.ledger.summaries import ledger_status, redemption_summary, rollback_summary, summary_digest
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData, EventRedemptionSucceededData

ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/voucherify-ledger/stream/2026-03-01T00:00:00.000"
WHEN = 1_772_359_200.25  # the stream record's ApproximateCreationDateTime
RECEIVED = "2026-03-01T10:00:00.120Z"
R_SEED = "r_0e2500291ae016adea"  # events/payloads/redemption_succeeded.json
RF_SEED = "rf_0e3ac5685ba431c104"  # events/payloads/redemption_failed.json
R_ROLLED, RR = "r_0e3ab1f3fb99fee4b9", "rr_0e3ac8762299fef1e3"  # events/payloads/redemption_rollback_succeeded.json
# The payloads' personal data and names: no event may carry them.
PERSONAL = ("Jane Doe", "jane@jane.io", "test_customer_id_2", "Jack Webhook", "jck-wbhk", "Always add missing products")

_serializer = TypeSerializer()


def dynamo(image: dict[str, Any]) -> dict[str, Any]:
    """An image in DynamoDB JSON as a Lambda stream event carries it (binary values base64-encoded)."""
    found = {}
    for name, value in image.items():
        if isinstance(value, bytes):
            found[name] = {"B": base64.b64encode(value).decode("ascii")}
        elif isinstance(value, dict):
            found[name] = {"M": dynamo(value)}
        else:
            found[name] = _serializer.serialize(value)
    return found


def record(
    name: str,
    keys: tuple[str, str],
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    *,
    sequence: str = "4000000000000000000001",
) -> dict[str, Any]:
    stream: dict[str, Any] = {
        "ApproximateCreationDateTime": WHEN,
        "Keys": dynamo({"pk": keys[0], "sk": keys[1]}),
        "SequenceNumber": sequence,
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        stream["OldImage"] = dynamo(old)
    if new is not None:
        stream["NewImage"] = dynamo(new)
    return {
        "eventID": "c4ca4238a0b923820dcc509a6f75849b",
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "eventSourceARN": ARN,
        "dynamodb": stream,
    }


def audit(route: str, **extra: Any) -> dict[str, Any]:
    return {"raw_zlib": b"x\x9c\xab\xae\x05\x00\x01u\x00\xf9", "route": route, "received_at": RECEIVED, **extra}


def redemption_item(name: str = "redemption_succeeded", *, route: str = "redemption-succeeded", **extra: Any) -> dict:
    """The item ``RedemptionStore.record`` writes for a payload of events/payloads."""
    data = EventRedemptionSucceededData.model_validate(payload(name))
    summary = redemption_summary(data, data.redemption)
    return {
        "pk": "REDEMPTION#" + data.redemption.id,
        "sk": "REDEMPTION",
        **summary,
        "entity": "redemption",
        "status": ledger_status(data.redemption),
        "redeemed_day": redeemed_day(summary["redeemed_at"]),
        "redemption_recorded_at": RECEIVED,
        "updated_at": RECEIVED,
        "redemption_digest": summary_digest(summary),
        "redemption_delivery": audit(route),
        **extra,
    }


def with_rollback(
    item: dict[str, Any], *, source: str = "webhook", name: str = "redemption_rollback_succeeded"
) -> dict:
    """``item`` after ``RedemptionStore.record_rollback`` of a payload: its ``rollback#<rr_…>`` and the flip."""
    data = EventRedemptionRollbackSucceededData.model_validate(payload(name))
    rollback = data.redemption_rollback
    summary = rollback_summary(rollback, data.redemption_id, data)
    entry = {k: v for k, v in summary.items() if k not in ("rollback_id", "redemption_id")}
    attribute = {"source": source, "recorded_at": RECEIVED, **entry, "delivery": audit("redemption-rollback-succeeded")}
    changed = {**item, f"rollback#{rollback.id}": attribute}
    if rollback.failed:
        changed["failed_rollback_ids"] = {rollback.id}
    else:
        changed.update(status="ROLLED_BACK", rolled_back_at=iso(rollback.date), rollback_ids={rollback.id})
    return changed


def rolled_back_first() -> dict[str, Any]:
    """The item a rollback makes when it comes before its redemption: what the rollback's data says of it."""
    data = EventRedemptionRollbackSucceededData.model_validate(payload("redemption_rollback_succeeded"))
    assert data.redemption is not None
    item = {
        "pk": "REDEMPTION#" + data.redemption_id,
        "sk": "REDEMPTION",
        **redemption_summary(data, data.redemption),
        "entity": "redemption",
    }
    return with_rollback(item)


def keys_of(item: dict[str, Any]) -> tuple[str, str]:
    return item["pk"], item["sk"]


def details(events: list[LedgerEvent]) -> list[tuple[str, dict[str, Any]]]:
    return [(event.detail_type, json.loads(event.detail.as_json())) for event in events]


def assert_no_personal_data(events: list[LedgerEvent]) -> None:
    text = json.dumps([d for _, d in details(events)])
    for value in PERSONAL:
        assert value not in text


# --- redemptions ---------------------------------------------------------------------------------------------
def test_a_new_redemption_is_recorded_with_its_ids_amounts_and_times() -> None:
    item = redemption_item()

    events = events_of(record("INSERT", keys_of(item), new=item))

    assert details(events) == [
        (
            "Redemption Recorded",
            {
                "event_id": event_id("Redemption Recorded", R_SEED),
                "redemption_id": R_SEED,
                "status": "SUCCEEDED",
                "voucherify_status": "SUCCEEDED",
                "result": "SUCCESS",
                "redeemed_at": "2024-01-15T12:20:38.635Z",
                "recorded_at": RECEIVED,
                "recorded_by": "webhook",
                "customer_id": "cust_1g637SqVZnkdPNdAIZ7Ra879",
                "order_id": "ord_3VYCHwdV0YOOch2nm1RsTKNI",
                "order_amount": 7000,
                "order_total_amount": 6000,
                "amount_unit": "currency",
                "voucher_code": "Always-add-prods-5",
                "voucher_id": "v_VZgTRbJvauZR7Ub7exOtAg0MqxXljPpA",
                "voucher_type": "DISCOUNT_VOUCHER",
                "campaign_id": "camp_kwMyXFKquedx8FzXNpVPN7QU",
                "discount_amount": 1000,
            },
        )
    ]
    assert events[0].time == datetime.fromtimestamp(WHEN, UTC)
    assert_no_personal_data(events)


def test_the_same_record_again_gives_the_same_event() -> None:
    item = redemption_item()
    again = [events_of(record("INSERT", keys_of(item), new=item)) for _ in range(2)]
    assert again[0] == again[1]


def test_a_failed_attempt_is_redemption_failed_without_what_a_success_gives() -> None:
    item = redemption_item("redemption_failed")

    ((detail_type, detail),) = details(events_of(record("INSERT", keys_of(item), new=item)))

    assert detail_type == "Redemption Failed"
    assert detail["event_id"] == event_id("Redemption Failed", RF_SEED)
    assert (detail["redemption_id"], detail["status"], detail["result"]) == (RF_SEED, "FAILED", "FAILURE")
    assert detail["failure_code"] == "no_applicable_redeemables"
    assert "failure_message" not in detail  # Voucherify's sentence, not a code
    assert not {"discount_amount", "amount"} & set(detail)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda item: ({"pk": item["pk"], "sk": item["sk"]}, item), id="moto-keys-only-insert-then-item"),
        pytest.param(lambda item: (item, {**item, "updated_at": "2026-03-01T11:00:00.000Z"}), id="modify-no-change"),
        pytest.param(lambda item: (item, {**item, "status": "ROLLED_BACK"}), id="already-rolled-back-no-rollback-id"),
    ],
)
def test_a_modify_that_adds_neither_a_recording_nor_a_rollback_gives_nothing_new(change: Any) -> None:
    old, new = change(redemption_item())
    events = events_of(record("MODIFY", keys_of(new), old=old, new=new))
    recorded_before = bool(old.get("redemption_recorded_at"))
    assert [e.detail_type for e in events] == ([] if recorded_before else ["Redemption Recorded"])


def test_a_rollback_added_to_a_redemption_is_redemption_rolled_back() -> None:
    old = redemption_item("redemption_rollback_succeeded")  # its redemption, recorded
    new = with_rollback(old)

    ((detail_type, detail),) = details(events_of(record("MODIFY", keys_of(new), old=old, new=new)))

    assert detail_type == "Redemption Rolled Back"
    assert detail == {
        "event_id": event_id("Redemption Rolled Back", R_ROLLED, RR),
        "redemption_id": R_ROLLED,
        "rollback_id": RR,
        "status": "ROLLED_BACK",
        "rolled_back_at": "2024-02-01T10:23:52.499Z",
        "recorded_at": RECEIVED,
        "recorded_by": "webhook",
        "voucherify_status": "SUCCEEDED",
        "result": "SUCCESS",
        "amount_unit": "currency",
        "order_status": "CANCELED",
        "customer_id": "cust_IdgAFZxYwwHctOk9pPuMu308",
        "order_id": "ord_OPBS4bwowjzQ3odiMNk09WPL",
        "voucher_code": "Refer-gift-90873378",
        "campaign_id": "camp_QULf1Wzu4yvT3cJ3IzFp76nY",
    }
    assert "reason" not in detail  # the merchant's free text


def test_a_rollback_before_its_redemption_then_the_redemption() -> None:
    first = rolled_back_first()
    assert [e.detail_type for e in events_of(record("INSERT", keys_of(first), new=first))] == ["Redemption Rolled Back"]

    recorded = {**redemption_item("redemption_rollback_succeeded"), **{k: v for k, v in first.items() if "roll" in k}}
    recorded["status"] = "ROLLED_BACK"  # set_if_absent: the rollback's flip stands
    events = events_of(record("MODIFY", keys_of(first), old=first, new=recorded))

    assert [(t, d["status"]) for t, d in details(events)] == [("Redemption Recorded", "ROLLED_BACK")]


def test_a_failed_rollback_and_a_worker_rollback() -> None:
    old = redemption_item("redemption_rollback_succeeded")
    failed = with_rollback(old, name="redemption_rollback_failed")
    assert events_of(record("MODIFY", keys_of(old), old=old, new=failed)) == []  # rrf_…: the redemption stands

    by_worker = with_rollback(old, source="worker")
    ((_, detail),) = details(events_of(record("MODIFY", keys_of(old), old=old, new=by_worker)))
    assert detail["recorded_by"] == "worker"


def test_a_reconciler_recorded_redemption_is_also_reconciled_missing() -> None:
    item = redemption_item(route="reconciler")
    backfilled = redemption_item("redemption_failed", route="reconciler", reconcile_job_id="bf_0123456789abcdef")

    scheduled = details(events_of(record("INSERT", keys_of(item), new=item)))
    history = details(events_of(record("INSERT", keys_of(backfilled), new=backfilled)))

    assert [t for t, _ in scheduled] == ["Redemption Recorded", "Reconciled Missing"]
    assert scheduled[0][1]["recorded_by"] == "reconciler"
    assert scheduled[1][1] == {
        "event_id": event_id("Reconciled Missing", R_SEED),
        "redemption_id": R_SEED,
        "status": "SUCCEEDED",
        "result": "SUCCESS",
        "redeemed_at": "2024-01-15T12:20:38.635Z",
        "recorded_at": RECEIVED,
        "order_id": "ord_3VYCHwdV0YOOch2nm1RsTKNI",
        "customer_id": "cust_1g637SqVZnkdPNdAIZ7Ra879",
    }
    assert [t for t, _ in history] == ["Redemption Failed", "Reconciled Missing"]
    assert history[1][1]["backfill_job_id"] == "bf_0123456789abcdef"
    assert history[1][1]["status"] == "FAILED"


def test_a_replayed_delivery_names_its_quarantine_record() -> None:
    item = redemption_item()
    item["redemption_delivery"] = audit("redemption-succeeded", replayed_from="q_" + "ab" * 16)
    ((_, detail),) = details(events_of(record("INSERT", keys_of(item), new=item)))
    assert detail["replayed_from"] == "q_" + "ab" * 16


def test_a_stack_parent_and_a_fractional_amount() -> None:
    item = redemption_item(
        stack_role="parent",
        child_redemption_ids=["r_child00000000000002", "r_child00000000000001"],
        amount=Decimal("12.5"),
    )
    ((_, detail),) = details(events_of(record("INSERT", keys_of(item), new=item)))
    assert detail["stack_role"] == "parent" and detail["amount"] == 12.5
    assert detail["child_redemption_ids"] == ["r_child00000000000002", "r_child00000000000001"]


# --- rollback requests ---------------------------------------------------------------------------------------
def request(state: str, attempts: int, **fields: Any) -> dict[str, Any]:
    return {
        "pk": "REDEMPTION#" + R_SEED,
        "sk": "REQUEST#cancel-1001",
        "entity": "rollback_request",
        "request_id": "cancel-1001",
        "redemption_id": R_SEED,
        "created_at": "2026-03-01T10:00:00.000Z",
        "updated_at": "2026-03-01T10:00:01.000Z",
        "state": state,
        "attempts": attempts,
        "reason": "Order cancelled by Jane Doe",
        **fields,
    }


def test_a_request_between_its_other_states_gives_nothing() -> None:
    states = [request("PENDING", 1), request("RETRYING", 1), request("PENDING", 2), request("SUCCEEDED", 2)]
    changes = [record("INSERT", keys_of(states[0]), new=states[0])]
    changes += [record("MODIFY", keys_of(new), old=old, new=new) for old, new in itertools.pairwise(states)]
    assert [events_of(change) for change in changes] == [[], [], [], []]


def test_a_request_that_fails_permanently_is_rollback_request_failed_once() -> None:
    pending = request("PENDING", 1)
    error = {"status": 404, "key": "not_found", "message": "Resource not found: Jane Doe", "request_id": "v-0a1b2c"}
    failed = request("FAILED", 1, error=error, api_calls=1)

    ((detail_type, detail),) = details(events_of(record("MODIFY", keys_of(failed), old=pending, new=failed)))
    again = events_of(record("MODIFY", keys_of(failed), old=failed, new={**failed, "updated_at": "x"}))

    assert detail_type == "Rollback Request Failed"
    assert detail == {
        "event_id": event_id("Rollback Request Failed", "REDEMPTION#" + R_SEED, "REQUEST#cancel-1001", "1"),
        "request_id": "cancel-1001",
        "redemption_id": R_SEED,
        "attempts": 1,
        "state": "FAILED",
        "dead_lettered": False,
        "error_status": 404,
        "error_key": "not_found",
        "voucherify_request_id": "v-0a1b2c",
        "failed_at": "2026-03-01T10:00:01.000Z",
    }
    assert again == []  # FAILED to FAILED
    assert "Jane Doe" not in json.dumps(detail)  # neither the request's reason nor the error's message


def test_a_redriven_request_that_fails_again_is_another_event() -> None:
    dead = request("FAILED", 5, dead_lettered=True, error={"key": "server_error", "status": 503})
    retried, failed_again = request("PENDING", 6), request("FAILED", 6, error={"key": "not_found", "status": 404})

    first = events_of(record("MODIFY", keys_of(dead), old=request("RETRYING", 5), new=dead))
    second = events_of(record("MODIFY", keys_of(dead), old=retried, new=failed_again))

    assert json.loads(first[0].detail.as_json())["dead_lettered"] is True
    assert first[0].detail.event_id != second[0].detail.event_id


def test_order_and_rejected_requests_that_fail() -> None:
    order = {
        "pk": "ORDER_SOURCE#1001",
        "sk": "REQUEST#refund-1",
        "request_id": "refund-1",
        "source_order_source_id": "1001",
        "state": "FAILED",
        "attempts": 1,
        "error": {"key": "no_redemptions", "message": "the ledger holds no redemption of the order"},
    }
    rejected = {
        "pk": "REQUEST#m-1",
        "sk": "REQUEST",
        "state": "FAILED",
        "attempts": 1,
        "error": {"key": "invalid_request"},
    }

    (order_event,) = events_of(record("INSERT", keys_of(order), new=order))
    (rejected_event,) = events_of(record("INSERT", keys_of(rejected), new=rejected))

    assert json.loads(order_event.detail.as_json())["order_source_id"] == "1001"
    assert json.loads(rejected_event.detail.as_json())["request_id"] == "m-1"


# --- quarantine ----------------------------------------------------------------------------------------------
def quarantine(deliveries: int = 1) -> dict[str, Any]:
    return {
        "pk": "QUARANTINE#q_" + "7" * 32,
        "sk": "QUARANTINE",
        "entity": "quarantine",
        "quarantine_id": "q_" + "7" * 32,
        "first_received_at": RECEIVED,
        "last_received_at": RECEIVED,
        "raw_zlib": b"x\x9c\x03\x00\x00\x00\x00\x01",
        "route": "redemption-succeeded",
        "reason": "the payload does not match the redemption.succeeded schema",
        "errors": ["redemption.status: Input should be 'SUCCEEDED'"],
        "event_type": "redemption.succeeded",
        "expires_at": 1_774_951_200,
        "deliveries": deliveries,
    }


def test_a_quarantined_delivery_once_not_on_its_redeliveries() -> None:
    first, again = quarantine(), quarantine(2)

    ((detail_type, detail),) = details(events_of(record("INSERT", keys_of(first), new=first)))
    redelivered = events_of(record("MODIFY", keys_of(first), old=first, new=again))
    expired = events_of(record("REMOVE", keys_of(first), old=again))

    assert detail_type == "Delivery Quarantined"
    assert detail == {
        "event_id": event_id("Delivery Quarantined", "q_" + "7" * 32, RECEIVED),
        "quarantine_id": "q_" + "7" * 32,
        "reason": "the payload does not match the redemption.succeeded schema",
        "route": "redemption-succeeded",
        "event_type": "redemption.succeeded",
        "received_at": RECEIVED,
        "expires_at": "2026-03-31T10:00:00.000Z",
    }
    assert (redelivered, expired) == ([], [])


# --- everything else ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "item",
    [
        {"pk": "REDEMPTION#" + R_SEED, "sk": "RAW#" + "0" * 64, "entity": "raw_delivery", "raw_zlib": b"x"},
        {"pk": "REDEMPTION#" + R_SEED, "sk": "CONFLICT#" + "0" * 32, "conflict_id": "c_1", "summary": {"a": 1}},
        {"pk": "IDEMPOTENCY#rollback-worker", "sk": "rollback-call#abc", "status": "COMPLETED", "expires_at": 1},
        {"pk": "RECONCILE", "sk": "STATE", "checkpoint": RECEIVED, "lease_owner": "x"},
        {"pk": "RECONCILE", "sk": "JOB#bf_1", "state": "FAILED"},
    ],
    ids=["raw", "conflict", "idempotency", "reconcile-state", "reconcile-job"],
)
def test_items_no_consumer_follows_give_nothing(item: dict[str, Any]) -> None:
    assert events_of(record("INSERT", keys_of(item), new=item)) == []
    assert events_of(record("MODIFY", keys_of(item), old=item, new={**item, "x": 1})) == []


def test_a_modify_without_its_old_image_is_refused_not_taken_for_new() -> None:
    item = redemption_item()
    change = record("MODIFY", keys_of(item), new=item)
    change["dynamodb"]["StreamViewType"] = "NEW_IMAGE"
    with pytest.raises(ValueError, match="without its old image"):
        events_of(change)


def test_a_remove_gives_nothing() -> None:
    item = with_rollback(redemption_item("redemption_rollback_succeeded"))
    assert events_of(record("REMOVE", keys_of(item), old=item)) == []


def test_every_detail_type_is_produced_by_some_change() -> None:
    produced = set()
    for item in (redemption_item(), redemption_item("redemption_failed", route="reconciler"), quarantine()):
        produced |= {e.detail_type for e in events_of(record("INSERT", keys_of(item), new=item))}
    old = redemption_item("redemption_rollback_succeeded")
    produced |= {e.detail_type for e in events_of(record("MODIFY", keys_of(old), old=old, new=with_rollback(old)))}
    failed = request("FAILED", 1, error={"key": "not_found"})
    produced |= {e.detail_type for e in events_of(record("INSERT", keys_of(failed), new=failed))}
    assert produced == set(DETAIL_TYPES)
