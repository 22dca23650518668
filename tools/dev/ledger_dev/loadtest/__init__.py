"""``make loadtest`` / ``make chaos``: does the ledger hold under load and faults? (dev only, loopback only)

Starts the local stack (moto server, the template's routes served on 127.0.0.1, the real handlers, the SQS
poller and a fake Voucherify; every port ephemeral) and runs up to four phases, each bounded in time:

``load``    a corpus (``ledger_dev.payloads.corpus``) of deliveries built from Voucherify's published schemas, 30 %
            duplicates, shuffled (many rollbacks before their redemption), half v2024 envelopes and half bare
            data, correctly signed, sent by concurrent senders over real HTTP. No 5xx is acceptable. The ledger
            must then equal the expected state exactly: the table is scanned and compared item by item.
``faults``  the same with a second corpus while a share of the webhook functions' DynamoDB writes fail:
            throttling, TransactionConflict / TransactionCanceled, InternalServerError, connection errors and
            timeouts before the write, and "lost answers" (the write is applied, the answer never arrives). The
            faults are injected by a botocore event hook (``before-call`` / ``after-call``) registered on the
            handlers' own DynamoDB clients. Every delivery hit by a fault must be answered 5xx, every other one
            2xx; the sender resends the 5xx ones (as Voucherify does) until they succeed, and the ledger must
            again be exact, with no partial record.
``hostile`` a quiet stream of genuine signed deliveries (the baseline), the crafted bodies alone, then a second
            genuine stream (some rollbacks by the distribution token alone) while attackers send, over and over
            until it is done: 256 KB and 4 KB bodies built to make a string scan restart at every quote (``"``
            then ``\\"`` repeated, unterminated) with a wrong signature; forged signatures beside the right token
            on both URLs; the token alone on the redemption URL; envelopes whose ``event.type`` is an attacker's
            string; ids DynamoDB keys cannot take (``r_a5.dot``, ``r_`` + 150 characters), a 41-digit amount, a
            voucher code over 2,048 bytes; genuine deliveries sent to the wrong URL; conflicting duplicates of
            genuine redemptions; valid redemptions whose raw copy is too large to keep inline. Every answer must
            be the expected one (401 with its reason / 202 ``quarantined`` with its reason and quarantine id /
            200 ``duplicate`` with the ``conflict_id`` …) and repeat no attacker string; the wrong-URL deliveries
            are then replayed (by content, onto their route: ``duplicate``); the ledger must equal what the genuine
            deliveries say, beside the quarantine, ``CONFLICT#`` and ``RAW#`` records the attack caused (each
            checked). Figures: the genuine deliveries' latency under attack against the quiet baseline, the
            crafted bodies' (256 KB against 4 KB), at the client and in the handler (``HandlerTimes``).
``chaos``   rollback requests (some twice) for redemptions of the corpora go through the queue, the worker and
            the fake Voucherify, which answers 5xx, 429 (with Retry-After / X-Rate-Limit-*), drops connections
            (before and after rolling back), hangs past the client's timeout and adds latency spikes. Every
            request must end SUCCEEDED / ALREADY_ROLLED_BACK / FAILED (dead-lettered, its message in the
            dead-letter queue), each redemption rolled back in Voucherify at most once and never called again
            after a 200, and the ledger must match Voucherify (every rollback id, nothing else changed).

A delivery that gets no HTTP answer at all (a connection error) is resent on a new connection, as Voucherify
retries a delivery it got no answer to; those are counted (``connection_errors``, by kind) and fail the run only
when a delivery never gets an answer. Since its request may have been handled, its entity need not have been
answered ``recorded``, but it must never be answered ``recorded`` twice. The same goes for a delivery whose write
botocore retried after a timeout (``sdk_retries``: the first try may have been applied, the retry then hears
"already recorded").

Exit status 0 when every check passed, 1 otherwise (the problems are printed). ``--json FILE`` writes the
figures. Run ``python -m ledger_dev.loadtest --help`` for the knobs (e.g. ``--deliveries 500``).

One module per phase (``webhook_phase``: load and faults, ``hostile``, ``chaos``) beside what they share: the hooks on
the functions (``hooks``), the senders (``sending``), the expected and scanned ledger (``ledger_check``), the attack's
cases and checks (``hostile_cases``, ``hostile_checks``); ``run`` starts the stack and runs them.
"""

from ledger_dev.loadtest.chaos import CHAOS_ENVIRONMENT, CHAOS_PARAMETERS, run_chaos_phase
from ledger_dev.loadtest.common import TAG_HEADER, PhaseReport
from ledger_dev.loadtest.hooks import DynamoFaults, HandlerTimes, SdkRetries
from ledger_dev.loadtest.hostile import run_hostile_phase
from ledger_dev.loadtest.hostile_cases import (
    ATTACKER_EVENT_TYPE,
    CRAFTED_LARGE_BYTES,
    SIGNATURE_MISMATCH,
    SIGNED_ONLY,
    STORAGE_REFUSED,
    WRONG_EVENT_TYPE,
    HostileCase,
    HostilePlanner,
    crafted_body,
)
from ledger_dev.loadtest.hostile_checks import check_hostile_answer, check_hostile_attempts, hostile_ledger_items
from ledger_dev.loadtest.ledger_check import _documents, compare_ledger, expected_ledger, scan_ledger
from ledger_dev.loadtest.run import PHASES, QUIET_ENVIRONMENT, Options, environment, main, render, run
from ledger_dev.loadtest.sending import Attempt, HostileAttempt, SendResult, send_corpus, send_hostile
from ledger_dev.loadtest.webhook_phase import check_answers, connection_errors, run_webhook_phase

__all__ = [
    "ATTACKER_EVENT_TYPE",
    "CHAOS_ENVIRONMENT",
    "CHAOS_PARAMETERS",
    "CRAFTED_LARGE_BYTES",
    "PHASES",
    "QUIET_ENVIRONMENT",
    "SIGNATURE_MISMATCH",
    "SIGNED_ONLY",
    "STORAGE_REFUSED",
    "TAG_HEADER",
    "WRONG_EVENT_TYPE",
    "Attempt",
    "DynamoFaults",
    "HandlerTimes",
    "HostileAttempt",
    "HostileCase",
    "HostilePlanner",
    "Options",
    "PhaseReport",
    "SdkRetries",
    "SendResult",
    "_documents",  # the tests' name for the documents each entity was sent as
    "check_answers",
    "check_hostile_answer",
    "check_hostile_attempts",
    "compare_ledger",
    "connection_errors",
    "crafted_body",
    "environment",
    "expected_ledger",
    "hostile_ledger_items",
    "main",
    "render",
    "run",
    "run_chaos_phase",
    "run_hostile_phase",
    "run_webhook_phase",
    "scan_ledger",
    "send_corpus",
    "send_hostile",
]
