-- Every statement the SQLite store runs, by name (relay.store.named_sql). Parameters are
-- named (:name). Times are unix seconds (REAL). Column lists are written in the order the row
-- decoders of relay.store.codec read them (TASK_COLUMNS, EVENT_COLUMNS, ...).

-- ---------------------------------------------------------------------------------------
-- runner.py: connections, transactions, migrations
-- ---------------------------------------------------------------------------------------

-- configure_connection --
-- Run once per connection, outside any transaction.
-- synchronous=NORMAL in WAL mode survives a killed process (what at-least-once delivery
-- needs); only an OS crash or power loss can drop the last transactions.
-- No connection checkpoints the write-ahead log by itself (SQLite's automatic checkpoint runs
-- inside the commit that passes its threshold, holding up the writer): the runner's
-- checkpointer does, in the background, on a connection of its own (checkpointer.py). Once
-- restarted the log file is cut back to 4 MiB (without journal_size_limit it keeps the
-- largest size it ever had).
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
PRAGMA busy_timeout=10000;
PRAGMA wal_autocheckpoint=0;
PRAGMA journal_size_limit=4194304;
PRAGMA foreign_keys=ON;

-- begin_read --
BEGIN

-- begin_write --
-- IMMEDIATE: the write lock is taken up front, so a transaction that reads before it writes
-- never has to upgrade its lock halfway (and fail as busy).
BEGIN IMMEDIATE

-- commit --
COMMIT

-- rollback --
ROLLBACK

-- savepoint_write --
-- One write of a group committed together (group_commit.py): undone alone if it fails.
SAVEPOINT write

-- release_write --
RELEASE write

-- rollback_to_write --
ROLLBACK TO write

-- checkpoint --
-- Copies the whole log into the database, waiting (busy_timeout) for readers still on it,
-- and truncates the log file to nothing. Answers (busy, log frames, frames checkpointed).
PRAGMA wal_checkpoint(TRUNCATE)

-- checkpoint_passive --
-- Copies as much of the log into the database as it can without waiting for anyone, while
-- writers go on committing. Answers (busy, log frames, frames checkpointed).
PRAGMA wal_checkpoint(PASSIVE)

-- configure_checkpointer --
-- The checkpointer's connection (after configure_connection): a TRUNCATE checkpoint holds up
-- new writes while it waits for readers, so it gives up after 50 ms (and is tried again a
-- second later) rather than keep writers waiting for a stuck reader.
PRAGMA busy_timeout=50;

-- restore_busy_timeout --
-- The writer's busy timeout again (as configure_connection sets it), after it truncated a log
-- that passed its limit with the checkpointer's short one (runner.py, LOG_LIMIT).
PRAGMA busy_timeout=10000;

-- configure_inline_checkpoints --
-- The writer's connection when the runner checkpoints in line (the old way, kept as the
-- baseline of benchmarks/commit_stalls.py): SQLite's automatic checkpoint every 1,000 pages.
PRAGMA wal_autocheckpoint=1000;

-- page_size --
PRAGMA page_size

-- create_schema_migrations --
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL
)

-- applied_migrations --
SELECT version FROM schema_migrations

-- record_migration --
INSERT INTO schema_migrations (version, name, applied_at) VALUES (:version, :name, :applied_at)

-- ---------------------------------------------------------------------------------------
-- store.py: liveness, the instance secret, accounts, tasks, events, leases
-- ---------------------------------------------------------------------------------------

-- ping --
SELECT 1

-- insert_secret_key --
INSERT OR IGNORE INTO meta (key, value) VALUES ('secret_key', :value)

-- get_secret_key --
SELECT value FROM meta WHERE key = 'secret_key'

-- probe_write --
-- /readyz: a real write, committed. A full disk still answers reads and even BEGIN; only
-- appending to the log finds it full. The value is the probe's time and a nonce (store.py).
INSERT INTO meta (key, value) VALUES ('write_probe', :value)
ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- insert_account --
INSERT INTO accounts (id, name, callback_secret, created_at)
VALUES (:id, :name, :callback_secret, :created_at)

-- insert_api_key --
INSERT INTO api_keys (key_hash, id, account_id, prefix, created_at, revoked_at)
VALUES (:key_hash, :id, :account_id, :prefix, :created_at, NULL)

