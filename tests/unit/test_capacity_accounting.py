"""The benchmark's DynamoDB accounting: write units per started KB of the larger item, doubled in a
transaction, index writes by projection, item sizes counted as DynamoDB counts them, rows against targets."""

from __future__ import annotations

from ledger_dev import bench


def test_write_units_are_per_started_kb_of_the_larger_item_and_double_in_a_transaction() -> None:
    assert bench.write_units(0, 1) == 1
    assert bench.write_units(0, 1024) == 1
    assert bench.write_units(0, 1025) == 2
    assert bench.write_units(3000, 100) == 3  # an update is billed on the larger of old and new
    assert bench.write_units(0, 0) == 1  # a write whose condition failed on a missing item still costs one
    assert bench.write_units(1500, 1500, transactional=True) == 4


def test_item_size_counts_names_and_values_as_dynamodb_does() -> None:
    assert bench.item_size({"pk": {"S": "ab"}}) == 4
    assert bench.item_size({"é": {"S": "é"}}) == 4  # UTF-8 bytes
    assert bench.item_size({"b": {"B": b"\x00" * 10}, "t": {"BOOL": True}}) == 1 + 10 + 1 + 1
    assert bench.attribute_size({"N": "12345"}) == 4  # (5 digits + 1) // 2 + 1
    assert bench.attribute_size({"SS": ["ab", "c"]}) == 3
    assert bench.attribute_size({"L": [{"S": "ab"}]}) == 3 + 1 + 2
    assert bench.attribute_size({"M": {"k": {"S": "ab"}}}) == 3 + 1 + 1 + 2
    assert bench.item_size(None) == 0


def _item(pk: str, sk: str, size: int, **extra: str) -> dict[str, dict[str, str]]:
    item = {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"S": v} for k, v in extra.items()}}
    filler = size - bench.item_size(item) - len("pad")
    item["pad"] = {"S": "x" * filler}
    assert bench.item_size(item) == size
    return item


def test_a_rollback_transaction_costs_both_items_twice() -> None:
    redemption_before = _item("REDEMPTION#r_1", "REDEMPTION", 900)
    redemption_after = _item("REDEMPTION#r_1", "REDEMPTION", 1100)
    rollback = _item("REDEMPTION#r_1", "ROLLBACK#rr_1", 800)
    calls = [
        (
            "TransactWriteItems",
            {
                "TransactItems": [
                    {"Put": {"Item": rollback}},
                    {"Update": {"Key": {"pk": redemption_after["pk"], "sk": redemption_after["sk"]}}},
                ]
            },
        )
    ]
    before = {bench._key(redemption_before): redemption_before}
    after = {bench._key(redemption_after): redemption_after, bench._key(rollback): rollback}
    capacity = bench.delivery_capacity("rollback", calls, before, after, [])
    assert capacity.write_units == 2 * 1 + 2 * 2
    assert capacity.items == 2
    assert capacity.bytes_written == 800 + 1100


def test_a_duplicate_whose_condition_failed_is_billed_without_writing() -> None:
    item = _item("REDEMPTION#r_1", "REDEMPTION", 2000)
    snapshot = {bench._key(item): item}
    calls = [("UpdateItem", {"Key": {"pk": item["pk"], "sk": item["sk"]}})]
    capacity = bench.delivery_capacity("dup", calls, snapshot, snapshot, [])
    assert (capacity.write_units, capacity.items, capacity.bytes_written) == (2, 0, 0)


