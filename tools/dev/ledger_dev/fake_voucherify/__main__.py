"""``python -m ledger_dev.fake_voucherify --port 8787 [--history N] [--drop-share F] [--lenient]``: the fake alone,
until Ctrl-C.

Like Voucherify, it answers ``404 not_found`` to a rollback of a redemption it does not know: add them (``POST
/_fake/redemptions``) or seed a history. ``--lenient`` rolls back any ``r_…`` id instead. ``--history N`` seeds N
objects (``--history-days``, ``--history-seed``) to list; with ``--webhook-url``, ``--send-history`` sends their
webhooks once started; ``--drop-share`` loses that share of every webhook."""

from __future__ import annotations

import argparse
import logging
import time

from ledger_dev.fake_voucherify.fake import DEFAULT_APP_ID, DEFAULT_APP_TOKEN, FakeVoucherify


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fake Voucherify rollback API on 127.0.0.1 (development only).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--app-id", default=DEFAULT_APP_ID)
    parser.add_argument("--app-token", default=DEFAULT_APP_TOKEN)
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per minute (429 beyond)")
    known = parser.add_mutually_exclusive_group()
    known.add_argument(
        "--strict",
        dest="lenient",
        action="store_false",
        help="404 not_found for a rollback of a redemption it does not know, as Voucherify answers (the default)",
    )
    known.add_argument("--lenient", action="store_true", help="roll back any r_… id, known or not")
    parser.set_defaults(lenient=False)
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--webhook-secret", default=None)
    parser.add_argument("--history", type=int, default=0, metavar="N", help="seed a history of N objects")
    parser.add_argument("--history-days", type=float, default=90)
    parser.add_argument("--history-seed", type=int, default=0)
    parser.add_argument("--send-history", action="store_true", help="send the history's webhooks to --webhook-url")
    parser.add_argument("--drop-share", type=float, default=0.0, help="share of webhooks lost (seeded)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    fake = FakeVoucherify(
        port=args.port,
        app_id=args.app_id,
        app_token=args.app_token,
        rate_limit_per_minute=args.rate_limit,
        lenient=args.lenient,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        drop_share=args.drop_share,
        seed=args.history_seed,
    ).start()
    if args.history:
        counts = fake.seed_history(args.history, days=args.history_days, seed=args.history_seed)
        print(f"history: {counts}", flush=True)
    if args.send_history:
        sent = fake.send_history_webhooks()
        print(f"history webhooks: {len(sent)} sent, {fake.state()['webhooks_dropped']} dropped", flush=True)
    known = "any r_… id rolled back" if fake.lenient else "unknown redemptions 404"
    print(f"fake Voucherify on {fake.url} (X-App-Id {fake.app_id}; {known}); Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


raise SystemExit(main())
