"""Quarantine: TTL from the setting, metric and alarm, the sparse index, `redemption-ledger quarantine list|replay`."""

from __future__ import annotations

import base64
import io
import json
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_dev.harness.template import PROJECT_ROOT, load_template, resources
from redemption_ledger_cli import cli
from redemption_ledger_cli.replay import Replayer
from support.documents import compact, payload
from support.functions import TABLE_NAME, Aws, LambdaApp
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.keys import QUARANTINE_INDEX
from voucherify_ledger.models.webhooks import EventRedemptionSucceededData, SimpleRedemption
from voucherify_ledger.webhooks import routes as webhook_routes
from voucherify_ledger.webhooks.replay import RouteReplay

REDEMPTION_FN = "RedemptionSucceededFunction"
ROLLBACK_FN = "RedemptionRollbackSucceededFunction"
TARGET = ["--table", TABLE_NAME, "--region", "eu-west-1"]
PERSONAL = ("Jane Doe", "jane@jane.io", "Jack Webhook", "jck-wbhk")


def run(argv: list[str]) -> tuple[int, Any]:
    out = io.StringIO()
    code = cli.main(argv, out=out)
    text = out.getvalue()
    return code, json.loads(text) if text else None


def quarantine_items(aws: Aws) -> list[dict[str, Any]]:
    return [i for i in aws.items() if i["pk"]["S"].startswith("QUARANTINE#")]


def unknown_status() -> dict[str, Any]:
    """A redemption.succeeded whose redemption.status is a value today's model does not know (yet)."""
    data = payload("redemption_succeeded")
    data["redemption"]["status"] = "PARTIALLY_SUCCEEDED"
    return data


class RedemptionWithAnyStatus(SimpleRedemption):
    status: str | None  # the "model fix": a status Voucherify added


class FixedRedemptionSucceededData(EventRedemptionSucceededData):
    redemption: RedemptionWithAnyStatus


