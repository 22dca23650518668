"""moto as the embedded AWS of the local stack, and the fixes to moto's internals that standing in for DynamoDB
under concurrent requests needs. Each fix is here, named, and held by ``tests/integration/test_moto_patches.py``:

- ``serialize_moto_dynamodb()`` — **DynamoDB requests one at a time.** moto's server is threaded and its DynamoDB
  backend is not thread-safe: a failed ``TransactWriteItems`` puts back a copy of the whole table taken when it
  started, undoing every write other threads made meanwhile (the load test lost recorded redemptions so), and
  copying a table that another thread is changing fails (HTTP 500). DynamoDB keeps each item write atomic and each
  transaction isolated; one request at a time gives the same. It also applies the next fix.
- **cheap transaction rollback** (applied with the first) — moto's ``TransactWriteItems`` deep-copies every table
  it touches before it starts, to put the copy back if it fails: O(table size) per transaction, seconds once the
  table holds thousands of items. With requests serialized, keeping only the items the transaction touches is
  enough to undo it.
- ``linear_update_validation()`` (applied with the first too) — **an update expression checked in linear time.**
  moto's check that an ``UpdateExpression`` has at most one SET / REMOVE / ADD clause runs at every node of the
  expression's tree and walks the whole subtree each time: quadratic in its actions, ~20 ms of every write of the
  ledger's ~25-attribute updates, most of a delivery's time under moto. Checking at the root alone gives the same
  answer (the root's walk finds every clause), in one walk. With it, **update expressions parsed once and walked
  without rebuilding**: moto parses the same ``UpdateExpression`` twice per ``UpdateItem`` (its request handler,
  then its backend), and each of the ~10 walks of the validation builds its node-type table again at every node.
  The parse of an expression is now kept (a bounded cache by its text; moto's validator works on a deep copy, and
  nothing else changes the tree) and each walker builds its table once. Same trees, same answers, same errors.
- ``faithful_moto_streams()`` (applied with the first too) — **a table's stream holds what DynamoDB Streams would.**
  moto writes two ``INSERT`` records for an ``UpdateItem`` that creates its item (the first, of the key alone, from
  the empty item it puts before applying the update), one record for a write that changes nothing (DynamoDB writes
  none), and — with the cheap rollback — keeps the records of a ``TransactWriteItems`` that failed and was undone;
  each ``GetRecords`` adds an iterator to a map that is never pruned. Fixed: one record per write that changes the
  item, none for an undone transaction (stream requests take the DynamoDB lock, so no reader sees them in between),
  and at most ``MAX_SHARD_ITERATORS`` iterators kept (the oldest dropped, as AWS expires them after 15 minutes).
- ``MotoServer`` — **a ``ThreadedMotoServer`` that fails and stops quickly**: one that cannot listen (a port in
  use) sets ``error`` and returns from ``start()`` instead of waiting for ever (werkzeug ends the server's thread,
  so moto's ``start()`` never hears it is ready); and it polls for shutdown every 50 ms, not every 0.5 s, so that
  ``stop()`` (each test's stack stops one) returns at once.

Every fix is idempotent and process-wide (moto keeps its state in module globals).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from moto.server import ThreadedMotoServer

_MOTO_DYNAMODB_LOCK = threading.RLock()
SERVER_POLL_INTERVAL_SECONDS = 0.05
MAX_SHARD_ITERATORS = 1_000  # moto's stream iterators kept; the oldest are dropped (AWS expires them in 15 minutes)
_STREAM_WRITES = threading.local()  # .muted: a write inside UpdateItem whose record the update's own replaces


def serialize_moto_dynamodb() -> None:
    """Makes moto's DynamoDB handle one request at a time (see the module's docstring); idempotent."""
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_serialized", False):
        return
    unlocked = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _MOTO_DYNAMODB_LOCK:
            return unlocked(self)

    call_action._serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    _cheap_moto_transactions()
    linear_update_validation()
    faithful_moto_streams()
    _serialize_moto_streams()


def faithful_moto_streams() -> None:
    """A table's stream records as DynamoDB Streams writes them (see the module's docstring): one per write that
    changes the item, none for a write that changes nothing, a bounded map of shard iterators; idempotent."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import StreamShard, Table
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    if getattr(StreamShard.add, "_faithful", False):
        return
    every_write = StreamShard.add
    plain_put = Table.put_item
    plain_update = DynamoDBBackend.update_item
    plain_get_records = DynamoDBStreamsBackend.get_records

    def add(self: Any, old: Any, new: Any) -> None:
        if getattr(_STREAM_WRITES, "muted", 0):
            return
        if old is not None and new is not None and old == new:  # keys and every attribute, by value
            return  # DynamoDB writes no stream record for a write that leaves the item as it was
        every_write(self, old, new)

    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        # UpdateItem on a missing item first puts the key alone, then records the whole update itself.
        updating = getattr(_STREAM_WRITES, "updating", 0)
        _STREAM_WRITES.muted = getattr(_STREAM_WRITES, "muted", 0) + (1 if updating else 0)
        try:
            return plain_put(self, *args, **kwargs)
        finally:
            _STREAM_WRITES.muted -= 1 if updating else 0

    def update_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        _STREAM_WRITES.updating = getattr(_STREAM_WRITES, "updating", 0) + 1
        try:
            return plain_update(self, *args, **kwargs)
        finally:
            _STREAM_WRITES.updating -= 1

    def get_records(self: Any, iterator_arn: str, limit: int) -> Any:
        answer = plain_get_records(self, iterator_arn, limit)
        while len(self.shard_iterators) > MAX_SHARD_ITERATORS:
            del self.shard_iterators[next(iter(self.shard_iterators))]
        return answer

    add._faithful = True  # type: ignore[attr-defined]
    StreamShard.add = add  # type: ignore[method-assign]
    Table.put_item = put_item  # type: ignore[method-assign]
    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]
    DynamoDBStreamsBackend.get_records = get_records  # type: ignore[method-assign]


