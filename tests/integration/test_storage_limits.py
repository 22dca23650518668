"""What DynamoDB refuses, known before writing: Voucherify id shapes, numbers beyond 38 digits, index keys over their
byte limit, items over 400 KB. A delivery that can never be stored as it is gets a 202 and a quarantine record with
a reason a person can act on (never a 503 that Voucherify retries 12 times and then disables the webhook); a large
raw copy is kept in an item of its own. Through the real handlers (API Gateway v2 events), moto behind them."""

from __future__ import annotations

import base64
import copy
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from botocore.stub import Stubber

from support.documents import compact, envelope, seed_redemption, seed_rollback
from support.functions import REDEMPTION_FN, ROLLBACK_FN, Aws, LambdaApp, emitted_metrics
from voucherify_ledger.ledger.deliveries import INLINE_RAW_BYTES


def redemption_items(aws: Aws) -> list[dict[str, Any]]:
    return [item for item in aws.table() if item["pk"]["S"].startswith("REDEMPTION#")]


def quarantined(aws: Aws) -> list[dict[str, Any]]:
    return [item for item in aws.table() if item["pk"]["S"].startswith("QUARANTINE#")]


def noise(size: int, seed: int) -> str:
    """``size`` characters zlib cannot shrink much (a large metadata value, as a sender may attach)."""
    return base64.b64encode(random.Random(seed).randbytes(size * 3 // 4)).decode("ascii")[:size]


# --- ids ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("redemption", "id"), "r_a5.dot"),
        (("redemption", "id"), "r_" + "a" * 101),
        (("redemption", "id"), "rr_0e70cac29fee95aa7b"),  # a rollback's id is no redemption's
        (("redemption", "id"), "R_0e2500291ae016adea"),
        (("redemption", "id"), "r_"),
        (("order", "id"), "ord_a/b"),
        (("redemption", "customer_id"), "cust_" + "x" * 3000),
    ],
    ids=["dot", "too-long", "rollback-id", "upper-prefix", "empty-tail", "order-id", "customer-id"],
)
def test_a_redemption_whose_ids_the_ledger_cannot_key_on_is_quarantined(
    lambda_app: Callable[..., LambdaApp], aws: Aws, path: tuple[str, str], value: str
) -> None:
    data = seed_redemption()
    data[path[0]][path[1]] = value
    answer = lambda_app(REDEMPTION_FN).post(compact(data))
    assert (answer.status, answer.body["status"]) == (202, "quarantined")
    assert any(
        path[0] in error and ("pattern" in error or "expected a redemption id" in error)
        for error in answer.body["errors"]
    ), answer.body
    assert value not in json.dumps(answer.body)
    assert redemption_items(aws) == [] and len(quarantined(aws)) == 1


@pytest.mark.parametrize(
    ("path", "value"),
    [(("redemption_rollback", "id"), "rr_x-y"), (("redemption_rollback", "redemption"), "r_a5.dot")],
    ids=["rollback-id", "redemption-named"],
)
def test_a_rollback_whose_ids_the_ledger_cannot_key_on_is_quarantined(
    lambda_app: Callable[..., LambdaApp], aws: Aws, path: tuple[str, str], value: str
) -> None:
    data = seed_rollback()
    data[path[0]][path[1]] = value
    if path[1] == "redemption" and data.get("redemption"):
        data["redemption"]["id"] = value
    answer = lambda_app(ROLLBACK_FN).post(compact(data))
    assert (answer.status, answer.body["status"]) == (202, "quarantined")
    assert redemption_items(aws) == []


# --- numbers and key lengths ----------------------------------------------------------------------------------
def test_an_amount_beyond_38_digits_is_quarantined_not_refused_by_dynamodb_forever(
    lambda_app: Callable[..., LambdaApp], aws: Aws
) -> None:
    data = seed_redemption()
    data["order"]["amount"] = 10**39 + 7
    answer = lambda_app(REDEMPTION_FN).post(compact(data))
    assert (answer.status, answer.body["status"]) == (202, "quarantined")
    assert any(error.startswith("order.amount") for error in answer.body["errors"]), answer.body
    assert redemption_items(aws) == []


