"""``python -m redemption_ledger_cli``: the same as ``redemption-ledger``."""

import sys

from redemption_ledger_cli.cli import main

sys.exit(main())
