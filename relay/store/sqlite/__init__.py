"""The SQLite store, the embedded default for one relay instance.

``store.SqliteStore`` is the store; its mixins hold the delivery queue (``deliveries``),
subscriptions and replays (``subscriptions``), Idempotency-Key reservations
(``idempotency``), the ``/metrics`` reads (``metrics``) and retention (``retention``);
``outbox`` writes a change's events and deliveries; ``runner`` holds the connection threads,
the migration runner and the instance lock. Every statement is a named query in
``queries.sql``; the schema is ``migrations/``.
"""