-- account_by_key_hash --
-- Only while the key is active: revoked_at NULL, or still ahead (a rotation's grace).
SELECT id, name, created_at
FROM accounts
WHERE id = (
    SELECT account_id FROM api_keys
    WHERE key_hash = :key_hash AND (revoked_at IS NULL OR revoked_at > :now)
)

-- key_holder_by_hash --
-- The account and the key, while the key is active (the key's revoked_at bounds how long an
-- instance may keep it: relay.keys.KeyCache).
SELECT a.id, a.name, a.created_at, k.id, k.account_id, k.prefix, k.created_at, k.revoked_at
FROM api_keys k JOIN accounts a ON a.id = k.account_id
WHERE k.key_hash = :key_hash AND (k.revoked_at IS NULL OR k.revoked_at > :now)

-- account_exists --
SELECT 1 FROM accounts WHERE id = :account_id

-- list_accounts --
-- For operators (relay accounts list): a handful of accounts, each key counted once.
SELECT a.id, a.name, a.created_at,
       (SELECT count(*) FROM api_keys k
        WHERE k.account_id = a.id AND (k.revoked_at IS NULL OR k.revoked_at > :now))
FROM accounts a
ORDER BY a.created_at, a.id

-- count_active_keys --
SELECT count(*) FROM api_keys
WHERE account_id = :account_id AND (revoked_at IS NULL OR revoked_at > :now)

-- retire_other_keys --
-- A rotation: the account's other keys stop at :until, unless they stop sooner already.
UPDATE api_keys SET revoked_at = :until
WHERE account_id = :account_id AND id <> :key_id AND (revoked_at IS NULL OR revoked_at > :until)

-- list_api_keys --
SELECT id, account_id, prefix, created_at, revoked_at
FROM api_keys
WHERE account_id = :account_id
ORDER BY created_at, id

-- find_api_keys --
SELECT id, account_id, prefix, created_at, revoked_at
FROM api_keys
WHERE id = :ref OR prefix = :ref
ORDER BY created_at, id

-- get_api_key --
SELECT id, account_id, prefix, created_at, revoked_at
FROM api_keys
WHERE id = :key_id AND account_id = :account_id

-- revoke_api_key --
-- At once; a key already stopped keeps the time it stopped.
UPDATE api_keys SET revoked_at = :now
WHERE id = :key_id AND account_id = :account_id AND (revoked_at IS NULL OR revoked_at > :now)

-- insert_dashboard_session --
INSERT INTO dashboard_sessions (id, key_id, created_at, expires_at)
VALUES (:id, :key_id, :created_at, :expires_at)

-- prune_dashboard_sessions --
-- Run at each sign-in: the table holds at most the sessions of one session_max_age.
DELETE FROM dashboard_sessions WHERE expires_at <= :now

-- dashboard_session_account --
-- A session holds while its row does, it has not expired, and its key is active.
SELECT k.account_id
FROM dashboard_sessions s
JOIN api_keys k ON k.id = s.key_id
WHERE s.id = :id AND s.expires_at > :now AND (k.revoked_at IS NULL OR k.revoked_at > :now)

-- delete_dashboard_session --
DELETE FROM dashboard_sessions WHERE id = :id

-- get_callback_secret --
SELECT callback_secret FROM accounts WHERE id = :account_id

-- find_provider_task --
SELECT id, account_id FROM tasks WHERE provider = :provider AND provider_task_id = :provider_task_id

-- insert_task --
INSERT INTO tasks (
    id, account_id, provider, provider_task_id, status, reference, version, sequence, data,
    created_at, updated_at, next_poll_at, completed_at, cost_amount, cost_currency
) VALUES (
    :id, :account_id, :provider, :provider_task_id, :status, :reference, :version, :sequence, :data,
    :created_at, :updated_at, :next_poll_at, :completed_at, :cost_amount, :cost_currency
)

-- insert_callback_destination --
INSERT INTO destinations (
    id, account_id, kind, url, key, event_types, task_id, secret, created_at, body_format
)
VALUES (
    :id, :account_id, :kind, :url, :key, :event_types, :task_id, :secret, :created_at, :body_format
)

-- save_task --
-- Fenced by version: only a writer that read the current version writes; and the write ends
-- the poll lease, whoever held it. The provider changes only when a resubmission moves the
-- task (move_task in store.py: the same statement, after its duplicate check).
UPDATE tasks
SET provider = :provider, provider_task_id = :provider_task_id, status = :status,
    version = :version, sequence = :sequence, data = :data, updated_at = :updated_at, next_poll_at = :next_poll_at,
    completed_at = :completed_at, cost_amount = :cost_amount, cost_currency = :cost_currency,
    poll_lease_until = NULL, poll_lease_owner = NULL
WHERE id = :id AND version = :expected

-- get_task --
SELECT id, account_id, provider, provider_task_id, status, reference, version, sequence, data,
       created_at, updated_at, next_poll_at
FROM tasks
WHERE id = :task_id AND account_id = :account_id

-- list_tasks_asc --
-- One arm per shape of filter, so each arm seeks its own index: a reference on
-- tasks_account_reference, else a status on tasks_account_status, else tasks_account (a
-- single arm with "(:x IS NULL OR x = :x)" terms can only use the last, and a lookup by
-- reference in a large account becomes a scan of it). The guards test parameters only:
-- SQLite evaluates them once, and the arms that do not apply return nothing at no cost.
-- The cursor is a seek (pk beyond :after, or beyond every pk without one).
SELECT pk, id, account_id, provider, provider_task_id, status, reference, version, sequence,
       data, created_at, updated_at, next_poll_at
FROM tasks
WHERE :reference IS NOT NULL
  AND account_id = :account_id AND reference = :reference
  AND (:status IS NULL OR status = :status)
  AND (:provider IS NULL OR provider = :provider)
  AND pk > coalesce(:after, 0)
UNION ALL
SELECT pk, id, account_id, provider, provider_task_id, status, reference, version, sequence,
       data, created_at, updated_at, next_poll_at
FROM tasks
WHERE :reference IS NULL AND :status IS NOT NULL
  AND account_id = :account_id AND status = :status
  AND (:provider IS NULL OR provider = :provider)
  AND pk > coalesce(:after, 0)
UNION ALL
SELECT pk, id, account_id, provider, provider_task_id, status, reference, version, sequence,
       data, created_at, updated_at, next_poll_at
FROM tasks
WHERE :reference IS NULL AND :status IS NULL
  AND account_id = :account_id
  AND (:provider IS NULL OR provider = :provider)
  AND pk > coalesce(:after, 0)
ORDER BY pk ASC
LIMIT :limit

-- list_tasks_desc --
-- As list_tasks_asc, newest first (a direction cannot be a parameter).
SELECT pk, id, account_id, provider, provider_task_id, status, reference, version, sequence,
       data, created_at, updated_at, next_poll_at
FROM tasks
WHERE :reference IS NOT NULL
  AND account_id = :account_id AND reference = :reference
  AND (:status IS NULL OR status = :status)
  AND (:provider IS NULL OR provider = :provider)
  AND pk < coalesce(:after, 9223372036854775807)
UNION ALL
SELECT pk, id, account_id, provider, provider_task_id, status, reference, version, sequence,
       data, created_at, updated_at, next_poll_at
FROM tasks
WHERE :reference IS NULL AND :status IS NOT NULL
  AND account_id = :account_id AND status = :status
  AND (:provider IS NULL OR provider = :provider)
  AND pk < coalesce(:after, 9223372036854775807)
UNION ALL
SELECT pk, id, account_id, provider, provider_task_id, status, reference, version, sequence,
       data, created_at, updated_at, next_poll_at
FROM tasks
WHERE :reference IS NULL AND :status IS NULL
  AND account_id = :account_id
  AND (:provider IS NULL OR provider = :provider)
  AND pk < coalesce(:after, 9223372036854775807)
ORDER BY pk DESC
LIMIT :limit

-- claim_due_polls --
-- One provider's due tasks, the most overdue first (tasks_poll_due_by_provider). Leased ones
-- are not due: the claim (lease_polls, same transaction) moves next_poll_at to the lease's end.
SELECT pk, id, account_id, provider, provider_task_id, status, reference, version, sequence, data,
       created_at, updated_at, next_poll_at
FROM tasks
WHERE provider = :provider AND next_poll_at <= :now
ORDER BY next_poll_at
LIMIT :limit

-- lease_polls --
-- The claimed tasks (a JSON array of pks) leave the due order until the lease's end, when a
-- poll that never saved (a crash) is due again; owner and expiry say who holds them.
UPDATE tasks
SET next_poll_at = :lease_until, poll_lease_until = :lease_until, poll_lease_owner = :owner
WHERE pk IN (SELECT value FROM json_each(:pks))

-- release_polls --
-- Claimed polls an instance stopping never made (a JSON array of task ids): due again at once.
-- Only while still leased to that instance: a poll that saved, or another's claim, is left be.
UPDATE tasks
SET next_poll_at = min(coalesce(next_poll_at, :now), :now),
    poll_lease_until = NULL, poll_lease_owner = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND poll_lease_owner = :owner

-- polled_providers --
-- The distinct providers of scheduled tasks: one index seek per provider (a loose scan of
-- tasks_poll_due_by_provider), however many tasks each has.
WITH RECURSIVE seen(provider) AS (
    SELECT min(provider) FROM tasks WHERE next_poll_at IS NOT NULL
    UNION ALL
    SELECT (
        SELECT min(provider) FROM tasks
        WHERE next_poll_at IS NOT NULL AND provider > seen.provider
    )
    FROM seen
    WHERE seen.provider IS NOT NULL
)
SELECT provider FROM seen WHERE provider IS NOT NULL

-- next_poll_at --
-- An index seek, not a scan: this runs after every dispatch pass.
SELECT min(next_poll_at) FROM tasks WHERE next_poll_at > :after

-- get_event --
SELECT id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE id = :event_id AND account_id = :account_id

-- list_events_asc --
-- One arm per shape of filter, as in list_tasks_asc: a task's events seek
-- events_account_task (a delivery status checked per event, deliveries_event); with a
-- delivery status, the account's deliveries in it are walked in event order
-- (deliveries_account_status), one row per event, stopping at the page: a rare status reads
-- only its own deliveries, a common one only the page's (a walk of events_account would read
-- every event of the account when few match); otherwise events_account. The guards test
-- parameters only.
SELECT pk, id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE :task_id IS NOT NULL
  AND account_id = :account_id AND task_id = :task_id
  AND (:type IS NULL OR type = :type)
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND (:delivery_status IS NULL OR EXISTS (
      SELECT 1 FROM deliveries d WHERE d.event_pk = events.pk AND d.status = :delivery_status
  ))
  AND pk > coalesce(:after, 0)
