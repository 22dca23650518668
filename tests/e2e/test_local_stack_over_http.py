"""The local stack (`make run`): real HTTP on loopback, moto's server as the embedded AWS, the real handlers."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ledger_dev import local_stack
from ledger_dev.harness import api_emulator
from ledger_dev.harness.queues import create_queues
from ledger_dev.harness.template import PROJECT_ROOT
from ledger_dev.local_stack import LocalConfig, LocalStack, PollingService
from redemption_ledger_cli import cli
from support.documents import compact, payload
from voucherify_ledger.webhooks.auth import sign, verify_signature

SUCCEEDED_PATH = "/webhooks/redemption-succeeded"
ROLLBACK_PATH = "/webhooks/redemption-rollback-succeeded"
SEED_REDEMPTION_ID = "r_0e2500291ae016adea"
SEED_ROLLED_BACK = "r_0e6ff48b91cfa02e97"
DEV_SECRET = local_stack.DEFAULT_SIGNING_SECRET
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None, method: str = "POST"):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with _OPENER.open(req, timeout=10) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def deliver(stack: LocalStack, path: str, raw: bytes, *, secret: str | None = DEV_SECRET) -> tuple[int, dict]:
    headers = {"content-type": "application/json", "user-agent": "Voucherify-Webhooks"}
    if secret is not None:
        headers["x-voucherify-signature"] = sign(secret, raw)
    status, _, body = request(stack.api_url + path, raw, headers)
    return status, body


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_seeds_are_recorded_then_duplicates_over_http(stack: LocalStack) -> None:
    redemption = compact(payload("redemption_succeeded"))
    rollback = compact(payload("customer_redemption_rollback_succeeded"))

    first = [deliver(stack, SUCCEEDED_PATH, redemption), deliver(stack, ROLLBACK_PATH, rollback)]
    again = [deliver(stack, SUCCEEDED_PATH, redemption), deliver(stack, ROLLBACK_PATH, rollback)]

    assert [(status, body["status"]) for status, body in first] == [(200, "recorded"), (200, "recorded")]
    assert [(status, body["status"]) for status, body in again] == [(200, "duplicate"), (200, "duplicate")]
    assert first[0][1]["redemption_id"] == SEED_REDEMPTION_ID
    assert first[1][1] == {
        "status": "recorded",
        "redemption_id": SEED_ROLLED_BACK,
        "ledger_status": "ROLLED_BACK",
        "rollback_id": "rr_0e70cac29fee95aa7b",
    }


def test_unsigned_or_wrongly_signed_delivery_is_refused_and_not_stored(stack: LocalStack) -> None:
    raw = compact(payload("redemption_succeeded"))

    unsigned = deliver(stack, SUCCEEDED_PATH, raw, secret=None)
    wrong = deliver(stack, SUCCEEDED_PATH, raw, secret="not-the-dev-secret")

    assert unsigned[0] == 401 and unsigned[1]["status"] == "unauthorized"
    assert wrong[0] == 401
    dynamodb = stack.aws_client("dynamodb")
    assert dynamodb.scan(TableName=stack.config.table_name)["Count"] == 0


def test_rollback_before_its_redemption_ends_rolled_back(stack: LocalStack) -> None:
    rollback = payload("redemption_rollback_succeeded")  # the OpenAPI example of redemption.rollback.succeeded
    redemption_id = rollback["redemption_rollback"]["redemption"]
    late_redemption = payload("redemption_succeeded")
    late_redemption["redemption"]["id"] = redemption_id

    assert deliver(stack, ROLLBACK_PATH, compact(rollback))[0] == 200
    status, body = deliver(stack, SUCCEEDED_PATH, compact(late_redemption))

    assert (status, body["status"]) == (200, "recorded")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(local_stack.AWS_PORT_ENV, str(stack.config.aws_port))
        assert cli.main(["show", redemption_id, "--local"], out=out) == 0
    shown = json.loads(out.getvalue())
    assert shown["status"] == "ROLLED_BACK"
    assert shown["rollback_ids"] == [rollback["redemption_rollback"]["id"]]
    assert shown["order_id"] == late_redemption["order"]["id"]  # the late redemption filled in its details


def test_unknown_path_is_404_naming_the_routes_and_wrong_method_405(stack: LocalStack) -> None:
    status, _, body = request(stack.api_url + "/webhooks/nope", b"{}")
    wrong_status, headers, wrong_body = request(stack.api_url + SUCCEEDED_PATH, method="GET")

    assert status == 404
    assert body["routes"] == [f"POST {SUCCEEDED_PATH}", f"POST {ROLLBACK_PATH}"]
    assert (wrong_status, wrong_body["message"], headers.get("allow")) == (405, "Method Not Allowed", "POST")


def test_handler_exception_is_a_500_like_api_gateway(stack: LocalStack) -> None:
    def broken(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("boom")

    stack.function("RedemptionSucceededFunction").handler = broken

    status, body = deliver(stack, SUCCEEDED_PATH, b"{}")

    assert (status, body) == (500, {"message": "Internal Server Error"})
    assert deliver(stack, ROLLBACK_PATH, b"[]")[0] == 400  # the other function is unaffected


def test_handler_gets_the_real_request_as_an_http_api_event(stack: LocalStack) -> None:
    seen: list[dict[str, Any]] = []
    function = stack.function("RedemptionSucceededFunction")
    real = function.handler

    def spy(event: dict[str, Any], context: Any) -> Any:
        seen.append(event)
        return real(event, context)

    function.handler = spy
    raw = b'{"a": 1}'
    status, _, _ = request(
        stack.api_url + SUCCEEDED_PATH + "?x=1&x=2",
        raw,
        {"content-type": "application/json", "X-Custom": "v", "x-voucherify-signature": sign(DEV_SECRET, raw)},
    )

    (event,) = seen
    assert status == 202  # authentic but not a redemption: quarantined
    assert event["version"] == "2.0" and event["routeKey"] == f"POST {SUCCEEDED_PATH}"
    assert event["rawPath"] == SUCCEEDED_PATH and event["rawQueryString"] == "x=1&x=2"
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["headers"]["x-custom"] == "v" and event["body"] == raw.decode()
    assert event["requestContext"]["http"]["method"] == "POST"


def test_chunked_body_and_size_limit(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = compact(payload("redemption_succeeded"))
    host, port = stack.config.api_host, stack.config.api_port
    connection = http.client.HTTPConnection(host, port, timeout=10)
    headers = {"content-type": "application/json", "x-voucherify-signature": sign(DEV_SECRET, raw)}
    connection.request("POST", SUCCEEDED_PATH, body=iter([raw[:100], raw[100:]]), headers=headers, encode_chunked=True)
    answer = connection.getresponse()
    chunked = (answer.status, json.loads(answer.read())["status"])
    connection.close()
    monkeypatch.setattr(api_emulator, "MAX_BODY_BYTES", 64)

    too_large = deliver(stack, SUCCEEDED_PATH, raw)

    assert chunked == (200, "recorded")
    assert too_large == (413, {"message": "Request Entity Too Large"})


def test_banner_curl_commands_are_signed_over_the_payload_files(stack: LocalStack) -> None:
    banner = stack.banner()
    commands = re.findall(
        r"curl .*? -X POST (\S+) \\\n.*?x-voucherify-signature: ([0-9a-f]{64})'.*?--data-binary @(\S+)",
        banner,
        flags=re.S,
    )

    assert len(commands) >= 3  # one per payload file in events/payloads
    shows = re.findall(r"^  (\S+=\d+ )?(\S*redemption-ledger) show (r_\w+) --local$", banner, flags=re.M)
    assert next(rid for _, _, rid in shows) == "r_0e2500291ae016adea"
    assert "VOUCHERIFY_WEBHOOK_SECRET (not set" in banner
    for url, signature, file in commands:
        raw = (Path.cwd() / file).read_bytes()
        assert verify_signature(DEV_SECRET, raw, signature)
        status, _, body = request(url, raw, {"content-type": "application/json", "x-voucherify-signature": signature})
        assert (status, body["status"]) == (200, "recorded"), file
    # The printed CLI lines paste as they are: the venv's script, with the port the embedded AWS listens on.
    for env, script, redemption_id in shows:
        variables = dict([env.strip().split("=", 1)]) if env else {}
        assert variables == {local_stack.AWS_PORT_ENV: str(stack.config.aws_port)}
        shown = subprocess.run(
            [script, "show", redemption_id, "--local"],
            env={**os.environ, **variables},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["redemption_id"] == redemption_id


def test_secret_from_the_environment_is_used_and_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(local_stack.SIGNING_SECRET_ENV, "my-own-dev-secret")
    monkeypatch.setenv(local_stack.API_PORT_ENV, "0")
    monkeypatch.setenv(local_stack.AWS_PORT_ENV, "0")
    monkeypatch.setenv(local_stack.VOUCHERIFY_PORT_ENV, "0")
    with LocalStack() as stack:
        banner = stack.banner()
        accepted = deliver(stack, SUCCEEDED_PATH, compact(payload("redemption_succeeded")), secret="my-own-dev-secret")
        refused = deliver(stack, SUCCEEDED_PATH, compact(payload("redemption_succeeded")))
    assert "my-own-dev-secret" not in banner and "(set in your environment)" in banner
    assert accepted[0] == 200 and refused[0] == 401


def test_stop_restores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "before")
    stack = LocalStack(LocalConfig(aws_port=0, api_port=0, voucherify_port=0)).start()
    during = (os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_ACCESS_KEY_ID"), os.environ["LEDGER_TABLE_NAME"])
    stack.stop()
    stack.stop()  # idempotent

    assert during == (stack.aws_endpoint, "testing", "voucherify-ledger")
    assert "AWS_ENDPOINT_URL" not in os.environ and os.environ["AWS_ACCESS_KEY_ID"] == "before"
    assert "LEDGER_TABLE_NAME" not in os.environ


def test_port_in_use_is_a_clear_startup_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(local_stack.StartupError, match=f"port {port} .*LOCAL_API_PORT"):
            LocalStack(LocalConfig(aws_port=0, api_port=port, voucherify_port=0)).start()
        with pytest.raises(local_stack.StartupError, match=f"port {port} .*LOCAL_AWS_PORT"):
            LocalStack(LocalConfig(aws_port=port, api_port=0, voucherify_port=0)).start()


class _Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def start(self, stack: LocalStack) -> None:
        table = stack.aws_client("dynamodb").describe_table(TableName=stack.refs["LedgerTable"])
        self.log.append(f"start {self.name} {table['Table']['TableStatus']}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def test_background_services_start_after_the_resources_and_stop_in_reverse() -> None:
    events: list[str] = []
    polls: list[str] = []
    poller = PollingService("poller", lambda stack: polls.append(stack.refs["LedgerTable"]), interval=0.01)
    stack = LocalStack(LocalConfig(aws_port=0, api_port=0, voucherify_port=0), services=[_Recorder("a", events)])
    stack.add_service(_Recorder("b", events))
    stack.add_service(poller)
    with stack:
        deadline = time.monotonic() + 5
        while not polls and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(RuntimeError):
            stack.add_service(_Recorder("late", events))
    polls_at_stop = poller.polls
    time.sleep(0.05)

    assert events == ["start a ACTIVE", "start b ACTIVE", "stop b", "stop a"]
    assert polls and polls[0] == "voucherify-ledger"
    assert poller.polls == polls_at_stop  # the poller thread stopped


def test_queues_are_created_from_template_resources_with_redrive_resolved(stack: LocalStack) -> None:
    # made-up resources beside the stack's own RollbackQueue / RollbackDeadLetterQueue
    sqs = stack.aws_client("sqs")
    refs = {**stack.refs, "AuditVisibility": "45"}
    queue_resources = {
        "AuditQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "VisibilityTimeout": {"Ref": "AuditVisibility"},
                "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["AuditDlq", "Arn"]}, "maxReceiveCount": 5},
            },
        },
        "AuditDlq": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-audit-dlq"}, "MessageRetentionPeriod": 1209600},
        },
    }

    created = {q.logical_id: q for q in create_queues(sqs, queue_resources, refs)}

    assert list(created) == ["AuditDlq", "AuditQueue"]  # the DLQ first
    assert created["AuditDlq"].name == "voucherify-ledger-local-audit-dlq"
    assert created["AuditQueue"].name == "voucherify-ledger-local-audit-queue"
    attributes = sqs.get_queue_attributes(QueueUrl=created["AuditQueue"].url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": created["AuditDlq"].arn,
        "maxReceiveCount": 5,
    }
    assert attributes["VisibilityTimeout"] == "45"
    assert refs["AuditQueue"] == created["AuditQueue"].url
    assert refs["AuditDlq.Arn"] == created["AuditDlq"].arn
    cycle = {"A": {"Properties": {"RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["A", "Arn"]}}}}}
    with pytest.raises(ValueError, match="cycle"):
        create_queues(sqs, cycle, dict(refs))


def test_make_run_serves_then_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    api_port, aws_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCAL_", "VOUCHERIFY_"))}
    env.update(
        LOCAL_API_PORT=str(api_port), LOCAL_AWS_PORT=str(aws_port), LOCAL_VOUCHERIFY_PORT="0", PYTHONUNBUFFERED="1"
    )
    output = tmp_path / "make-run.log"
    raw = compact(payload("redemption_succeeded"))
    url = f"http://127.0.0.1:{api_port}{SUCCEEDED_PATH}"
    with open(output, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "ledger_dev.local_stack"], cwd=PROJECT_ROOT, env=env, stdout=sink, stderr=sink
        )
        try:
            deadline = time.monotonic() + 30
            status = None
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    status, _, _ = request(url, method="GET")
                    break
                except (urllib.error.URLError, ConnectionError):
                    time.sleep(0.1)
            assert status == 405, output.read_text()
            delivered = request(url, raw, {"x-voucherify-signature": sign(DEV_SECRET, raw)})
            process.send_signal(signal.SIGINT)
            returncode = process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)
    log = output.read_text()

    assert (delivered[0], delivered[2]["status"]) == (200, "recorded")
    assert returncode == 0, log
    assert f"webhook API   http://127.0.0.1:{api_port}" in log
    assert f"redemption-ledger show {SEED_REDEMPTION_ID} --local" in log
    assert "stopped." in log and "Traceback" not in log


def test_crafted_bodies_against_the_signature_check_do_not_hold_up_a_genuine_delivery(stack: LocalStack) -> None:
    """Over HTTP, four 256 KB bodies built to make a string scan restart at every quote (``"`` then ``\\"`` …), each
    with a wrong signature, race one correctly signed delivery: every crafted body is answered 401, the genuine one
    200 ``recorded``, and a crafted body costs at most linearly more than a 4 KB one (the substitution the scanner
    replaced took minutes at this size, and the genuine delivery waited for it)."""
    from concurrent.futures import ThreadPoolExecutor

    crafted = (b'"' + b'\\"' * 262_144)[:262_144]
    small = crafted[:4_096]
    headers = {"content-type": "application/json", "x-voucherify-signature": "0" * 64}

    def attack(body: bytes) -> tuple[int, float]:
        started = time.perf_counter()
        status, _, _ = request(stack.api_url + SUCCEEDED_PATH, body, headers)
        return status, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=5) as pool:
        attacks = [pool.submit(attack, crafted) for _ in range(4)]
        genuine = pool.submit(deliver, stack, SUCCEEDED_PATH, compact(payload("redemption_succeeded")))
        status, body = genuine.result(timeout=30)
        refused = [future.result(timeout=30) for future in attacks]

    assert (status, body["status"]) == (200, "recorded")
    assert [code for code, _ in refused] == [401] * 4
    small_seconds = min(attack(small)[1] for _ in range(5))
    large_seconds = min(attack(crafted)[1] for _ in range(5))
    assert large_seconds / small_seconds < 64, (small_seconds, large_seconds)  # 64× the bytes; quadratic: 4,096×
