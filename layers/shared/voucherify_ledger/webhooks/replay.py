"""Replaying a quarantined delivery on a route, after a model fix (the operator's ``redemption-ledger quarantine
replay``): the live deliveries' read path and ledger write, for a delivery authenticated when it arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from voucherify_ledger.ledger import Ledger
from voucherify_ledger.ledger.deliveries import Delivery
from voucherify_ledger.ledger.dynamo import StorageRefusedError
from voucherify_ledger.ledger.redemptions import WriteOutcome
from voucherify_ledger.webhooks.reading import STORAGE_REFUSED, DeliveryReader, Malformed, Read
from voucherify_ledger.webhooks.routes import Route


@dataclass(frozen=True)
class Replayed:
    """What a replay made of a delivery: ``recorded``, ``duplicate`` or ``still_invalid``."""

    status: str
    delivery: Delivery
    reason: str | None = None
    errors: tuple[str, ...] = ()
    outcome: WriteOutcome | None = None


class RouteReplay:
    """Replays deliveries on one route: no secret, no metrics, no answer; the quarantine records are the caller's."""

    def __init__(self, route: Route, ledger: Ledger) -> None:
        self.route = route
        self.ledger = ledger
        self.reader = DeliveryReader(route)

    def replay(self, raw: bytes, *, received_at: datetime, replayed_from: str | None = None) -> Replayed:
        """The checks of a live delivery with today's models and, when they pass, the same idempotent ledger write
        (``recorded`` or ``duplicate``). Nothing is quarantined, counted or answered; a StorageError propagates."""
        delivery = Delivery(raw=raw, route=self.route.name, received_at=received_at, replayed_from=replayed_from)
        read = self.reader.read(raw, delivery)
        if isinstance(read, Malformed):
            return Replayed("still_invalid", delivery, read.reason, (read.detail,))
        if not isinstance(read, Read):
            return Replayed("still_invalid", read.delivery, read.reason, tuple(read.errors))
        try:
            outcome = self.route.record(self.ledger, read.data, read.delivery)
        except StorageRefusedError as refused:  # still not storable as it is: it stays quarantined, saying why
            return Replayed("still_invalid", read.delivery, STORAGE_REFUSED, (refused.reason,))
        return Replayed(outcome.status, read.delivery, outcome=outcome)