UNION ALL
-- Its own ORDER BY and LIMIT: the compound then sorts one page of it, not all of it.
SELECT * FROM (
    SELECT d.event_pk, e.id, e.account_id, e.task_id, e.type, e.sequence, e.created_at, e.body,
           e.url_expires_at
    FROM deliveries d
    JOIN events e ON e.pk = d.event_pk
    WHERE :task_id IS NULL AND :delivery_status IS NOT NULL
      AND d.account_id = :account_id AND d.status = :delivery_status
      AND d.event_pk > coalesce(:after, 0)
      AND e.account_id = :account_id
      AND (:type IS NULL OR e.type = :type)
      AND (:since IS NULL OR e.created_at >= :since)
      AND (:until IS NULL OR e.created_at < :until)
    GROUP BY d.event_pk
    ORDER BY d.event_pk ASC
    LIMIT :limit
)
UNION ALL
SELECT pk, id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE :task_id IS NULL AND :delivery_status IS NULL
  AND account_id = :account_id
  AND (:type IS NULL OR type = :type)
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND pk > coalesce(:after, 0)
ORDER BY pk ASC
LIMIT :limit

-- list_events_desc --
-- As list_events_asc, newest first (a direction cannot be a parameter).
SELECT pk, id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE :task_id IS NOT NULL
  AND account_id = :account_id AND task_id = :task_id
  AND (:type IS NULL OR type = :type)
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND (:delivery_status IS NULL OR EXISTS (
      SELECT 1 FROM deliveries d WHERE d.event_pk = events.pk AND d.status = :delivery_status
  ))
  AND pk < coalesce(:after, 9223372036854775807)
UNION ALL
-- Its own ORDER BY and LIMIT: the compound then sorts one page of it, not all of it.
SELECT * FROM (
    SELECT d.event_pk, e.id, e.account_id, e.task_id, e.type, e.sequence, e.created_at, e.body,
           e.url_expires_at
    FROM deliveries d
    JOIN events e ON e.pk = d.event_pk
    WHERE :task_id IS NULL AND :delivery_status IS NOT NULL
      AND d.account_id = :account_id AND d.status = :delivery_status
      AND d.event_pk < coalesce(:after, 9223372036854775807)
      AND e.account_id = :account_id
      AND (:type IS NULL OR e.type = :type)
      AND (:since IS NULL OR e.created_at >= :since)
      AND (:until IS NULL OR e.created_at < :until)
    GROUP BY d.event_pk
    ORDER BY d.event_pk DESC
    LIMIT :limit
)
UNION ALL
SELECT pk, id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE :task_id IS NULL AND :delivery_status IS NULL
  AND account_id = :account_id
  AND (:type IS NULL OR type = :type)
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND pk < coalesce(:after, 9223372036854775807)
ORDER BY pk DESC
LIMIT :limit

-- event_deliveries --
SELECT d.pk, d.id, d.account_id, e.id, d.destination_id, d.url, d.status, d.attempt_count,
       d.next_attempt_at, d.created_at, d.updated_at
FROM deliveries d
JOIN events e ON e.pk = d.event_pk
WHERE e.id = :event_id AND e.account_id = :account_id
ORDER BY d.pk

-- delivery_attempts --
SELECT number, started_at, latency_ms, outcome, status_code, error, response_snippet
FROM attempts
WHERE delivery_pk = :delivery_pk
ORDER BY pk

-- find_event --
SELECT pk, task_id FROM events WHERE id = :event_id AND account_id = :account_id

-- redeliver_destinations --
-- The destinations the event was delivered to, or the one asked for. Disabled and deleted
-- subscriptions are not sent to (enable one to resume).
SELECT id, account_id, kind, url, key, event_types, task_id, secret, body_format
FROM destinations
WHERE id IN (SELECT destination_id FROM deliveries WHERE event_pk = :event_pk)
  AND status = 'active'
  AND (:destination_id IS NULL OR id = :destination_id)
ORDER BY id

-- release_deliveries --
-- Claimed deliveries an instance stopping never sent (a JSON array of pks): their next
-- attempt is past, so they are due again at once. Only while still leased to that instance:
-- an attempt recorded, or another claim, is left be.
UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
WHERE pk IN (SELECT value FROM json_each(:pks)) AND lease_owner = :owner

-- release_delivery_leases --
-- SQLite serves one instance: at its start, every lease is a dead process's.
UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_until IS NOT NULL

-- release_poll_leases --
-- A leased task's next poll is its lease's end: a released one is due at once.
UPDATE tasks
SET next_poll_at = min(coalesce(next_poll_at, :now), :now),
    poll_lease_until = NULL, poll_lease_owner = NULL
WHERE poll_lease_until IS NOT NULL

-- release_copy_leases --
-- Only pending copies are ever leased (writing a copy ends its lease): the due index bounds it.
UPDATE output_copies SET lease_owner = NULL, lease_until = NULL
WHERE state = 'pending' AND lease_until IS NOT NULL

-- ---------------------------------------------------------------------------------------
-- outbox.py: events and their deliveries, written with the change that made them
-- ---------------------------------------------------------------------------------------

-- task_destinations --
SELECT id, account_id, kind, url, key, event_types, task_id, secret, body_format
FROM destinations
WHERE task_id = :task_id

-- account_subscriptions --
SELECT id, account_id, kind, url, key, event_types, task_id, secret, body_format
FROM destinations
WHERE account_id = :account_id AND kind = 'subscription' AND status = 'active'
ORDER BY rowid

-- insert_event --
INSERT INTO events (id, account_id, task_id, type, sequence, created_at, body, url_expires_at)
VALUES (:id, :account_id, :task_id, :type, :sequence, :created_at, :body, :url_expires_at)

-- insert_delivery --
INSERT INTO deliveries (
    id, account_id, event_pk, destination_id, destination_key, url, status, next_attempt_at,
    created_at, updated_at, task_id
) VALUES (
    :id, :account_id, :event_pk, :destination_id, :destination_key, :url, 'pending', :now,
    :now, :now, :task_id
)

