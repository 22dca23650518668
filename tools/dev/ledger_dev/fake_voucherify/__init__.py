"""A fake Voucherify (dev and tests only): the two rollback endpoints over real HTTP, faults on demand, and the
signed ``redemption.rollback.succeeded`` webhook back to the bundle. See ``fake`` for what it answers."""

from ledger_dev.fake_voucherify.fake import (
    ERRORS,
    FAULT_KINDS,
    FakeRedemption,
    FakeVoucherify,
    Fault,
    RecordedRequest,
    WebhookDelivery,
    api_secret_value,
)

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
