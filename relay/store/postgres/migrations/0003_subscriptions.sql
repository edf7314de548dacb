-- Subscriptions (REST hooks) are destinations of kind 'subscription' that reach every task of
-- their account; secret rotation keeps the previous secret signing for a grace period.
ALTER TABLE destinations
    ADD COLUMN description text,
    ADD COLUMN headers text,                          -- JSON object: static headers
    ADD COLUMN rate_limit double precision,           -- requests/s; NULL: no cap
    ADD COLUMN status text NOT NULL DEFAULT 'active', -- active | disabled | deleted
    ADD COLUMN disabled_reason text,
    ADD COLUMN disabled_at double precision,
    ADD COLUMN missed_since double precision,         -- what enable replays from
    ADD COLUMN failing_since double precision,        -- first failure since a success
    ADD COLUMN last_success_at double precision,
    ADD COLUMN previous_secret text,
    ADD COLUMN previous_secret_until double precision,
    ADD COLUMN updated_at double precision;
CREATE INDEX destinations_subscriptions ON destinations (account_id, kind, status, pk);
CREATE INDEX destinations_failing ON destinations (failing_since)
    WHERE kind = 'subscription' AND status = 'active' AND failing_since IS NOT NULL;

ALTER TABLE accounts
    ADD COLUMN previous_callback_secret text,
    ADD COLUMN previous_callback_secret_until double precision;

-- A replay re-sends a task's events to one destination in sequence order: an ordered delivery
-- waits until the ordered ones before it (same destination, same task) are done.
ALTER TABLE deliveries
    ADD COLUMN task_id text,
    ADD COLUMN ordered boolean NOT NULL DEFAULT false;
CREATE INDEX deliveries_ordered ON deliveries (destination_id, task_id, pk)
    WHERE ordered AND status = 'pending';
CREATE INDEX deliveries_destination ON deliveries (destination_id, status);

CREATE TABLE idempotency_keys (
    account_id   text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    status_code  integer,             -- NULL while the first request is still being answered
    body         text,
    created_at   double precision NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