-- upsert_copy --
-- An output copy written with its task (relay.copies): new, or as the change left it. Writing
-- a try's outcome ends its lease: whoever held it is done with it, or lost the task's version
-- race.
INSERT INTO output_copies (
    id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by, object_key,
    size, sha256, content_type, stored_at, error, deleted_at, deleted_reason, tries,
    created_at, updated_at
) VALUES (
    :id, :account_id, :task_id, :kind, :state, :attempts, :next_attempt_at, :announce_by,
    :object_key, :size, :sha256, :content_type, :stored_at, :error, :deleted_at,
    :deleted_reason, :tries, :created_at, :updated_at
)
ON CONFLICT (id) DO UPDATE
SET state = excluded.state,
    attempts = excluded.attempts,
    next_attempt_at = excluded.next_attempt_at,
    announce_by = excluded.announce_by,
    object_key = excluded.object_key,
    size = excluded.size,
    sha256 = excluded.sha256,
    content_type = excluded.content_type,
    stored_at = excluded.stored_at,
    error = excluded.error,
    deleted_at = excluded.deleted_at,
    deleted_reason = excluded.deleted_reason,
    tries = excluded.tries,
    updated_at = excluded.updated_at,
    -- A try recorded (or the copy settled) ends its lease; a change that is no try (the
    -- announcement's deadline cleared) leaves a copy under way to its holder.
    lease_owner = CASE WHEN excluded.state = output_copies.state AND excluded.attempts = output_copies.attempts THEN output_copies.lease_owner END,
    lease_until = CASE WHEN excluded.state = output_copies.state AND excluded.attempts = output_copies.attempts THEN output_copies.lease_until END

-- ---------------------------------------------------------------------------------------
-- deliveries.py: the delivery queue, attempts, subscription health
-- ---------------------------------------------------------------------------------------

-- pick_due_deliveries --
-- Due and not leased (or the lease ran out); the accounts take turns (turn: each account's
-- longest due first, then each one's second, ...), the longest due first within a turn.
-- Rooms (relay.delivery.fairness.ClaimLimits): :room is a JSON object of destination key ->
-- how many more this claim may take for it (:cap for a key it does not name, :quick_cap for
-- such a key in :uncounted without a rate limit); :gates a JSON object of rate-limited key
-- -> [the rate its gate is planned at, the gate's room], which applies while the
-- destination's rate_limit is still that rate (within a relative 1e-9: the rate came back
-- through JSON); a rate-limited destination without one takes :rated_cap.
-- :accounts the same as :room per account (:account_cap for the others), counting only
-- deliveries to keys not in :uncounted (a JSON array); :totals per account again
-- (:total_cap for the others), counting every delivery the account keeps, so quick ones too.
-- Keys and accounts without room are skipped before the inner LIMIT (:window), which looks a
-- little past the claim's limit, so one destination's or account's backlog at the head of
-- the queue does not hide the others' due work; the rankings then keep what rooms allow.
-- Kept so far, at a row of an account: its uncounted rows so far (turn - counted) and the
-- counted ones its room kept (the first account_room of them).
-- One row, the pks as a JSON array: each row fetched would hand the GIL back and forth with
-- the event loop (see record_attempts), costing the writer far more than the row.
SELECT json_group_array(pk) FROM (
SELECT pk FROM (
    SELECT pk, next_attempt_at, uncounted,
           row_number() OVER (
               PARTITION BY account_id ORDER BY next_attempt_at, pk
           ) AS turn,
           sum(1 - uncounted) OVER (
               PARTITION BY account_id ORDER BY next_attempt_at, pk ROWS UNBOUNDED PRECEDING
           ) AS counted,
           coalesce(
               (SELECT value FROM json_each(:accounts) WHERE key = by_key.account_id),
               :account_cap
           ) AS account_room,
           coalesce(
               (SELECT value FROM json_each(:totals) WHERE key = by_key.account_id),
               :total_cap
           ) AS total_room
    FROM (
        SELECT c.pk, c.next_attempt_at, c.account_id,
               c.destination_key IN (SELECT value FROM json_each(:uncounted)) AS uncounted,
               row_number() OVER (
                   PARTITION BY c.destination_key ORDER BY c.next_attempt_at, c.pk
               ) AS rank,
               -- A quick destination's room may pass :cap (relay.delivery.fairness, rule 6);
               -- one not named takes :quick_cap.
               CASE WHEN dst.rate_limit IS NULL THEN coalesce(
                   (SELECT value FROM json_each(:room) WHERE key = c.destination_key),
                   CASE WHEN c.destination_key IN (SELECT value FROM json_each(:uncounted))
                        THEN :quick_cap ELSE :cap END
               ) ELSE min(
                   -- Less the sends ahead the engine named a quick key with (it knew of no
                   -- rate limit: one set since): those are for destinations without one.
                   coalesce(
                       (SELECT value FROM json_each(:room) WHERE key = c.destination_key)
                       - CASE WHEN c.destination_key IN (SELECT value FROM json_each(:uncounted))
                                   AND c.destination_key NOT IN (SELECT key FROM json_each(:gates))
                              THEN :ahead ELSE 0 END,
                       :cap
                   ),
                   coalesce(
                       (SELECT json_extract(g.value, '$[1]') FROM json_each(:gates) AS g
                        WHERE g.key = c.destination_key
                          AND abs(dst.rate_limit - json_extract(g.value, '$[0]'))
                              <= 1e-9 * dst.rate_limit),
                       :rated_cap
                   )
               ) END AS room
        FROM (
            SELECT pk, next_attempt_at, destination_key, destination_id, account_id
            FROM deliveries AS d
            WHERE next_attempt_at <= :now AND (lease_until IS NULL OR lease_until < :now)
              AND destination_key NOT IN (SELECT key FROM json_each(:room) WHERE value <= 0)
              -- Closed gates, while their destination's rate is still theirs (a subscription's
              -- key is its destination id).
              AND destination_key NOT IN (
                  SELECT g.key FROM json_each(:gates) AS g
                  JOIN destinations AS x ON x.id = g.key
                  WHERE json_extract(g.value, '$[1]') <= 0
                    AND abs(x.rate_limit - json_extract(g.value, '$[0]')) <= 1e-9 * x.rate_limit
              )
              AND account_id NOT IN (SELECT key FROM json_each(:totals) WHERE value <= 0)
              AND (
                  account_id NOT IN (SELECT key FROM json_each(:accounts) WHERE value <= 0)
                  OR destination_key IN (SELECT value FROM json_each(:uncounted))
              )
              -- A replayed event waits for the task's earlier ones to that destination.
              AND (ordered = 0 OR NOT EXISTS (
                  SELECT 1 FROM deliveries AS e
                  WHERE e.destination_id = d.destination_id AND e.task_id = d.task_id
                    AND e.ordered = 1 AND e.status = 'pending' AND e.pk < d.pk
              ))
            ORDER BY next_attempt_at
            LIMIT :window
        ) AS c
        LEFT JOIN destinations AS dst ON dst.id = c.destination_id
    ) AS by_key
    WHERE rank <= room
) AS by_account
WHERE (uncounted OR counted <= account_room)
  AND turn - counted + min(counted, max(account_room, 0)) <= total_room
ORDER BY turn, next_attempt_at, pk
LIMIT :limit
)

-- lease_deliveries --
-- :picked is a JSON array of the pks pick_due_deliveries chose, in the same transaction.
UPDATE deliveries
SET lease_owner = :owner, lease_until = :lease_until
WHERE pk IN (SELECT value FROM json_each(:picked))

-- leased_deliveries --
-- What a worker needs to send each one. A callback destination has no secret of its own and
-- signs with the account's callback secret (and, during its rotation, the previous one).
SELECT d.pk, d.id, e.id, d.destination_key, d.url, e.body,
       coalesce(dst.secret, a.callback_secret), d.attempt_count, d.account_id, e.task_id,
       e.url_expires_at,
       CASE WHEN dst.secret IS NULL THEN a.previous_callback_secret
            ELSE dst.previous_secret END,
       CASE WHEN dst.secret IS NULL THEN a.previous_callback_secret_until
            ELSE dst.previous_secret_until END,
       dst.headers, dst.rate_limit, dst.body_format
FROM deliveries d
JOIN events e ON e.pk = d.event_pk
JOIN destinations dst ON dst.id = d.destination_id
JOIN accounts a ON a.id = d.account_id
WHERE d.pk IN (SELECT value FROM json_each(:picked))
ORDER BY d.next_attempt_at

-- insert_attempts --
-- The batch (:batch) is one JSON array of arrays, one per record, unpacked by the CTE r (the
-- same in every query on it); see record_attempts for why.
-- Only the lease holder's attempts count, and each attempt number once: a late record from a
-- lease that expired and was claimed again (by another instance, or by this one) must not
-- add a second "attempt 1" or clear the new lease.
WITH r (pk, number, started_at, latency_ms, outcome, status_code, error, snippet, status,
        next_at) AS (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), json_extract(value, '$[3]'),
           json_extract(value, '$[4]'), json_extract(value, '$[5]'),
           json_extract(value, '$[6]'), json_extract(value, '$[7]'),
           json_extract(value, '$[8]'), json_extract(value, '$[9]')
    FROM json_each(:batch)
)
INSERT INTO attempts (
    delivery_pk, number, started_at, latency_ms, outcome, status_code, error, response_snippet
)
SELECT d.pk, r.number, r.started_at, r.latency_ms, r.outcome, r.status_code, r.error, r.snippet
FROM r
JOIN deliveries AS d ON d.pk = r.pk
WHERE d.lease_owner = :owner AND d.attempt_count = r.number - 1

