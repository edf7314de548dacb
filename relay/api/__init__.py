"""The JSON HTTP API: routes (``routes``, ``subscriptions``), request bodies (``schemas``),
authentication and paging (``http``), Idempotency-Key (``idempotency``), the error table
(``errors``), and the OpenAPI document (``openapi``, ``responses``, ``docs_page``)."""