def test_a_voucher_code_longer_than_an_index_key_may_be_is_quarantined_with_the_reason(
    lambda_app: Callable[..., LambdaApp], aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    """The code keys the ByVoucherCode index, whose partition key DynamoDB limits to 2,048 bytes (moto does not)."""
    data = seed_redemption()
    data["redemption"]["voucher"]["code"] = "Ł" * 1100  # 2,200 bytes of UTF-8
    answer = lambda_app(REDEMPTION_FN).post(compact(data))
    assert (answer.status, answer.body["status"]) == (202, "quarantined")
    assert answer.body["reason"] == "the ledger cannot store this delivery as it is"
    assert answer.body["errors"] == ["voucher_code is 2200 bytes, beyond DynamoDB's 2048 for a key"]
    assert redemption_items(aws) == [] and len(quarantined(aws)) == 1
    assert emitted_metrics(capsys.readouterr().out)["StorageRefused"] == 1


# --- item size --------------------------------------------------------------------------------------------------
def test_a_large_delivery_keeps_its_raw_copy_in_an_item_of_its_own(
    lambda_app: Callable[..., LambdaApp], aws: Aws
) -> None:
    data = seed_redemption()
    data["metadata"] = {"attachment": noise(200_000, seed=1)}
    raw = compact(data)
    answer = lambda_app(REDEMPTION_FN).post(raw)
    assert (answer.status, answer.body["status"]) == (200, "recorded")
    (item, raw_item) = sorted(redemption_items(aws), key=lambda i: i["sk"]["S"], reverse=True)
    assert raw_item["sk"]["S"].startswith("RAW#") and len(raw_item["raw_zlib"]["B"]) > INLINE_RAW_BYTES
    audit = item["redemption_delivery"]["M"]
    assert "raw_zlib" not in audit and audit["raw_item"]["S"] == raw_item["sk"]["S"]
    view = aws.ledger.redemptions.get(data["redemption"]["id"])
    assert view is not None and aws.ledger.redemptions.raw_delivery(view["id"], _audit_of(aws, view["id"])) == raw
    again = lambda_app(REDEMPTION_FN).post(raw)
    assert (again.status, again.body["status"]) == (200, "duplicate")


def _audit_of(aws: Aws, redemption_id: str) -> dict[str, Any]:
    from voucherify_ledger.ledger.dynamo import item as _item

    answer = aws.dynamodb.get_item(
        TableName=aws.table_name, Key={"pk": {"S": f"REDEMPTION#{redemption_id}"}, "sk": {"S": "REDEMPTION"}}
    )
    return _item(answer["Item"])["redemption_delivery"]


def test_rollbacks_that_would_fill_their_redemption_past_400_kb_are_kept_out_of_line(
    lambda_app: Callable[..., LambdaApp], aws: Aws
) -> None:
    """Each failed rollback's delivery is kept inline (about 30 KB compressed, under INLINE_RAW_BYTES) until the
    redemption item would pass DynamoDB's 400 KB: that write is made again with its raw copy in a RAW# item."""
    rollbacks = lambda_app(ROLLBACK_FN)
    base = seed_rollback()
    redemption_id = base["redemption_rollback"]["redemption"]
    raws = []
    for n in range(16):
        data = copy.deepcopy(base)
        data["redemption_rollback"].update(id=f"rrf_{n:018x}", result="FAILURE", status="FAILED")
        data["metadata"] = {"note": noise(40_000, seed=n)}
        raws.append(compact(data))
        answer = rollbacks.post(raws[-1])
        assert (answer.status, answer.body["status"]) == (200, "recorded"), (n, answer.body)
    items = {item["sk"]["S"]: item for item in redemption_items(aws)}
    out_of_line = [sk for sk in items if sk.startswith("RAW#")]
    assert out_of_line, "every rollback was kept inline: the item passed 400 KB?"
    from voucherify_ledger.ledger.dynamo import item as _item

    item = _item(items["REDEMPTION"])
    assert len(item["failed_rollback_ids"]) == 16
    for n, raw in enumerate(raws):
        audit = item[f"rollback#rrf_{n:018x}"]["delivery"]
        assert aws.ledger.redemptions.raw_delivery(redemption_id, audit) == raw, n


def test_a_delivery_dynamodb_refuses_even_out_of_line_is_quarantined_with_a_202(
    lambda_app: Callable[..., LambdaApp], aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    """The redemption item is full (its rollbacks): inline and out-of-line writes both refused as too large. The
    delivery is quarantined and answered 202, not 503 (Voucherify would retry it 12 times, then disable the hook)."""
    app = lambda_app(REDEMPTION_FN)
    too_large = "Item size to update has exceeded the maximum allowed size"
    client = app.receiver.ledger.client
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "update_item", service_error_code="ValidationException", service_message=too_large, http_status_code=400
        )
        stubber.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            service_message="Transaction cancelled, please refer cancellation reasons [ValidationError, None]",
            http_status_code=400,
            modeled_fields={
                "CancellationReasons": [{"Code": "ValidationError", "Message": too_large}, {"Code": "None"}]
            },
        )
        stubber.add_response("update_item", {"Attributes": {"deliveries": {"N": "1"}}})  # the quarantine record
        answer = app.post(compact(seed_redemption()))
    assert (answer.status, answer.body["status"]) == (202, "quarantined"), answer.body
    assert answer.body["reason"] == "the ledger cannot store this delivery as it is"
    assert (
        answer.body["errors"]
        == ["the redemption cannot be stored as it is: DynamoDB refused it as invalid (TransactionCanceledException)"]
        or "400 KB" in answer.body["errors"][0]
    )
    assert emitted_metrics(capsys.readouterr().out)["StorageRefused"] == 1


def test_a_throttled_write_is_still_a_503(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    """Only DynamoDB judging the write invalid is permanent; throttling passes, so Voucherify's retry is right."""
    app = lambda_app(REDEMPTION_FN)
    with Stubber(app.receiver.ledger.client) as stubber:
        for _ in range(2):
            stubber.add_client_error(
                "update_item", service_error_code="ProvisionedThroughputExceededException", http_status_code=400
            )
        answer = app.post(compact(seed_redemption()))
    assert answer.status == 503


def test_an_envelope_names_only_known_events_in_its_answer_record_and_log(
    lambda_app: Callable[..., LambdaApp], aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = "annie@lemon.com"
    body = envelope(seed_redemption(), "redemption.succeeded")
    body["event"]["type"] = chosen
    answer = lambda_app(REDEMPTION_FN).post(compact(body))
    assert (answer.status, answer.body["status"]) == (202, "quarantined")
    assert answer.body["errors"] == [
        "event.type: not a Voucherify event name, this URL accepts customer.redemption.succeeded or "
        "redemption.failed or redemption.succeeded"
    ]
    (record,) = quarantined(aws)
    assert "event_type" not in record
    assert chosen not in json.dumps(answer.body) and chosen not in capsys.readouterr().out
    known = envelope(seed_redemption(), "redemption.rollback.succeeded")  # a real event, at the wrong URL
    wrong_url = lambda_app(REDEMPTION_FN).post(compact(known))
    assert "redemption.rollback.succeeded" in wrong_url.body["errors"][0]
