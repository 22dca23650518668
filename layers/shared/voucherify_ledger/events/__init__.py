"""The ledger's changes as EventBridge events (``LedgerEventsFunction``, on the table's stream): what each detail type
holds (``details``), which stream records give which events (``changes``), PutEvents (``publisher``) and a batch of
stream records (``stream``). ``docs/events/`` publishes the schemas and the consumer's side."""