def _serialize_moto_streams() -> None:
    """DynamoDB Streams requests under the DynamoDB lock: a reader never sees the records of a transaction that is
    then undone."""
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    if getattr(DynamoDBStreamsHandler.call_action, "_serialized", False):
        return
    unlocked = DynamoDBStreamsHandler.call_action

    def call_action(self: Any) -> Any:
        with _MOTO_DYNAMODB_LOCK:
            return unlocked(self)

    call_action._serialized = True  # type: ignore[attr-defined]
    DynamoDBStreamsHandler.call_action = call_action  # type: ignore[method-assign]


def linear_update_validation() -> None:
    """moto's clause-count check of an update expression at its root only (see the module's docstring);
    idempotent, safe with or without serialized requests."""
    from moto.dynamodb.parsing.validators import ActionCountValidator

    every_node = ActionCountValidator.verify_action_counts
    if getattr(every_node, "_linear", False):
        return

    def verify_action_counts(self: Any, node: Any) -> Any:
        if getattr(node, "parent", None) is not None:
            return node  # the root's check walks this subtree too
        return every_node(self, node)

    verify_action_counts._linear = True  # type: ignore[attr-defined]
    ActionCountValidator.verify_action_counts = verify_action_counts  # type: ignore[method-assign]
    _update_expressions_parsed_once()


PARSED_EXPRESSIONS_KEPT = 1_024


def _update_expressions_parsed_once() -> None:
    """``UpdateExpressionParser.make`` cached by expression text, and each ``DepthFirstTraverser``'s node-type
    table built once per walker (see the module's docstring); idempotent."""
    import functools

    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    if getattr(UpdateExpressionParser.make, "_parsed_once", False):
        return
    parse = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]

    @functools.lru_cache(maxsize=PARSED_EXPRESSIONS_KEPT)
    def parsed(cls: Any, expression: str) -> Any:
        return parse(cls, expression)

    def make(cls: Any, expression: str) -> Any:
        return parsed(cls, expression)

    make._parsed_once = True  # type: ignore[attr-defined]
    UpdateExpressionParser.make = classmethod(make)  # type: ignore[assignment,method-assign]

    def table(self: Any) -> tuple[tuple[type, Any], ...]:
        built: tuple[tuple[type, Any], ...] | None = self.__dict__.get("_node_table")
        if built is None:
            built = self.__dict__["_node_table"] = tuple(self._processing_map().items())
            self.__dict__["_node_kinds"] = tuple(kind for kind, _ in built)
        return built

    def nodes_to_be_processed(self: Any) -> tuple[type, ...]:
        kinds: tuple[type, ...] | None = self.__dict__.get("_node_kinds")
        if kinds is None:
            table(self)
            kinds = self.__dict__["_node_kinds"]
        return kinds

    def process(self: Any, node: Any) -> Any:
        for kind, processor in table(self):
            if isinstance(node, kind):
                return processor(node)
        return None

    DepthFirstTraverser.nodes_to_be_processed = nodes_to_be_processed  # type: ignore[method-assign]
    DepthFirstTraverser.process = process  # type: ignore[method-assign]


def _cheap_moto_transactions() -> None:
    """``TransactWriteItems`` undone from copies of the items it touches, not of the whole tables (see the module's
    docstring). Only safe with requests serialized: ``serialize_moto_dynamodb`` applies it."""
    import copy
    import types

    import moto.dynamodb.models as backend_module
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    whole_table_copy = DynamoDBBackend.transact_write_items
    no_table_copy = types.SimpleNamespace(
        deepcopy=lambda value, memo=None: value if isinstance(value, Table) else copy.deepcopy(value, memo)
    )

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Any, Any, Any, Any]] = []
        streams: dict[int, tuple[Any, int]] = {}  # the stream records before the transaction, per table
        for entry in transact_items[:100]:
            operation = next(iter(entry.values()), None) or {}
            table = self.tables.get(operation.get("TableName"))
            if table is None:
                continue
            if table.stream_shard is not None:
                streams.setdefault(id(table), (table.stream_shard, len(table.stream_shard.items)))
            key = operation.get("Key") or operation.get("Item") or {}
            try:
                hash_key = DynamoType(key[table.hash_key_attr])
                range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
            except Exception:  # a malformed key: moto's own code reports it
                continue
        backend_module.copy = no_table_copy  # type: ignore[assignment]
        try:
            whole_table_copy(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):
                if item is None:
                    with contextlib.suppress(KeyError):
                        table.items[hash_key].pop(range_key) if range_key else table.items.pop(hash_key)
                elif range_key:
                    table.items[hash_key][range_key] = item
                else:
                    table.items[hash_key] = item
            for shard, records in streams.values():  # an undone transaction leaves nothing in the stream
                del shard.items[records:]
            raise
        finally:
            backend_module.copy = copy  # type: ignore[assignment]

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class MotoServer(ThreadedMotoServer):
    """``ThreadedMotoServer`` that reports a failed bind instead of waiting for ever and stops quickly (see the
    module's docstring). After ``start()``, ``error`` is the exception that kept it from listening (or None)."""

    error: BaseException | None = None

    def _server_entry(self) -> None:
        # ThreadedMotoServer._server_entry, with a short poll interval (a quick stop) and the failure kept.
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        try:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever(poll_interval=SERVER_POLL_INTERVAL_SECONDS)
        except BaseException as exc:
            self.error = exc
            self._server_ready_event.set()