-- apply_attempts --
-- Fenced as insert_attempts (runs right after it, the same records): the lease holder's next
-- attempt only; it releases the lease.
WITH r (pk, number, started_at, latency_ms, outcome, status_code, error, snippet, status,
        next_at) AS (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), json_extract(value, '$[3]'),
           json_extract(value, '$[4]'), json_extract(value, '$[5]'),
           json_extract(value, '$[6]'), json_extract(value, '$[7]'),
           json_extract(value, '$[8]'), json_extract(value, '$[9]')
    FROM json_each(:batch)
)
UPDATE deliveries
SET status = r.status, attempt_count = r.number, next_attempt_at = r.next_at,
    lease_owner = NULL, lease_until = NULL, last_status_code = r.status_code,
    last_error = r.error, updated_at = r.started_at
FROM r
WHERE deliveries.pk = r.pk AND deliveries.lease_owner = :owner
  AND deliveries.attempt_count = r.number - 1
  -- Stopped meanwhile (its subscription was disabled or deleted): it stays so.
  AND deliveries.status = 'pending'

-- note_successes --
-- A subscription's health from its attempts: a success is its last success and ends its
-- failing streak.
WITH r (pk, number, started_at, latency_ms, outcome, status_code, error, snippet, status,
        next_at) AS (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), json_extract(value, '$[3]'),
           json_extract(value, '$[4]'), json_extract(value, '$[5]'),
           json_extract(value, '$[6]'), json_extract(value, '$[7]'),
           json_extract(value, '$[8]'), json_extract(value, '$[9]')
    FROM json_each(:batch)
)
UPDATE destinations
SET last_success_at = s.at, failing_since = NULL
FROM (
    SELECT d.destination_id AS id, max(r.started_at) AS at
    FROM r JOIN deliveries AS d ON d.pk = r.pk
    WHERE r.status = 'succeeded'
    GROUP BY d.destination_id
) AS s
WHERE destinations.id = s.id AND destinations.kind = 'subscription'

-- note_failures --
-- A failure after the last success starts the failing streak (disable_failing_subscriptions
-- counts from it); one already running keeps its start.
WITH r (pk, number, started_at, latency_ms, outcome, status_code, error, snippet, status,
        next_at) AS (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), json_extract(value, '$[3]'),
           json_extract(value, '$[4]'), json_extract(value, '$[5]'),
           json_extract(value, '$[6]'), json_extract(value, '$[7]'),
           json_extract(value, '$[8]'), json_extract(value, '$[9]')
    FROM json_each(:batch)
)
UPDATE destinations
SET failing_since = f.at
FROM (
    SELECT d.destination_id AS id, min(r.started_at) AS at
    FROM r JOIN deliveries AS d ON d.pk = r.pk
    WHERE r.status != 'succeeded'
    GROUP BY d.destination_id
) AS f
WHERE destinations.id = f.id AND destinations.kind = 'subscription'
  AND destinations.failing_since IS NULL
  AND (destinations.last_success_at IS NULL OR destinations.last_success_at < f.at)

-- gone_subscriptions --
-- A 410 Gone (Zapier's "this Zap is off") disables an active subscription at once.
WITH r (pk, number, started_at, latency_ms, outcome, status_code, error, snippet, status,
        next_at) AS (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), json_extract(value, '$[3]'),
           json_extract(value, '$[4]'), json_extract(value, '$[5]'),
           json_extract(value, '$[6]'), json_extract(value, '$[7]'),
           json_extract(value, '$[8]'), json_extract(value, '$[9]')
    FROM json_each(:batch)
)
SELECT DISTINCT d.destination_id, d.account_id, r.started_at
FROM r
JOIN deliveries AS d ON d.pk = r.pk
JOIN destinations AS dst ON dst.id = d.destination_id
WHERE r.status = 'stopped' AND r.status_code = 410
  AND dst.kind = 'subscription' AND dst.status = 'active'

-- next_delivery_at --
SELECT min(next_attempt_at) FROM deliveries WHERE next_attempt_at > :after

-- ---------------------------------------------------------------------------------------
-- subscriptions.py: subscriptions, secret rotation, replays, test events
-- A live subscription is kind = 'subscription' AND status != 'deleted'.
-- ---------------------------------------------------------------------------------------

-- insert_subscription --
INSERT INTO destinations (
    id, account_id, kind, url, key, event_types, secret, description, headers, rate_limit,
    status, created_at, updated_at
) VALUES (
    :id, :account_id, 'subscription', :url, :key, :event_types, :secret, :description, :headers,
    :rate_limit, :status, :created_at, :updated_at
)

-- get_subscription --
SELECT id, account_id, url, event_types, status, created_at, updated_at, description, headers,
       rate_limit, disabled_reason, disabled_at, failing_since, last_success_at,
       previous_secret_until
FROM destinations
WHERE id = :sub_id AND account_id = :account_id
  AND kind = 'subscription' AND status != 'deleted'

-- list_subscriptions --
SELECT rowid, id, account_id, url, event_types, status, created_at, updated_at, description,
       headers, rate_limit, disabled_reason, disabled_at, failing_since, last_success_at,
       previous_secret_until
FROM destinations
WHERE account_id = :account_id
  AND kind = 'subscription' AND status != 'deleted'
  AND (:after IS NULL OR rowid < :after)
ORDER BY rowid DESC
LIMIT :limit

-- update_subscription --
-- One CASE per field of relay.store.interface.SUBSCRIPTION_FIELDS: :set_<field> says whether
-- the change names it; a field not named keeps its value. Only the account's own, live
-- subscription changes.
UPDATE destinations
SET url = CASE WHEN :set_url THEN :url ELSE url END,
    event_types = CASE WHEN :set_event_types THEN :event_types ELSE event_types END,
    description = CASE WHEN :set_description THEN :description ELSE description END,
    headers = CASE WHEN :set_headers THEN :headers ELSE headers END,
    rate_limit = CASE WHEN :set_rate_limit THEN :rate_limit ELSE rate_limit END,
    updated_at = :now
WHERE id = :sub_id AND account_id = :account_id
  AND kind = 'subscription' AND status != 'deleted'

-- repoint_pending_deliveries --
-- Pending deliveries go where the subscription now points.
UPDATE deliveries SET url = :url WHERE destination_id = :sub_id AND status = 'pending'

-- delete_subscription --
UPDATE destinations
SET status = 'deleted', updated_at = :now
WHERE id = :sub_id AND account_id = :account_id
  AND kind = 'subscription' AND status != 'deleted'

-- subscription_state --
SELECT status, missed_since
FROM destinations
WHERE id = :sub_id AND account_id = :account_id
  AND kind = 'subscription' AND status != 'deleted'

-- enable_subscription --
UPDATE destinations
SET status = 'active', disabled_reason = NULL, disabled_at = NULL, missed_since = NULL,
    failing_since = NULL, updated_at = :now
WHERE id = :sub_id

-- rotate_subscription_secret --
-- The previous secret keeps signing (as well) until :grace_until.
UPDATE destinations
SET previous_secret = secret, secret = :secret, previous_secret_until = :grace_until,
    updated_at = :now
WHERE id = :sub_id AND account_id = :account_id
  AND kind = 'subscription' AND status != 'deleted'

-- rotate_callback_secret --
UPDATE accounts
SET previous_callback_secret = callback_secret, callback_secret = :secret,
    previous_callback_secret_until = :grace_until
WHERE id = :account_id

