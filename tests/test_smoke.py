from conftest import compact, payload


def test_seed_redemption_is_recorded_then_duplicate(invoke, aws):
    body = compact(payload("redemption_succeeded"))
    first = invoke("RedemptionSucceededFunction", body)
    second = invoke("RedemptionSucceededFunction", body)
    assert (first.status, first.body["status"]) == (200, "recorded")
    assert (second.status, second.body["status"]) == (200, "duplicate")
    assert aws.ledger.get_redemption("r_0e2500291ae016adea")["status"] == "SUCCEEDED"
