"""``make run`` (``python -m ledger_dev.local_stack``): the local stack until Ctrl-C or SIGTERM.

The stack sends the share of its fake's history webhooks in the background; the banner waits for them (at most
``HISTORY_WAIT_SECONDS``), so that it is not scrolled away by the deliveries' log lines. Once started, it writes the
``sam local invoke --env-vars`` file for the ports it uses (``write_sam_env``: ``build/local/env.json``), which the
banner names.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ledger_dev.local_stack.config import (
    API_PORT_ENV,
    AWS_HOST_ENV,
    AWS_PORT_ENV,
    DEFAULT_API_PORT,
    DEFAULT_AWS_PORT,
    DEFAULT_HEADER_TOKEN,
    DEFAULT_HISTORY,
    DEFAULT_HISTORY_WEBHOOKS,
    DEFAULT_RECONCILE_SECONDS,
    DEFAULT_SIGNING_SECRET,
    HEADER_TOKEN_ENV,
    HISTORY_ENV,
    HISTORY_WEBHOOKS_ENV,
    HOST,
    RECONCILE_SECONDS_ENV,
    SIGNING_SECRET_ENV,
    LocalConfig,
)
from ledger_dev.local_stack.stack import LocalStack, StartupError

HISTORY_WAIT_SECONDS = 10.0


def write_sam_env(stack: LocalStack, path: Path | None = None) -> Path:
    """Writes the ``sam local invoke --env-vars`` file of ``stack`` to ``path`` (``build/local/env.json``): its
    embedded AWS and the API its worker and reconciler call (its fake, or ``VOUCHERIFY_API_URL``), on the ports in
    use."""
    from ledger_dev.payloads.make_events import LOCAL_ENV_FILE, write_env

    where = {"aws_endpoint": stack.aws_endpoint}
    if stack.refs.get("VoucherifyApiUrl"):
        where["voucherify_api_url"] = stack.refs["VoucherifyApiUrl"]
    return write_env(path or LOCAL_ENV_FILE, **where)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    argparse.ArgumentParser(
        prog="python -m ledger_dev.local_stack",
        description="The whole bundle on 127.0.0.1 (what `make run` runs); Ctrl-C stops it.",
        epilog=f"Environment: {API_PORT_ENV} (default {DEFAULT_API_PORT}), {AWS_PORT_ENV} (default "
        f"{DEFAULT_AWS_PORT}), {AWS_HOST_ENV} (default {HOST}; 0.0.0.0 lets `sam local` containers reach it), "
        f"{SIGNING_SECRET_ENV} (default {DEFAULT_SIGNING_SECRET!r}), {HEADER_TOKEN_ENV} (default "
        f"{DEFAULT_HEADER_TOKEN!r}), {RECONCILE_SECONDS_ENV} (seconds between reconciler runs, default "
        f"{DEFAULT_RECONCILE_SECONDS:g}; 0: none), {HISTORY_ENV} (objects in the fake's history, default "
        f"{DEFAULT_HISTORY}), {HISTORY_WEBHOOKS_ENV} (the share of their webhooks sent at start-up, default "
        f"{DEFAULT_HISTORY_WEBHOOKS:g}).",
    ).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        config = LocalConfig.from_env()
        with LocalStack(config) as stack:
            env_file = write_sam_env(stack)
            history = stack.history_webhooks
            if history is not None and history.share > 0 and not history.done:
                print(f"sending {history.share:.0%} of the fake's history webhooks to the API…", flush=True)
                deadline = time.monotonic() + HISTORY_WAIT_SECONDS
                while not stop.is_set() and not history.wait(0.1) and time.monotonic() < deadline:
                    pass
            print(stack.banner(env_file=env_file), flush=True)
            while not stop.wait(0.5):  # until Ctrl-C / SIGTERM
                pass
            print("\nstopping the local stack…", flush=True)
    except (StartupError, ValueError) as exc:
        print(f"local stack: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
