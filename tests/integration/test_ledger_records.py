"""The DynamoDB ledger on moto, with the table built from template.yaml: idempotent, order-independent,
atomic, queryable by order / customer / voucher code, and free of personal data in keys and indexes."""

from __future__ import annotations

import copy
import random
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from ledger_dev import bench
from ledger_dev.harness.template import create_table, resources
from support.documents import compact, openapi_examples, seed_redemption, seed_rollback
from support.functions import Aws
from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.dynamo import StorageError, StorageRefusedError
from voucherify_ledger.ledger.keys import (
    BY_REDEEMED_DAY,
    INDEX_KEYS,
    INDEXES,
    QUARANTINE_INDEX,
    QUARANTINE_PREFIX,
    parse_iso,
)
from voucherify_ledger.models.webhooks import EventRedemptionRollbackSucceededData, EventRedemptionSucceededData

T0 = datetime(2024, 3, 14, 9, 12, tzinfo=UTC)
SPRING_REDEMPTION = "r_0e6ff48b91cfa02e97"
SPRING_ROLLBACK = "rr_0e70cac29fee95aa7b"


def spring_redemption() -> dict[str, Any]:
    """customer.redemption.succeeded of r_0e6ff48b91cfa02e97: the redemption the seed rollback undoes."""
    ((_, example),) = openapi_examples("EVENTS.CUSTOMER.REDEMPTION.SUCCEEDED")
    return copy.deepcopy(example)


def redemption(data: dict[str, Any]) -> EventRedemptionSucceededData:
    return EventRedemptionSucceededData.model_validate(data)


def rollback(data: dict[str, Any]) -> EventRedemptionRollbackSucceededData:
    return EventRedemptionRollbackSucceededData.model_validate(data)


def delivery(name: str = "delivery", at: datetime = T0, route: str = "test") -> Delivery:
    return Delivery(raw=f'{{"delivery":"{name}"}}'.encode(), route=route, received_at=at)


