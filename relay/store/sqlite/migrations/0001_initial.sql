-- Times are unix seconds (REAL). Public ids are text; the integer pk orders lists and cursors.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE accounts (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    callback_secret TEXT NOT NULL,
    created_at      REAL NOT NULL
);

CREATE TABLE api_keys (
    key_hash   TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    created_at REAL NOT NULL
);

CREATE TABLE tasks (
    pk               INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    account_id       TEXT NOT NULL,
    provider         TEXT NOT NULL,
    provider_task_id TEXT,
    status           TEXT NOT NULL,
    reference        TEXT,
    version          INTEGER NOT NULL,
    sequence         INTEGER NOT NULL,
    data             TEXT NOT NULL,   -- the descriptive fields, JSON (relay.store.codec)
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    next_poll_at     REAL,            -- NULL: not scheduled (terminal)
    poll_lease_until REAL,
    -- One tracker per provider task: provider accounts are shared by all relay accounts.
    UNIQUE (provider, provider_task_id)
);
CREATE INDEX tasks_poll_due ON tasks (next_poll_at) WHERE next_poll_at IS NOT NULL;
CREATE INDEX tasks_account ON tasks (account_id, pk);
CREATE INDEX tasks_account_status ON tasks (account_id, status, pk);
CREATE INDEX tasks_account_reference ON tasks (account_id, reference, pk);

CREATE TABLE destinations (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,        -- 'callback' (a task's callback_url) or 'subscription'
    task_id     TEXT,                 -- for callbacks
    url         TEXT NOT NULL,
    key         TEXT NOT NULL,        -- what per-destination concurrency is counted on
    event_types TEXT,                 -- JSON list; NULL: terminal types only
    secret      TEXT,                 -- NULL: the account's callback secret
    created_at  REAL NOT NULL
);
CREATE INDEX destinations_task ON destinations (task_id);

CREATE TABLE events (
    pk         INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    task_id    TEXT,
    type       TEXT NOT NULL,
    sequence   INTEGER NOT NULL,
    created_at REAL NOT NULL,
    body       TEXT NOT NULL          -- the envelope as delivered
);
CREATE INDEX events_account ON events (account_id, pk);
CREATE INDEX events_account_task ON events (account_id, task_id, pk);

CREATE TABLE deliveries (
    pk               INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    account_id       TEXT NOT NULL,
    event_pk         INTEGER NOT NULL REFERENCES events (pk),
    destination_id   TEXT NOT NULL REFERENCES destinations (id),
    destination_key  TEXT NOT NULL,
    url              TEXT NOT NULL,
    status           TEXT NOT NULL,   -- pending | succeeded | failed | stopped
    attempt_count    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL,            -- NULL unless pending
    lease_owner      TEXT,
    lease_until      REAL,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_event ON deliveries (event_pk);

CREATE TABLE attempts (
    pk               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_pk      INTEGER NOT NULL REFERENCES deliveries (pk),
    number           INTEGER NOT NULL,
    started_at       REAL NOT NULL,
    latency_ms       REAL NOT NULL,
    outcome          TEXT NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    response_snippet TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_pk);
