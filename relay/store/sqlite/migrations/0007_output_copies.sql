-- Output copies (relay.copies): one row per file of a succeeded task (its video, and its last
-- frame when there is one) to copy into the operator's output store. Durable work in the
-- outbox, as a delivery is: written in the transaction of the task's success, claimed under
-- a lease, retried until stored or failed for good; kept afterwards as the record of the
-- stored object (its key, size and checksum) until it is deleted.
CREATE TABLE output_copies (
    id              TEXT PRIMARY KEY,  -- also what the file's stable link names
    account_id      TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    kind            TEXT NOT NULL,     -- video | last_frame
    state           TEXT NOT NULL,     -- pending | stored | failed | deleted
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,              -- pending: when the next try is due
    announce_by     REAL,              -- the latest the task's task.succeeded waits for it
    object_key      TEXT,
    size            INTEGER,
    sha256          TEXT,
    content_type    TEXT,
    stored_at       REAL,
    error           TEXT,              -- why the last try failed
    deleted_at      REAL,
    deleted_reason  TEXT,
    tries           TEXT NOT NULL DEFAULT '[]',  -- JSON: the latest tries (relay.store.codec)
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    lease_owner     TEXT,              -- the copier holding it (NULL: nobody)
    lease_until     REAL,
    -- One copy of each file of a task; also the index of a task's copies (task_copies).
    UNIQUE (task_id, kind)
);
-- The claim walks the due copies in order (the id breaks ties), and next_copy_at seeks it.
CREATE INDEX output_copies_due ON output_copies (next_attempt_at, id) WHERE state = 'pending';
-- Successes waiting for their copies: due_announcements and next_copy_at.
CREATE INDEX output_copies_announce ON output_copies (announce_by)
    WHERE announce_by IS NOT NULL;
-- Retention: the stored copies, oldest first.
CREATE INDEX output_copies_stored ON output_copies (stored_at, id) WHERE state = 'stored';
-- /metrics: copies by state and the bytes stored, read from the index alone, grouped in its
-- order (copies_by_state). Not led by state: a query for one state (pending, stored) must
-- take its partial index above, which SQLite, without statistics, would not prefer to an
-- index whose first column the query names.
CREATE INDEX output_copies_counted ON output_copies (kind, state, size);
