"""docs/events/: the committed JSON Schemas are the detail models' (``make schema`` writes them), the example events
validate against them, and the README names every detail type."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ledger_dev.harness.template import PROJECT_ROOT
from voucherify_ledger.events import details, documents

DOCS = PROJECT_ROOT / "docs" / "events"


def schema(slug: str) -> dict[str, Any]:
    return json.loads((DOCS / f"{slug}.schema.json").read_text(encoding="utf-8"))


def example(slug: str) -> dict[str, Any]:
    return json.loads((DOCS / "examples" / f"{slug}.json").read_text(encoding="utf-8"))


def test_committed_documents_equal_the_models() -> None:
    fresh = documents.documents()

    stale = [name for name, text in fresh.items() if (DOCS / name).read_text(encoding="utf-8") != text]

    assert not stale, f"run `make schema` (python -m voucherify_ledger.events.documents docs/events): {stale} differ"
    assert documents.main(["--check", str(DOCS)]) == 0
    committed = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.json")}
    assert committed == set(fresh), "docs/events holds a JSON file no model writes"


def test_the_generator_writes_every_document(tmp_path: Path) -> None:
    assert documents.main([str(tmp_path)]) == 0
    assert documents.main(["--check", str(tmp_path)]) == 0
    (tmp_path / "redemption-recorded.schema.json").write_text("{}", encoding="utf-8")
    assert documents.main(["--check", str(tmp_path)]) == 1


@pytest.mark.parametrize("model", details.DETAILS, ids=lambda m: m.SLUG)
def test_each_example_is_a_whole_event_whose_detail_validates(model: type[details.Detail]) -> None:
    event = example(model.SLUG)
    validator = Draft202012Validator(schema(model.SLUG))

    Draft202012Validator.check_schema(schema(model.SLUG))
    assert (event["source"], event["detail-type"]) == ("voucherify.ledger", model.DETAIL_TYPE)
    assert {"version", "id", "account", "time", "region", "resources", "detail"} <= set(event)
    assert list(validator.iter_errors(event["detail"])) == []
    assert model.model_validate(event["detail"]).as_json() == json.dumps(event["detail"], separators=(",", ":"))


@pytest.mark.parametrize("model", details.DETAILS, ids=lambda m: m.SLUG)
def test_the_schemas_refuse_what_a_detail_never_holds(model: type[details.Detail]) -> None:
    validator = Draft202012Validator(schema(model.SLUG))
    detail = example(model.SLUG)["detail"]

    for broken in (
        {**detail, "customer_email": "someone@example.com"},  # additionalProperties: false
        {**detail, "event_id": "not-an-event-id"},
        {k: v for k, v in detail.items() if k != "event_id"},
    ):
        assert list(validator.iter_errors(broken)), broken


def test_no_detail_type_has_a_field_for_personal_data() -> None:
    words = ("name", "email", "phone", "address", "metadata", "raw", "message", "details")
    for model in details.DETAILS:
        fields = set(model.model_fields)
        assert not {f for f in fields if any(w in f.split("_") for w in words)}, model.DETAIL_TYPE


def test_event_ids_are_stable_and_distinct_per_type_and_ids() -> None:
    assert details.event_id("Redemption Recorded", "r_1") == details.event_id("Redemption Recorded", "r_1")
    assert details.event_id("Redemption Recorded", "r_1") != details.event_id("Reconciled Missing", "r_1")
    assert details.event_id("Redemption Rolled Back", "r_1", "rr_2") != details.event_id(
        "Redemption Rolled Back", "r_1rr_2"
    )


def test_the_readme_names_every_detail_type_with_its_documents() -> None:
    readme = (DOCS / "README.md").read_text(encoding="utf-8")
    for model in details.DETAILS:
        assert f"`{model.DETAIL_TYPE}`" in readme
        assert f"({model.SLUG}.schema.json)" in readme and f"(examples/{model.SLUG}.json)" in readme
    assert "event_id" in readme and details.SOURCE in readme


def test_an_example_detail_copied_is_refused_by_the_model_with_an_extra_field() -> None:
    detail = copy.deepcopy(example("redemption-recorded")["detail"])
    detail["customer_name"] = "Someone"
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        details.RedemptionRecorded.model_validate(detail)
