-- Submissions (relay.submissions): the intent written before a provider is asked to create a
-- task, completed in the transaction that creates the task. One left "pending" by a dead
-- process becomes "uncertain": reconciled, or settled by a person, never submitted again.
CREATE TABLE submissions (
    id               text PRIMARY KEY,
    pk               bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- creation order (SQLite's rowid)
    account_id       text NOT NULL,
    task_id          text NOT NULL,
    provider         text NOT NULL,
    state            text NOT NULL,
    body_hash        text NOT NULL,
    registration     text NOT NULL,   -- JSON: callback, reference, metadata, model, params
    idempotency_key  text,
    provider_task_id text,
    detail           text,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL,
    lease_until      double precision NOT NULL,
    looks            integer NOT NULL DEFAULT 0,  -- how often the provider's list was read for it
    next_look_at     double precision               -- uncertain: when to read it again (NULL: only a person can)
);
CREATE INDEX submissions_by_key ON submissions (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX submissions_pending ON submissions (lease_until) WHERE state = 'pending';
CREATE INDEX submissions_due ON submissions (next_look_at) WHERE state = 'uncertain';
CREATE INDEX submissions_open ON submissions (provider, created_at)
    WHERE state IN ('pending', 'uncertain');
CREATE INDEX submissions_listed ON submissions (account_id, pk);
CREATE INDEX submissions_by_state ON submissions (account_id, state, pk);
CREATE INDEX submissions_age ON submissions (updated_at);

-- An Idempotency-Key reservation has an owner's lease, renewed while its request is being
-- answered: a dead process's reservation is taken over, not waited out for a day.
ALTER TABLE idempotency_keys
    ADD COLUMN owner text,
    ADD COLUMN lease_until double precision NOT NULL DEFAULT 0;
