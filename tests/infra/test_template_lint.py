"""template.yaml lints clean, as SAM source and as the CloudFormation template aws-sam-translator makes of it,
and the lint would catch a broken template."""

from __future__ import annotations

import copy
import json
from typing import Any

from cfnlint.api import lint

from ledger_dev.harness.template import TEMPLATE_PATH
from support.template import of_type


# --- the whole template --------------------------------------------------------------------------------
def test_translated_template_lints_without_errors(cfn: dict[str, Any]) -> None:
    matches = lint(json.dumps(cfn), regions=["eu-west-1", "us-east-1"])
    errors = [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


def test_sam_source_lints_without_errors() -> None:
    matches = lint(TEMPLATE_PATH.read_text(encoding="utf-8"), regions=["eu-west-1"])
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")] == []


def test_linting_would_catch_a_broken_template(cfn: dict[str, Any]) -> None:
    broken = copy.deepcopy(cfn)
    function = next(iter(of_type(broken, "AWS::Lambda::Function").values()))
    function["Properties"]["Runtime"] = "python2.6"
    function["Properties"]["Timeout"] = "soon"
    assert [m for m in lint(json.dumps(broken), regions=["eu-west-1"]) if m.rule.id.startswith("E")]
