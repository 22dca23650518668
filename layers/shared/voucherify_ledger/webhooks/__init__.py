"""Receiving Voucherify's webhooks: the routes (``routes``), authenticating a delivery (``auth``), reading it
(``reading``), answering it (``receiver``, the functions' entry) and replaying a quarantined one (``replay``)."""
