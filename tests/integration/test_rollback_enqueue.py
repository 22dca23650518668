"""Enqueuing a RollbackRequest: validated by the model, then sent to the queue (moto SQS)."""

from __future__ import annotations

import json

import boto3
import pytest
from pydantic import ValidationError

from support.functions import Aws
from voucherify_ledger.rollbacks.queue import enqueue_rollback


def test_enqueue_validates_then_sends(aws: Aws) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="rollbacks")["QueueUrl"]

    message_id = enqueue_rollback(sqs, url, {"order_id": "ord_p6B1A0y805yUQQaCw4bC6Fbk", "reason": "Refund"})
    with pytest.raises(ValidationError):
        enqueue_rollback(sqs, url, {"redemption_id": "r_1", "order_id": "ord_2"})

    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert message["MessageId"] == message_id
    assert json.loads(message["Body"]) == {"order_id": "ord_p6B1A0y805yUQQaCw4bC6Fbk", "reason": "Refund"}
