"""`make run`'s fake Voucherify answers as Voucherify does: a rollback of a redemption it never made ends ``FAILED``
``not_found`` (404), while the redemptions it made roll back — those of the sample payloads (the banner's examples,
what the ``events/`` files of ``sam local invoke`` record) from the start, and each one the stack's API records, from
its webhook on. A delivery the API does not record (quarantined, refused) makes no redemption."""

from __future__ import annotations

import urllib.error
import urllib.request

from ledger_dev.local_stack import LocalStack
from redemption_ledger_cli import cli
from support.cli import cli_json
from support.documents import SEED_REDEMPTION_ID, compact
from support.local import SUCCEEDED_PATH, deliver_redemption
from support.worker import redemption_document
from voucherify_ledger.webhooks.auth import sign

LEARNED, LEARNED_ORDER = "r_e2elearned00000001", "ord_e2elearned0000001"
NEVER = "r_e2eneverdelivered1"


def post(stack: LocalStack, body: bytes, signature: str) -> int:
    request = urllib.request.Request(
        stack.api_url + SUCCEEDED_PATH,
        data=body,
        headers={"content-type": "application/json", "x-voucherify-signature": signature},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def test_a_rollback_of_a_redemption_voucherify_never_made_ends_failed_not_found(stack: LocalStack) -> None:
    fake = stack.fake_voucherify
    assert fake is not None and not fake.lenient

    code, queued = cli_json("rollback", NEVER, "--reason", "Order cancelled", "--local", "--wait", "30")

    assert code == cli.EXIT_ROLLBACK_FAILED, queued
    (request,) = queued["requests"]
    assert request["state"] == "FAILED"
    assert {k: request["error"][k] for k in ("status", "key", "resource_id", "resource_type")} == {
        "status": 404,
        "key": "not_found",
        "resource_id": NEVER,
        "resource_type": "redemption",
    }
    assert (fake.calls(NEVER), fake.rollback_id(NEVER), fake.webhooks) == (1, None, [])


def test_a_redemption_the_api_recorded_is_known_to_the_fake_and_rolls_back(stack: LocalStack) -> None:
    fake = stack.fake_voucherify
    assert fake is not None and fake.known(LEARNED) is None

    deliver_redemption(stack, redemption_document(LEARNED, order_id=LEARNED_ORDER))

    known = fake.known(LEARNED)
    assert known is not None and known.order_id == LEARNED_ORDER
    code, queued = cli_json("rollback", LEARNED, "--reason", "Order cancelled", "--local", "--wait", "30")
    assert code == cli.EXIT_OK, queued
    (request,) = queued["requests"]
    assert (request["state"], request["rollback_id"]) == ("SUCCEEDED", fake.rollback_id(LEARNED))
    assert fake.wait_for_webhooks(10) and [w.status for w in fake.webhooks] == [200]
    _, view = cli_json("show", LEARNED, "--local")
    assert (view["status"], view["rollback_ids"]) == ("ROLLED_BACK", [fake.rollback_id(LEARNED)])


def test_the_sample_payloads_redemptions_are_known_from_the_start_and_the_banner_says_so(stack: LocalStack) -> None:
    fake = stack.fake_voucherify
    assert fake is not None

    assert fake.known(SEED_REDEMPTION_ID) is not None  # the banner's example rollback, curl or no curl
    assert "any other id is 404 not_found" in stack.banner()
    code, queued = cli_json("rollback", SEED_REDEMPTION_ID, "--reason", "Order cancelled", "--local", "--wait", "30")
    assert code == cli.EXIT_OK, queued
    assert [r["state"] for r in queued["requests"]] == ["SUCCEEDED"]


def test_a_delivery_the_api_does_not_record_makes_no_redemption(stack: LocalStack) -> None:
    fake = stack.fake_voucherify
    assert fake is not None
    quarantined = redemption_document("r_e2equarantined0001")
    quarantined["redemption"]["status"] = "PARTIALLY_SUCCEEDED"  # authentic, but not the schema's
    refused = compact(redemption_document("r_e2erefused00000001"))

    assert post(stack, compact(quarantined), sign(stack.config.signing_secret, compact(quarantined))) == 202
    assert post(stack, refused, sign("not-the-secret", refused)) == 401
    assert post(stack, b"[]", sign(stack.config.signing_secret, b"[]")) == 400

    assert fake.known("r_e2equarantined0001") is None and fake.known("r_e2erefused00000001") is None
    assert fake.calls() == 0
