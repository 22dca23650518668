"""The ``hostile`` phase's requests: each attack case with the one answer it must get (``HostileCase``), built by
``HostilePlanner`` from Voucherify-shaped data and the genuine deliveries a quiet stream recorded."""

from __future__ import annotations

import base64
import copy
import hashlib
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ledger_dev.payloads.corpus import (
    REDEMPTION_ROUTE,
    ROLLBACK_ROUTE,
    Corpus,
    CorpusBuilder,
    CorpusDelivery,
    load_openapi_webhooks,
)
from ledger_dev.payloads.schema_payloads import dumps
from voucherify_ledger.ledger.quarantine import quarantine_id_for
from voucherify_ledger.webhooks.auth import SIGNATURE_HEADER, sign
from voucherify_ledger.webhooks.routes import ROUTES as WEBHOOK_ROUTES

# A string scan restarted at every quote ran in quadratic time on these (issue 10, defect 1): a quote, then an
# escaped quote repeated, never closed. 262,143 bytes is the largest under MAX_BODY_BYTES (256 KiB).
CRAFTED_LARGE_BYTES = 262_143
CRAFTED_SMALL_BYTES = 4_095
CRAFTED_ALONE_ROUNDS = 10  # each crafted body, one at a time, before the attack: its latency without the stream
ATTACKER_EVENT_TYPE = "mallory@attacker.example"  # an attacker-chosen event.type (an email address was tried)
SIGNATURE_MISMATCH = f"{SIGNATURE_HEADER} does not match the webhook secret"
SIGNED_ONLY = f"missing {SIGNATURE_HEADER} header (this URL accepts signed deliveries only)"
WRONG_EVENT_TYPE = "wrong event type for this webhook URL"
STORAGE_REFUSED = "the ledger cannot store this delivery as it is"
LARGE_METADATA_BYTES = 48_000  # random bytes, base64 in a redemption's metadata: its raw copy is kept out of line
GENUINE_AFTER_CRAFTED = "genuine_after_crafted"