@pytest.fixture
def model_fix(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Deploys the fix: the redemption route validates with the relaxed model from now on."""

    def apply() -> None:
        fixed = replace(webhook_routes.REDEMPTION_SUCCEEDED, model=FixedRedemptionSucceededData)
        monkeypatch.setitem(webhook_routes.ROUTES, fixed.name, fixed)

    return apply


@pytest.fixture
def quarantined(lambda_app: Callable[..., LambdaApp], aws: Aws) -> Iterator[str]:
    """A delivery the redemption function quarantined: a redemption status the model does not know."""
    answer = lambda_app(REDEMPTION_FN).post(compact(unknown_status()))
    assert (answer.status, answer.body["status"]) == (202, "quarantined"), answer.body
    assert any(e.startswith("redemption.status:") for e in answer.body["errors"])
    yield answer.body["quarantine_id"]


# --- retention, metric, alarm, index -------------------------------------------------------------------
@pytest.mark.parametrize("days", [None, "7"])
def test_quarantine_expires_after_quarantine_retention_days(
    lambda_app: Callable[..., LambdaApp], aws: Aws, days: str | None
) -> None:
    template = load_template()
    for function in (REDEMPTION_FN, ROLLBACK_FN):
        variables = resources()[function]["Properties"]["Environment"]["Variables"]
        assert variables["QUARANTINE_RETENTION_DAYS"] == {"Ref": "QuarantineRetentionDays"}
    expected = int(days or template["Parameters"]["QuarantineRetentionDays"]["Default"])
    env = {"QUARANTINE_RETENTION_DAYS": days} if days else {}

    before = time.time()
    answer = lambda_app(REDEMPTION_FN, **env).post(compact(unknown_status()))
    after = time.time()

    assert answer.status == 202
    (item,) = quarantine_items(aws)
    ttl = resources()["LedgerTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl["Enabled"] is True
    expires_at = int(item[ttl["AttributeName"]]["N"])
    assert int(before) + expected * 86_400 - 1 <= expires_at <= int(after) + expected * 86_400 + 1


def test_quarantine_emits_the_metric_the_alarm_watches(
    lambda_app: Callable[..., LambdaApp], aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    lambda_app(REDEMPTION_FN).post(compact(unknown_status()))

    emitted: dict[str, tuple[Any, list[list[str]], dict[str, Any]]] = {}
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' in line:
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    emitted[metric["Name"]] = (document[metric["Name"]], directive["Dimensions"], document)
    value, dimensions, document = emitted["Quarantined"]
    assert sum(value if isinstance(value, list) else [value]) == 1  # EMF: one value, or a list of values

    alarm = resources("AWS::CloudWatch::Alarm")["QuarantinedDeliveriesAlarm"]["Properties"]
    glob = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (glob["POWERTOOLS_METRICS_NAMESPACE"], "Quarantined")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": glob["POWERTOOLS_SERVICE_NAME"]}]
    assert dimensions == [["service"]] and document["service"] == glob["POWERTOOLS_SERVICE_NAME"]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == ("Sum", 0, "GreaterThanThreshold")
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def test_the_quarantine_index_is_sparse_and_projects_no_delivery(
    lambda_app: Callable[..., LambdaApp], invoke: Callable[..., Any], aws: Aws
) -> None:
    props = resources()["LedgerTable"]["Properties"]
    index = next(g for g in props["GlobalSecondaryIndexes"] if g["IndexName"] == QUARANTINE_INDEX)
    assert index["KeySchema"] == [{"AttributeName": "quarantine_id", "KeyType": "HASH"}]
    assert {"AttributeName": "quarantine_id", "AttributeType": "S"} in props["AttributeDefinitions"]
    assert index["Projection"]["ProjectionType"] == "INCLUDE"
    projected = set(index["Projection"]["NonKeyAttributes"])
    assert not projected & {"raw_zlib", "delivery_id", "redemption_delivery", "delivery"}

    assert invoke(REDEMPTION_FN, compact(payload("redemption_succeeded"))).status == 200
    assert invoke(ROLLBACK_FN, compact(payload("customer_redemption_rollback_succeeded"))).status == 200
    assert lambda_app(REDEMPTION_FN).post(compact(unknown_status())).status == 202

    # only quarantine records carry the index key, so the index holds them alone
    carriers = [i["pk"]["S"] for i in aws.items() if "quarantine_id" in i]
    assert carriers and all(pk.startswith("QUARANTINE#") for pk in carriers)
    indexed = aws.dynamodb.scan(TableName=TABLE_NAME, IndexName=QUARANTINE_INDEX)["Items"]
    assert [i["pk"]["S"] for i in indexed] == carriers
    assert not [i for i in indexed if "raw_zlib" in i]


def test_listing_reads_the_index_only(quarantined: str, aws: Aws) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    aws.dynamodb.meta.events.register(
        "provide-client-params.dynamodb.*", lambda params, model, **_: calls.append((model.name, dict(params)))
    )
    listed = aws.ledger.quarantine.records()

    assert [r["quarantine_id"] for r in listed] == [quarantined]
    assert [(name, params.get("IndexName")) for name, params in calls] == [("Scan", QUARANTINE_INDEX)]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [(b"[" * 100_000 + b"]" * 100_000, "nested too deeply"), (b"\xff{}", "not valid UTF-8"), (b"[1]", "an array")],
)
def test_replay_of_a_body_that_is_not_a_json_object_stays_invalid(aws: Aws, raw: bytes, problem: str) -> None:
    receiver = RouteReplay(webhook_routes.REDEMPTION_SUCCEEDED, aws.ledger)

    replayed = receiver.replay(raw, received_at=datetime.now(UTC))

    assert replayed.status == "still_invalid"
    assert any(problem in error for error in replayed.errors), replayed.errors
    assert aws.items() == []


# --- quarantine list -----------------------------------------------------------------------------------
def test_list_prints_every_quarantined_delivery_oldest_first(
    lambda_app: Callable[..., LambdaApp], quarantined: str, aws: Aws
) -> None:
    # a rollback sent to the redemption URL: the wrong event for the route
    wrong_url = lambda_app(REDEMPTION_FN).post(compact(payload("customer_redemption_rollback_succeeded")))
    assert wrong_url.status == 202

    code, listed = run(["quarantine", "list", *TARGET])

    assert code == 0
    assert [r["quarantine_id"] for r in listed] == [quarantined, wrong_url.body["quarantine_id"]]
    first = listed[0]
    assert first["route"] == "redemption-succeeded" and first["deliveries"] == 1
    assert "does not match the redemption.succeeded schema" in first["reason"]
    assert any(e.startswith("redemption.status:") for e in first["errors"])
    assert first["expires"].endswith("Z") and isinstance(first["expires_at"], int)
    assert listed[1]["reason"] == "wrong event type for this webhook URL"
    text = json.dumps(listed)
    assert "raw_zlib" not in text and not [value for value in PERSONAL if value in text]


def test_list_with_nothing_quarantined_exits_1(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["quarantine", "list", *TARGET]) == (1, [])
    assert f"nothing is quarantined in table {TABLE_NAME}" in capsys.readouterr().err


def test_quarantine_needs_an_action_and_replay_an_id_or_all(aws: Aws) -> None:
    for argv in (["quarantine"], ["quarantine", "replay"], ["quarantine", "replay", "q_1", "--all"]):
        with pytest.raises(SystemExit) as exited:
            cli.main([*argv, *TARGET])
        assert exited.value.code == 2, argv


# --- quarantine replay ---------------------------------------------------------------------------------
def test_replay_before_the_fix_keeps_the_delivery_with_its_errors_and_attempts(
    quarantined: str, aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run(["quarantine", "replay", quarantined, *TARGET])
    second = run(["quarantine", "replay", "--all", *TARGET])

    for code, summary in (first, second):
        assert code == 4
        assert {k: summary[k] for k in ("replayed", "recorded", "duplicate", "still_invalid")} == {
            "replayed": 1,
            "recorded": 0,
            "duplicate": 0,
            "still_invalid": 1,
        }
        result = summary["results"][quarantined]
        assert result["status"] == "still_invalid"
        assert any(e.startswith("redemption.status:") for e in result["errors"])
    assert [
        first[1]["results"][quarantined]["replay_attempts"],
        second[1]["results"][quarantined]["replay_attempts"],
    ] == [
        1,
        2,
    ]
    assert "still fail and stay quarantined" in capsys.readouterr().err
    record = aws.ledger.quarantine.get(quarantined)
    assert record["replay_attempts"] == 2 and record["last_replayed_at"].endswith("Z")
    assert record["deliveries"] == 1 and zlib.decompress(record["raw_zlib"]) == compact(unknown_status())
    assert aws.ledger.redemptions.get(unknown_status()["redemption"]["id"]) is None


def test_replay_after_the_fix_records_the_delivery_as_the_webhook_would(
    quarantined: str, aws: Aws, model_fix: Callable[[], None]
) -> None:
    redemption_id = unknown_status()["redemption"]["id"]
    model_fix()

    code, summary = run(["quarantine", "replay", "--all", *TARGET])

    assert code == 0
    assert {k: summary[k] for k in ("replayed", "recorded", "duplicate", "still_invalid")} == {
        "replayed": 1,
        "recorded": 1,
        "duplicate": 0,
        "still_invalid": 0,
    }
    assert summary["results"][quarantined] == {
        "status": "recorded",
        "route": "redemption-succeeded",
        "routed_by": "content",
        "route_evidence": "a bare body with redemption",
        "received_route": "redemption-succeeded",
        "redemption_id": redemption_id,
        "ledger_status": "SUCCEEDED",
        "quarantine_removed": True,
    }
    assert quarantine_items(aws) == []
    assert run(["quarantine", "list", *TARGET])[0] == 1
    code, shown = run(["show", redemption_id, *TARGET])
    assert code == 0 and (shown["status"], shown["voucherify_status"]) == ("SUCCEEDED", "PARTIALLY_SUCCEEDED")
    item = aws.dynamodb.get_item(
        TableName=TABLE_NAME, Key={"pk": {"S": f"REDEMPTION#{redemption_id}"}, "sk": {"S": "REDEMPTION"}}
    )["Item"]
    audit = item["redemption_delivery"]["M"]
    assert audit["replayed_from"]["S"] == quarantined
    assert audit["route"]["S"] == "redemption-succeeded"
    assert zlib.decompress(audit["raw_zlib"]["B"]) == compact(unknown_status())


def test_replay_is_idempotent(
    lambda_app: Callable[..., LambdaApp], quarantined: str, aws: Aws, model_fix: Callable[[], None], capsys
) -> None:
    redemption_id = unknown_status()["redemption"]["id"]
    model_fix()
    assert run(["quarantine", "replay", quarantined, *TARGET])[0] == 0

    # again: the record is gone, so the id is not quarantined any more
    code, summary = run(["quarantine", "replay", quarantined, *TARGET])
    assert code == 1 and summary["results"][quarantined] == {"status": "not_found"}
    assert f"no quarantined delivery {quarantined} in table {TABLE_NAME}" in capsys.readouterr().err

    # a retry of the same bytes quarantined by a function still running the old model: replayed as a duplicate
    assert lambda_app(REDEMPTION_FN).post(compact(unknown_status())).body["quarantine_id"] == quarantined
    code, summary = run(["quarantine", "replay", "--all", *TARGET])
    assert code == 0 and (summary["recorded"], summary["duplicate"]) == (0, 1)
    assert summary["results"][quarantined]["status"] == "duplicate"
    assert summary["results"][quarantined]["quarantine_removed"] is True
    assert quarantine_items(aws) == []
    assert [i["sk"]["S"] for i in aws.items() if i["pk"]["S"] == f"REDEMPTION#{redemption_id}"] == ["REDEMPTION"]


def test_a_delivery_quarantined_by_older_code_is_recorded_or_found_duplicate(aws: Aws, invoke) -> None:
    """Records written for reasons today's code accepts (e.g. before a fix): replay records them."""
    rollback = payload("customer_redemption_rollback_succeeded")
    already = payload("redemption_succeeded")
    assert invoke(REDEMPTION_FN, compact(already)).status == 200
    then = datetime(2024, 3, 14, 9, 12, tzinfo=UTC)
    ids = {
        name: aws.ledger.quarantine.keep(
            Delivery(raw=compact(body), route=route, received_at=then),
            ["redemption.date: rejected by an older model"],
            retention_days=30,
            reason="the payload does not match the schema",
        ).quarantine_id
        for name, body, route in (
            ("rollback", rollback, "redemption-rollback-succeeded"),
            ("redemption", already, "redemption-succeeded"),
        )
    }

    code, summary = run(["quarantine", "replay", "--all", *TARGET])

    assert code == 0
    assert (summary["replayed"], summary["recorded"], summary["duplicate"], summary["still_invalid"]) == (2, 1, 1, 0)
    recorded = summary["results"][ids["rollback"]]
    assert (recorded["status"], recorded["rollback_id"], recorded["ledger_status"]) == (
        "recorded",
        rollback["redemption_rollback"]["id"],
        "ROLLED_BACK",
    )
    assert summary["results"][ids["redemption"]]["status"] == "duplicate"
    assert quarantine_items(aws) == []
    shown = aws.ledger.redemptions.get(rollback["redemption"]["id"])
    assert shown["status"] == "ROLLED_BACK" and shown["rollback_ids"] == [rollback["redemption_rollback"]["id"]]


# --- replay routes a delivery by what it is (issue 10, defect 3: a delivery sent to the wrong URL) ------------------
REDEMPTION_ROUTE = "redemption-succeeded"
ROLLBACK_ROUTE = "redemption-rollback-succeeded"
ROUTE_OF = {REDEMPTION_FN: REDEMPTION_ROUTE, ROLLBACK_FN: ROLLBACK_ROUTE}


def event_body(name: str) -> dict[str, Any]:
    """The body of ``events/<name>.json``: the API Gateway events wrapping the documentation payloads."""
    event = json.loads((PROJECT_ROOT / "events" / f"{name}.json").read_text(encoding="utf-8"))
    raw = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode("utf-8")
    return json.loads(raw)


@dataclass(frozen=True)
class WrongUrl:
    body: Callable[[], dict[str, Any]]
    sent_to: str  # the function whose URL received it
    route: str  # the route it belongs to
    redemption_id: str
    rollback_id: str | None
    ledger_status: str
    evidence: str  # what replay says it read in the body


WRONG_URL = {
    "redemption-bare-to-rollback-url": WrongUrl(
        lambda: payload("redemption_succeeded"),
        ROLLBACK_FN,
        REDEMPTION_ROUTE,
        "r_0e2500291ae016adea",
        None,
        "SUCCEEDED",
        "a bare body with redemption",
    ),
    "redemption-envelope-to-rollback-url": WrongUrl(
        lambda: event_body("redemption_succeeded_envelope"),
        ROLLBACK_FN,
        REDEMPTION_ROUTE,
        "r_0e2500291ae016adea",
        None,
        "SUCCEEDED",
        "event.type redemption.succeeded",
    ),
    "rollback-bare-to-redemption-url": WrongUrl(
        lambda: payload("customer_redemption_rollback_succeeded"),
        REDEMPTION_FN,
        ROLLBACK_ROUTE,
        "r_0e6ff48b91cfa02e97",
        "rr_0e70cac29fee95aa7b",
        "ROLLED_BACK",
        "a bare body with redemption_rollback",
    ),
    "rollback-envelope-to-redemption-url": WrongUrl(
        lambda: event_body("redemption_rollback_succeeded_envelope"),
        REDEMPTION_FN,
        ROLLBACK_ROUTE,
        "r_0e3ab1f3fb99fee4b9",
        "rr_0e3ac8762299fef1e3",
        "ROLLED_BACK",
        "event.type redemption.rollback.succeeded",
    ),
    "rollback-distribution-to-redemption-url": WrongUrl(
        lambda: event_body("customer_redemption_rollback_succeeded_distribution"),
        REDEMPTION_FN,
        ROLLBACK_ROUTE,
        "r_0e6ff48b91cfa02e97",
        "rr_0e70cac29fee95aa7b",
        "ROLLED_BACK",
        "event.type customer.redemption.rollback.succeeded",
    ),
}


def sent_to_the_wrong_url(lambda_app: Callable[..., LambdaApp], case: WrongUrl) -> str:
    """Delivers the case's body, signed, to the wrong function; the quarantine id of the 202 it is answered."""
    answer = lambda_app(case.sent_to).post(compact(case.body()))
    assert (answer.status, answer.body["status"]) == (202, "quarantined"), answer.body
    return str(answer.body["quarantine_id"])


@pytest.mark.parametrize("case", list(WRONG_URL.values()), ids=list(WRONG_URL))
def test_a_delivery_sent_to_the_wrong_url_is_replayed_on_its_own_route(
    lambda_app: Callable[..., LambdaApp], aws: Aws, case: WrongUrl
) -> None:
    quarantine_id = sent_to_the_wrong_url(lambda_app, case)
    (listed,) = run(["quarantine", "list", *TARGET])[1]
    assert listed["route"] == ROUTE_OF[case.sent_to] != case.route

    code, summary = run(["quarantine", "replay", quarantine_id, *TARGET])

    assert code == 0, summary
    assert (summary["recorded"], summary["still_invalid"]) == (1, 0)
    result = summary["results"][quarantine_id]
    assert {k: result.get(k) for k in ("status", "route", "routed_by", "route_evidence", "received_route")} == {
        "status": "recorded",
        "route": case.route,
        "routed_by": "content",
        "route_evidence": case.evidence,
        "received_route": ROUTE_OF[case.sent_to],
    }
    assert (result["redemption_id"], result.get("rollback_id"), result["ledger_status"]) == (
        case.redemption_id,
        case.rollback_id,
        case.ledger_status,
    )
    assert result["quarantine_removed"] is True and quarantine_items(aws) == []
    code, shown = run(["show", case.redemption_id, *TARGET])
    assert code == 0 and shown["status"] == case.ledger_status
    assert shown["rollback_ids"] == ([case.rollback_id] if case.rollback_id else [])
    if case.rollback_id is None:
        item = aws.dynamodb.get_item(
            TableName=TABLE_NAME, Key={"pk": {"S": f"REDEMPTION#{case.redemption_id}"}, "sk": {"S": "REDEMPTION"}}
        )["Item"]
        audit = item["redemption_delivery"]["M"]
        assert (audit["route"]["S"], audit["replayed_from"]["S"]) == (case.route, quarantine_id)


def test_the_same_redemption_sent_to_both_urls_is_recorded_once(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    """A retry that reached the right URL meanwhile: the replay of the wrong-URL copy is a duplicate, and leaves."""
    case = WRONG_URL["redemption-envelope-to-rollback-url"]
    quarantine_id = sent_to_the_wrong_url(lambda_app, case)
    assert lambda_app(REDEMPTION_FN).post(compact(payload("redemption_succeeded"))).body["status"] == "recorded"

    code, summary = run(["quarantine", "replay", "--all", *TARGET])

    assert code == 0 and (summary["recorded"], summary["duplicate"]) == (0, 1)
    assert summary["results"][quarantine_id]["route"] == REDEMPTION_ROUTE
    assert quarantine_items(aws) == []
    assert [i["sk"]["S"] for i in aws.items() if i["pk"]["S"] == f"REDEMPTION#{case.redemption_id}"] == ["REDEMPTION"]


def test_a_wrong_url_delivery_that_is_also_invalid_stays_with_the_reason_of_its_own_route(
    lambda_app: Callable[..., LambdaApp], aws: Aws, model_fix: Callable[[], None]
) -> None:
    # a redemption whose status today's model does not know, sent to the rollback URL
    answer = lambda_app(ROLLBACK_FN).post(compact(unknown_status()))
    assert answer.status == 202
    quarantine_id = answer.body["quarantine_id"]

    code, summary = run(["quarantine", "replay", quarantine_id, *TARGET])

    assert code == 4
    result = summary["results"][quarantine_id]
    assert (result["status"], result["route"], result["routed_by"], result["received_route"]) == (
        "still_invalid",
        REDEMPTION_ROUTE,
        "content",
        ROLLBACK_ROUTE,
    )
    assert "does not match the redemption.succeeded schema" in result["reason"]
    assert any(e.startswith("redemption.status:") for e in result["errors"]), result["errors"]
    record = aws.ledger.quarantine.get(quarantine_id)
    assert record["replay_attempts"] == 1 and record["reason"] == result["reason"]
    assert record["route"] == ROLLBACK_ROUTE  # the record still says where it arrived

    model_fix()
    code, summary = run(["quarantine", "replay", quarantine_id, *TARGET])
    assert code == 0
    assert (summary["results"][quarantine_id]["status"], summary["results"][quarantine_id]["route"]) == (
        "recorded",
        REDEMPTION_ROUTE,
    )
    assert quarantine_items(aws) == []


# Authentic JSON objects that say nothing about which route they belong to: quarantined where they arrived, and
# replayed there (the route that received them), never guessed onto another.
UNDECIDABLE = {
    "empty-object": (REDEMPTION_FN, {}),
    "no-redemption-at-all": (ROLLBACK_FN, {"object": "redemption", "voucher": {"code": "X"}}),
    "data-without-event": (REDEMPTION_FN, {"data": payload("redemption_succeeded")}),
    "unknown-event-type": (
        REDEMPTION_FN,
        {**event_body("redemption_succeeded_envelope"), "event": {"type": "voucher.published"}},
    ),
    "event-type-not-a-string": (
        ROLLBACK_FN,
        {**event_body("redemption_succeeded_envelope"), "event": {"type": ["redemption.succeeded"]}},
    ),
    "event-not-an-object": (ROLLBACK_FN, {**event_body("redemption_succeeded_envelope"), "event": "redemption"}),
    "event-type-an-object": (REDEMPTION_FN, {"event": {"type": {"redemption.succeeded": 1}}, "data": {}}),
    "event-type-a-dunder": (ROLLBACK_FN, {"event": {"type": "__class__"}, "data": payload("redemption_succeeded")}),
}


def test_a_delivery_that_does_not_say_where_it_belongs_is_replayed_on_the_route_that_received_it(
    lambda_app: Callable[..., LambdaApp], aws: Aws
) -> None:
    sent: dict[str, str] = {}
    for name, (function, body) in UNDECIDABLE.items():
        answer = lambda_app(function).post(compact(body))
        assert (answer.status, answer.body["status"]) == (202, "quarantined"), (name, answer.body)
        sent[answer.body["quarantine_id"]] = ROUTE_OF[function]
    assert len(sent) == len(UNDECIDABLE)

    code, summary = run(["quarantine", "replay", "--all", *TARGET])

    assert code == 4 and summary["still_invalid"] == len(UNDECIDABLE)
    for quarantine_id, received in sent.items():
        result = summary["results"][quarantine_id]
        assert (result["status"], result["route"], result["routed_by"], result["received_route"]) == (
            "still_invalid",
            received,
            "received_route",
            received,
        ), result
        assert "does not say" in result["route_evidence"]
    assert len(quarantine_items(aws)) == len(UNDECIDABLE)
    assert not [i for i in aws.items() if i["pk"]["S"].startswith("REDEMPTION#")]


def test_a_record_of_an_unknown_route_stays_quarantined(aws: Aws) -> None:
    now = datetime.now(UTC)
    quarantine_id = aws.ledger.quarantine.keep(
        Delivery(raw=compact({"voucher": {"code": "X"}}), route="retired-route", received_at=now),
        ["x"],
        retention_days=1,
        reason="r",
    ).quarantine_id

    code, summary = run(["quarantine", "replay", quarantine_id, *TARGET])

    assert code == 4
    result = summary["results"][quarantine_id]
    assert (result["status"], result["reason"], result["routed_by"]) == (
        "still_invalid",
        "unknown route",
        "received_route",
    )
    assert "'retired-route' is not a route of this bundle" in result["errors"][0]


def test_a_record_of_a_retired_route_whose_content_says_where_it_belongs_is_recorded(aws: Aws) -> None:
    now = datetime.now(UTC)
    body = payload("redemption_succeeded")
    quarantine_id = aws.ledger.quarantine.keep(
        Delivery(raw=compact(body), route="retired-route", received_at=now), ["x"], retention_days=1, reason="r"
    ).quarantine_id

    code, summary = run(["quarantine", "replay", quarantine_id, *TARGET])

    assert code == 0
    result = summary["results"][quarantine_id]
    assert (result["status"], result["route"], result["routed_by"], result["received_route"]) == (
        "recorded",
        REDEMPTION_ROUTE,
        "content",
        "retired-route",
    )


# --- quarantine replay --route NAME: the operator says where a delivery belongs -------------------------------------
def test_route_option_overrides_what_the_content_says(lambda_app: Callable[..., LambdaApp], aws: Aws) -> None:
    case = WRONG_URL["redemption-envelope-to-rollback-url"]
    quarantine_id = sent_to_the_wrong_url(lambda_app, case)

    # the operator insists on the URL it arrived at: that route's checks, and it stays
    code, summary = run(["quarantine", "replay", quarantine_id, "--route", ROLLBACK_ROUTE, *TARGET])

    assert code == 4
    result = summary["results"][quarantine_id]
    assert (result["status"], result["route"], result["routed_by"], result["reason"]) == (
        "still_invalid",
        ROLLBACK_ROUTE,
        "operator",
        "wrong event type for this webhook URL",
    )
    assert result["route_evidence"] == f"--route {ROLLBACK_ROUTE}"
    assert aws.ledger.quarantine.get(quarantine_id)["replay_attempts"] == 1
    assert aws.ledger.redemptions.get(case.redemption_id) is None

    # the operator names the route it belongs to: recorded there
    code, summary = run(["quarantine", "replay", quarantine_id, "--route", REDEMPTION_ROUTE, *TARGET])

    assert code == 0
    result = summary["results"][quarantine_id]
    assert (result["status"], result["route"], result["routed_by"], result["received_route"]) == (
        "recorded",
        REDEMPTION_ROUTE,
        "operator",
        ROLLBACK_ROUTE,
    )
    assert quarantine_items(aws) == []
    assert run(["show", case.redemption_id, *TARGET])[1]["status"] == "SUCCEEDED"


def test_route_option_replays_an_undecidable_record_of_a_retired_route_on_the_named_route(aws: Aws) -> None:
    quarantine_id = aws.ledger.quarantine.keep(
        Delivery(raw=compact({"voucher": {"code": "X"}}), route="retired-route", received_at=datetime.now(UTC)),
        ["x"],
        retention_days=1,
        reason="r",
    ).quarantine_id

    code, summary = run(["quarantine", "replay", quarantine_id, "--route", REDEMPTION_ROUTE, *TARGET])

    assert code == 4
    result = summary["results"][quarantine_id]
    assert (result["route"], result["routed_by"], result["received_route"]) == (
        REDEMPTION_ROUTE,
        "operator",
        "retired-route",
    )
    assert "does not match the redemption.succeeded schema" in result["reason"]  # today's checks of that route


@pytest.mark.parametrize("name", ["nope", "redemption_succeeded", "REDEMPTION-SUCCEEDED", "", "retired-route"])
def test_route_option_must_name_a_route_of_the_bundle(
    lambda_app: Callable[..., LambdaApp], aws: Aws, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    quarantine_id = sent_to_the_wrong_url(lambda_app, WRONG_URL["redemption-bare-to-rollback-url"])

    code, summary = run(["quarantine", "replay", quarantine_id, "--route", name, *TARGET])

    assert (code, summary) == (2, None)
    err = capsys.readouterr().err
    assert f"--route {name!r} is not a route of this bundle" in err
    assert f"{ROLLBACK_ROUTE}, {REDEMPTION_ROUTE}" in err or f"{REDEMPTION_ROUTE}, {ROLLBACK_ROUTE}" in err
    record = aws.ledger.quarantine.get(quarantine_id)
    assert "replay_attempts" not in record  # nothing was replayed


def test_route_option_needs_named_deliveries_not_all(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = run(["quarantine", "replay", "--all", "--route", REDEMPTION_ROUTE, *TARGET])

    assert (code, summary) == (2, None)
    assert "--route says where the named deliveries belong" in capsys.readouterr().err


def test_replayer_refuses_an_unknown_route(quarantined: str, aws: Aws) -> None:
    with pytest.raises(ValueError, match="not a route of this bundle"):
        Replayer(aws.ledger).replay(quarantined, route="nope")
    assert "replay_attempts" not in aws.ledger.quarantine.get(quarantined)


# --- routes.route_by_content: what a body says about its route ------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "route", "evidence"),
    [
        (lambda: payload("redemption_succeeded"), REDEMPTION_ROUTE, "a bare body with redemption"),
        (
            lambda: payload("customer_redemption_rollback_succeeded"),
            ROLLBACK_ROUTE,
            "a bare body with redemption_rollback",
        ),
        (lambda: payload("redemption_rollback_succeeded"), ROLLBACK_ROUTE, "a bare body with redemption_rollback"),
        (lambda: event_body("redemption_succeeded_envelope"), REDEMPTION_ROUTE, "event.type redemption.succeeded"),
        (
            lambda: {**event_body("redemption_succeeded_envelope"), "event": {"type": "customer.redemption.succeeded"}},
            REDEMPTION_ROUTE,
            "event.type customer.redemption.succeeded",
        ),
        (
            lambda: event_body("redemption_rollback_succeeded_envelope"),
            ROLLBACK_ROUTE,
            "event.type redemption.rollback.succeeded",
        ),
        (
            lambda: event_body("customer_redemption_rollback_succeeded_distribution"),
            ROLLBACK_ROUTE,
            "event.type customer.redemption.rollback.succeeded",
        ),
        # the envelope's event.type decides, whatever its data looks like
        (
            lambda: {"event": {"type": "redemption.rollback.succeeded"}, "data": payload("redemption_succeeded")},
            ROLLBACK_ROUTE,
            "event.type redemption.rollback.succeeded",
        ),
        # a bare body is told by its shape alone (the route's checks decide whether it is valid)
        (lambda: {"redemption_rollback": None}, ROLLBACK_ROUTE, "a bare body with redemption_rollback"),
        (lambda: {"redemption": "r_1", "event": {"type": "x"}}, REDEMPTION_ROUTE, "a bare body with redemption"),
    ],
    ids=[
        "bare-redemption",
        "bare-distribution-rollback",
        "bare-project-rollback",
        "envelope-redemption",
        "envelope-customer-redemption",
        "envelope-rollback",
        "envelope-distribution-rollback",
        "envelope-type-over-data",
        "bare-rollback-shape",
        "bare-redemption-with-event-only",
    ],
)
def test_route_by_content_names_the_route_a_delivery_belongs_to(
    body: Callable[[], Any], route: str, evidence: str
) -> None:
    for raw in (compact(body()), json.dumps(body(), indent=2).encode("utf-8"), json.dumps(body())):
        found = webhook_routes.route_by_content(raw)
        assert found is not None and (found.route, found.evidence) == (route, evidence)
    assert webhook_routes.route_by_content(compact(body())) == webhook_routes.route_by_body(body())


HOSTILE_BODIES = {
    "deep-arrays": b"[" * 100_000 + b"]" * 100_000,
    "deep-objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "deep-in-event": b'{"data":{},"event":{"type":' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    "unclosed-escapes": b'"' + b'\\"' * 65_536,  # defect 1's crafted body
    "huge-integer": b'{"redemption_rollback":' + b"9" * 100_000 + b"}",
    "not-utf8": b'\xff{"redemption":{}}',
    "lone-surrogate-bytes": b'{"redemption":"\xed\xa0\x80"}',
    "utf8-bom": b'\xef\xbb\xbf{"redemption":{}}',
    "empty": b"",
    "whitespace": b" \n\t ",
    "null": b"null",
    "array": b'[{"redemption":{}}]',
    "string": b'"redemption"',
    "number": b"1e999999",
    "truncated": compact(payload("redemption_succeeded"))[:-1],
    "two-documents": b'{"redemption":{}}{"redemption_rollback":{}}',
    "event-type-null": b'{"event":{"type":null},"data":{}}',
    "event-type-number": b'{"event":{"type":1},"data":{}}',
    "event-type-unknown": b'{"event":{"type":"voucher.published"},"data":{"redemption":{}}}',
    "event-type-escaped-surrogate": b'{"event":{"type":"\\ud800"},"data":{}}',
    "event-type-almost": b'{"event":{"type":"redemption.succeeded "},"data":{}}',
    "event-array": b'{"event":[],"data":{"redemption_rollback":{}}}',
    "neither": b'{"redemptions":{},"rollback":{}}',
}


@pytest.mark.parametrize("raw", list(HOSTILE_BODIES.values()), ids=list(HOSTILE_BODIES))
def test_route_by_content_cannot_tell_hostile_or_undecidable_bodies(raw: bytes) -> None:
    assert webhook_routes.route_by_content(raw) is None


@pytest.mark.parametrize("raw", list(HOSTILE_BODIES.values()), ids=list(HOSTILE_BODIES))
def test_replay_of_a_hostile_body_falls_back_to_the_route_that_received_it(aws: Aws, raw: bytes) -> None:
    quarantine_id = aws.ledger.quarantine.keep(
        Delivery(raw=raw, route=ROLLBACK_ROUTE, received_at=datetime.now(UTC)), ["x"], retention_days=1, reason="r"
    ).quarantine_id

    result = Replayer(aws.ledger).replay(quarantine_id)

    assert (result["status"], result["route"], result["routed_by"]) == (
        "still_invalid",
        ROLLBACK_ROUTE,
        "received_route",
    )
    assert not [i for i in aws.items() if i["pk"]["S"].startswith("REDEMPTION#")]


ROUTING_KEYS = st.sampled_from(["event", "data", "type", "redemption", "redemption_rollback", "id", "object"])
EVENT_TYPES = st.sampled_from(sorted({t for route in webhook_routes.ROUTES.values() for t in route.event_types}))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8) | EVENT_TYPES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ROUTING_KEYS | st.text(max_size=4), inner, max_size=5),
    max_leaves=30,
)
ROUTING_PROPERTY = settings(
    deadline=None, derandomize=True, database=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow]
)


