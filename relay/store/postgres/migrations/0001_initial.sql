-- The PostgreSQL schema mirrors SQLite's, version for version (relay/store/sqlite/migrations).
-- Times are unix seconds (double precision), as in SQLite: one codec (relay.store.codec) serves
-- both backends and round-trips microseconds exactly; read them with to_timestamp(column).
-- Public ids are text; the bigint identity pk orders lists and cursors. JSON documents are text:
-- no SQL reads inside them, and an event's body must keep the exact bytes that were signed.
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE accounts (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    callback_secret text NOT NULL,
    created_at      double precision NOT NULL
);

CREATE TABLE api_keys (
    key_hash   text PRIMARY KEY,
    account_id text NOT NULL REFERENCES accounts (id),
    created_at double precision NOT NULL
);

CREATE TABLE tasks (
    pk                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                text NOT NULL UNIQUE,
    account_id        text NOT NULL,
    provider          text NOT NULL,
    provider_task_id  text,
    status            text NOT NULL,
    reference         text,
    version           integer NOT NULL,
    sequence          integer NOT NULL,
    data              text NOT NULL,            -- the descriptive fields, JSON (relay.store.codec)
    created_at        double precision NOT NULL,
    updated_at        double precision NOT NULL,
    next_poll_at      double precision,         -- NULL: not scheduled (terminal)
    poll_lease_until  double precision,
    poll_lease_holder text,                     -- the store object that took the lease
    -- One tracker per provider task: provider accounts are shared by all relay accounts.
    UNIQUE (provider, provider_task_id)
) WITH (fillfactor = 85);  -- room in each page, so a lease (no indexed column) is a HOT update
CREATE INDEX tasks_poll_due ON tasks (next_poll_at, pk) WHERE next_poll_at IS NOT NULL;
CREATE INDEX tasks_account ON tasks (account_id, pk);
CREATE INDEX tasks_account_status ON tasks (account_id, status, pk);
CREATE INDEX tasks_account_reference ON tasks (account_id, reference, pk);

CREATE TABLE destinations (
    id          text PRIMARY KEY,
    pk          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- creation order (SQLite's rowid)
    account_id  text NOT NULL,
    kind        text NOT NULL,        -- 'callback' (a task's callback_url) or 'subscription'
    task_id     text,                 -- for callbacks
    url         text NOT NULL,
    key         text NOT NULL,        -- what per-destination concurrency is counted on
    event_types text,                 -- JSON list; NULL: terminal types only
    secret      text,                 -- NULL: the account's callback secret
    created_at  double precision NOT NULL
);
CREATE INDEX destinations_task ON destinations (task_id);

CREATE TABLE events (
    pk         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         text NOT NULL UNIQUE,
    account_id text NOT NULL,
    task_id    text,
    type       text NOT NULL,
    sequence   integer NOT NULL,
    created_at double precision NOT NULL,
    body       text NOT NULL          -- the envelope as delivered
);
CREATE INDEX events_account ON events (account_id, pk);
CREATE INDEX events_account_task ON events (account_id, task_id, pk);

CREATE TABLE deliveries (
    pk               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text NOT NULL UNIQUE,
    account_id       text NOT NULL,
    event_pk         bigint NOT NULL REFERENCES events (pk),
    destination_id   text NOT NULL REFERENCES destinations (id),
    destination_key  text NOT NULL,
    url              text NOT NULL,
    status           text NOT NULL,   -- pending | succeeded | failed | stopped
    attempt_count    integer NOT NULL DEFAULT 0,
    next_attempt_at  double precision, -- NULL unless pending
    lease_owner      text,
    lease_until      double precision,
    lease_holder     text,            -- the store object that took the lease
    last_status_code integer,
    last_error       text,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL
) WITH (fillfactor = 85);  -- as tasks: claims touch no indexed column
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, pk) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_event ON deliveries (event_pk);

CREATE TABLE attempts (
    pk               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_pk      bigint NOT NULL REFERENCES deliveries (pk),
    number           integer NOT NULL,
    started_at       double precision NOT NULL,
    latency_ms       double precision NOT NULL,
    outcome          text NOT NULL,
    status_code      integer,
    error            text,
    response_snippet text
);
CREATE INDEX attempts_delivery ON attempts (delivery_pk, pk);
