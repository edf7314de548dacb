-- Output copies (relay.copies): one row per file of a succeeded task (its video, and its last
-- frame when there is one) to copy into the operator's output store. Durable work in the
-- outbox, as a delivery is: written in the transaction of the task's success, claimed under
-- a lease, retried until stored or failed for good; kept afterwards as the record of the
-- stored object (its key, size and checksum) until it is deleted.
CREATE TABLE output_copies (
    id              text PRIMARY KEY,  -- also what the file's stable link names
    account_id      text NOT NULL,
    task_id         text NOT NULL,
    kind            text NOT NULL,     -- video | last_frame
    state           text NOT NULL,     -- pending | stored | failed | deleted
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at double precision,  -- pending: when the next try is due
    announce_by     double precision,  -- the latest the task's task.succeeded waits for it
    object_key      text,
    size            bigint,
    sha256          text,
    content_type    text,
    stored_at       double precision,
    error           text,              -- why the last try failed
    deleted_at      double precision,
    deleted_reason  text,
    tries           text NOT NULL DEFAULT '[]',  -- JSON: the latest tries (relay.store.codec)
    created_at      double precision NOT NULL,
    updated_at      double precision NOT NULL,
    lease_owner     text,              -- the copier holding it (NULL: nobody)
    lease_until     double precision,
    lease_holder    text,              -- the store object that took the lease
    -- One copy of each file of a task; also the index of a task's copies (task_copies).
    UNIQUE (task_id, kind)
) WITH (fillfactor = 85);  -- as deliveries: a lease touches no indexed column (a HOT update)
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