def expected_route(body: Any) -> str | None:
    """The rule, written out plainly: an envelope by its event.type, a bare body by its shape."""
    if not isinstance(body, dict):
        return None
    if "event" in body and "data" in body:
        event = body["event"]
        kind = event.get("type") if isinstance(event, dict) else None
        routes = [r.name for r in webhook_routes.ROUTES.values() if isinstance(kind, str) and kind in r.event_types]
        return routes[0] if len(routes) == 1 else None
    if "redemption_rollback" in body:
        return ROLLBACK_ROUTE
    return REDEMPTION_ROUTE if "redemption" in body else None


@settings(ROUTING_PROPERTY)
@given(body=JSON_VALUES)
def test_route_by_content_follows_the_rule_for_any_json(body: Any) -> None:
    found = webhook_routes.route_by_content(json.dumps(body).encode("utf-8"))
    assert (found.route if found else None) == expected_route(body)


@settings(ROUTING_PROPERTY)
@given(raw=st.binary(max_size=512) | st.text(max_size=256).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_route_by_content_never_raises_on_any_bytes(raw: bytes) -> None:
    found = webhook_routes.route_by_content(raw)
    assert found is None or found.route in webhook_routes.ROUTES


def test_replay_of_an_unknown_id_exits_1_with_a_message(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = run(["quarantine", "replay", "q_nope", *TARGET])

    assert code == 1
    assert summary == {
        "replayed": 1,
        "recorded": 0,
        "duplicate": 0,
        "still_invalid": 0,
        "not_found": 1,
        "results": {"q_nope": {"status": "not_found"}},
    }
    err = capsys.readouterr().err
    assert f"no quarantined delivery q_nope in table {TABLE_NAME}" in err and "quarantine list" in err


def test_replay_all_with_nothing_quarantined_is_a_success(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = run(["quarantine", "replay", "--all", *TARGET])
    assert code == 0 and (summary["replayed"], summary["results"]) == (0, {})
    assert "nothing is quarantined" in capsys.readouterr().err


def test_replay_against_a_missing_table_exits_3(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = run(["quarantine", "replay", "q_1", "--table", "no-such-table", "--region", "eu-west-1"])
    assert code == 3 and summary["results"]["q_1"]["status"] == "error"
    assert "table no-such-table does not exist" in capsys.readouterr().err
    assert run(["quarantine", "list", "--table", "no-such-table", "--region", "eu-west-1"])[0] == 3


# --- concurrency: interleavings of two replays, or of a replay and a live delivery ----------------------
def test_two_concurrent_replays_record_once(quarantined: str, aws: Aws, model_fix: Callable[[], None]) -> None:
    model_fix()
    other = Replayer(aws.ledger)
    first = Replayer(aws.ledger)
    read = aws.ledger.quarantine.get
    results: dict[str, Any] = {}

    def read_then_let_the_other_finish(quarantine_id: str) -> dict[str, Any] | None:
        item = read(quarantine_id)
        aws.ledger.quarantine.get = read  # type: ignore[method-assign]
        results["other"] = other.replay(quarantine_id)
        return item

    aws.ledger.quarantine.get = read_then_let_the_other_finish  # type: ignore[method-assign]
    results["first"] = first.replay(quarantined)

    assert results["other"]["status"] == "recorded" and results["other"]["quarantine_removed"] is True
    assert results["first"]["status"] == "duplicate" and results["first"]["quarantine_removed"] is False
    redemption_id = unknown_status()["redemption"]["id"]
    assert [i["sk"]["S"] for i in aws.items() if i["pk"]["S"] == f"REDEMPTION#{redemption_id}"] == ["REDEMPTION"]
    assert quarantine_items(aws) == []


def test_a_still_invalid_record_removed_meanwhile_is_not_recreated(quarantined: str, aws: Aws) -> None:
    read = aws.ledger.quarantine.get

    def read_then_removed(quarantine_id: str) -> dict[str, Any] | None:
        item = read(quarantine_id)
        assert aws.ledger.quarantine.remove(quarantine_id) is True  # another replay, or TTL
        return item

    aws.ledger.quarantine.get = read_then_removed  # type: ignore[method-assign]
    assert Replayer(aws.ledger).replay(quarantined) == {"status": "gone"}
    assert quarantine_items(aws) == []


def test_a_live_retry_during_a_failed_replay_keeps_both_counts(
    lambda_app: Callable[..., LambdaApp], quarantined: str, aws: Aws
) -> None:
    app = lambda_app(REDEMPTION_FN)
    read = aws.ledger.quarantine.get

    def read_then_a_live_retry(quarantine_id: str) -> dict[str, Any] | None:
        item = read(quarantine_id)
        assert app.post(compact(unknown_status())).body["quarantine_id"] == quarantine_id
        return item

    aws.ledger.quarantine.get = read_then_a_live_retry  # type: ignore[method-assign]
    result = Replayer(aws.ledger, now=datetime.now(UTC) + timedelta(minutes=1)).replay(quarantined)

    assert result["status"] == "still_invalid" and result["replay_attempts"] == 1
    record = read(quarantined)
    assert (record["deliveries"], record["replay_attempts"]) == (2, 1)


def test_a_delivery_the_ledger_could_not_store_stays_quarantined_on_replay_with_its_reason(
    lambda_app: Callable[..., LambdaApp], aws: Aws
) -> None:
    """Quarantined because DynamoDB would refuse it (a voucher code over an index key's 2,048 bytes): replaying it
    before anything changed keeps it, saying why, and ``--all`` goes on to the next record."""
    data = payload("redemption_succeeded")
    data["redemption"]["voucher"]["code"] = "X" * 2100
    refused = lambda_app("RedemptionSucceededFunction").post(compact(data))
    assert (refused.status, refused.body["reason"]) == (202, "the ledger cannot store this delivery as it is")
    lambda_app("RedemptionSucceededFunction").post(compact(unknown_status()))  # a second record, also invalid

    code, summary = run(["quarantine", "replay", "--all", *TARGET])

    assert code != 0 and summary["replayed"] == 2 and len(summary["results"]) == 2
    stored = summary["results"][refused.body["quarantine_id"]]
    assert (stored["status"], stored["reason"]) == ("still_invalid", "the ledger cannot store this delivery as it is")
    assert stored["errors"] == ["voucher_code is 2100 bytes, beyond DynamoDB's 2048 for a key"]
    assert len(quarantine_items(aws)) == 2


class RefusesTheFirstWrite:
    """A DynamoDB client that refuses its first UpdateItem as too large, as DynamoDB would, then writes (moto)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def update_item(self, **kwargs: Any) -> Any:
        if not self.refused:
            self.refused += 1
            error = {"Code": "ValidationException", "Message": "Item size has exceeded the maximum allowed size"}
            raise ClientError({"Error": error}, "UpdateItem")
        return self.client.update_item(**kwargs)


def test_a_record_kept_without_its_raw_copy_says_there_is_nothing_to_replay(aws: Aws) -> None:
    """Should DynamoDB refuse even the quarantine record with its raw copy, the record is kept without it (size and
    SHA-256 say what it was); replay then reports that instead of failing on the missing copy."""
    from voucherify_ledger.ledger import Ledger

    client = RefusesTheFirstWrite(aws.dynamodb)
    delivery = Delivery(raw=b'{"x":1}', route="redemption-succeeded", received_at=datetime(2026, 1, 2, tzinfo=UTC))
    outcome = Ledger(TABLE_NAME, client).quarantine.keep(delivery, ["x: bad"], retention_days=1, reason="r")

    (item,) = quarantine_items(aws)
    assert client.refused == 1 and "raw_zlib" not in item and item["raw_bytes"]["N"] == "7"
    assert item["errors"]["L"][-1]["S"].startswith("raw copy not kept: the quarantine record cannot be stored")
    code, summary = run(["quarantine", "replay", outcome.quarantine_id, *TARGET])
    assert code != 0
    result = summary["results"][outcome.quarantine_id]
    assert (result["status"], result["reason"]) == ("still_invalid", "nothing to replay")