-- failing_subscriptions --
SELECT id, account_id, failing_since
FROM destinations
WHERE kind = 'subscription' AND status = 'active'
  AND failing_since IS NOT NULL AND failing_since <= :since

-- oldest_pending_event --
-- A subscription being disabled misses what was pending when it stopped (and everything
-- from now on): enabling it replays from the oldest such event.
SELECT min(e.created_at)
FROM deliveries d
JOIN events e ON e.pk = d.event_pk
WHERE d.destination_id = :sub_id AND d.status = 'pending'

-- disable_subscription --
UPDATE destinations
SET status = 'disabled', disabled_reason = :reason, disabled_at = :now,
    missed_since = :missed_since, updated_at = :now
WHERE id = :sub_id AND account_id = :account_id
  AND kind = 'subscription' AND status = 'active'

-- stop_pending_deliveries --
-- Attempts in flight still record, but cannot bring a stopped delivery back.
UPDATE deliveries
SET status = 'stopped', next_attempt_at = NULL, last_error = :why, updated_at = :now
WHERE destination_id = :destination_id AND status = 'pending'

-- replay_target --
SELECT key, url, event_types
FROM destinations
WHERE id = :destination_id AND account_id = :account_id
  AND kind = 'subscription' AND status = 'active'

-- replay_window --
-- One bounded step of a replay or its count: the next :scan events of the account created in
-- [since, until), past the cursor (:after_at, :after_pk), in (created_at, pk) order: a range
-- of events_account_time, however long the history (an empty window reads nothing). Each
-- says whether the replay sends it: task events only (a test event was one subscription's,
-- never anyone's to replay) of the types the subscription takes (:types, a JSON list), and
-- with :only_failed only those whose deliveries to it failed or were stopped and never
-- succeeded (deliveries_event, per event).
SELECT pk, id, task_id, created_at,
       task_id IS NOT NULL
       AND type IN (SELECT value FROM json_each(:types))
       AND (:only_failed = 0 OR (
           EXISTS (
               SELECT 1 FROM deliveries d
               WHERE d.event_pk = events.pk AND d.destination_id = :destination_id
                 AND d.status IN ('failed', 'stopped')
           )
           AND NOT EXISTS (
               SELECT 1 FROM deliveries d
               WHERE d.event_pk = events.pk AND d.destination_id = :destination_id
                 AND d.status = 'succeeded'
           )
       ))
FROM events
WHERE account_id = :account_id
  -- The cursor bounds the index range itself: a row value "(created_at, pk) > (...)" would
  -- only filter, and each step would read the window again from its start.
  AND created_at >= max(:since, :after_at) AND created_at < :until
  AND (created_at > :after_at OR pk > :after_pk)
ORDER BY created_at, pk
LIMIT :scan

-- failed_event_pks --
-- The events whose deliveries to the subscription failed or were stopped, up to :cap
-- (deliveries_destination): when they are few, an only_failed replay reads them alone
-- (replay_failed_window) instead of walking its window.
SELECT DISTINCT event_pk FROM deliveries
WHERE destination_id = :destination_id AND status IN ('failed', 'stopped')
LIMIT :cap

-- replay_failed_window --
-- As replay_window with only_failed, over the events of :failed alone (a JSON list of
-- failed_event_pks, at most a step's worth): the same rows, in the same order, past the
-- same cursor, without reading the events that never failed.
SELECT pk, id, task_id, created_at,
       task_id IS NOT NULL
       AND type IN (SELECT value FROM json_each(:types))
       AND NOT EXISTS (
           SELECT 1 FROM deliveries d
           WHERE d.event_pk = events.pk AND d.destination_id = :destination_id
             AND d.status = 'succeeded'
       )
FROM events
WHERE pk IN (SELECT value FROM json_each(:failed))
  -- The unary + keeps these off events_account_time: the few pks drive, then are sorted.
  AND +account_id = :account_id
  AND +created_at >= max(:since, :after_at) AND +created_at < :until
  AND (created_at > :after_at OR pk > :after_pk)
ORDER BY created_at, pk
LIMIT :scan

-- insert_replay_delivery --
-- Ordered: it waits for the task's earlier replayed events to the destination
-- (pick_due_deliveries).
INSERT INTO deliveries (
    id, account_id, event_pk, destination_id, destination_key, url, status, next_attempt_at,
    created_at, updated_at, task_id, ordered
) VALUES (
    :id, :account_id, :event_pk, :destination_id, :destination_key, :url, 'pending', :now,
    :now, :now, :task_id, 1
)

-- test_destination --
SELECT key, url, secret, previous_secret, previous_secret_until, headers, rate_limit
FROM destinations
WHERE id = :destination_id AND account_id = :account_id
  AND kind = 'subscription' AND status != 'deleted'

-- insert_test_event --
-- No task: a test event is never replayed.
INSERT INTO events (id, account_id, task_id, type, sequence, created_at, body, url_expires_at)
VALUES (:id, :account_id, NULL, :type, 0, :created_at, :body, NULL)

-- insert_test_delivery --
-- Leased to the caller at once: it sends the test event itself, now.
INSERT INTO deliveries (
    id, account_id, event_pk, destination_id, destination_key, url, status, next_attempt_at,
    lease_owner, lease_until, created_at, updated_at
) VALUES (
    :id, :account_id, :event_pk, :destination_id, :destination_key, :url, 'pending', :now,
    :owner, :lease_until, :now, :now
)

-- ---------------------------------------------------------------------------------------
-- idempotency.py: Idempotency-Key reservations
-- ---------------------------------------------------------------------------------------

-- reserve_idempotency_key --
-- The first request with a key inserts it; a later one with the same request takes it over
-- when its holder's lease ran out unanswered (a dead process), else finds it
-- (idempotent_reply). One row changed: this request answers.
INSERT INTO idempotency_keys (account_id, key, request_hash, created_at, owner, lease_until)
VALUES (:account_id, :key, :request_hash, :now, :owner, :lease_until)
ON CONFLICT (account_id, key) DO UPDATE
SET owner = excluded.owner, lease_until = excluded.lease_until
WHERE idempotency_keys.status_code IS NULL
  AND idempotency_keys.lease_until < :now
  AND idempotency_keys.request_hash = excluded.request_hash

-- idempotent_reply --
SELECT request_hash, status_code, body, lease_until
FROM idempotency_keys
WHERE account_id = :account_id AND key = :key

-- renew_idempotency_key --
UPDATE idempotency_keys
SET lease_until = :lease_until
WHERE account_id = :account_id AND key = :key AND owner = :owner AND status_code IS NULL

-- finish_idempotency_key --
UPDATE idempotency_keys
SET status_code = :status_code, body = :body
WHERE account_id = :account_id AND key = :key AND owner = :owner

-- forget_idempotency_key --
DELETE FROM idempotency_keys
WHERE account_id = :account_id AND key = :key AND owner = :owner AND status_code IS NULL

-- release_idempotency_keys --
-- At start-up (one instance): a reservation still unanswered is a dead process's.
UPDATE idempotency_keys SET lease_until = 0 WHERE status_code IS NULL

-- prune_idempotency_keys --
DELETE FROM idempotency_keys WHERE created_at < :before

-- ---------------------------------------------------------------------------------------
-- submissions.py: the intents written before a provider is asked to create a task
-- ---------------------------------------------------------------------------------------

-- insert_submission --
INSERT INTO submissions (
    id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
    provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
) VALUES (
    :id, :account_id, :task_id, :provider, :state, :body_hash,
    :registration, :idempotency_key, :provider_task_id, :detail,
    :created_at, :updated_at, :lease_until, :looks, :next_look_at
)
ON CONFLICT (id) DO NOTHING

-- renew_submission --
UPDATE submissions SET lease_until = :lease_until WHERE id = :id AND state = 'pending'

-- settle_submission --
-- Only an open submission moves: a settled one (accepted, not accepted, abandoned) is final.
UPDATE submissions
SET state = :state, detail = :detail, updated_at = :now,
    next_look_at = :next_look_at,
    provider_task_id = coalesce(:provider_task_id, provider_task_id)
WHERE id = :id AND state IN ('pending', 'uncertain')

-- note_look --
-- A look at the provider's list that settled nothing: when to look again, and why not yet.
UPDATE submissions
SET detail = :detail, updated_at = :now, looks = looks + 1,
    next_look_at = :next_look_at
WHERE id = :id AND state = 'uncertain'

-- accept_submission --
-- In the transaction that creates its task (create_task), which no row here undoes. An
-- abandoned one is accepted too: a person said nothing was made, and yet here it is.
UPDATE submissions
SET state = 'accepted', provider_task_id = :provider_task_id, updated_at = :now,
    next_look_at = NULL
WHERE id = :id AND state IN ('pending', 'uncertain', 'abandoned')
RETURNING id

-- get_submission --
SELECT id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
       provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
FROM submissions
WHERE id = :id AND account_id = :account_id

-- submission_for_key --
-- The latest with this key: a key may be used again once its reservation was pruned.
SELECT id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
       provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
FROM submissions
WHERE account_id = :account_id AND idempotency_key = :key
ORDER BY rowid DESC
LIMIT 1

-- list_submissions --
SELECT rowid, id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
       provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
FROM submissions
WHERE account_id = :account_id AND rowid < coalesce(:after, 9223372036854775807)
ORDER BY rowid DESC
LIMIT :limit

-- list_submissions_in_state --
-- A query of its own, not an "OR :state IS NULL" arm: SQLite uses no index behind one, and
-- the dashboard counts an account's uncertain ones on its landing page.
SELECT rowid, id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
       provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
FROM submissions
WHERE account_id = :account_id AND state = :state
  AND rowid < coalesce(:after, 9223372036854775807)
ORDER BY rowid DESC
LIMIT :limit

-- due_submissions --
-- Every account's uncertain submissions whose next look has come, the longest waiting first;
-- past RECONCILE_FOR they are a person's (the provider forgets tasks after a while).
SELECT id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
       provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
FROM submissions
WHERE state = 'uncertain' AND next_look_at <= :now AND created_at >= :since
ORDER BY next_look_at
LIMIT :limit

-- rival_submissions --
-- Other open submissions to the provider whose window meets [start, end]: while one is open,
-- a task found in that window might be its, and is handed to nobody.
SELECT id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
       provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
FROM submissions
WHERE provider = :provider
  AND state IN ('pending', 'uncertain')
  AND created_at <= :end
  AND lease_until >= :start
  AND id <> :id

-- expire_submissions --
-- Pending past its lease: the instance that was asking the provider died. Looked for at once.
UPDATE submissions
SET state = 'uncertain', detail = :detail, updated_at = :now, next_look_at = :now
WHERE state = 'pending' AND lease_until < :now

-- release_submissions --
-- At start-up (one instance): every pending submission is a dead process's.
UPDATE submissions
SET state = 'uncertain', detail = :detail, updated_at = :now, next_look_at = :now
WHERE state = 'pending'

-- known_provider_task_ids --
-- Which of these provider task ids the relay tracks or a submission already holds.
SELECT provider_task_id FROM tasks
WHERE provider = :provider AND provider_task_id IN (SELECT value FROM json_each(:ids))
UNION
SELECT provider_task_id FROM submissions
WHERE provider = :provider AND provider_task_id IN (SELECT value FROM json_each(:ids))

-- uncertain_submissions --
SELECT count(*) FROM submissions WHERE state = 'uncertain'

-- prune_submissions --
-- Settled ones, with the Idempotency-Keys they answered; open ones stay until settled.
DELETE FROM submissions
WHERE state IN ('accepted', 'not_accepted', 'abandoned') AND updated_at < :before

-- ---------------------------------------------------------------------------------------
-- copies.py: output copies, the copier's queue (written by outbox.py with their task)
-- ---------------------------------------------------------------------------------------

-- claim_due_copies --
-- Due and not leased (or the lease ran out), the longest due first; the lease goes to :owner
-- until :lease_until. One statement, so two claims never take the same copy.
UPDATE output_copies
SET lease_owner = :owner, lease_until = :lease_until
WHERE id IN (
    SELECT id FROM output_copies
    WHERE state = 'pending'
      AND next_attempt_at <= :now
      AND (lease_until IS NULL OR lease_until < :now)
    ORDER BY next_attempt_at, id
    LIMIT :limit
)
RETURNING id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by,
          object_key, size, sha256, content_type, stored_at, error, deleted_at, deleted_reason,
          tries, created_at, updated_at

-- renew_copy --
UPDATE output_copies
SET lease_until = :lease_until
WHERE id = :id AND lease_owner = :owner AND state = 'pending'

-- release_copy --
UPDATE output_copies
SET lease_owner = NULL, lease_until = NULL
WHERE id = :id AND lease_owner = :owner

-- get_copy --
SELECT id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by,
       object_key, size, sha256, content_type, stored_at, error, deleted_at, deleted_reason,
       tries, created_at, updated_at
FROM output_copies
WHERE id = :id

-- task_copies --
-- The video first, then the last frame.
SELECT id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by,
       object_key, size, sha256, content_type, stored_at, error, deleted_at, deleted_reason,
       tries, created_at, updated_at
FROM output_copies
WHERE task_id = :task_id
ORDER BY CASE kind WHEN 'video' THEN 0 ELSE 1 END, kind

-- due_announcements --
-- The tasks whose task.succeeded has waited for their copies as long as it may: each once,
-- the longest waiting first.
SELECT account_id, task_id
FROM output_copies
WHERE announce_by <= :now
GROUP BY account_id, task_id
ORDER BY min(announce_by), task_id
LIMIT :limit

-- stored_copies_before --
-- Retention: stored before a time, oldest first.
SELECT id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by,
       object_key, size, sha256, content_type, stored_at, error, deleted_at, deleted_reason,
       tries, created_at, updated_at
FROM output_copies
WHERE state = 'stored' AND stored_at < :before
ORDER BY stored_at, id
LIMIT :limit

-- next_copy_at --
-- The next try or announcement after a time: two index seeks.
SELECT min(at)
FROM (
    SELECT min(next_attempt_at) AS at
    FROM output_copies
    WHERE state = 'pending' AND next_attempt_at > :after
    UNION ALL
    SELECT min(announce_by)
    FROM output_copies
    WHERE announce_by > :after
)

-- ---------------------------------------------------------------------------------------
-- metrics.py: the reads behind /metrics
-- ---------------------------------------------------------------------------------------

-- tasks_by_status --
-- Grouped in the order of the covering index (account_id, status, pk): a scan of it without
-- a temporary B-tree, about 15 ms at 100k tasks. /metrics caches it.
SELECT status, count(*) FROM tasks GROUP BY account_id, status

-- due_deliveries --
-- The partial due index bounds this to what is due, however long the history.
SELECT count(*), min(next_attempt_at)
FROM deliveries
WHERE next_attempt_at <= :now AND (lease_until IS NULL OR lease_until < :now)

-- copies_by_state --
-- Output copies by state, with their bytes (those of 'stored' are the bytes kept), counted
-- per (kind, state), the order of the covering index, then summed by the caller: a scan of
-- the index without a temporary B-tree.
SELECT state, count(*), coalesce(sum(size), 0) FROM output_copies GROUP BY kind, state

-- ---------------------------------------------------------------------------------------
-- retention.py: old events go, with their deliveries and attempts, in short batches, then the
-- finished tasks they leave with nothing, with their callback destinations
-- ---------------------------------------------------------------------------------------

-- create_doomed --
-- The batch's event pks, kept for the deletes that follow in the same transaction.
CREATE TEMP TABLE IF NOT EXISTS doomed (pk INTEGER PRIMARY KEY)

-- clear_doomed --
DELETE FROM doomed

-- pick_doomed --
-- Events with nothing left to send: a pending delivery keeps its event, however old, so
-- pruning never loses work.
-- The oldest first, a range of events_time: nothing to prune reads one index entry.
INSERT INTO doomed
SELECT pk FROM events
WHERE created_at < :before
  AND NOT EXISTS (
      SELECT 1 FROM deliveries d WHERE d.event_pk = events.pk AND d.status = 'pending'
  )
ORDER BY created_at, pk
LIMIT :limit

-- delete_doomed_attempts --
DELETE FROM attempts
WHERE delivery_pk IN (SELECT pk FROM deliveries WHERE event_pk IN (SELECT pk FROM doomed))

-- delete_doomed_deliveries --
DELETE FROM deliveries WHERE event_pk IN (SELECT pk FROM doomed)

-- delete_doomed_events --
DELETE FROM events WHERE pk IN (SELECT pk FROM doomed)

-- create_doomed_tasks --
-- The batch's finished tasks, kept for the deletes that follow in the same transaction.
CREATE TEMP TABLE IF NOT EXISTS doomed_tasks (id TEXT PRIMARY KEY)

-- clear_doomed_tasks --
DELETE FROM doomed_tasks

-- pick_doomed_tasks --
-- Finished tasks not updated since :before whose events are all gone (retention took them;
-- an event kept for a pending delivery keeps its task), the oldest first: a range of
-- tasks_finished (an open task is never in it).
INSERT INTO doomed_tasks
SELECT id FROM tasks
WHERE status IN ('succeeded', 'failed', 'expired', 'cancelled') AND updated_at < :before
  AND NOT EXISTS (
      SELECT 1 FROM events e WHERE e.account_id = tasks.account_id AND e.task_id = tasks.id
  )
ORDER BY updated_at
LIMIT :limit

-- delete_doomed_task_copies --
-- The records of copies that are no more (deleted, or never stored). A stored copy's record
-- stays: its stable link still serves it until outputs.retention_days deletes it.
DELETE FROM output_copies
WHERE task_id IN (SELECT id FROM doomed_tasks) AND state IN ('deleted', 'failed')

-- delete_doomed_callbacks --
-- The task's callback destinations, with nothing left delivered to them.
DELETE FROM destinations
WHERE kind = 'callback' AND task_id IN (SELECT id FROM doomed_tasks)
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.destination_id = destinations.id)

-- delete_doomed_tasks --
DELETE FROM tasks WHERE id IN (SELECT id FROM doomed_tasks)

-- ---------------------------------------------------------------------------------------
-- usage.py: what an account's tasks cost
-- ---------------------------------------------------------------------------------------

-- task_costs --
-- The priced tasks an account finished in [since, until), oldest first (tasks_account_costs).
SELECT completed_at, provider, data, cost_amount, cost_currency
FROM tasks
WHERE account_id = :account_id AND cost_amount IS NOT NULL
  AND completed_at >= :since AND completed_at < :until
ORDER BY completed_at

-- open_estimates --
-- What the account's unfinished tasks likely cost (their estimate when submitted): a budget
-- counts them until they finish (tasks_account_status: only the open ones are read).
SELECT json_extract(data, '$.estimate.amount'), json_extract(data, '$.estimate.currency')
FROM tasks
WHERE account_id = :account_id AND status IN ('queued', 'running')
  AND json_extract(data, '$.estimate.amount') IS NOT NULL

-- set_budget --
INSERT INTO account_budgets (account_id, period, amount, currency, updated_at)
VALUES (:account_id, :period, :amount, :currency, :now)
ON CONFLICT (account_id) DO UPDATE
SET period = excluded.period, amount = excluded.amount, currency = excluded.currency,
    updated_at = excluded.updated_at

-- clear_budget --
DELETE FROM account_budgets WHERE account_id = :account_id

-- get_budget --
SELECT period, amount, currency FROM account_budgets WHERE account_id = :account_id

-- ---------------------------------------------------------------------------------------
-- overview.py: the dashboard's overview and search, bounded however long the history
-- ---------------------------------------------------------------------------------------

-- overview_count_status --
-- One status's tasks of an account, counted up to :cap: a range of the covering index
-- (account_id, status, pk) that stops at the cap.
SELECT count(*) FROM (
    SELECT 1 FROM tasks WHERE account_id = :account_id AND status = :status LIMIT :cap
)

-- overview_recent_tasks --
-- The account's latest tasks: tasks_account backwards, stopping at :limit.
SELECT status, provider, created_at, completed_at
FROM tasks
WHERE account_id = :account_id
ORDER BY pk DESC
LIMIT :limit

-- overview_recent_deliveries --
-- The deliveries of the account's latest :events events with their attempts (NULLs: none
-- yet): events_account backwards, then deliveries_event and attempts_delivery.
SELECT d.pk, d.status, e.created_at, a.latency_ms, a.outcome
FROM (
    SELECT pk, created_at FROM events WHERE account_id = :account_id
    ORDER BY pk DESC LIMIT :events
) AS e
JOIN deliveries AS d ON d.event_pk = e.pk
LEFT JOIN attempts AS a ON a.delivery_pk = d.pk

