"""The network edge: the HTTP transport (``transport``), which addresses webhooks may reach
(``addresses``, pure) and the resolving guard that checks them at connect time (``guard``)."""
