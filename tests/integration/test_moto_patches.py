"""The fixes ``ledger_dev.harness.moto_patches`` makes to moto, each held by a test that fails without it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ledger_dev.harness import moto_patches
from ledger_dev.harness.moto_patches import MotoServer, serialize_moto_dynamodb
from ledger_dev.harness.template import create_table, table_definition

TABLE = "voucherify-ledger"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    serialize_moto_dynamodb()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_table(client, table_name=TABLE)
        yield client


def _put(client: Any, pk: str, **extra: str) -> None:
    item = {"pk": {"S": pk}, "sk": {"S": "REDEMPTION"}, **{k: {"S": v} for k, v in extra.items()}}
    client.put_item(TableName=TABLE, Item=item)


def _keys(client: Any) -> set[str]:
    return {item["pk"]["S"] for item in client.scan(TableName=TABLE, ConsistentRead=True)["Items"]}


def test_a_failed_transaction_is_undone_from_its_own_items_without_copying_the_table(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the cheap rollback, moto deep-copies every table a transaction touches before it starts."""
    from moto.dynamodb.models.table import Table

    for n in range(30):
        _put(dynamodb, f"REDEMPTION#r_{n}", status="SUCCEEDED")

    def whole_table_copied(self: Any, memo: Any) -> Any:
        raise AssertionError("a whole table was deep-copied")

    monkeypatch.setattr(Table, "__deepcopy__", whole_table_copied, raising=False)
    transaction = [
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "REDEMPTION#r_new"}, "sk": {"S": "REDEMPTION"}}}},
        {
            "Update": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "REDEMPTION#r_1"}, "sk": {"S": "REDEMPTION"}},
                "UpdateExpression": "SET #s = :rolled",
                "ConditionExpression": "#s = :rolled",  # fails: r_1 is SUCCEEDED
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":rolled": {"S": "ROLLED_BACK"}},
            }
        },
    ]
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=transaction)

    monkeypatch.undo()
    assert "REDEMPTION#r_new" not in _keys(dynamodb)  # its Put was undone
    assert len(_keys(dynamodb)) == 30  # and nothing else was lost
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "REDEMPTION#r_1"}, "sk": {"S": "REDEMPTION"}})["Item"]
    assert item["status"] == {"S": "SUCCEEDED"}


STREAMED = "voucherify-ledger-streamed"


