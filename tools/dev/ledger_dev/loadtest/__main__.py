"""``make loadtest`` / ``make chaos`` (``python -m ledger_dev.loadtest``)."""

import sys

from ledger_dev.loadtest.run import main

sys.exit(main())
