-- Submissions (relay.submissions): the intent written before a provider is asked to create a
-- task, completed in the transaction that creates the task. One left "pending" by a dead
-- process becomes "uncertain": reconciled, or settled by a person, never submitted again.
CREATE TABLE submissions (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    task_id          TEXT NOT NULL,
    provider         TEXT NOT NULL,
    state            TEXT NOT NULL,
    body_hash        TEXT NOT NULL,
    registration     TEXT NOT NULL,   -- JSON: callback, reference, metadata, model, params
    idempotency_key  TEXT,
    provider_task_id TEXT,
    detail           TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    lease_until      REAL NOT NULL,
    looks            INTEGER NOT NULL DEFAULT 0,  -- how often the provider's list was read for it
    next_look_at     REAL               -- uncertain: when to read it again (NULL: only a person can)
);
CREATE INDEX submissions_by_key ON submissions (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX submissions_pending ON submissions (lease_until) WHERE state = 'pending';
CREATE INDEX submissions_due ON submissions (next_look_at) WHERE state = 'uncertain';
CREATE INDEX submissions_open ON submissions (provider, created_at)
    WHERE state IN ('pending', 'uncertain');
CREATE INDEX submissions_listed ON submissions (account_id);  -- ordered by rowid within
CREATE INDEX submissions_by_state ON submissions (account_id, state);  -- and rowid
CREATE INDEX submissions_age ON submissions (updated_at);

-- An Idempotency-Key reservation has an owner's lease, renewed while its request is being
-- answered: a dead process's reservation is taken over, not waited out for a day.
ALTER TABLE idempotency_keys ADD COLUMN owner TEXT;
ALTER TABLE idempotency_keys ADD COLUMN lease_until REAL NOT NULL DEFAULT 0;
