"""The rollback worker as the tests drive it: the queues from template.yaml, a fake Voucherify over HTTP on
127.0.0.1, the real handler invoked by the SQS poller, the ledger on moto (``make_harness`` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger_dev.fake_voucherify import FakeVoucherify
from ledger_dev.harness.sqs_poller import PollResult, SqsPoller
from ledger_dev.harness.template import load_template
from support.documents import payload
from support.functions import Aws, emitted_metrics
from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.dynamo import av
from voucherify_ledger.ledger.keys import redemption_key
from voucherify_ledger.models.webhooks import EventRedemptionSucceededData
from voucherify_ledger.rollbacks.queue import enqueue_rollback

R1 = "r_0e2500291ae016adea"
R2 = "r_0e6ff48b91cfa02e97"
# The variables a worker cannot start without (the rest have defaults).
WORKER_REQUIRED_ENV = {
    "LEDGER_TABLE_NAME": "ledger",
    "ROLLBACK_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/q",
    "VOUCHERIFY_API_SECRET_ID": "voucherify-ledger/api",
}


@dataclass
class Harness:
    aws: Aws
    sqs: Any
    queue_url: str
    dlq_url: str
    fake: FakeVoucherify
    handler: Callable[[dict[str, Any], Any], Any]
    poller: SqsPoller
    env: dict[str, str]

    @property
    def ledger(self) -> Ledger:
        return self.aws.ledger

    def send(self, **request: Any) -> str:
        return enqueue_rollback(self.sqs, self.queue_url, request)

    def send_raw(self, body: str) -> str:
        return self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)["MessageId"]

    def poll(self) -> PollResult:
        return self.poller.poll_once(wait_time_seconds=0)

    def drain(self, max_polls: int = 20) -> list[PollResult]:
        return self.poller.drain(max_polls)

    def queue_depth(self, url: str | None = None) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def request(self, redemption_id: str, request_id: str) -> dict[str, Any]:
        view = self.ledger.redemptions.get(redemption_id) or {}
        found = [r for r in view.get("rollback_requests", []) if r["request_id"] == request_id]
        assert found, f"no request {request_id} under {redemption_id}: {view}"
        return found[0]

    def rollback_items(self) -> list[dict[str, Any]]:
        """The recorded rollbacks: each the attribute ``rollback#<rr_…>`` of its redemption's item (its map)."""
        return [value["M"] for i in self.aws.items() for name, value in i.items() if name.startswith("rollback#")]


def template_refs(**extra: str) -> dict[str, str]:
    refs = {name: str(p.get("Default", "")) for name, p in load_template()["Parameters"].items()}
    refs.update({"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"})
    refs.update({"AWS::StackName": "rollback-test", "AWS::URLSuffix": "amazonaws.com"})
    refs.update(extra)
    return refs


def redemption_document(
    redemption_id: str,
    *,
    order_id: str | None = None,
    parent_id: str | None = None,
    order_source_id: str | None = None,
) -> dict[str, Any]:
    """The seed redemption.succeeded payload, re-identified (the order's ``source_id`` too, when given)."""
    data = payload("redemption_succeeded")
    data["redemption"]["id"] = redemption_id
    data["redemption"]["redemption"] = parent_id
    for order in (data["order"], data["redemption"]["order"]):
        if order_id:
            order["id"] = order_id
        if order_source_id:
            order["source_id"] = order_source_id
    return data


def redemption_data(redemption_id: str, **options: Any) -> EventRedemptionSucceededData:
    """``redemption_document`` as the webhook model reads it."""
    return EventRedemptionSucceededData.model_validate(redemption_document(redemption_id, **options))


def record_redemption(ledger: Ledger, redemption_id: str, **options: Any) -> None:
    delivery = Delivery(raw=b"{}", route="redemption-succeeded", received_at=datetime.now(UTC))
    assert ledger.redemptions.record(redemption_data(redemption_id, **options), delivery).status == "recorded"


def redeemed(harness: Harness, redemption_id: str, **options: Any) -> None:
    """``record_redemption`` into the harness's ledger, and the fake knowing the redemption from the same webhook, as
    Voucherify knows each redemption it sent one of (the fake answers 404 for a redemption it does not know)."""
    record_redemption(harness.ledger, redemption_id, **options)
    harness.fake.know_webhook(redemption_document(redemption_id, **options))


def set_stack_role(ledger: Ledger, redemption_id: str, role: str, **attributes: Any) -> None:
    """Marks a recorded redemption as a stack's ``"parent"`` or ``"child"`` (``stack_role``) with one UpdateItem, as
    the webhook path writes it on the redemption items of a stacked redemption; ``rollbacks.stacks`` and ``list
    --order`` read it (``parent_redemption_id`` is written by ``record_redemption(..., parent_id=…)``). ``attributes``
    are written with it (``discount_amount``, a redeemable's own share; ``promotion_tier_id``; ``amount_unit``)."""
    write_attributes(ledger, redemption_id, stack_role=role, **attributes)


def write_attributes(ledger: Ledger, redemption_id: str, **attributes: Any) -> None:
    """Sets attributes of a recorded redemption's item with one UpdateItem (what a test needs them to say)."""
    names = {f"#a{i}": name for i, name in enumerate(attributes)}
    ledger.client.update_item(
        TableName=ledger.table_name,
        Key=redemption_key(redemption_id),
        UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(attributes))),
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":a{i}": av(value) for i, value in enumerate(attributes.values())},
    )


def metrics_emitted(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    """Sum of every metric the functions flushed (Powertools EMF lines on stdout)."""
    return emitted_metrics(capsys.readouterr().out)
