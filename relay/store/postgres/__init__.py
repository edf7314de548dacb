"""The PostgreSQL store: several relay instances against one database.

``store`` holds ``PostgresStore`` (lifecycle, accounts, tasks and polls), mixed from
``events``, ``deliveries``, ``subscriptions``, ``idempotency``, ``metrics`` and ``retention``;
``outbox`` holds the fan-out and the stopping of subscriptions they share, ``runner`` the
connection pool, migrations and the wake-up listener. Every statement is a named query in
``queries.sql``; the schema's migrations are in ``migrations/``.
"""
