-- Subscriptions (REST hooks) are destinations of kind 'subscription' that reach every task of
-- their account; secret rotation keeps the previous secret signing for a grace period.
ALTER TABLE destinations ADD COLUMN description TEXT;
ALTER TABLE destinations ADD COLUMN headers TEXT;            -- JSON object: static headers
ALTER TABLE destinations ADD COLUMN rate_limit REAL;         -- requests/s; NULL: no cap
ALTER TABLE destinations ADD COLUMN status TEXT NOT NULL DEFAULT 'active';  -- active|disabled|deleted
ALTER TABLE destinations ADD COLUMN disabled_reason TEXT;
ALTER TABLE destinations ADD COLUMN disabled_at REAL;
ALTER TABLE destinations ADD COLUMN missed_since REAL;       -- what enable replays from
ALTER TABLE destinations ADD COLUMN failing_since REAL;      -- first failure since a success
ALTER TABLE destinations ADD COLUMN last_success_at REAL;
ALTER TABLE destinations ADD COLUMN previous_secret TEXT;
ALTER TABLE destinations ADD COLUMN previous_secret_until REAL;
ALTER TABLE destinations ADD COLUMN updated_at REAL;
CREATE INDEX destinations_subscriptions ON destinations (account_id, kind, status);
CREATE INDEX destinations_failing ON destinations (failing_since)
    WHERE kind = 'subscription' AND status = 'active' AND failing_since IS NOT NULL;

ALTER TABLE accounts ADD COLUMN previous_callback_secret TEXT;
ALTER TABLE accounts ADD COLUMN previous_callback_secret_until REAL;

-- A replay re-sends a task's events to one destination in sequence order: an ordered delivery
-- waits until the ordered ones before it (same destination, same task) are done.
ALTER TABLE deliveries ADD COLUMN task_id TEXT;
ALTER TABLE deliveries ADD COLUMN ordered INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_ordered ON deliveries (destination_id, task_id, pk)
    WHERE ordered = 1 AND status = 'pending';
CREATE INDEX deliveries_destination ON deliveries (destination_id, status);

CREATE TABLE idempotency_keys (
    account_id   TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status_code  INTEGER,             -- NULL while the first request is still being answered
    body         TEXT,
    created_at   REAL NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
