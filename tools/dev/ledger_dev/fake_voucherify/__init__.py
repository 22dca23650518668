"""A fake Voucherify (dev and tests only): the two rollback endpoints and ``GET /v1/redemptions`` /
``GET /v1/redemptions/{id}`` over real HTTP, a seeded history of redemptions and rollbacks to list (with the webhook
of each), faults on demand, and the signed ``redemption.rollback.succeeded`` webhook back to the bundle.

``fake`` (``FakeVoucherify``: what it answers, and when), ``gate`` (keys, rate limit), ``faults`` (``Fault``, the
documented ``ERRORS``), ``documents`` (the JSON it answers and sends), ``objects`` (the history's API objects and
their webhooks), ``history`` (the sorted history), ``listing`` (the list's query), ``seeding`` (a seeded history),
``webhooks`` (the webhooks sent), ``control`` (``/_fake``), ``server`` (HTTP), ``__main__`` (the fake alone).
"""

from ledger_dev.fake_voucherify.documents import FakeRedemption
from ledger_dev.fake_voucherify.fake import FakeVoucherify, RecordedRequest, api_secret_value
from ledger_dev.fake_voucherify.faults import ERRORS, FAULT_KINDS, Fault
from ledger_dev.fake_voucherify.webhooks import WebhookDelivery

__all__ = [
    "ERRORS",
    "FAULT_KINDS",
    "FakeRedemption",
    "FakeVoucherify",
    "Fault",
    "RecordedRequest",
    "WebhookDelivery",
    "api_secret_value",
]