-- overview_backlog --
-- The account's deliveries due now and not leased, up to :cap: the partial due index read
-- in order (the first row is the oldest), other accounts' rows skipped.
SELECT count(*), min(next_attempt_at) FROM (
    SELECT next_attempt_at FROM deliveries
    WHERE next_attempt_at <= :now AND account_id = :account_id
      AND (lease_until IS NULL OR lease_until < :now)
    ORDER BY next_attempt_at
    LIMIT :cap
)

-- account_provider_task --
-- The search box's provider task id: one probe of UNIQUE (provider, provider_task_id).
SELECT id FROM tasks
WHERE provider = :provider AND provider_task_id = :provider_task_id
  AND account_id = :account_id

-- last_event_position --
-- Where the live event stream (relay.streams) starts tailing: the latest event's pk.
SELECT coalesce(max(pk), 0) FROM events

-- events_after --
-- The stream's tail: every account's events after a position, in order (the primary key).
SELECT pk, id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE pk > :after
ORDER BY pk
LIMIT :limit

-- event_position --
-- Where a stream resumed with Last-Event-ID starts (the account's own events only).
SELECT pk FROM events WHERE id = :event_id AND account_id = :account_id

-- event_positions_after --
-- The tail's place while no stream is open: positions only, no bodies.
SELECT pk FROM events WHERE pk > :after ORDER BY pk LIMIT :limit

-- events_at --
-- Events at positions the tail skipped while their writers had not committed (a JSON array).
SELECT pk, id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE pk IN (SELECT value FROM json_each(:positions))
ORDER BY pk

-- accounts_wanting --
-- The accounts with an active subscription whose filter names :type (an operational event
-- announced to every account that asked for it: relay.operational).
SELECT DISTINCT d.account_id
FROM destinations d, json_each(d.event_types) t
WHERE d.kind = 'subscription' AND d.status = 'active' AND d.event_types IS NOT NULL
  AND t.value = :type
ORDER BY d.account_id