@pytest.fixture
def streamed(dynamodb: Any) -> Any:
    """A ledger table with the stream LedgerEventsFunction reads (new and old images), beside the fixture's."""
    definition = table_definition(table_name=STREAMED)
    definition["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    dynamodb.create_table(**definition)
    return dynamodb


def _put_streamed(client: Any, pk: str, **extra: str) -> None:
    item = {"pk": {"S": pk}, "sk": {"S": "REDEMPTION"}, **{k: {"S": v} for k, v in extra.items()}}
    client.put_item(TableName=STREAMED, Item=item)


def _stream(client: Any) -> list[dict[str, Any]]:
    """Every record of the streamed table's stream, oldest first."""
    from botocore.config import Config

    no_account_endpoint = Config(account_id_endpoint_mode="disabled")  # <account>.streams-ddb.…: not moto's
    streams = boto3.client("dynamodbstreams", region_name="eu-west-1", config=no_account_endpoint)
    arn = client.describe_table(TableName=STREAMED)["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
    return list(streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"])


def test_an_update_that_creates_its_item_writes_one_stream_record_and_one_that_changes_nothing_none(
    streamed: Any,
) -> None:
    """moto writes an INSERT of the key alone before the update's own, and a MODIFY for an unchanged item."""
    key = {"pk": {"S": "REDEMPTION#r_1"}, "sk": {"S": "REDEMPTION"}}
    update = {"UpdateExpression": "SET #s = :s", "ExpressionAttributeNames": {"#s": "status"}}
    for status in ("SUCCEEDED", "SUCCEEDED"):
        streamed.update_item(TableName=STREAMED, Key=key, **update, ExpressionAttributeValues={":s": {"S": status}})
    _put_streamed(streamed, "REDEMPTION#r_1", status="SUCCEEDED")  # the same item put again
    streamed.update_item(TableName=STREAMED, Key=key, **update, ExpressionAttributeValues={":s": {"S": "ROLLED_BACK"}})

    records = _stream(streamed)

    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]
    assert records[0]["dynamodb"]["NewImage"]["status"] == {"S": "SUCCEEDED"}
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert numbers == [numbers[0], numbers[0] + 1]  # no gap left by a record not written


def test_a_failed_transaction_leaves_nothing_in_the_stream(streamed: Any) -> None:
    """With the cheap rollback, moto undid the items but kept the stream records of the writes it undid."""
    _put_streamed(streamed, "REDEMPTION#r_1", status="SUCCEEDED")
    transaction = [
        {"Put": {"TableName": STREAMED, "Item": {"pk": {"S": "REDEMPTION#r_new"}, "sk": {"S": "REDEMPTION"}}}},
        {
            "ConditionCheck": {
                "TableName": STREAMED,
                "Key": {"pk": {"S": "REDEMPTION#r_1"}, "sk": {"S": "REDEMPTION"}},
                "ConditionExpression": "attribute_not_exists(pk)",  # fails: r_1 is there
            }
        },
    ]
    with pytest.raises(streamed.exceptions.TransactionCanceledException):
        streamed.transact_write_items(TransactItems=transaction)

    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in _stream(streamed)] == ["REDEMPTION#r_1"]


def test_stream_iterators_are_kept_up_to_a_bound(streamed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto keeps every iterator each GetRecords answers with, for ever."""
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    monkeypatch.setattr(moto_patches, "MAX_SHARD_ITERATORS", 5)
    _put_streamed(streamed, "REDEMPTION#r_1")
    for _ in range(10):  # two iterators each: GetShardIterator's and the one GetRecords answers with
        assert len(_stream(streamed)) == 1
    assert len(dynamodbstreams_backends["123456789012"]["eu-west-1"].shard_iterators) <= 5


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    serialize_moto_dynamodb()
    server = MotoServer("127.0.0.1", 0, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    finally:
        server.stop()


def test_dynamodb_requests_are_handled_one_at_a_time(moto_server: str) -> None:
    """Without the serialization, a request runs while another holds moto's DynamoDB (it does not wait)."""
    client = boto3.client(
        "dynamodb",
        endpoint_url=moto_server,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    finished = threading.Event()

    def list_tables() -> None:
        client.list_tables()
        finished.set()

    with moto_patches._MOTO_DYNAMODB_LOCK:  # another request in progress
        thread = threading.Thread(target=list_tables, daemon=True)
        thread.start()
        waited = not finished.wait(0.5)
    thread.join(10)
    assert waited and finished.is_set()


def _bound_socket() -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def test_a_server_that_cannot_listen_says_so_instead_of_waiting_for_ever() -> None:
    """moto's own server waits for ever in ``start()`` when its port is taken (werkzeug exits its thread)."""
    with _bound_socket() as holder:
        server = MotoServer("127.0.0.1", holder.getsockname()[1], verbose=False)
        starting = threading.Thread(target=server.start, daemon=True)
        starting.start()
        starting.join(10)
        assert not starting.is_alive()
    assert server.error is not None
    server.stop()  # nothing to stop: no error


def test_a_server_polls_for_shutdown_every_50_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's own server polls every 0.5 s (werkzeug's default): each ``stop()`` then waits up to half a second."""
    from werkzeug.serving import BaseWSGIServer

    polls: list[float] = []
    serve_forever = BaseWSGIServer.serve_forever

    def recorded(self: Any, poll_interval: float = 0.5) -> None:
        polls.append(poll_interval)
        serve_forever(self, poll_interval)

    monkeypatch.setattr(BaseWSGIServer, "serve_forever", recorded)
    server = MotoServer("127.0.0.1", 0, verbose=False)
    server.start()
    started = time.monotonic()
    server.stop()
    assert polls == [moto_patches.SERVER_POLL_INTERVAL_SECONDS] and polls[0] <= 0.05
    assert time.monotonic() - started < 2


def _validations_of(actions: int) -> int:
    """How many times moto's clause-count check walks the tree of one update expression of ``actions`` SETs."""
    from moto.dynamodb.parsing.ast_nodes import UpdateExpression

    walks = 0
    find_clauses = UpdateExpression.find_clauses

    def counted(self: Any, clause_types: Any) -> Any:
        nonlocal walks
        walks += 1
        return find_clauses(self, clause_types)

    UpdateExpression.find_clauses = counted  # type: ignore[method-assign]
    try:
        from moto.dynamodb.parsing.expressions import UpdateExpressionParser
        from moto.dynamodb.parsing.validators import ActionCountValidator

        ast = UpdateExpressionParser.make("SET " + ", ".join(f"a{i} = :v{i}" for i in range(actions)))
        ActionCountValidator().traverse(ast)
    finally:
        UpdateExpression.find_clauses = find_clauses  # type: ignore[method-assign]
    return walks


def test_an_update_expression_is_checked_in_linear_time_and_still_refused_with_two_set_clauses(
    dynamodb: Any,
) -> None:
    moto_patches.linear_update_validation()
    small, large = _validations_of(25), _validations_of(100)
    # one check at the root (3 clause kinds) whose walk recurses once per node: 4× the actions, about 4× the walks
    assert large <= 5 * small, (small, large)
    _put(dynamodb, "REDEMPTION#r_1")
    with pytest.raises(dynamodb.exceptions.ClientError, match="SET"):
        dynamodb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": "REDEMPTION#r_1"}, "sk": {"S": "REDEMPTION"}},
            UpdateExpression="SET a = :a SET b = :b",
            ExpressionAttributeValues={":a": {"S": "1"}, ":b": {"S": "2"}},
        )


def test_an_update_expression_is_parsed_once_and_each_walker_builds_its_table_once(dynamodb: Any) -> None:
    """The same updates give the same items and the same errors, from one parse per expression text and one
    node-type table per walker (moto would parse twice per UpdateItem and rebuild the table at every node)."""
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodb.parsing.validators import ExpressionAttributeValueProcessor

    moto_patches.linear_update_validation()
    expression = "SET " + ", ".join(f"#a{i} = if_not_exists(#a{i}, :v{i})" for i in range(10)) + " REMOVE gone"
    names = {f"#a{i}": f"attr{i}" for i in range(10)}

    def update(k: int, value: str) -> None:
        dynamodb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": f"REDEMPTION#r_{k}"}, "sk": {"S": "REDEMPTION"}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":v{i}": {"S": f"{value}-{i}"} for i in range(10)},
        )

    for k in range(3):
        update(k, str(k))
    items = {item["pk"]["S"]: item["attr9"]["S"] for item in dynamodb.scan(TableName=TABLE)["Items"]}
    assert items == {f"REDEMPTION#r_{k}": f"{k}-9" for k in range(3)}
    assert UpdateExpressionParser.make(expression) is UpdateExpressionParser.make(expression)  # kept, by its text
    update(0, "later")  # if_not_exists keeps what is there: the kept tree was never resolved against an item
    assert {item["pk"]["S"]: item["attr9"]["S"] for item in dynamodb.scan(TableName=TABLE)["Items"]} == items

    calls = 0
    own_map = ExpressionAttributeValueProcessor._processing_map

    def counting(self: Any) -> Any:
        nonlocal calls
        calls += 1
        return own_map(self)

    ExpressionAttributeValueProcessor._processing_map = counting  # type: ignore[method-assign]
    try:
        walker = ExpressionAttributeValueProcessor({f":v{i}": {"S": "x"} for i in range(10)})
        walker.traverse(UpdateExpressionParser.make("SET " + ", ".join(f"a{i} = :v{i}" for i in range(10))))
    finally:
        ExpressionAttributeValueProcessor._processing_map = own_map  # type: ignore[method-assign]
    assert calls == 1  # once for a walk over ~40 nodes

    for _ in range(2):  # a malformed expression is refused every time: a failed parse is not kept
        with pytest.raises(dynamodb.exceptions.ClientError, match="Invalid UpdateExpression"):
            dynamodb.update_item(
                TableName=TABLE,
                Key={"pk": {"S": "REDEMPTION#r_0"}, "sk": {"S": "REDEMPTION"}},
                UpdateExpression="SET a = = :a",
                ExpressionAttributeValues={":a": {"S": "1"}},
            )
