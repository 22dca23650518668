"""The ledger table (on demand, recoverable, encrypted, quarantine expiring), its indexes (ids only, no personal
data), and the functions' log groups (one each, kept FunctionLogRetentionDays, never for ever)."""

from __future__ import annotations

import re
from typing import Any

from support.template import of_type, sam_source

PERSONAL = re.compile(r"name|email|phone|address|birth", re.IGNORECASE)


# --- the table -----------------------------------------------------------------------------------------
def test_ledger_table_is_on_demand_recoverable_encrypted_and_expires_quarantine(cfn: dict[str, Any]) -> None:
    table = cfn["Resources"]["LedgerTable"]
    props = table["Properties"]
    assert table.get("DeletionPolicy") == "Retain" and table.get("UpdateReplacePolicy") == "Retain"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert [k["AttributeName"] for k in props["KeySchema"]] == ["pk", "sk"]


def test_indexes_key_on_ids_and_project_no_personal_data(cfn: dict[str, Any]) -> None:
    props = cfn["Resources"]["LedgerTable"]["Properties"]
    gsis = {g["IndexName"]: g for g in props["GlobalSecondaryIndexes"]}
    assert {name: g["KeySchema"][0]["AttributeName"] for name, g in gsis.items()}.items() >= {
        "ByOrder": "order_id",
        "ByOrderSourceId": "order_source_id",
        "ByCustomer": "customer_id",
        "ByVoucherCode": "voucher_code",
    }.items()
    for name, gsi in gsis.items():
        projection = gsi["Projection"]
        assert projection["ProjectionType"] in ("KEYS_ONLY", "INCLUDE"), name
        attributes = [k["AttributeName"] for k in gsi["KeySchema"]] + projection.get("NonKeyAttributes", [])
        assert not [a for a in attributes if PERSONAL.search(a)], name
        assert not [a for a in attributes if "raw" in a or "delivery" in a], name
    defined = {a["AttributeName"] for a in props["AttributeDefinitions"]}
    assert not [a for a in defined if PERSONAL.search(a)]


# What `redemption-ledger list --order` / `--order-source-id` shows of each redemption (the order's stack as a tree,
# its total discount), and what the worker's order fan-out reads: each order index projects all of it.
ORDER_LISTING = {
    "redemption_id",
    "status",
    "voucher_code",
    "customer_id",
    "campaign_id",
    "order_amount",
    "discount_amount",
    "rollback_ids",
    "parent_redemption_id",
    "promotion_tier_id",
    "stack_role",
    "amount_unit",
}


def test_the_order_indexes_key_on_either_order_id_and_project_the_stack(cfn: dict[str, Any]) -> None:
    props = cfn["Resources"]["LedgerTable"]["Properties"]
    gsis = {g["IndexName"]: g for g in props["GlobalSecondaryIndexes"]}
    for name, key, other in (
        ("ByOrder", "order_id", "order_source_id"),
        ("ByOrderSourceId", "order_source_id", "order_id"),
    ):
        gsi = gsis[name]
        assert [(k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]] == [
            (key, "HASH"),
            ("redeemed_at", "RANGE"),
        ]
        assert gsi["Projection"]["ProjectionType"] == "INCLUDE"
        assert set(gsi["Projection"]["NonKeyAttributes"]) == ORDER_LISTING | {other}, name
    assert {"AttributeName": "order_source_id", "AttributeType": "S"} in props["AttributeDefinitions"]


# --- function logs -------------------------------------------------------------------------------------
# CloudWatch Logs' retention values (PutRetentionPolicy): anything else is refused at deploy time.
CLOUDWATCH_RETENTION_DAYS = [
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
]


def test_function_log_retention_is_a_parameter_with_cloudwatchs_values() -> None:
    parameters = sam_source()["Parameters"]
    spec = parameters["FunctionLogRetentionDays"]
    assert spec["Type"] == "Number"
    assert spec["AllowedValues"] == CLOUDWATCH_RETENTION_DAYS
    assert spec["Default"] == 30
    assert parameters["WebhookAccessLogRetentionDays"]["AllowedValues"] == CLOUDWATCH_RETENTION_DAYS


def test_every_function_logs_to_its_own_group_kept_function_log_retention_days(cfn: dict[str, Any]) -> None:
    functions = of_type(cfn, "AWS::Lambda::Function")
    assert set(functions) == set(of_type(sam_source(), "AWS::Serverless::Function"))
    groups = {}
    for name, function in functions.items():
        logging = function["Properties"].get("LoggingConfig")
        assert logging, f"{name} has no LoggingConfig: Lambda would create /aws/lambda/<name>, kept for ever"
        # Text: Powertools writes JSON lines itself; Lambda's JSON format would filter its metric (EMF) lines as INFO.
        assert logging.get("LogFormat") == "Text", name
        assert set(logging) == {"LogGroup", "LogFormat"}, name
        group = logging["LogGroup"]["Ref"]
        assert cfn["Resources"][group]["Type"] == "AWS::Logs::LogGroup", name
        props = cfn["Resources"][group]["Properties"]
        assert props["RetentionInDays"] == {"Ref": "FunctionLogRetentionDays"}, group
        assert props["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{name}"}, group
        groups[name] = group
    assert len(set(groups.values())) == len(groups), "each function has its own log group"


def test_no_log_group_is_kept_for_ever(cfn: dict[str, Any]) -> None:
    for name, group in of_type(cfn, "AWS::Logs::LogGroup").items():
        assert group["Properties"].get("RetentionInDays") in (
            {"Ref": "FunctionLogRetentionDays"},
            {"Ref": "WebhookAccessLogRetentionDays"},
        ), name