def crafted_body(size: int) -> bytes:
    """``"`` then ``\\"`` repeated, unterminated: at most ``size`` bytes."""
    return b'"' + b'\\"' * ((size - 1) // 2)


def schema_mismatch(route: str) -> str:
    """The quarantine reason of a delivery that does not validate on ``route``."""
    return f"the payload does not match the {WEBHOOK_ROUTES[route].schema} schema"


@dataclass(frozen=True)
class HostileCase:
    """One request of the attack, and the one answer it must get."""

    kind: str
    route: str  # the route it is sent to (perhaps the wrong one)
    body: bytes
    credentials: tuple[tuple[str, str], ...]  # headers
    status: int
    answer: str  # the answer's ``status``: unauthorized / quarantined / duplicate / recorded
    reason: str | None = None  # a 401's ``error``, a 202's ``reason``
    quarantine_id: str | None = None
    conflict_id: str | None = None
    redemption_id: str | None = None
    storable: bool = False  # a valid delivery the ledger keeps (``recorded`` once, then ``duplicate``)
    replay_route: str | None = None  # a delivery at the wrong URL: where its replay must record it
    attacker_strings: tuple[str, ...] = ()  # never in an answer, nor in a record outside the raw copy

    @property
    def entity(self) -> str:
        return f"redemption:{self.redemption_id}"


class HostilePlanner:
    """Builds the attack's requests (``HostileCase``) from Voucherify-shaped data (``CorpusBuilder``) and from the
    genuine deliveries a quiet stream has already recorded (``baseline``)."""

    def __init__(self, baseline: Corpus, *, secret: str, token_header: str, token: str, seed: int) -> None:
        self.baseline = baseline
        self.secret = secret
        self.token_header = token_header
        self.token = token
        self.builder = CorpusBuilder(load_openapi_webhooks(), seed)
        self.rng = random.Random(seed)

    # --- material ---------------------------------------------------------------------------------------
    def wrong_signature(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    def signed(self, body: bytes) -> tuple[tuple[str, str], ...]:
        return ((SIGNATURE_HEADER, sign(self.secret, body)),)

    def redemption(self) -> dict[str, Any]:
        """A new redemption's data (a voucher redemption, never sent as it is)."""
        customer = self.builder.customer()
        return self.builder.redemption(style="voucher", order=self.builder.order(customer), customer=customer)

    def document(self, data: Mapping[str, Any], event_type: str, envelope: bool) -> bytes:
        return dumps(self.builder.gen.envelope(data, event_type) if envelope else data)

    def recorded(self, kind: str, envelope: bool | None = None) -> list[CorpusDelivery]:
        """The baseline's deliveries of ``kind`` (first sendings, recorded by now; no failed attempts), as envelopes or
        bare if said."""
        return [
            d
            for d in self.baseline.deliveries
            if d.kind == kind and envelope in (None, d.envelope) and not d.duplicate and not d.failed
        ]

    # --- the cases --------------------------------------------------------------------------------------
    def crafted_then_genuine(self) -> list[HostileCase]:
        """Each crafted body once per URL, each followed by a recorded genuine delivery of that URL, signed
        (answered ``duplicate``): how long a real delivery waits right after a crafted body."""
        cases: list[HostileCase] = []
        genuine = {
            REDEMPTION_ROUTE: next(iter(self.recorded("redemption")), None),
            ROLLBACK_ROUTE: next(iter(self.recorded("rollback")), None),
        }
        for case in self.crafted(weight=1):
            delivery = genuine[case.route]
            cases.append(case)
            if delivery is None:
                continue
            cases.append(
                HostileCase(
                    GENUINE_AFTER_CRAFTED,
                    case.route,
                    delivery.body,
                    self.signed(delivery.signed_body),
                    200,
                    "duplicate",
                    redemption_id=delivery.redemption_id,
                )
            )
        return cases

    def crafted(self, weight: int = 4) -> list[HostileCase]:
        cases = []
        for size, label in ((CRAFTED_LARGE_BYTES, "256kb"), (CRAFTED_SMALL_BYTES, "4kb")):
            body = crafted_body(size)
            for route in (REDEMPTION_ROUTE, ROLLBACK_ROUTE):
                for _ in range(weight):
                    credentials = ((SIGNATURE_HEADER, self.wrong_signature()),)
                    cases.append(
                        HostileCase(
                            f"crafted_{label}", route, body, credentials, 401, "unauthorized", SIGNATURE_MISMATCH
                        )
                    )
        return cases

    def cases(self) -> tuple[list[HostileCase], Corpus]:
        """Every case of the attack (crafted bodies weighted ×4), shuffled, and the corpus of its storable ones."""
        cases = self.crafted()
        redemption_route, rollback_route = REDEMPTION_ROUTE, ROLLBACK_ROUTE
        token = ((self.token_header, self.token),)
        # forged signatures beside the right token, on both URLs; the token alone on the redemption URL
        for envelope in (False, True):
            forged = self.redemption()
            forged_id = forged["redemption"]["id"]
            body = self.document(forged, "redemption.succeeded", envelope)
            forged_signature = ((SIGNATURE_HEADER, self.wrong_signature()), *token)
            cases.append(
                HostileCase(
                    "forged_signature_with_token",
                    redemption_route,
                    body,
                    forged_signature,
                    401,
                    "unauthorized",
                    SIGNATURE_MISMATCH,
                    attacker_strings=(forged_id,),
                )
            )
            cases.append(
                HostileCase(
                    "token_alone_on_redemption_url",
                    redemption_route,
                    body,
                    token,
                    401,
                    "unauthorized",
                    SIGNED_ONLY,
                    attacker_strings=(forged_id,),
                )
            )
            # a forged rollback of a genuine (recorded) redemption
            target = self.recorded("redemption")[0]
            event_type, rollback = self.builder.rollback(self.baseline.redemptions[target.redemption_id])
            forged_rollback = ((SIGNATURE_HEADER, self.wrong_signature()), *token)
            cases.append(
                HostileCase(
                    "forged_signature_with_token",
                    rollback_route,
                    self.document(rollback, event_type, envelope),
                    forged_rollback,
                    401,
                    "unauthorized",
                    SIGNATURE_MISMATCH,
                    attacker_strings=(rollback["redemption_rollback"]["id"],),
                )
            )
        # an attacker-chosen event.type (and envelope type and ids), correctly signed, on both URLs
        for route in (redemption_route, rollback_route):
            data = self.redemption() if route == redemption_route else self.builder.rollback(self.redemption())[1]
            document = self.builder.gen.envelope(data, "redemption.succeeded")
            document.update(id=ATTACKER_EVENT_TYPE, type=ATTACKER_EVENT_TYPE)
            document["event"].update(type=ATTACKER_EVENT_TYPE, id=ATTACKER_EVENT_TYPE)
            cases.append(
                self._quarantined(
                    "attacker_event_type", route, dumps(document), WRONG_EVENT_TYPE, (ATTACKER_EVENT_TYPE,)
                )
            )
        # ids DynamoDB keys cannot take (or no one could look up), a number past 38 digits: the schema refuses them
        long_id = "r_" + "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(150))
        for bad_id, envelope in (("r_a5.dot", False), (long_id, True)):
            data = self.redemption()
            data["redemption"]["id"] = bad_id
            body = self.document(data, "redemption.succeeded", envelope)
            cases.append(
                self._quarantined(
                    "unkeyable_redemption_id", redemption_route, body, schema_mismatch(redemption_route), (bad_id,)
                )
            )
        event_type, rollback = self.builder.rollback(self.redemption())
        rollback["redemption_rollback"]["redemption"] = "r_a5.dot"
        if isinstance(rollback.get("redemption"), dict):
            rollback["redemption"]["id"] = "r_a5.dot"
        cases.append(
            self._quarantined(
                "unkeyable_redemption_id",
                rollback_route,
                dumps(rollback),
                schema_mismatch(rollback_route),
                ("r_a5.dot",),
            )
        )
        huge = 12345678901234567890123456789012345678901  # 41 significant digits
        data = self.redemption()
        data["redemption"]["amount"] = huge
        cases.append(
            self._quarantined(
                "number_past_38_digits",
                redemption_route,
                self.document(data, "redemption.succeeded", True),
                schema_mismatch(redemption_route),
                (str(huge),),
            )
        )
        # a voucher code an index key cannot hold (over 2,048 bytes): valid, but DynamoDB would refuse it
        for code, envelope in (("ATTACKER-CODE-" + "Z" * 2_100, False), ("ŻÓŁW-" + "Ż" * 1_100, True)):
            data = self.redemption()
            data["voucher"]["code"] = code
            if isinstance(data["redemption"].get("voucher"), dict):
                data["redemption"]["voucher"]["code"] = code
            body = self.document(data, "redemption.succeeded", envelope)
            cases.append(
                self._quarantined("voucher_code_over_2048_bytes", redemption_route, body, STORAGE_REFUSED, (code,))
            )
        # genuine deliveries (recorded already) sent to the wrong URL: quarantined, then replayed onto their route
        # (a bare redemption says nothing of its event: at the rollback URL it fails that URL's schema)
        for kind, envelope in (("redemption", True), ("redemption", False), ("rollback", True), ("rollback", False)):
            route = rollback_route if kind == "redemption" else redemption_route
            reason = schema_mismatch(route) if kind == "redemption" and not envelope else WRONG_EVENT_TYPE
            for delivery in self.recorded(kind, envelope)[1:3]:
                case = self._quarantined(f"{kind}_at_the_wrong_url", route, delivery.body, reason, ())
                cases.append(replace(case, replay_route=delivery.route, redemption_id=delivery.redemption_id))
        # conflicting duplicates: a recorded redemption's id, another amount
        for envelope in (False, True):
            for delivery in self.recorded("redemption", envelope)[3:6]:
                data = copy.deepcopy(self.baseline.redemptions[delivery.redemption_id])
                data["redemption"]["amount"] = (data["redemption"].get("amount") or 0) + 1_000
                body = self.document(data, delivery.event_type, envelope)
                conflict_id = "c_" + hashlib.sha256(body).hexdigest()[:32]
                cases.append(
                    HostileCase(
                        "conflicting_duplicate",
                        redemption_route,
                        body,
                        self.signed(body),
                        200,
                        "duplicate",
                        conflict_id=conflict_id,
                        redemption_id=delivery.redemption_id,
                    )
                )
        storable = self.storable(4)
        for delivery in storable.deliveries:
            cases.append(
                HostileCase(
                    "raw_copy_out_of_line",
                    redemption_route,
                    delivery.body,
                    self.signed(delivery.body),
                    200,
                    "recorded",
                    redemption_id=delivery.redemption_id,
                    storable=True,
                )
            )
        self.rng.shuffle(cases)
        return cases, storable

    def storable(self, count: int) -> Corpus:
        """Valid redemptions whose compressed raw copy is too large to keep inline (random metadata): recorded, the
        copy in an item of its own (``RAW#…``)."""
        deliveries, redemptions = [], {}
        for index in range(count):
            data = self.redemption()
            data["redemption"]["metadata"] = {
                "blob": base64.b64encode(self.rng.randbytes(LARGE_METADATA_BYTES)).decode()
            }
            envelope = index % 2 == 1
            body = self.document(data, "redemption.succeeded", envelope)
            redemption_id = data["redemption"]["id"]
            deliveries.append(
                CorpusDelivery(
                    index, "redemption", REDEMPTION_ROUTE, "redemption.succeeded", envelope, body, body, redemption_id
                )
            )
            redemptions[redemption_id] = data
        return Corpus(-1, deliveries, redemptions, {}, {}, {}, Counter(redemptions=len(redemptions)))

    def _quarantined(
        self, kind: str, route: str, body: bytes, reason: str, attacker_strings: tuple[str, ...]
    ) -> HostileCase:
        return HostileCase(
            kind,
            route,
            body,
            self.signed(body),
            202,
            "quarantined",
            reason,
            quarantine_id=quarantine_id_for(body),
            attacker_strings=attacker_strings,
        )
