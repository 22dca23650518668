"""``python -m ledger_dev.fake_voucherify --port 8787``: the fake alone, until Ctrl-C."""

from ledger_dev.fake_voucherify.fake import main

raise SystemExit(main())