def test_index_writes_follow_the_projection_and_the_key() -> None:
    index = bench.IndexDefinition("ByOrder", ("order_id", "redeemed_at"), ("pk", "sk", "order_id", "redeemed_at", "s"))
    new = {"pk": {"S": "a"}, "sk": {"S": "b"}, "order_id": {"S": "o"}, "redeemed_at": {"S": "t"}, "s": {"S": "x"}}
    assert bench.index_write_units(None, new, [index]) == 1  # enters the index
    assert bench.index_write_units(new, new, [index]) == 0  # nothing projected changed
    assert bench.index_write_units(new, {**new, "other": {"S": "y"}}, [index]) == 0  # not projected
    assert bench.index_write_units(new, {**new, "s": {"S": "y"}}, [index]) == 1  # projection changed
    assert bench.index_write_units(new, {**new, "order_id": {"S": "p"}}, [index]) == 2  # key changed: delete + put
    assert bench.index_write_units({"pk": {"S": "a"}, "sk": {"S": "b"}}, None, [index]) == 0  # never in it


def test_the_template_indexes_are_read_with_their_projections() -> None:
    indexes = {index.name: index for index in bench.table_indexes()}
    assert indexes["ByOrder"].keys == ("order_id", "redeemed_at")
    assert indexes["ByOrder"].projected is not None and "status" in indexes["ByOrder"].projected


def test_seed_events_are_the_webhook_events_with_their_functions() -> None:
    seeds = bench.seed_events()
    assert {s.function for s in seeds} == set(bench.WEBHOOK_FUNCTIONS)
    assert "redemption_succeeded" in {s.name for s in seeds}
    assert all(bench.raw_body(s.event).startswith(b"{") for s in seeds)


def test_rows_compare_ratios_or_values_with_their_targets() -> None:
    assert bench.Row("cold", "x", 140, 100, "ms", 1.4).met is True
    assert bench.Row("cold", "x", 141, 100, "ms", 1.4).met is False
    assert bench.Row("capacity", "x", 6, None, "WU", 4).met is False
    assert bench.Row("worker", "rate", 580, 600, "/min", 0.9, minimum=True).met is True
    assert bench.Row("worker", "429s", 0, None, "", 0).met is True
    assert bench.Row("size", "x", 1.0, None, "MB").met is None
    assert "by +50 %" in bench.verdict(bench.Row("capacity", "x", 6, None, "WU", 4))
    text = bench.markdown(bench.Report(3, [bench.Row("cold", "init", 150, 100, "ms", 1.4)]), "python -m x")
    assert "| cold | init | 150 ms | 100 ms | 1.50× | — | — | MISSED" in text
    assert "repetitions: 3" in text


def test_a_figure_with_a_textbook_is_held_to_it_beside_its_floor_target() -> None:
    cheaper_than_floor_target_dearer_than_textbook = bench.Row("cold", "init", 120, 100, "ms", 1.3, textbook=110)
    assert cheaper_than_floor_target_dearer_than_textbook.floor_met is True
    assert cheaper_than_floor_target_dearer_than_textbook.textbook_met is False
    assert cheaper_than_floor_target_dearer_than_textbook.met is False
    assert bench.verdict(cheaper_than_floor_target_dearer_than_textbook) == "MISSED (≤ 1× textbook, by +9 %)"
    both = bench.Row("cold", "init", 120, 100, "ms", 1.3, textbook=150)
    assert both.met is True and bench.verdict(both) == "met (≤ 1.3×; ≤ 1× textbook)"
    assert both.textbook_ratio == 0.8
    neither = bench.Row("cold", "init", 160, 100, "ms", 1.3, textbook=150)
    assert bench.verdict(neither) == "MISSED (≤ 1.3×, by +23 %; ≤ 1× textbook, by +7 %)"
    assert bench.Row("cold", "first", 5, 1, "ms", textbook=40).met is True  # no floor target: the textbook alone
    assert bench.Row("capacity", "calls", 1, None, "calls", 1, textbook=1).met is True  # equal is not dearer
    assert bench.Row("capacity", "calls", 1, None, "calls", textbook=0).met is False
    assert bench.Row("cold", "init", 120, 100, "ms", 1.3).textbook_met is None
    text = bench.markdown(bench.Report(1, [bench.Row("cold", "init", 120, 100, "ms", 1.3, textbook=150)]), "x")
    assert "| cold | init | 120 ms | 100 ms | 1.20× | 150 ms | 0.80× | met (≤ 1.3×; ≤ 1× textbook) |" in text


