from ledger_dev.loadtest.run import *  # noqa: F403  (temporary)
from ledger_dev.loadtest.run import _documents  # noqa: F401
