"""template.yaml as the infrastructure tests read it: the SAM source, and the CloudFormation template the SAM
transform makes of it (the ``cfn`` fixture of tests/infra/conftest.py)."""

from __future__ import annotations

import copy
import re
from typing import Any

from ledger_dev.harness.template import TEMPLATE_PATH, load_template, resources


class ManagedPolicyLoader:
    """Stands in for the IAM ListPolicies call the SAM transform makes for managed-policy names."""

    def load(self) -> dict[str, str]:
        return {
            name: f"arn:aws:iam::aws:policy/{path}"
            for name, path in {
                "AWSLambdaBasicExecutionRole": "service-role/AWSLambdaBasicExecutionRole",
                "AWSLambdaSQSQueueExecutionRole": "service-role/AWSLambdaSQSQueueExecutionRole",
                "AWSXRayDaemonWriteAccess": "AWSXRayDaemonWriteAccess",
            }.items()
        }


def sam_source() -> dict[str, Any]:
    return copy.deepcopy(load_template(TEMPLATE_PATH))


def with_s3_artifacts(template: dict[str, Any]) -> dict[str, Any]:
    """Local CodeUri / ContentUri replaced with S3 locations, as cfn-lint and `sam package` do."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://artifacts-bucket/{logical_id}.zip"
    return template


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


WORKER = "RollbackWorkerFunction"
WEBHOOK_FUNCTIONS = {
    "RedemptionSucceededFunction": "/webhooks/redemption-succeeded",
    "RedemptionRollbackSucceededFunction": "/webhooks/redemption-rollback-succeeded",
}


def worker() -> dict[str, Any]:
    """The rollback worker's properties in the SAM source."""
    return resources("AWS::Serverless::Function")[WORKER]["Properties"]


def policy_statements(policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The statements of a role's inline policies, a conditional one (``!If [TracingOn, statement, NoValue]``, the
    X-Ray grant of the Tracing parameter) as the statement it grants when its condition holds."""
    found = []
    for policy in policies:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                condition, statement, otherwise = statement["Fn::If"]
                assert (condition, otherwise) == ("TracingOn", {"Ref": "AWS::NoValue"}), condition
            found.append(statement)
    return found


def worker_statements() -> list[dict[str, Any]]:
    """The worker role's statements (its own AWS::IAM::Role: tests/infra/test_iam_allow_lists.py says why)."""
    role = worker()["Role"]["Fn::GetAtt"][0]
    return policy_statements(resources("AWS::IAM::Role")[role]["Properties"]["Policies"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def references(value: Any) -> set[str]:
    """Logical ids and parameter names a CloudFormation value refers to (Ref, GetAtt, ${…} in Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= {ref.split(".")[0] for ref in re.findall(r"\$\{([^}!]+)\}", text)}
                if isinstance(inner, list):
                    found |= references(inner[1])
            elif key == "Fn::If":
                found |= references(inner[1]) | references(inner[2])
            else:
                found |= references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= references(inner)
    return found - {"AWS::Partition", "AWS::Region", "AWS::AccountId", "AWS::URLSuffix", "AWS::NoValue"}