def test_read_units_are_per_started_4_kb_half_eventually_consistent_double_in_a_transaction() -> None:
    assert bench.read_units(0) == 1.0  # a missing item still costs the minimum
    assert bench.read_units(4096) == 1.0
    assert bench.read_units(4097) == 2.0
    assert bench.read_units(4097, consistent=False) == 1.0
    assert bench.read_units(100, transactional=True) == 2.0


def test_reads_are_billed_by_what_they_answered() -> None:
    small, large = _item("REDEMPTION#r_1", "REDEMPTION", 1000), _item("REDEMPTION#r_2", "REDEMPTION", 5000)
    get = ("GetItem", {"Key": {}, "ConsistentRead": True})
    assert bench.call_read_units(*get, {"Item": large}) == 2.0
    assert bench.call_read_units("GetItem", {"Key": {}}, {"Item": large}) == 1.0  # eventually consistent: half
    assert bench.call_read_units(*get, {}) == 1.0  # not found
    # A query is rounded up once over everything it returned, not per item.
    assert bench.call_read_units("Query", {"ConsistentRead": True}, {"Items": [small, small, small, small]}) == 1.0
    batch = {"RequestItems": {"t": {"Keys": [{}, {}, {}], "ConsistentRead": True}}}
    assert bench.call_read_units("BatchGetItem", batch, {"Responses": {"t": [small, large]}}) == 1 + 2 + 1
    assert bench.call_read_units("UpdateItem", {"Key": {}}, {"Attributes": large}) == 0.0  # writes read nothing
    calls = [get, ("UpdateItem", {"Key": {"pk": small["pk"], "sk": small["sk"]}})]
    snapshot = {bench._key(small): small}
    capacity = bench.delivery_capacity("x", calls, snapshot, snapshot, [], [{"Item": small}, {}])
    assert (capacity.read_units, capacity.write_units, capacity.call_count) == (1.0, 1, 2)
    assert capacity.operations() == "GetItem+UpdateItem"


def test_a_transaction_condition_check_is_billed_as_a_transactional_write_of_its_item() -> None:
    checked = _item("REDEMPTION#r_1", "REDEMPTION", 1500)
    written = _item("REDEMPTION#r_1", "ROLLBACK#rr_1", 500)
    key = {"pk": checked["pk"], "sk": checked["sk"]}
    calls = [("TransactWriteItems", {"TransactItems": [{"ConditionCheck": {"Key": key}}, {"Put": {"Item": written}}]})]
    before = {bench._key(checked): checked}
    after = {**before, bench._key(written): written}
    capacity = bench.delivery_capacity("check", calls, before, after, [])
    assert capacity.write_units == 2 * 2 + 2 * 1
    assert capacity.items == 1  # the checked item is not written
    assert capacity.operations() == "TransactWriteItems"


def test_an_item_written_twice_is_billed_by_its_state_between_the_writes() -> None:
    first = _item("REDEMPTION#r_1", "REDEMPTION", 900)
    claimed = _item("REDEMPTION#r_1", "REDEMPTION", 1000)
    done = _item("REDEMPTION#r_1", "REDEMPTION", 2500)
    key = {"pk": first["pk"], "sk": first["sk"]}
    calls = [("UpdateItem", {"Key": key}), ("UpdateItem", {"Key": key})]
    before, after = {bench._key(first): first}, {bench._key(done): done}
    states = [{bench._key(claimed): claimed}, {bench._key(done): done}]
    sequential = bench.delivery_capacity("twice", calls, before, after, [], None, states)
    assert sequential.write_units == 1 + 3  # 900 → 1000 B, then 1000 → 2500 B
    assert (sequential.items, sequential.bytes_written) == (2, 1000 + 2500)
    assert bench.delivery_capacity("twice", calls, before, after, []).write_units == 3 + 3  # without: both at 2500 B
