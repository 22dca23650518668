"""The whole bundle on 127.0.0.1 (``make run``, and the tests' end-to-end stack): ``LocalStack``.

``config`` (settings and ``make run``'s environment), ``stack`` (``LocalStack``), ``services`` (background
services), ``banner`` (what ``make run`` prints), ``__main__`` (``make run``). The pieces it is built from are in
``ledger_dev.harness``.
"""

from ledger_dev.local_stack.config import (
    ACCOUNT_ID,
    API_PORT_ENV,
    AWS_HOST_ENV,
    AWS_PORT_ENV,
    DEFAULT_API_PORT,
    DEFAULT_AWS_PORT,
    DEFAULT_HEADER_TOKEN,
    DEFAULT_SIGNING_SECRET,
    DEFAULT_VOUCHERIFY_PORT,
    DUMMY_CREDENTIALS,
    HEADER_TOKEN_ENV,
    HOST,
    PAYLOADS_DIR,
    PER_FUNCTION_SETTINGS,
    REGION,
    SIGNING_SECRET_ENV,
    STACK_NAME,
    TABLE_NAME,
    VOUCHERIFY_API_URL_ENV,
    VOUCHERIFY_APP_ID_ENV,
    VOUCHERIFY_APP_TOKEN_ENV,
    VOUCHERIFY_PORT_ENV,
    WORKER_FUNCTION,
    WORKER_QUEUE,
    LocalConfig,
    aws_client,
)
from ledger_dev.local_stack.services import BackgroundService, PollingService
from ledger_dev.local_stack.stack import LocalStack, StartupError

__all__ = [
    "ACCOUNT_ID",
    "API_PORT_ENV",
    "AWS_HOST_ENV",
    "AWS_PORT_ENV",
    "DEFAULT_API_PORT",
    "DEFAULT_AWS_PORT",
    "DEFAULT_HEADER_TOKEN",
    "DEFAULT_SIGNING_SECRET",
    "DEFAULT_VOUCHERIFY_PORT",
    "DUMMY_CREDENTIALS",
    "HEADER_TOKEN_ENV",
    "HOST",
    "PAYLOADS_DIR",
    "PER_FUNCTION_SETTINGS",
    "REGION",
    "SIGNING_SECRET_ENV",
    "STACK_NAME",
    "TABLE_NAME",
    "VOUCHERIFY_API_URL_ENV",
    "VOUCHERIFY_APP_ID_ENV",
    "VOUCHERIFY_APP_TOKEN_ENV",
    "VOUCHERIFY_PORT_ENV",
    "WORKER_FUNCTION",
    "WORKER_QUEUE",
    "BackgroundService",
    "LocalConfig",
    "LocalStack",
    "PollingService",
    "StartupError",
    "aws_client",
]