def table(aws: Aws, table_name: str | None = None) -> list[dict[str, Any]]:
    items = aws.dynamodb.scan(TableName=table_name or aws.table_name, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


# --- the table -----------------------------------------------------------------------------------------
def test_table_is_built_as_the_template_defines_it(aws: Aws) -> None:
    props = resources()["LedgerTable"]["Properties"]
    described = aws.dynamodb.describe_table(TableName=aws.table_name)["Table"]
    assert described["KeySchema"] == props["KeySchema"]
    assert sorted(described["AttributeDefinitions"], key=str) == sorted(props["AttributeDefinitions"], key=str)
    assert described["BillingModeSummary"]["BillingMode"] == props["BillingMode"] == "PAY_PER_REQUEST"

    def index(gsi: dict[str, Any]) -> tuple:
        projection = gsi["Projection"]
        return (
            gsi["IndexName"],
            tuple((k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]),
            projection["ProjectionType"],
            frozenset(projection.get("NonKeyAttributes", [])),
        )

    assert {index(g) for g in described["GlobalSecondaryIndexes"]} == {
        index(g) for g in props["GlobalSecondaryIndexes"]
    }
    ttl = aws.dynamodb.describe_time_to_live(TableName=aws.table_name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == (
        "ENABLED",
        props["TimeToLiveSpecification"]["AttributeName"],
    )
    # the ledger's index names and key attributes are the template's
    gsis = {g["IndexName"]: g["KeySchema"][0]["AttributeName"] for g in props["GlobalSecondaryIndexes"]}
    assert {INDEXES[key]: INDEX_KEYS[key] for key in INDEXES} | {
        QUARANTINE_INDEX: "quarantine_id",
        BY_REDEEMED_DAY: "redeemed_day",
    } == gsis


# --- redemptions ---------------------------------------------------------------------------------------
def test_redemption_is_recorded_with_its_summary(aws: Aws) -> None:
    outcome = aws.ledger.redemptions.record(redemption(seed_redemption()), delivery())
    assert (outcome.status, outcome.redemption_id, outcome.ledger_status) == (
        "recorded",
        "r_0e2500291ae016adea",
        "SUCCEEDED",
    )
    view = aws.ledger.redemptions.get("r_0e2500291ae016adea")
    assert view is not None
    expected = {
        "id": "r_0e2500291ae016adea",
        "redemption_id": "r_0e2500291ae016adea",
        "status": "SUCCEEDED",
        "voucherify_status": "SUCCEEDED",
        "result": "SUCCESS",
        "voucher_code": "Always-add-prods-5",
        "voucher_id": "v_VZgTRbJvauZR7Ub7exOtAg0MqxXljPpA",
        "campaign_id": "camp_kwMyXFKquedx8FzXNpVPN7QU",
        "customer_id": "cust_1g637SqVZnkdPNdAIZ7Ra879",
        "order_id": "ord_3VYCHwdV0YOOch2nm1RsTKNI",
        "order_amount": 7000,
        "discount_amount": 1000,
        "order_total_amount": 6000,
        "redeemed_at": "2024-01-15T12:20:38.635Z",
        "rollback_ids": [],
        "rollbacks": [],
    }
    assert {key: view.get(key) for key in expected} == expected
    assert type(view["order_amount"]) is int
    assert aws.ledger.redemptions.get("r_000000000000000000") is None


def test_duplicate_redemption_changes_nothing(aws: Aws) -> None:
    data = redemption(seed_redemption())
    aws.ledger.redemptions.record(data, delivery("first"))
    before = table(aws)
    again = aws.ledger.redemptions.record(data, delivery("second", T0 + timedelta(hours=1)))
    assert (again.status, again.ledger_status) == ("duplicate", "SUCCEEDED")
    assert table(aws) == before


# --- rollbacks -----------------------------------------------------------------------------------------
def test_rollback_after_redemption(aws: Aws) -> None:
    aws.ledger.redemptions.record(redemption(spring_redemption()), delivery("redemption"))
    outcome = aws.ledger.redemptions.record_rollback(
        rollback(seed_rollback()), delivery("rollback", T0 + timedelta(minutes=1))
    )
    assert (outcome.status, outcome.redemption_id, outcome.rollback_id, outcome.ledger_status) == (
        "recorded",
        SPRING_REDEMPTION,
        SPRING_ROLLBACK,
        "ROLLED_BACK",
    )
    view = aws.ledger.redemptions.get(SPRING_REDEMPTION)
    assert view is not None
    assert view["status"] == "ROLLED_BACK"
    assert view["rollback_ids"] == [SPRING_ROLLBACK]
    assert view["rolled_back_at"] == "2024-03-14T09:11:53.787Z"
    assert (view["voucher_code"], view["order_id"], view["customer_id"]) == (
        "SPRING-2024-hOg",
        "ord_p6B1A0y805yUQQaCw4bC6Fbk",
        "cust_IdgAFZxYwwHctOk9pPuMu308",
    )
    assert (view["order_amount"], view["discount_amount"]) == (11499, 1150)
    (item,) = view["rollbacks"]
    assert item["rollback_id"] == SPRING_ROLLBACK
    assert item["redemption_id"] == SPRING_REDEMPTION
    assert item["reason"] == "Spring promotion error"
    assert item["rolled_back_at"] == "2024-03-14T09:11:53.787Z"


def test_rollback_before_its_redemption_keeps_rolled_back_and_fills_details(aws: Aws) -> None:
    aws.ledger.redemptions.record_rollback(rollback(seed_rollback()), delivery("rollback"))
    assert aws.ledger.redemptions.get(SPRING_REDEMPTION)["status"] == "ROLLED_BACK"
    outcome = aws.ledger.redemptions.record(redemption(spring_redemption()), delivery("late", T0 + timedelta(hours=2)))
    assert outcome.status == "recorded"
    assert outcome.ledger_status == "ROLLED_BACK"  # the 200 answer tells the truth, not "SUCCEEDED"
    view = aws.ledger.redemptions.get(SPRING_REDEMPTION)
    assert view["status"] == "ROLLED_BACK"
    assert view["rollback_ids"] == [SPRING_ROLLBACK]
    # the details of the redemption event are there, the redemption event's values winning
    assert view["discount_amount"] == 1150
    assert view["redeemed_at"] == "2024-03-13T17:35:58.535Z"
    assert view["voucher_code"] == "SPRING-2024-hOg"
    assert "redemption_recorded_at" in view


def test_rollback_naming_its_redemption_only_by_id(aws: Aws) -> None:
    data = seed_rollback()
    data["redemption"] = None
    aws.ledger.redemptions.record_rollback(rollback(data), delivery("rollback"))
    placeholder = aws.ledger.redemptions.get(SPRING_REDEMPTION)
    assert placeholder["status"] == "ROLLED_BACK"
    assert "voucher_code" not in placeholder and "redeemed_at" not in placeholder
    # a placeholder without redeemed_at is in no index (they sort on redeemed_at)
    assert aws.ledger.redemptions.list_by("customer", "cust_IdgAFZxYwwHctOk9pPuMu308") == []
    aws.ledger.redemptions.record(redemption(spring_redemption()), delivery("redemption"))
    view = aws.ledger.redemptions.get(SPRING_REDEMPTION)
    assert (view["status"], view["voucher_code"]) == ("ROLLED_BACK", "SPRING-2024-hOg")
    (found,) = aws.ledger.redemptions.list_by("customer", "cust_IdgAFZxYwwHctOk9pPuMu308")
    assert (found["redemption_id"], found["status"]) == (SPRING_REDEMPTION, "ROLLED_BACK")


def test_duplicate_rollback_changes_nothing(aws: Aws) -> None:
    aws.ledger.redemptions.record(redemption(spring_redemption()), delivery("redemption"))
    aws.ledger.redemptions.record_rollback(rollback(seed_rollback()), delivery("rollback"))
    before = table(aws)
    again = aws.ledger.redemptions.record_rollback(rollback(seed_rollback()), delivery("again", T0 + timedelta(days=1)))
    assert (again.status, again.rollback_id, again.ledger_status) == ("duplicate", SPRING_ROLLBACK, "ROLLED_BACK")
    assert table(aws) == before


def test_failed_rollback_does_not_roll_back(aws: Aws) -> None:
    aws.ledger.redemptions.record(redemption(spring_redemption()), delivery("redemption"))
    data = seed_rollback()
    data["redemption_rollback"].update(result="FAILURE", status="FAILED", failure_code="already_rolled_back")
    outcome = aws.ledger.redemptions.record_rollback(rollback(data), delivery("failed"))
    assert outcome.status == "recorded" and outcome.ledger_status is None
    view = aws.ledger.redemptions.get(SPRING_REDEMPTION)
    assert view["status"] == "SUCCEEDED"
    assert view["rollback_ids"] == []
    assert view["failed_rollback_ids"] == [SPRING_ROLLBACK]
    assert view["rollbacks"][0]["failure_code"] == "already_rolled_back"


class Recorder:
    """A DynamoDB client that records the calls it forwards."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return method(*args, **kwargs)

        return call


def test_rollback_is_one_update_of_its_redemption_item(aws: Aws) -> None:
    # One item, no transaction: atomic by itself, and billed once (a transaction bills each of its items twice).
    recorder = Recorder(aws.dynamodb)
    raw = compact(seed_rollback())
    received = Delivery(raw=raw, route="redemption-rollback-succeeded", received_at=T0)
    Ledger(aws.table_name, recorder).redemptions.record_rollback(rollback(seed_rollback()), received)  # type: ignore[arg-type]
    writes = [(name, kwargs) for name, kwargs in recorder.calls if name != "get_item"]
    assert [name for name, _ in writes] == ["update_item"]
    assert writes[0][1]["Key"] == {"pk": {"S": f"REDEMPTION#{SPRING_REDEMPTION}"}, "sk": {"S": "REDEMPTION"}}
    (item,) = table(aws)
    entry = item[f"rollback#{SPRING_ROLLBACK}"]["M"]
    assert {k: v for k, v in entry.items() if k != "delivery"} == {
        "source": {"S": "webhook"},
        "recorded_at": {"S": "2024-03-14T09:12:00.000Z"},
        "rolled_back_at": {"S": "2024-03-14T09:11:53.787Z"},
        "voucherify_status": {"S": "SUCCEEDED"},
        "result": {"S": "SUCCESS"},
        "reason": {"S": "Spring promotion error"},
        "amount_unit": {"S": "currency"},  # a discount voucher's
        "order_status": {"S": "CANCELED"},
    }
    audit = entry["delivery"]["M"]
    assert zlib.decompress(audit["raw_zlib"]["B"]) == raw
    assert (audit["route"]["S"], audit["received_at"]["S"]) == (
        "redemption-rollback-succeeded",
        "2024-03-14T09:12:00.000Z",
    )
    assert (item["status"]["S"], item["rollback_ids"]["SS"]) == ("ROLLED_BACK", [SPRING_ROLLBACK])


def test_seed_rollback_after_its_redemption_is_one_item_within_four_write_units(aws: Aws) -> None:
    """The issue's budget: at most 4 write units per delivery. The seed rollback of a recorded redemption writes
    one item of at most 4 KB (under the earlier layout: a 2-item transaction, 8 units)."""
    recorder = Recorder(aws.dynamodb)
    ledger = Ledger(aws.table_name, recorder)  # type: ignore[arg-type]
    ledger.redemptions.record(redemption(spring_redemption()), Delivery(compact(spring_redemption()), "r", T0))
    recorder.calls.clear()
    ledger.redemptions.record_rollback(rollback(seed_rollback()), Delivery(compact(seed_rollback()), "rb", T0))
    assert [name for name, _ in recorder.calls] == ["update_item"]
    (item,) = table(aws)
    assert 1024 < bench.item_size(item) <= 4 * 1024  # both raw deliveries are in it


def test_a_worker_rollback_is_recorded_only_after_its_request_is(aws: Aws) -> None:
    # The worker writes the request's final state first, then the rollback into the redemption's item (which
    # releases its claim). When the request's write fails, the rollback's is never made: the claim stays the
    # request's, for the worker to keep the answer for the retry. (A second call would be a call the Stubber
    # was not given: it fails the test.)
    with Stubber(aws.dynamodb) as stubber:
        stubber.add_client_error("update_item", service_error_code="ProvisionedThroughputExceededException")
        with pytest.raises(StorageError, match="ProvisionedThroughputExceededException"):
            _worker_rollback(aws.ledger)
        stubber.assert_no_pending_responses()
    assert table(aws) == []


# --- DynamoDB failures ---------------------------------------------------------------------------------
def _cancelled(*codes: str) -> dict[str, Any]:
    return {
        "service_error_code": "TransactionCanceledException",
        "service_message": f"Transaction cancelled, please refer cancellation reasons [{', '.join(codes)}]",
        "http_status_code": 400,
        "modeled_fields": {"CancellationReasons": [{"Code": code} for code in codes]},
    }


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        ("update_item", {"service_error_code": "ProvisionedThroughputExceededException", "http_status_code": 400}),
        ("update_item", {"service_error_code": "InternalServerError", "http_status_code": 500}),
        ("update_item", {"service_error_code": "AccessDeniedException", "http_status_code": 400}),
    ],
)
def test_redemption_write_errors_are_storage_errors(aws: Aws, operation: str, error: dict[str, Any]) -> None:
    with Stubber(aws.dynamodb) as stubber:
        stubber.add_client_error(operation, **error)
        with pytest.raises(StorageError, match=error["service_error_code"]):
            aws.ledger.redemptions.record(redemption(seed_redemption()), delivery())
    assert table(aws) == []


@pytest.mark.parametrize(
    "error",
    [
        {"service_error_code": "ProvisionedThroughputExceededException", "http_status_code": 400},
        {"service_error_code": "TransactionConflictException", "http_status_code": 400},
        {"service_error_code": "InternalServerError", "http_status_code": 500},
    ],
    ids=["throttled", "conflict", "500"],
)
def test_rollback_write_errors_are_storage_errors(aws: Aws, error: dict[str, Any]) -> None:
    with Stubber(aws.dynamodb) as stubber:
        stubber.add_client_error("update_item", **error)
        with pytest.raises(StorageError, match=error["service_error_code"]):
            aws.ledger.redemptions.record_rollback(rollback(seed_rollback()), delivery())
    assert table(aws) == []


def test_rollback_refused_by_its_own_condition_is_a_duplicate(aws: Aws) -> None:
    with Stubber(aws.dynamodb) as stubber:
        stubber.add_client_error("update_item", service_error_code="ConditionalCheckFailedException")
        stubber.add_response("get_item", {"Item": {"status": {"S": "ROLLED_BACK"}}})
        outcome = aws.ledger.redemptions.record_rollback(rollback(seed_rollback()), delivery())
    assert (outcome.status, outcome.ledger_status) == ("duplicate", "ROLLED_BACK")


def _worker_rollback(ledger: Ledger) -> Any:
    """The worker's writes: the request item's final state, then the rollback into the redemption item."""
    data = rollback(seed_rollback())
    return ledger.requests.record_worker_rollback(
        SPRING_REDEMPTION, data.redemption_rollback, raw=b"{}", received_at=T0, request_id="req-1"
    )


@pytest.mark.parametrize(
    "error",
    [
        {"service_error_code": "ThrottlingException", "http_status_code": 400},
        {"service_error_code": "TransactionConflictException", "http_status_code": 400},
    ],
    ids=["throttled", "conflict"],
)
def test_a_worker_rollback_write_that_fails_for_other_reasons_is_a_storage_error(
    aws: Aws, error: dict[str, Any]
) -> None:
    with Stubber(aws.dynamodb) as stubber:
        stubber.add_response("update_item", {})  # the request's final state
        stubber.add_client_error("update_item", **error)  # the redemption's write
        with pytest.raises(StorageError, match=error["service_error_code"]):
            _worker_rollback(aws.ledger)
        stubber.assert_no_pending_responses()


def test_a_worker_rollback_refused_as_invalid_is_refused_for_good(aws: Aws) -> None:
    """A ValidationException will be one on every retry: refused (StorageRefusedError), not unavailable."""
    with Stubber(aws.dynamodb) as stubber:
        stubber.add_response("update_item", {})
        stubber.add_client_error(
            "update_item", service_error_code="ValidationException", service_message="Item size has exceeded the limit"
        )
        stubber.add_client_error(  # once more with the raw copy out of line, in its own item
            "transact_write_items", **_cancelled("ValidationError", "None")
        )
        with pytest.raises(StorageRefusedError, match="cannot be stored as it is") as refused:
            _worker_rollback(aws.ledger)
    assert not isinstance(refused.value, StorageError)


def test_a_worker_rollback_refused_by_its_own_condition_is_a_duplicate(aws: Aws) -> None:
    with Stubber(aws.dynamodb) as stubber:
        stubber.add_response("update_item", {})  # the request's final state
        stubber.add_client_error("update_item", service_error_code="ConditionalCheckFailedException")
        stubber.add_response("get_item", {"Item": {"status": {"S": "ROLLED_BACK"}}})
        stubber.add_response("update_item", {})  # the claim released, the request noted finished
        stubber.add_response("update_item", {})  # the request: recorded by the webhook
        outcome = _worker_rollback(aws.ledger)
        stubber.assert_no_pending_responses()
    assert (outcome.status, outcome.ledger_status) == ("duplicate", "ROLLED_BACK")


@pytest.mark.parametrize(
    "call",
    [
        lambda ledger: ledger.redemptions.record(redemption(seed_redemption()), delivery()),
        lambda ledger: ledger.redemptions.record_rollback(rollback(seed_rollback()), delivery()),
        lambda ledger: ledger.quarantine.keep(delivery(), ["x: bad"], retention_days=1, reason="r"),
        lambda ledger: ledger.redemptions.get("r_1"),
    ],
    ids=["redemption", "rollback", "quarantine", "read"],
)
def test_unreachable_dynamodb_is_a_storage_error(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, call: Callable[[Ledger], Any]
) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com")

    for operation in ("update_item", "transact_write_items", "query", "get_item"):
        monkeypatch.setattr(aws.dynamodb, operation, unreachable)
    monkeypatch.setattr(aws.dynamodb, "get_paginator", lambda name: type("P", (), {"paginate": unreachable})())
    with pytest.raises(StorageError):
        call(aws.ledger)


# --- arrival order -------------------------------------------------------------------------------------
def _variant(template: dict[str, Any], index: int) -> dict[str, Any]:
    """Copies of the seed events for a new redemption ``index`` (ids, code, order and customer changed)."""
    data = copy.deepcopy(template)
    ids = {
        SPRING_REDEMPTION: f"r_{index:018x}",
        SPRING_ROLLBACK: f"rr_{index:018x}",
        "SPRING-2024-hOg": f"SPRING-{index % 3}",  # codes and customers shared across redemptions
        "ord_p6B1A0y805yUQQaCw4bC6Fbk": f"ord_{index:04d}",
        "cust_IdgAFZxYwwHctOk9pPuMu308": f"cust_{index % 2}",
    }

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return ids.get(node, node) if isinstance(node, str) else node

    return walk(data)


def _deliveries() -> list[tuple[str, Any, Delivery]]:
    """Redemptions, succeeded and failed rollbacks, and repeated deliveries, each with a fixed arrival time."""
    events: list[tuple[str, Any]] = []
    for index in range(6):
        redemption_data = _variant(spring_redemption(), index)
        redemption_data["redemption"]["date"] = f"2024-03-13T17:35:{10 + index:02d}.000Z"
        events.append(("redemption", redemption(redemption_data)))
        if index % 3 != 2:
            rollback_data = _variant(seed_rollback(), index)
            if index == 1:
                rollback_data["redemption"] = None
            events.append(("rollback", rollback(rollback_data)))
        if index % 2 == 0:
            failed = _variant(seed_rollback(), index)
            failed["redemption_rollback"].update(
                id=f"rr_f{index:017x}", result="FAILURE", status="FAILED", failure_code="already_rolled_back"
            )
            events.append(("rollback", rollback(failed)))
    deliveries = [(kind, data, delivery(f"d{n}", T0 + timedelta(seconds=n))) for n, (kind, data) in enumerate(events)]
    # Voucherify's retries resend the same send-out; which copy is recorded first is up to the arrival order,
    # so the copies carry the same audit data here and only updated_at may differ between orders.
    return [*deliveries, deliveries[0], deliveries[1], deliveries[4]]


def _apply(ledger: Ledger, deliveries: list[tuple[str, Any, Delivery]]) -> None:
    for kind, data, received in deliveries:
        if kind == "redemption":
            ledger.redemptions.record(data, received)
        else:
            ledger.redemptions.record_rollback(data, received)


def _without_last_write_time(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # updated_at is, by definition, the arrival time of whichever delivery came last
    return [{k: v for k, v in item.items() if k != "updated_at"} for item in items]


def test_any_arrival_order_gives_the_same_ledger(aws: Aws) -> None:
    deliveries = _deliveries()
    _apply(aws.ledger, deliveries)
    expected = _without_last_write_time(table(aws))
    for seed in range(5):
        shuffled = deliveries[:]
        random.Random(seed).shuffle(shuffled)
        name = create_table(aws.dynamodb, table_name=f"ledger-shuffled-{seed}")
        _apply(Ledger(name, aws.dynamodb), shuffled)
        assert _without_last_write_time(table(aws, name)) == expected, f"arrival order {seed} differs"
    for index in range(6):
        view = aws.ledger.redemptions.get(f"r_{index:018x}")
        assert view["status"] == ("SUCCEEDED" if index % 3 == 2 else "ROLLED_BACK")
        assert view["voucher_code"] == f"SPRING-{index % 3}"
        assert view["redeemed_at"] == f"2024-03-13T17:35:{10 + index:02d}.000Z"


# --- access patterns -----------------------------------------------------------------------------------
def _record_variants(aws: Aws) -> None:
    for index in range(6):
        data = _variant(spring_redemption(), index)
        data["redemption"]["date"] = f"2024-03-1{5 - index % 3}T10:00:0{index}.000Z"
        aws.ledger.redemptions.record(redemption(data), delivery(f"r{index}"))
    aws.ledger.redemptions.record_rollback(rollback(_variant(seed_rollback(), 4)), delivery("rollback"))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("order", "ord_0003", [3]),
        ("customer", "cust_1", [5, 1, 3]),
        ("customer", "cust_0", [2, 4, 0]),
        ("voucher_code", "SPRING-1", [1, 4]),
        ("voucher_code", "SPRING-9", []),
    ],
)
def test_redemptions_by_order_customer_and_code_oldest_first(
    aws: Aws, key: Any, value: str, expected: list[int]
) -> None:
    _record_variants(aws)
    found = aws.ledger.redemptions.list_by(key, value)
    assert [item["redemption_id"] for item in found] == [f"r_{index:018x}" for index in expected]
    assert [item["redeemed_at"] for item in found] == sorted(item["redeemed_at"] for item in found)
    statuses = {item["redemption_id"]: item["status"] for item in found}
    if f"r_{4:018x}" in statuses:
        assert statuses[f"r_{4:018x}"] == "ROLLED_BACK"
    gsi = next(
        g for g in resources()["LedgerTable"]["Properties"]["GlobalSecondaryIndexes"] if g["IndexName"] == INDEXES[key]
    )
    allowed = set(gsi["Projection"]["NonKeyAttributes"]) | {k["AttributeName"] for k in gsi["KeySchema"]}
    for item in found:
        assert set(item) <= allowed, set(item) - allowed
        assert item["order_amount"] == 11499 and item["discount_amount"] == 1150


def test_redemption_without_order_or_customer_is_left_out_of_those_indexes(aws: Aws) -> None:
    data = seed_redemption()
    for holder in (data, data["redemption"]):
        holder["order"] = None
        holder["customer"] = None
    data["redemption"]["customer_id"] = None
    aws.ledger.redemptions.record(redemption(data), delivery())
    (item,) = table(aws)
    assert "order_id" not in item and "customer_id" not in item
    assert [r["redemption_id"] for r in aws.ledger.redemptions.list_by("voucher_code", "Always-add-prods-5")] == [
        "r_0e2500291ae016adea"
    ]


# --- personal data -------------------------------------------------------------------------------------
def _personal_values(document: Any) -> set[str]:
    """Names and emails of every customer-like object (customer, holder, reward customer …) in a payload."""
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("name", "email") and isinstance(value, str) and document.get("object") == "customer":
                found.add(value)
            found |= _personal_values(value)
    elif isinstance(document, list):
        for value in document:
            found |= _personal_values(value)
    return found


def _strings(av: dict[str, Any]) -> list[str]:
    """Every string inside a DynamoDB attribute value."""
    ((kind, inner),) = av.items()
    if kind == "S":
        return [inner]
    if kind == "SS":
        return list(inner)
    if kind == "L":
        return [s for value in inner for s in _strings(value)]
    if kind == "M":
        return [s for value in inner.values() for s in _strings(value)]
    return []


def test_no_personal_data_in_keys_indexes_or_summaries(aws: Aws) -> None:
    payloads = [seed_redemption(), spring_redemption(), seed_rollback()]
    payloads += [example for _, example in openapi_examples("EVENTS.REDEMPTION.ROLLBACK.SUCCEEDED")]
    personal = set().union(*(_personal_values(p) for p in payloads))
    assert {"Jane Doe", "jane@jane.io", "Jack Webhook"} <= personal
    aws.ledger.redemptions.record(redemption(payloads[0]), delivery("a"))
    aws.ledger.redemptions.record(redemption(payloads[1]), delivery("b"))
    for data in payloads[2:]:
        aws.ledger.redemptions.record_rollback(rollback(data), delivery("c"))

    gsis = resources()["LedgerTable"]["Properties"]["GlobalSecondaryIndexes"]
    index_attributes = {"pk", "sk"}
    for gsi in gsis:
        assert gsi["Projection"]["ProjectionType"] != "ALL"
        index_attributes |= set(gsi["Projection"].get("NonKeyAttributes", []))
        index_attributes |= {k["AttributeName"] for k in gsi["KeySchema"]}
    assert not {a for a in index_attributes if "name" in a or "email" in a or "phone" in a or "address" in a}

    items = table(aws)
    assert len(items) == 2 + len(payloads[3:])  # the redemptions; a rollback is an attribute of its redemption
    for item in items:
        for attribute, value in item.items():
            if attribute.endswith("delivery"):  # the compressed raw delivery, kept for audit only
                continue
            if attribute.startswith("rollback#"):  # a rollback: its summary, and its delivery for audit only
                value = {"M": {k: v for k, v in value["M"].items() if k != "delivery"}}
            leaked = personal.intersection(_strings(value))
            assert not leaked, f"{attribute} of {item['pk']['S']} holds personal data"
            assert "email" not in attribute, attribute
            assert not attribute.endswith("_name") or attribute == "campaign_name", attribute
    # the audit copy is the delivery itself, compressed and outside every key and index
    audited = next(i for i in items if i["sk"]["S"] == "REDEMPTION")["redemption_delivery"]["M"]
    assert zlib.decompress(audited["raw_zlib"]["B"]) == b'{"delivery":"a"}'


def test_no_personal_data_in_the_summaries_of_any_kind_of_redemption(aws: Aws) -> None:
    """Gift and loyalty cards, rewards, stacks, a referral code's holder, failed redemptions and rollbacks: what the
    ledger adds for them (holder_id, reward_id, balances …) are ids and figures, never names or emails."""
    from support.kinds import REFERRER_EMAIL, REFERRER_NAME, every_kind

    redemptions = [kind.data for kind in every_kind()] + [e for _, e in openapi_examples("EVENTS.REDEMPTION.FAILED")]
    rollbacks = [e for _, e in openapi_examples("EVENTS.REDEMPTION.ROLLBACK.FAILED")]
    personal = set().union(*(_personal_values(p) for p in [*redemptions, *rollbacks]))
    assert {REFERRER_NAME, REFERRER_EMAIL, "Jane Doe", "jane@jane.io", "Jack Webhook"} <= personal
    for n, data in enumerate(redemptions):
        aws.ledger.redemptions.record(redemption(data), delivery(f"r{n}"))
    for n, data in enumerate(rollbacks):
        aws.ledger.redemptions.record_rollback(rollback(data), delivery(f"rb{n}"))
    items = table(aws)
    assert len(items) == len(redemptions) + len(rollbacks)
    for item in items:
        for attribute, value in item.items():
            if attribute.endswith("delivery"):
                continue
            if attribute.startswith("rollback#"):
                value = {"M": {k: v for k, v in value["M"].items() if k != "delivery"}}
            assert not personal.intersection(_strings(value)), f"{attribute} of {item['pk']['S']} holds personal data"
    holders = [i for i in items if "holder_id" in i]
    assert [h["holder_id"]["S"] for h in holders] == ["cust_R3f3rr3rH0ld3r0000001"]  # an id, never the person


# --- quarantine ----------------------------------------------------------------------------------------
def test_quarantine_stores_the_delivery_once_with_an_expiry(aws: Aws) -> None:
    raw = b'{"redemption": {"id": "r_1", "date": "never"}}'
    first = Delivery(raw=raw, route="redemption-succeeded", received_at=T0, event_type="redemption.succeeded")
    later = Delivery(raw=raw, route="redemption-succeeded", received_at=T0 + timedelta(hours=3))
    outcome = aws.ledger.quarantine.keep(first, ["redemption.date: bad"], retention_days=30, reason="invalid")
    again = aws.ledger.quarantine.keep(later, ["redemption.date: bad"], retention_days=30, reason="invalid")
    assert outcome.quarantine_id == again.quarantine_id and outcome.quarantine_id.startswith("q_")
    assert (outcome.deliveries, again.deliveries) == (1, 2)
    (item,) = table(aws)
    assert item["pk"]["S"] == QUARANTINE_PREFIX + outcome.quarantine_id
    assert zlib.decompress(item["raw_zlib"]["B"]) == raw
    assert item["first_received_at"]["S"] == "2024-03-14T09:12:00.000Z"
    assert item["last_received_at"]["S"] == "2024-03-14T12:12:00.000Z"
    assert item["errors"]["L"] == [{"S": "redemption.date: bad"}]
    ttl_attribute = resources()["LedgerTable"]["Properties"]["TimeToLiveSpecification"]["AttributeName"]
    assert int(item[ttl_attribute]["N"]) == int((later.received_at + timedelta(days=30)).timestamp())
    assert aws.ledger.quarantine.get(outcome.quarantine_id)["deliveries"] == 2
    different = Delivery(raw=raw + b" ", route="redemption-succeeded", received_at=T0)
    assert (
        aws.ledger.quarantine.keep(different, [], retention_days=1, reason="x").quarantine_id != outcome.quarantine_id
    )


def test_failed_reads_are_storage_errors(aws: Aws) -> None:
    with Stubber(aws.dynamodb) as stubber:
        stubber.add_client_error("query", service_error_code="ProvisionedThroughputExceededException")
        with pytest.raises(StorageError, match="DynamoDB query failed"):
            aws.ledger.redemptions.get("r_1")


def test_a_recorded_redemption_is_found_by_its_day_and_one_a_rollback_made_first_is_not(aws: Aws) -> None:
    """``ByRedeemedDay`` holds the redemptions recorded, by the UTC day of their ``redeemed_at``: what the reconciler
    compares with Voucherify's list. An item a rollback made before its redemption came is not in it."""
    recorded = redemption(seed_redemption())
    aws.ledger.redemptions.record(recorded, delivery())
    when = recorded.redemption.date
    assert aws.ledger.redemptions.recorded_between(when, when + timedelta(milliseconds=1)) == [recorded.redemption.id]
    assert aws.ledger.redemptions.recorded_between(when - timedelta(days=3), when) == []  # [after, before)
    assert aws.ledger.redemptions.recorded_between(when - timedelta(days=3), when + timedelta(days=3)) == [
        recorded.redemption.id
    ]
    item = aws.ledger.redemptions.get(recorded.redemption.id) or {}
    assert item.get("redeemed_day") == item["redeemed_at"][:10]
    early = rollback(seed_rollback())  # its redemption has not come: the item holds the rollback alone
    aws.ledger.redemptions.record_rollback(early, delivery("rollback"))
    held = aws.ledger.redemptions.get(early.redemption_id) or {}
    around = parse_iso(held.get("redeemed_at"))  # it has a time, not a day
    assert around is not None and early.redemption_id != recorded.redemption.id
    near = aws.ledger.redemptions.recorded_between(around - timedelta(days=1), around + timedelta(days=1))
    assert early.redemption_id not in near
