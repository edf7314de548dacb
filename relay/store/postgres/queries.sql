-- Every SQL statement of the PostgreSQL store, by name (relay.store.named_sql reads this file
-- once; the code asks for QUERIES["name"]). A block is headed by its name between dashes; the
-- comment lines under it say why the query is shaped so and are not sent to the server.
--
-- Parameters are psycopg's named placeholders: %(name)s, or %(name)b for an array sent in
-- binary (unnest and ANY read them without a text round trip). A literal percent sign would
-- be written %%.
--
-- Optional filters are static: a filter not asked for is passed as NULL, and
-- "(%(x)s IS NULL OR column = %(x)s)" then holds for every row. Measured with EXPLAIN on
-- 3 million tasks and events: planned with the values given, the planner folds the unused
-- filters away and uses the index the filter alone would (tasks_account_status, …), but a
-- generic plan of a prepared statement cannot, and scanned the table by pk instead (81 ms
-- instead of 0.3 ms). So the code runs the queries with such filters unprepared
-- (prepare=False: planned on each call, a fraction of a millisecond). A filter that is a
-- subquery is not written this way: behind an OR the planner cannot turn the subquery into a
-- join (it pulls subqueries up before it folds the NULL test away); those filters have
-- queries of their own (list_events_by_delivery_status_*, *replay_failed_events).
--
-- Pieces that several queries share (the no_sync CTE, the wake-up, the delivery insert) are
-- written out in each: a little repetition is the price of queries that read and grep whole.
--
-- Wake-ups: a write that creates due work NOTIFYs channel relay_work with the payload
-- 'deliveries' or 'polls'; it is sent at commit (never for a rolled-back write), and the
-- listener (the listen query) hears the other instances'.


-- --- migrations (runner.py) ----------------------------------------------------------------------

-- lock_migrations --
-- Migrations run under an advisory lock, so instances starting together do not race: one
-- applies them, the others wait, then find them applied.
SELECT pg_advisory_lock(%(lock)s)

-- unlock_migrations --
SELECT pg_advisory_unlock(%(lock)s)

-- create_schema_migrations --
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at double precision NOT NULL
)

-- applied_migrations --
SELECT version FROM schema_migrations

-- record_migration --
INSERT INTO schema_migrations (version, name, applied_at)
VALUES (%(version)s, %(name)s, extract(epoch FROM now()))

-- listen --
-- The channel every wake-up below is sent on.
LISTEN relay_work


-- --- the store (store.py) ------------------------------------------------------------------------

-- ping --
SELECT 1

-- secret_key --
-- The update of a conflicting row returns the value kept, whoever wrote it.
INSERT INTO meta (key, value)
VALUES ('secret_key', %(value)s)
ON CONFLICT (key) DO UPDATE SET value = meta.value
RETURNING value

-- probe_write --
-- /readyz: a real write, committed, on the primary (a read-only server or a full disk
-- refuses it).
INSERT INTO meta (key, value) VALUES ('write_probe', %(value)s)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value

-- insert_account --
INSERT INTO accounts (id, name, callback_secret, created_at)
VALUES (%(id)s, %(name)s, %(callback_secret)s, %(created_at)s)

-- insert_api_key --
INSERT INTO api_keys (key_hash, id, account_id, prefix, created_at, revoked_at)
VALUES (%(key_hash)s, %(id)s, %(account_id)s, %(prefix)s, %(created_at)s, NULL)

-- account_by_key_hash --
-- Only while the key is active: revoked_at NULL, or still ahead (a rotation's grace).
SELECT id, name, created_at
FROM accounts
WHERE id = (
    SELECT account_id FROM api_keys
    WHERE key_hash = %(key_hash)s AND (revoked_at IS NULL OR revoked_at > %(now)s)
)

-- key_holder_by_hash --
-- The account and the key, while the key is active (the key's revoked_at bounds how long an
-- instance may keep it: relay.keys.KeyCache).
SELECT a.id, a.name, a.created_at, k.id, k.account_id, k.prefix, k.created_at, k.revoked_at
FROM api_keys k JOIN accounts a ON a.id = k.account_id
WHERE k.key_hash = %(key_hash)s AND (k.revoked_at IS NULL OR k.revoked_at > %(now)s)

-- lock_account --
-- Taken before a key is added or revoked: the count of active keys that decides it cannot
-- change under the transaction (two revocations at once must not leave the account no key).
SELECT 1 FROM accounts WHERE id = %(account_id)s FOR UPDATE

-- count_active_keys --
SELECT count(*) FROM api_keys
WHERE account_id = %(account_id)s AND (revoked_at IS NULL OR revoked_at > %(now)s)

-- list_accounts --
-- For operators (relay accounts list): a handful of accounts, each key counted once.
SELECT a.id, a.name, a.created_at,
       (SELECT count(*) FROM api_keys k
        WHERE k.account_id = a.id AND (k.revoked_at IS NULL OR k.revoked_at > %(now)s))
FROM accounts a
ORDER BY a.created_at, a.id

-- retire_other_keys --
-- A rotation: the account's other keys stop at %(until)s, unless they stop sooner already.
UPDATE api_keys SET revoked_at = %(until)s
WHERE account_id = %(account_id)s AND id <> %(key_id)s
  AND (revoked_at IS NULL OR revoked_at > %(until)s)

-- list_api_keys --
SELECT id, account_id, prefix, created_at, revoked_at
FROM api_keys
WHERE account_id = %(account_id)s
ORDER BY created_at, id

-- find_api_keys --
SELECT id, account_id, prefix, created_at, revoked_at
FROM api_keys
WHERE id = %(ref)s OR prefix = %(ref)s
ORDER BY created_at, id

-- get_api_key --
SELECT id, account_id, prefix, created_at, revoked_at
FROM api_keys
WHERE id = %(key_id)s AND account_id = %(account_id)s

-- revoke_api_key --
-- At once; a key already stopped keeps the time it stopped.
UPDATE api_keys SET revoked_at = %(now)s
WHERE id = %(key_id)s AND account_id = %(account_id)s
  AND (revoked_at IS NULL OR revoked_at > %(now)s)

-- insert_dashboard_session --
INSERT INTO dashboard_sessions (id, key_id, created_at, expires_at)
VALUES (%(id)s, %(key_id)s, %(created_at)s, %(expires_at)s)

-- prune_dashboard_sessions --
-- Run at each sign-in: the table holds at most the sessions of one session_max_age.
DELETE FROM dashboard_sessions WHERE expires_at <= %(now)s

-- dashboard_session_account --
-- A session holds while its row does, it has not expired, and its key is active.
SELECT k.account_id
FROM dashboard_sessions s
JOIN api_keys k ON k.id = s.key_id
WHERE s.id = %(id)s AND s.expires_at > %(now)s
  AND (k.revoked_at IS NULL OR k.revoked_at > %(now)s)

-- delete_dashboard_session --
DELETE FROM dashboard_sessions WHERE id = %(id)s

-- callback_secret --
SELECT callback_secret FROM accounts WHERE id = %(account_id)s


-- --- tasks (store.py) ----------------------------------------------------------------------------

-- insert_task --
-- ON CONFLICT waits for a concurrent registration of the same provider task to commit, then
-- yields to it: exactly one gets in, and the other learns whose it is (task_by_provider_id).
INSERT INTO tasks (
    id, account_id, provider, provider_task_id, status, reference, version, sequence, data,
    created_at, updated_at, next_poll_at, completed_at, cost_amount, cost_currency
)
VALUES (
    %(id)s, %(account_id)s, %(provider)s, %(provider_task_id)s, %(status)s, %(reference)s,
    %(version)s, %(sequence)s, %(data)s, %(created_at)s, %(updated_at)s, %(next_poll_at)s,
    %(completed_at)s, %(cost_amount)s, %(cost_currency)s
)
ON CONFLICT (provider, provider_task_id) DO NOTHING
RETURNING pk

-- insert_callback --
-- A task's callback_url: a destination of kind 'callback', written with its task.
INSERT INTO destinations (
    id, account_id, kind, url, key, event_types, task_id, secret, created_at, body_format
)
VALUES (
    %(id)s, %(account_id)s, %(kind)s, %(url)s, %(key)s, %(event_types)s, %(task_id)s,
    %(secret)s, %(created_at)s, %(body_format)s
)

-- task_by_provider_id --
SELECT id, account_id
FROM tasks
WHERE provider = %(provider)s AND provider_task_id = %(provider_task_id)s

-- save_task --
-- Fenced by version: a save based on a stale read changes nothing, and the caller learns it.
-- Saving ends the poll lease: its expiry, its owner (the instance) and holder (the store).
-- The provider changes only when a resubmission moves the task (move_task in store.py).
UPDATE tasks
SET provider = %(provider)s,
    provider_task_id = %(provider_task_id)s,
    status = %(status)s,
    version = %(version)s,
    sequence = %(sequence)s,
    data = %(data)s,
    updated_at = %(updated_at)s,
    next_poll_at = %(next_poll_at)s,
    completed_at = %(completed_at)s,
    cost_amount = %(cost_amount)s,
    cost_currency = %(cost_currency)s,
    poll_lease_until = NULL,
    poll_lease_owner = NULL,
    poll_lease_holder = NULL
WHERE id = %(id)s AND version = %(expected)s
RETURNING pk

-- get_task --
SELECT id, account_id, provider, provider_task_id, status, reference, version, sequence, data,
       created_at, updated_at, next_poll_at
FROM tasks
WHERE id = %(task_id)s AND account_id = %(account_id)s

-- list_tasks_asc --
-- One page past the cursor (limit is one more than the page, to tell whether more follow).
-- pk > coalesce(...) rather than "after IS NULL OR": the cursor stays an index bound.
SELECT pk, id, account_id, provider, provider_task_id, status, reference, version, sequence,
       data, created_at, updated_at, next_poll_at
FROM tasks
WHERE account_id = %(account_id)s
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(provider)s::text IS NULL OR provider = %(provider)s)
  AND (%(reference)s::text IS NULL OR reference = %(reference)s)
  AND pk > coalesce(%(after)s::bigint, 0)
ORDER BY pk
LIMIT %(limit)s

-- list_tasks_desc --
-- As list_tasks_asc, newest first; no pk reaches bigint's maximum.
SELECT pk, id, account_id, provider, provider_task_id, status, reference, version, sequence,
       data, created_at, updated_at, next_poll_at
FROM tasks
WHERE account_id = %(account_id)s
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(provider)s::text IS NULL OR provider = %(provider)s)
  AND (%(reference)s::text IS NULL OR reference = %(reference)s)
  AND pk < coalesce(%(after)s::bigint, 9223372036854775807)
ORDER BY pk DESC
LIMIT %(limit)s

-- claim_due_polls --
-- One provider's due tasks (tasks_poll_due_by_provider), locked as they are read, skipping
-- rows another claim holds, so two instances never take the same poll. The claim moves
-- next_poll_at to the lease's end: leased tasks leave the due order (no claim steps over
-- them), and a crashed instance's polls are due again when its leases end. The lease names
-- the instance (owner) and this store object (holder: what release_leases frees). The tasks
-- come back as they were before the claim.
-- no_sync: a lease is bookkeeping, its commit need not wait for the WAL flush (see
-- claim_due_deliveries).
-- An array, not a join: the planner then fetches the claimed rows by primary key.
WITH no_sync AS (SELECT set_config('synchronous_commit', 'off', true) AS off),
due AS MATERIALIZED (
    SELECT pk, next_poll_at
    FROM tasks, no_sync
    WHERE provider = %(provider)s AND next_poll_at <= %(now)s
    ORDER BY next_poll_at, pk
    LIMIT %(limit)s
    FOR UPDATE OF tasks SKIP LOCKED
),
claimed AS (
    UPDATE tasks
    SET next_poll_at = %(until)s,
        poll_lease_until = %(until)s,
        poll_lease_owner = %(owner)s,
        poll_lease_holder = %(holder)s
    WHERE pk = ANY(ARRAY(SELECT pk FROM due))
    RETURNING pk, id, account_id, provider, provider_task_id, status, reference, version,
              sequence, data, created_at, updated_at
)
SELECT claimed.id, account_id, provider, provider_task_id, status, reference, version,
       sequence, data, created_at, updated_at, due.next_poll_at
FROM claimed JOIN due ON due.pk = claimed.pk
ORDER BY due.next_poll_at, claimed.pk

-- release_polls --
-- Claimed polls an instance stopping never made: due again at once, for any instance. Only
-- while still leased to that instance: a poll that saved, or another's claim, is left be.
UPDATE tasks
SET next_poll_at = LEAST(next_poll_at, %(now)s),
    poll_lease_until = NULL, poll_lease_owner = NULL, poll_lease_holder = NULL
WHERE id = ANY(%(ids)s) AND poll_lease_owner = %(owner)s

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
SELECT min(next_poll_at) FROM tasks WHERE next_poll_at > %(after)s

-- --- leases (store.py: release_leases) -----------------------------------------------------------

-- release_poll_leases --
-- Only this store object's leases: another live instance's must not be taken from it.
-- A leased task's next poll is its lease's end: a released one is due at once.
UPDATE tasks
SET next_poll_at = LEAST(next_poll_at, %(now)s),
    poll_lease_until = NULL, poll_lease_owner = NULL, poll_lease_holder = NULL
WHERE poll_lease_holder = %(holder)s

-- release_deliveries --
-- Claimed deliveries an instance stopping never sent: their next attempt is past, so they
-- are due again at once, for any instance (woken at commit). Only while still leased to
-- that instance: an attempt recorded, or another claim, is left be.
WITH released AS (
    UPDATE deliveries SET lease_owner = NULL, lease_until = NULL, lease_holder = NULL
    WHERE pk = ANY(%(pks)s) AND lease_owner = %(owner)s
    RETURNING 1
)
SELECT pg_notify('relay_work', 'deliveries') WHERE EXISTS (SELECT 1 FROM released)

-- release_delivery_leases --
-- Only this store object's leases: another live instance's must not be taken from it.
UPDATE deliveries
SET lease_owner = NULL, lease_until = NULL, lease_holder = NULL
WHERE lease_holder = %(holder)s

-- release_copy_leases --
-- Only this store object's leases: another live instance's must not be taken from it. Only
-- pending copies are ever leased (writing a copy ends its lease): the due index bounds it.
UPDATE output_copies
SET lease_owner = NULL, lease_until = NULL, lease_holder = NULL
WHERE state = 'pending' AND lease_holder = %(holder)s


-- --- events (events.py) --------------------------------------------------------------------------

-- get_event --
SELECT id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE id = %(event_id)s AND account_id = %(account_id)s

-- list_events_asc --
-- One page past the cursor, as list_tasks_asc; the filters not asked for are NULL.
SELECT pk, id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE account_id = %(account_id)s
  AND (%(type)s::text IS NULL OR type = %(type)s)
  AND (%(task_id)s::text IS NULL OR task_id = %(task_id)s)
  AND (%(since)s::float8 IS NULL OR created_at >= %(since)s)
  AND (%(until)s::float8 IS NULL OR created_at < %(until)s)
  AND pk > coalesce(%(after)s::bigint, 0)
ORDER BY pk
LIMIT %(limit)s

-- list_events_desc --
-- As list_events_asc, newest first; no pk reaches bigint's maximum.
SELECT pk, id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE account_id = %(account_id)s
  AND (%(type)s::text IS NULL OR type = %(type)s)
  AND (%(task_id)s::text IS NULL OR task_id = %(task_id)s)
  AND (%(since)s::float8 IS NULL OR created_at >= %(since)s)
  AND (%(until)s::float8 IS NULL OR created_at < %(until)s)
  AND pk < coalesce(%(after)s::bigint, 9223372036854775807)
ORDER BY pk DESC
LIMIT %(limit)s

-- list_events_by_delivery_status_asc --
-- As list_events_asc, only the events with a delivery in that status. A query of its own,
-- not one more "IS NULL OR" filter: behind the OR the subquery cannot become a semi-join, and
-- each page then hashed every delivery of the account in that status (EXPLAIN, 300,000
-- deliveries: 2.9 s instead of 1.7 ms for "succeeded", 15 ms instead of 4 ms for "failed").
SELECT pk, id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE account_id = %(account_id)s
  AND (%(type)s::text IS NULL OR type = %(type)s)
  AND (%(task_id)s::text IS NULL OR task_id = %(task_id)s)
  AND (%(since)s::float8 IS NULL OR created_at >= %(since)s)
  AND (%(until)s::float8 IS NULL OR created_at < %(until)s)
  AND pk IN (
    SELECT event_pk FROM deliveries
    WHERE account_id = %(account_id)s AND status = %(delivery_status)s
  )
  AND pk > coalesce(%(after)s::bigint, 0)
ORDER BY pk
LIMIT %(limit)s

-- list_events_by_delivery_status_desc --
-- As list_events_by_delivery_status_asc, newest first.
SELECT pk, id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE account_id = %(account_id)s
  AND (%(type)s::text IS NULL OR type = %(type)s)
  AND (%(task_id)s::text IS NULL OR task_id = %(task_id)s)
  AND (%(since)s::float8 IS NULL OR created_at >= %(since)s)
  AND (%(until)s::float8 IS NULL OR created_at < %(until)s)
  AND pk IN (
    SELECT event_pk FROM deliveries
    WHERE account_id = %(account_id)s AND status = %(delivery_status)s
  )
  AND pk < coalesce(%(after)s::bigint, 9223372036854775807)
ORDER BY pk DESC
LIMIT %(limit)s

-- event_deliveries --
SELECT d.pk, d.id, d.account_id, e.id, d.destination_id, d.url, d.status, d.attempt_count,
       d.next_attempt_at, d.created_at, d.updated_at
FROM deliveries AS d
JOIN events AS e ON e.pk = d.event_pk
WHERE e.id = %(event_id)s AND e.account_id = %(account_id)s
ORDER BY d.pk

-- delivery_attempts --
SELECT delivery_pk, number, started_at, latency_ms, outcome, status_code, error,
       response_snippet
FROM attempts
WHERE delivery_pk = ANY(%(delivery_pks)b::bigint[])
ORDER BY pk

-- event_to_redeliver --
SELECT pk, task_id FROM events WHERE id = %(event_id)s AND account_id = %(account_id)s

-- redelivery_destinations --
-- Where the event went before, or only the one destination asked for. Disabled and deleted
-- subscriptions are not sent to (enable one to resume). FOR KEY SHARE, as a fan-out: a stop
-- of one of them waits for this transaction, then finds its new deliveries and stops them.
SELECT id, account_id, kind, url, key, event_types, task_id, secret, body_format
FROM destinations
WHERE id IN (SELECT destination_id FROM deliveries WHERE event_pk = %(event_pk)s)
  AND status = 'active'
  AND (%(destination_id)s::text IS NULL OR id = %(destination_id)s)
ORDER BY id
FOR KEY SHARE


-- --- deliveries (deliveries.py) ------------------------------------------------------------------

-- claim_due_deliveries --
-- no_sync lets the statement's own transaction commit without waiting for the WAL flush.
-- Leases and attempt records are the delivery loop's bookkeeping: each would otherwise wait
-- for a disk flush (milliseconds) on every claim and every batch. Losing the last of them in
-- a database crash costs at most a duplicate attempt, which at-least-once delivery allows;
-- the outbox writes (tasks, events, deliveries) keep the server's durability. set_config with
-- is_local reverts at commit, so it never leaks into the pooled connection. A statement must
-- join it where it writes: one that wrote nothing has no commit to flush. (A transaction of
-- several statements says SET LOCAL synchronous_commit = off instead: no_sync_commit.)
--
-- The candidate window is locked as it is read, skipping rows another claim holds; the
-- rankings then keep what each destination's and each account's room allows (see the
-- SQLite store's pick_due_deliveries for the rules), and only those are leased (the rest
-- are unlocked when the statement ends). full/full_accounts/spent_accounts: the destinations
-- and accounts with no room at all (spent: none even for uncounted keys); keys/rooms,
-- accounts/account_rooms and totals/total_rooms: the rooms the claim names, cap, account_cap
-- and total_cap for the others (quick_cap for an unnamed key in uncounted without a rate
-- limit); gate_keys/gate_rates/gate_rooms: the rate gates, each applying while its
-- destination's rate_limit is still its rate (a rate-limited destination without one takes
-- rated_cap); uncounted: keys the account rooms do not count.
WITH no_sync AS (SELECT set_config('synchronous_commit', 'off', true) AS off),
candidate AS MATERIALIZED (
    SELECT pk, next_attempt_at, destination_key, destination_id, account_id
    FROM deliveries AS d, no_sync
    WHERE next_attempt_at <= %(now)s
      AND (lease_until IS NULL OR lease_until < %(now)s)
      AND destination_key <> ALL(%(full)b::text[])
      -- Closed gates, while their destination's rate is still theirs (a subscription's key is
      -- its destination id).
      AND destination_key <> ALL(ARRAY(
        SELECT g.key
        FROM unnest(%(gate_keys)b::text[], %(gate_rates)b::float8[], %(gate_rooms)b::int[])
            AS g (key, rate, room)
        JOIN destinations AS x ON x.id = g.key
        WHERE g.room <= 0 AND abs(x.rate_limit - g.rate) <= 1e-9 * x.rate_limit
      ))
      AND account_id <> ALL(%(spent_accounts)b::text[])
      AND (
        account_id <> ALL(%(full_accounts)b::text[])
        OR destination_key = ANY(%(uncounted)b::text[])
      )
      -- A replayed event waits for the task's earlier ones to that destination.
      AND (
        NOT ordered
        OR NOT EXISTS (
            SELECT 1 FROM deliveries AS e
            WHERE e.destination_id = d.destination_id
              AND e.task_id = d.task_id
              AND e.ordered
              AND e.status = 'pending'
              AND e.pk < d.pk
        )
      )
    ORDER BY next_attempt_at, pk
    LIMIT %(window)s
    FOR UPDATE OF d SKIP LOCKED
),
by_key AS (
    SELECT c.pk, c.next_attempt_at, c.account_id,
           c.destination_key = ANY(%(uncounted)b::text[]) AS uncounted,
           row_number() OVER (
               PARTITION BY c.destination_key ORDER BY c.next_attempt_at, c.pk
           ) AS rank,
           -- A quick destination's room may pass cap (relay.delivery.fairness, rule 6); one
           -- not named takes quick_cap.
           CASE WHEN dst.rate_limit IS NULL THEN coalesce(
                    r.room,
                    CASE WHEN c.destination_key = ANY(%(uncounted)b::text[]) THEN %(quick_cap)s
                         ELSE %(cap)s END
                )
                ELSE LEAST(
                    -- Less the sends ahead the engine named a quick key with (it knew of no
                    -- rate limit: one set since): those are for destinations without one.
                    coalesce(
                        r.room - CASE WHEN c.destination_key = ANY(%(uncounted)b::text[])
                                           AND g.key IS NULL
                                      THEN %(ahead)s ELSE 0 END,
                        %(cap)s
                    ),
                    CASE WHEN abs(dst.rate_limit - g.rate) <= 1e-9 * dst.rate_limit THEN g.room
                         ELSE %(rated_cap)s END
                ) END AS room
    FROM candidate AS c
    LEFT JOIN destinations AS dst ON dst.id = c.destination_id
    LEFT JOIN unnest(%(keys)b::text[], %(rooms)b::int[]) AS r (key, room)
        ON r.key = c.destination_key
    LEFT JOIN unnest(%(gate_keys)b::text[], %(gate_rates)b::float8[], %(gate_rooms)b::int[])
        AS g (key, rate, room) ON g.key = c.destination_key
),
by_account AS (
    SELECT b.pk, b.next_attempt_at, b.uncounted,
           row_number() OVER (
               PARTITION BY b.account_id ORDER BY b.next_attempt_at, b.pk
           ) AS turn,
           count(*) FILTER (WHERE NOT b.uncounted) OVER (
               PARTITION BY b.account_id ORDER BY b.next_attempt_at, b.pk
           ) AS counted,
           coalesce(a.room, %(account_cap)s) AS room,
           coalesce(t.room, %(total_cap)s) AS total_room
    FROM by_key AS b
    LEFT JOIN unnest(%(accounts)b::text[], %(account_rooms)b::int[]) AS a (account, room)
        ON a.account = b.account_id
    LEFT JOIN unnest(%(totals)b::text[], %(total_rooms)b::int[]) AS t (account, room)
        ON t.account = b.account_id
    WHERE b.rank <= b.room
),
-- Kept so far, at a row of an account: its uncounted rows so far (turn - counted) and the
-- counted ones its room kept (the first room of them); the total room caps that.
picked AS (
    SELECT pk
    FROM by_account
    WHERE (uncounted OR counted <= room)
      AND turn - counted + LEAST(counted, GREATEST(room, 0)) <= total_room
    ORDER BY turn, next_attempt_at, pk
    LIMIT %(limit)s
),
-- An array, not a join: the planner then fetches the picked rows by primary key instead of
-- hashing the whole table.
claimed AS (
    UPDATE deliveries
    SET lease_owner = %(owner)s, lease_until = %(until)s, lease_holder = %(holder)s
    WHERE pk = ANY(ARRAY(SELECT pk FROM picked))
    RETURNING deliveries.*
)
-- The signing secrets: the subscription's own, or the account's callback secret; during a
-- rotation's grace, the previous one too.
SELECT d.pk, d.id, e.id, d.destination_key, d.url, e.body,
       coalesce(dst.secret, a.callback_secret),
       d.attempt_count, d.account_id, e.task_id, e.url_expires_at,
       CASE WHEN dst.secret IS NULL THEN a.previous_callback_secret
            ELSE dst.previous_secret END,
       CASE WHEN dst.secret IS NULL THEN a.previous_callback_secret_until
            ELSE dst.previous_secret_until END,
       dst.headers, dst.rate_limit, dst.body_format
FROM claimed AS d
JOIN events AS e ON e.pk = d.event_pk
JOIN destinations AS dst ON dst.id = d.destination_id
JOIN accounts AS a ON a.id = d.account_id
ORDER BY d.next_attempt_at, d.pk

-- no_sync_commit --
-- Attempt records are bookkeeping, as leases are: see claim_due_deliveries. SET LOCAL ends
-- with the transaction, so it never leaks into the pooled connection.
SET LOCAL synchronous_commit = off

-- lock_attempt_subscriptions --
-- Two instances may update the same subscriptions' health at once: each takes them in id
-- order first, so they queue instead of deadlocking. In a statement of its own, before the
-- record: a row lock taken inside the record's statement may have to follow the row to a
-- version newer than that statement's snapshot, and the statement's UPDATE then asks for
-- the older version's tuple lock again, which deadlocks with a third writer queued on it.
SELECT id
FROM destinations
WHERE id = ANY(ARRAY(SELECT destination_id FROM deliveries WHERE pk = ANY(%(pk)b::bigint[])))
  AND kind = 'subscription'
ORDER BY id
FOR NO KEY UPDATE

-- record_attempts --
-- The batch, each record with its delivery's destination (rows fetched by primary key).
WITH r AS (
    SELECT u.*, d.destination_id, d.account_id
    FROM unnest(
        %(pk)b::bigint[], %(number)b::int[], %(started)b::float8[], %(latency)b::float8[],
        %(outcome)b::text[], %(code)b::int[], %(error)b::text[], %(snippet)b::text[],
        %(status)b::text[], %(next)b::float8[]
    ) AS u (
        pk, number, started_at, latency_ms, outcome, status_code, error, snippet, status,
        next_at
    )
    JOIN deliveries AS d ON d.pk = u.pk
),
-- Only the lease holder's attempts count, and each attempt number once: a late record from
-- a lease that expired and was claimed again (by another instance, or by this one) must not
-- add a second "attempt 1" or clear the new lease. A delivery stopped meanwhile (its
-- subscription was disabled or deleted) keeps its attempt but stays stopped: every column
-- changes only while the delivery is pending. The attempt rows follow the fenced update, so
-- a record is applied whole or not at all.
upd AS (
    UPDATE deliveries AS d
    SET status = CASE WHEN d.status = 'pending' THEN r.status ELSE d.status END,
        attempt_count = CASE WHEN d.status = 'pending' THEN r.number ELSE d.attempt_count END,
        next_attempt_at =
            CASE WHEN d.status = 'pending' THEN r.next_at ELSE d.next_attempt_at END,
        lease_owner = CASE WHEN d.status = 'pending' THEN NULL ELSE d.lease_owner END,
        lease_until = CASE WHEN d.status = 'pending' THEN NULL ELSE d.lease_until END,
        lease_holder = CASE WHEN d.status = 'pending' THEN NULL ELSE d.lease_holder END,
        last_status_code =
            CASE WHEN d.status = 'pending' THEN r.status_code ELSE d.last_status_code END,
        last_error = CASE WHEN d.status = 'pending' THEN r.error ELSE d.last_error END,
        updated_at = CASE WHEN d.status = 'pending' THEN r.started_at ELSE d.updated_at END
    FROM r
    WHERE d.pk = r.pk AND d.lease_owner = %(owner)s AND d.attempt_count = r.number - 1
    RETURNING d.pk
),
att AS (
    INSERT INTO attempts (
        delivery_pk, number, started_at, latency_ms, outcome, status_code, error,
        response_snippet
    )
    SELECT r.pk, r.number, r.started_at, r.latency_ms, r.outcome, r.status_code, r.error,
           r.snippet
    FROM r
    JOIN upd ON upd.pk = r.pk
    ORDER BY r.pk
),
-- A subscription's health from its attempts: the last success, since when it fails.
h AS (
    SELECT r.destination_id AS id,
           max(r.started_at) FILTER (WHERE r.status = 'succeeded') AS ok_at,
           min(r.started_at) FILTER (WHERE r.status <> 'succeeded') AS fail_at
    FROM r
    JOIN destinations AS s ON s.id = r.destination_id
    WHERE s.kind = 'subscription'
    GROUP BY r.destination_id
),
health AS (
    UPDATE destinations AS dst
    SET last_success_at = coalesce(h.ok_at, dst.last_success_at),
        failing_since = CASE
            WHEN h.fail_at IS NOT NULL
                 AND (h.ok_at IS NOT NULL OR dst.failing_since IS NULL)
                 AND coalesce(h.ok_at, dst.last_success_at, h.fail_at - 1) < h.fail_at
                THEN h.fail_at
            WHEN h.ok_at IS NOT NULL THEN NULL
            ELSE dst.failing_since
        END
    FROM h
    WHERE dst.id = ANY(ARRAY(SELECT id FROM h)) AND dst.id = h.id
    RETURNING 1
)
-- A 410 Gone (Zapier's "this Zap is off") disables the subscription: the caller does it.
SELECT DISTINCT r.destination_id, r.account_id, r.started_at
FROM r
JOIN destinations AS dst ON dst.id = r.destination_id
WHERE r.status = 'stopped'
  AND r.status_code = 410
  AND dst.kind = 'subscription'
  AND dst.status = 'active'

-- next_delivery_at --
SELECT min(next_attempt_at) FROM deliveries WHERE next_attempt_at > %(after)s

-- --- the outbox (outbox.py) ----------------------------------------------------------------------

-- wake_pollers --
-- A poll due now: another instance may take it (sent at commit).
SELECT pg_notify('relay_work', 'polls')

-- read_destinations --
-- Where events may go: their tasks' callbacks and their accounts' active subscriptions.
-- FOR KEY SHARE: stopping a subscription (disable, delete, a URL change) first takes it FOR
-- UPDATE, so a fan-out either sees it stopped, or finishes first and the stop then finds its
-- new deliveries pending and stops them.
SELECT id, account_id, kind, url, key, event_types, task_id, secret, body_format
FROM destinations
WHERE task_id = ANY(%(task_ids)b::text[])
   OR (account_id = ANY(%(account_ids)b::text[]) AND kind = 'subscription' AND status = 'active')
ORDER BY id
FOR KEY SHARE

-- write_events --
-- The events, their deliveries (the fan-out the caller decided: transitions.fan_out) and the
-- wake-up, in one statement. Each delivery names its event by id (d_event); its pk is only
-- known once ev has inserted it. ORDER BY the ordinality: rows are inserted, and their pks
-- given, in the order the caller listed them.
WITH ev AS (
    INSERT INTO events (
        id, account_id, task_id, type, sequence, created_at, body, url_expires_at
    )
    SELECT id, account_id, task_id, type, sequence, at, body, expires
    FROM unnest(
        %(e_id)b::text[], %(e_account)b::text[], %(e_task)b::text[], %(e_type)b::text[],
        %(e_sequence)b::int[], %(e_at)b::float8[], %(e_body)b::text[],
        %(e_expires)b::float8[]
    ) WITH ORDINALITY AS x (id, account_id, task_id, type, sequence, at, body, expires, n)
    ORDER BY n
    RETURNING pk, id
),
dl AS (
    INSERT INTO deliveries (
        id, account_id, event_pk, destination_id, destination_key, url, status,
        next_attempt_at, created_at, updated_at, task_id, ordered
    )
    SELECT x.id, x.account_id, ev.pk, x.destination_id, x.key, x.url, 'pending', x.at, x.at,
           x.at, x.task_id, %(ordered)s
    FROM unnest(
        %(d_id)b::text[], %(d_event)b::text[], %(d_event_pk)b::bigint[],
        %(d_account)b::text[], %(d_destination)b::text[], %(d_key)b::text[],
        %(d_url)b::text[], %(d_at)b::float8[], %(d_task)b::text[]
    ) WITH ORDINALITY AS x (
        id, event_id, event_pk, account_id, destination_id, key, url, at, task_id, n
    )
    JOIN ev ON ev.id = x.event_id
    ORDER BY x.n
    RETURNING 1
)
-- Wake the other instances for the new deliveries, and (polls) for a poll due now.
SELECT pg_notify('relay_work', kind)
FROM (
    SELECT 'deliveries' WHERE EXISTS (SELECT 1 FROM dl)
    UNION ALL
    SELECT 'polls' WHERE %(polls)s
) AS k (kind)

-- insert_deliveries --
-- New pending deliveries of stored events (d_event_pk), in the order listed, and the wake-up.
WITH dl AS (
    INSERT INTO deliveries (
        id, account_id, event_pk, destination_id, destination_key, url, status,
        next_attempt_at, created_at, updated_at, task_id, ordered
    )
    SELECT x.id, x.account_id, x.event_pk, x.destination_id, x.key, x.url, 'pending', x.at,
           x.at, x.at, x.task_id, %(ordered)s
    FROM unnest(
        %(d_id)b::text[], %(d_event)b::text[], %(d_event_pk)b::bigint[],
        %(d_account)b::text[], %(d_destination)b::text[], %(d_key)b::text[],
        %(d_url)b::text[], %(d_at)b::float8[], %(d_task)b::text[]
    ) WITH ORDINALITY AS x (
        id, event_id, event_pk, account_id, destination_id, key, url, at, task_id, n
    )
    ORDER BY x.n
    RETURNING 1
)
SELECT pg_notify('relay_work', 'deliveries') WHERE EXISTS (SELECT 1 FROM dl)

-- write_copies --
-- Output copies written with their task (relay.copies), in one statement: new ones inserted,
-- the others updated as the change left them. Writing a try's outcome ends the copy's lease:
-- whoever held it is done with it, or lost the task's version race. The task's row, written first in the
-- same transaction, keeps two writers of one task's copies apart.
INSERT INTO output_copies (
    id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by, object_key,
    size, sha256, content_type, stored_at, error, deleted_at, deleted_reason, tries,
    created_at, updated_at
)
SELECT id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by,
       object_key, size, sha256, content_type, stored_at, error, deleted_at, deleted_reason,
       tries, created_at, updated_at
FROM unnest(
    %(id)b::text[], %(account_id)b::text[], %(task_id)b::text[], %(kind)b::text[],
    %(state)b::text[], %(attempts)b::int[], %(next_attempt_at)b::float8[],
    %(announce_by)b::float8[], %(object_key)b::text[], %(size)b::bigint[],
    %(sha256)b::text[], %(content_type)b::text[], %(stored_at)b::float8[],
    %(error)b::text[], %(deleted_at)b::float8[], %(deleted_reason)b::text[],
    %(tries)b::text[], %(created_at)b::float8[], %(updated_at)b::float8[]
) WITH ORDINALITY AS x (
    id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by, object_key,
    size, sha256, content_type, stored_at, error, deleted_at, deleted_reason, tries,
    created_at, updated_at, n
)
ORDER BY n
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
    lease_until = CASE WHEN excluded.state = output_copies.state AND excluded.attempts = output_copies.attempts THEN output_copies.lease_until END,
    lease_holder = CASE WHEN excluded.state = output_copies.state AND excluded.attempts = output_copies.attempts THEN output_copies.lease_holder END

-- lock_subscription --
-- A live subscription FOR UPDATE: no fan-out to it meanwhile (fan-outs take it FOR KEY SHARE).
SELECT status
FROM destinations
WHERE id = %(id)s
  AND account_id = %(account_id)s
  AND kind = 'subscription'
  AND status <> 'deleted'
FOR UPDATE

-- disable_subscription --
-- It misses what was pending when it stopped, and everything from now on: enabling it
-- replays from missed_since.
WITH m AS (
    SELECT min(e.created_at) AS oldest
    FROM deliveries AS d
    JOIN events AS e ON e.pk = d.event_pk
    WHERE d.destination_id = %(id)s AND d.status = 'pending'
)
UPDATE destinations
SET status = 'disabled',
    disabled_reason = %(reason)s,
    disabled_at = %(now)s,
    missed_since = least(m.oldest, %(now)s),
    updated_at = %(now)s
FROM m
WHERE id = %(id)s

-- stop_pending_deliveries --
-- Attempts in flight still record, but cannot bring a stopped delivery back.
UPDATE deliveries
SET status = 'stopped', next_attempt_at = NULL, last_error = %(why)s, updated_at = %(now)s
WHERE destination_id = %(destination_id)s AND status = 'pending'


-- --- subscriptions (subscriptions.py) ------------------------------------------------------------

-- insert_subscription --
-- A subscription is its own destination key: its concurrency is counted on its id.
INSERT INTO destinations (
    id, account_id, kind, url, key, event_types, secret, description, headers, rate_limit,
    status, created_at, updated_at
)
VALUES (
    %(id)s, %(account_id)s, 'subscription', %(url)s, %(id)s, %(event_types)s, %(secret)s,
    %(description)s, %(headers)s, %(rate_limit)s, %(status)s, %(created_at)s, %(updated_at)s
)

-- get_subscription --
SELECT id, account_id, url, event_types, status, created_at, updated_at, description, headers,
       rate_limit, disabled_reason, disabled_at, failing_since, last_success_at,
       previous_secret_until
FROM destinations
WHERE id = %(id)s
  AND account_id = %(account_id)s
  AND kind = 'subscription'
  AND status <> 'deleted'

-- list_subscriptions --
-- Newest first, one page past the cursor (see list_tasks_desc).
SELECT pk, id, account_id, url, event_types, status, created_at, updated_at, description,
       headers, rate_limit, disabled_reason, disabled_at, failing_since, last_success_at,
       previous_secret_until
FROM destinations
WHERE account_id = %(account_id)s
  AND kind = 'subscription'
  AND status <> 'deleted'
  AND pk < coalesce(%(after)s::bigint, 9223372036854775807)
ORDER BY pk DESC
LIMIT %(limit)s

-- update_subscription --
-- Every field update_subscription may change (interface.SUBSCRIPTION_FIELDS): set_<field>
-- says whether it was given; a field not given keeps its value.
UPDATE destinations
SET url = CASE WHEN %(set_url)s THEN %(url)s ELSE url END,
    event_types = CASE WHEN %(set_event_types)s THEN %(event_types)s ELSE event_types END,
    description = CASE WHEN %(set_description)s THEN %(description)s ELSE description END,
    headers = CASE WHEN %(set_headers)s THEN %(headers)s ELSE headers END,
    rate_limit = CASE WHEN %(set_rate_limit)s THEN %(rate_limit)s ELSE rate_limit END,
    updated_at = %(now)s
WHERE id = %(id)s

-- redirect_pending_deliveries --
-- Pending deliveries go where the subscription now points.
UPDATE deliveries
SET url = %(url)s
WHERE destination_id = %(destination_id)s AND status = 'pending'

-- mark_subscription_deleted --
UPDATE destinations SET status = 'deleted', updated_at = %(now)s WHERE id = %(id)s

-- enable_subscription --
-- The old row (locked first) says whether it was disabled and since when it missed events:
-- what the caller replays.
UPDATE destinations AS d
SET status = 'active',
    disabled_reason = NULL,
    disabled_at = NULL,
    missed_since = NULL,
    failing_since = NULL,
    updated_at = %(now)s
FROM (
    SELECT id, status, missed_since
    FROM destinations
    WHERE id = %(id)s
      AND account_id = %(account_id)s
      AND kind = 'subscription'
      AND status <> 'deleted'
    FOR UPDATE
) AS old
WHERE d.id = old.id
RETURNING old.status, old.missed_since

-- rotate_subscription_secret --
-- The previous secret keeps signing until previous_secret_until (the grace).
UPDATE destinations
SET previous_secret = secret,
    secret = %(secret)s,
    previous_secret_until = %(grace_until)s,
    updated_at = %(now)s
WHERE id = %(id)s
  AND account_id = %(account_id)s
  AND kind = 'subscription'
  AND status <> 'deleted'

-- rotate_callback_secret --
UPDATE accounts
SET previous_callback_secret = callback_secret,
    callback_secret = %(secret)s,
    previous_callback_secret_until = %(grace_until)s
WHERE id = %(account_id)s

-- failing_subscriptions --
SELECT id, account_id, failing_since
FROM destinations
WHERE kind = 'subscription'
  AND status = 'active'
  AND failing_since IS NOT NULL
  AND failing_since <= %(since)s
ORDER BY id

-- replay_target --
SELECT key, url, event_types
FROM destinations
WHERE id = %(id)s
  AND account_id = %(account_id)s
  AND kind = 'subscription'
  AND status = 'active'

-- lock_replay_target --
-- Replaying adds deliveries to it, as a fan-out does: the same lock against a stop.
SELECT key, url, event_types
FROM destinations
WHERE id = %(id)s
  AND account_id = %(account_id)s
  AND kind = 'subscription'
  AND status = 'active'
FOR KEY SHARE

-- replay_window --
-- One bounded step of a replay or its count: the next %(scan)s events of the account created
-- in [since, until), past the cursor (after_at, after_pk), in (created_at, pk) order: a range
-- of events_account_time, however long the history (an empty window reads nothing). Each
-- says whether the replay sends it: task events only (a test event was one subscription's,
-- never anyone's to replay) of the types the subscription takes, and with only_failed only
-- those whose deliveries to it failed or were stopped and never succeeded (deliveries_event,
-- per event read: a column, not a filter, so the step stays bounded however rare they are).
SELECT pk, id, task_id, created_at,
       task_id IS NOT NULL
       AND type = ANY(%(types)b::text[])
       AND (NOT %(only_failed)s OR (
           EXISTS (
               SELECT 1 FROM deliveries AS d
               WHERE d.event_pk = e.pk AND d.destination_id = %(destination_id)s
                 AND d.status IN ('failed', 'stopped')
           )
           AND NOT EXISTS (
               SELECT 1 FROM deliveries AS d
               WHERE d.event_pk = e.pk AND d.destination_id = %(destination_id)s
                 AND d.status = 'succeeded'
           )
       ))
FROM events AS e
WHERE account_id = %(account_id)s
  AND created_at >= %(since)s AND created_at < %(until)s
  AND (created_at, pk) > (%(after_at)s::float8, %(after_pk)s::bigint)
ORDER BY created_at, pk
LIMIT %(scan)s

-- failed_event_pks --
-- The events whose deliveries to the subscription failed or were stopped, up to %(cap)s
-- (deliveries_destination): when they are few, an only_failed replay reads them alone
-- (replay_failed_window) instead of walking its window.
SELECT DISTINCT event_pk FROM deliveries
WHERE destination_id = %(destination_id)s AND status IN ('failed', 'stopped')
LIMIT %(cap)s

-- replay_failed_window --
-- As replay_window with only_failed, over the events of failed_event_pks alone (at most a
-- step's worth): the same rows, in the same order, past the same cursor, without reading
-- the events that never failed.
SELECT pk, id, task_id, created_at,
       task_id IS NOT NULL
       AND type = ANY(%(types)b::text[])
       AND NOT EXISTS (
           SELECT 1 FROM deliveries AS d
           WHERE d.event_pk = e.pk AND d.destination_id = %(destination_id)s
             AND d.status = 'succeeded'
       )
FROM events AS e
WHERE pk = ANY(%(failed)b::bigint[])
  AND account_id = %(account_id)s
  AND created_at >= %(since)s AND created_at < %(until)s
  AND (created_at, pk) > (%(after_at)s::float8, %(after_pk)s::bigint)
ORDER BY created_at, pk
LIMIT %(scan)s

-- test_delivery_target --
SELECT key, url, secret, previous_secret, previous_secret_until, headers, rate_limit
FROM destinations
WHERE id = %(id)s
  AND account_id = %(account_id)s
  AND kind = 'subscription'
  AND status <> 'deleted'

-- insert_test_delivery --
-- A test event (no task) and its one delivery, leased at once to the caller, who sends it now.
WITH ev AS (
    INSERT INTO events (
        id, account_id, task_id, type, sequence, created_at, body, url_expires_at
    )
    VALUES (%(event)s, %(account)s, NULL, %(type)s, 0, %(created)s, %(body)s, NULL)
    RETURNING pk
)
INSERT INTO deliveries (
    id, account_id, event_pk, destination_id, destination_key, url, status, next_attempt_at,
    lease_owner, lease_until, lease_holder, created_at, updated_at
)
SELECT %(id)s, %(account)s, ev.pk, %(destination)s, %(key)s, %(url)s, 'pending', %(now)s,
       %(owner)s, %(until)s, %(holder)s, %(now)s, %(now)s
FROM ev
RETURNING pk

-- --- idempotency keys (idempotency.py) -----------------------------------------------------------

-- reserve_idempotency_key --
-- ON CONFLICT waits for a concurrent first request's row to commit; the read after it
-- (idempotent_reply), a statement of its own, then sees that row. A later request with the
-- same body takes over a reservation whose holder's lease ran out unanswered (a dead
-- instance). A row returned: this request answers.
INSERT INTO idempotency_keys (account_id, key, request_hash, created_at, owner, lease_until)
VALUES (%(account_id)s, %(key)s, %(request_hash)s, %(now)s, %(owner)s, %(lease_until)s)
ON CONFLICT (account_id, key) DO UPDATE
SET owner = excluded.owner, lease_until = excluded.lease_until
WHERE idempotency_keys.status_code IS NULL
  AND idempotency_keys.lease_until < %(now)s
  AND idempotency_keys.request_hash = excluded.request_hash
RETURNING 1

-- reserve_idempotency_key_to_submit --
-- reserve_idempotency_key for a request that submits a task: when a row comes back (this
-- request now holds the key), it carries the latest submission under the key as well
-- (submission_for_key's columns, all NULL when there is none), so one round trip does both.
-- The submission is read in this statement's snapshot, as a statement of its own right after
-- would read it: only the request holding the key begins a submission under it.
WITH reserved AS (
    INSERT INTO idempotency_keys (account_id, key, request_hash, created_at, owner, lease_until)
    VALUES (%(account_id)s, %(key)s, %(request_hash)s, %(now)s, %(owner)s, %(lease_until)s)
    ON CONFLICT (account_id, key) DO UPDATE
    SET owner = excluded.owner, lease_until = excluded.lease_until
    WHERE idempotency_keys.status_code IS NULL
      AND idempotency_keys.lease_until < %(now)s
      AND idempotency_keys.request_hash = excluded.request_hash
    RETURNING 1
)
SELECT s.id, s.account_id, s.task_id, s.provider, s.state, s.body_hash, s.registration,
       s.idempotency_key, s.provider_task_id, s.detail, s.created_at, s.updated_at,
       s.lease_until, s.looks, s.next_look_at
FROM reserved
LEFT JOIN LATERAL (
    SELECT id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
           provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
    FROM submissions
    WHERE account_id = %(account_id)s AND idempotency_key = %(key)s
    ORDER BY pk DESC
    LIMIT 1
) s ON true

-- idempotent_reply --
SELECT request_hash, status_code, body, lease_until
FROM idempotency_keys
WHERE account_id = %(account_id)s AND key = %(key)s

-- renew_idempotency_key --
UPDATE idempotency_keys
SET lease_until = %(lease_until)s
WHERE account_id = %(account_id)s AND key = %(key)s AND owner = %(owner)s
  AND status_code IS NULL

-- finish_idempotency_key --
UPDATE idempotency_keys
SET status_code = %(status_code)s, body = %(body)s
WHERE account_id = %(account_id)s AND key = %(key)s AND owner = %(owner)s

-- forget_idempotency_key --
DELETE FROM idempotency_keys
WHERE account_id = %(account_id)s AND key = %(key)s AND owner = %(owner)s
  AND status_code IS NULL

-- prune_idempotency_keys --
DELETE FROM idempotency_keys WHERE created_at < %(before)s


-- --- submissions (submissions.py) ----------------------------------------------------------------

-- insert_submission --
INSERT INTO submissions (
    id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
    provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
) VALUES (
    %(id)s, %(account_id)s, %(task_id)s, %(provider)s, %(state)s, %(body_hash)s,
    %(registration)s, %(idempotency_key)s, %(provider_task_id)s, %(detail)s,
    %(created_at)s, %(updated_at)s, %(lease_until)s, %(looks)s, %(next_look_at)s
)
ON CONFLICT (id) DO NOTHING

-- renew_submission --
UPDATE submissions SET lease_until = %(lease_until)s WHERE id = %(id)s AND state = 'pending'

-- settle_submission --
-- Only an open submission moves: a settled one (accepted, not accepted, abandoned) is final.
UPDATE submissions
SET state = %(state)s, detail = %(detail)s, updated_at = %(now)s,
    next_look_at = %(next_look_at)s,
    provider_task_id = coalesce(%(provider_task_id)s, provider_task_id)
WHERE id = %(id)s AND state IN ('pending', 'uncertain')

-- note_look --
-- A look at the provider's list that settled nothing: when to look again, and why not yet.
UPDATE submissions
SET detail = %(detail)s, updated_at = %(now)s, looks = looks + 1,
    next_look_at = %(next_look_at)s
WHERE id = %(id)s AND state = 'uncertain'

-- accept_submission --
-- In the transaction that creates its task (create_task), which no row here undoes. An
-- abandoned one is accepted too: a person said nothing was made, and yet here it is.
UPDATE submissions
SET state = 'accepted', provider_task_id = %(provider_task_id)s, updated_at = %(now)s,
    next_look_at = NULL
WHERE id = %(id)s AND state IN ('pending', 'uncertain', 'abandoned')
RETURNING id

-- get_submission --
SELECT id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
       provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
FROM submissions
WHERE id = %(id)s AND account_id = %(account_id)s

-- submission_for_key --
-- The latest with this key: a key may be used again once its reservation was pruned.
SELECT id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
       provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
FROM submissions
WHERE account_id = %(account_id)s AND idempotency_key = %(key)s
ORDER BY pk DESC
LIMIT 1

-- list_submissions --
SELECT pk, id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
       provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
FROM submissions
WHERE account_id = %(account_id)s AND pk < coalesce(%(after)s::bigint, 9223372036854775807)
ORDER BY pk DESC
LIMIT %(limit)s

-- list_submissions_in_state --
-- A query of its own, not an "OR IS NULL" arm (see list_tasks): the index on
-- (account_id, state, pk) serves it whatever the account's history.
SELECT pk, id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
       provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
FROM submissions
WHERE account_id = %(account_id)s AND state = %(state)s
  AND pk < coalesce(%(after)s::bigint, 9223372036854775807)
ORDER BY pk DESC
LIMIT %(limit)s

-- due_submissions --
-- Every account's uncertain submissions whose next look has come, the longest waiting first;
-- past RECONCILE_FOR they are a person's (the provider forgets tasks after a while).
SELECT id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
       provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
FROM submissions
WHERE state = 'uncertain' AND next_look_at <= %(now)s AND created_at >= %(since)s
ORDER BY next_look_at
LIMIT %(limit)s

-- rival_submissions --
-- Other open submissions to the provider whose window meets [start, end]: while one is open,
-- a task found in that window might be its, and is handed to nobody.
SELECT id, account_id, task_id, provider, state, body_hash, registration, idempotency_key,
       provider_task_id, detail, created_at, updated_at, lease_until, looks, next_look_at
FROM submissions
WHERE provider = %(provider)s
  AND state IN ('pending', 'uncertain')
  AND created_at <= %(end)s
  AND lease_until >= %(start)s
  AND id <> %(id)s

-- expire_submissions --
-- Pending past its lease: the instance that was asking the provider died. Looked for at once.
UPDATE submissions
SET state = 'uncertain', detail = %(detail)s, updated_at = %(now)s, next_look_at = %(now)s
WHERE state = 'pending' AND lease_until < %(now)s

-- known_provider_task_ids --
-- Which of these provider task ids the relay tracks or a submission already holds.
SELECT provider_task_id FROM tasks
WHERE provider = %(provider)s AND provider_task_id = ANY(%(ids)s::text[])
UNION
SELECT provider_task_id FROM submissions
WHERE provider = %(provider)s AND provider_task_id = ANY(%(ids)s::text[])

-- uncertain_submissions --
SELECT count(*) FROM submissions WHERE state = 'uncertain'

-- prune_submissions --
-- Settled ones, with the Idempotency-Keys they answered; open ones stay until settled.
DELETE FROM submissions
WHERE state IN ('accepted', 'not_accepted', 'abandoned') AND updated_at < %(before)s


-- --- output copies (copies.py) ------------------------------------------------------------------

-- claim_due_copies --
-- As claim_due_polls: due copies are locked as they are read, skipping rows another claim
-- holds, so two instances never take the same copy while a lease holds; a crashed
-- instance's leases simply expire. The lease names the instance (owner) and this store
-- object (holder: what release_leases frees). no_sync: a lease is bookkeeping (see
-- claim_due_deliveries).
WITH no_sync AS (SELECT set_config('synchronous_commit', 'off', true) AS off),
due AS MATERIALIZED (
    SELECT id
    FROM output_copies, no_sync
    WHERE state = 'pending'
      AND next_attempt_at <= %(now)s
      AND (lease_until IS NULL OR lease_until < %(now)s)
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE OF output_copies SKIP LOCKED
),
claimed AS (
    UPDATE output_copies
    SET lease_owner = %(owner)s, lease_until = %(until)s, lease_holder = %(holder)s
    WHERE id = ANY(ARRAY(SELECT id FROM due))
    RETURNING id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by,
              object_key, size, sha256, content_type, stored_at, error, deleted_at,
              deleted_reason, tries, created_at, updated_at
)
SELECT id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by,
       object_key, size, sha256, content_type, stored_at, error, deleted_at, deleted_reason,
       tries, created_at, updated_at
FROM claimed
ORDER BY next_attempt_at, id

-- renew_copy --
UPDATE output_copies
SET lease_until = %(lease_until)s
WHERE id = %(id)s AND lease_owner = %(owner)s AND state = 'pending'

-- release_copy --
UPDATE output_copies
SET lease_owner = NULL, lease_until = NULL, lease_holder = NULL
WHERE id = %(id)s AND lease_owner = %(owner)s

-- get_copy --
SELECT id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by,
       object_key, size, sha256, content_type, stored_at, error, deleted_at, deleted_reason,
       tries, created_at, updated_at
FROM output_copies
WHERE id = %(id)s

-- task_copies --
-- The video first, then the last frame.
SELECT id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by,
       object_key, size, sha256, content_type, stored_at, error, deleted_at, deleted_reason,
       tries, created_at, updated_at
FROM output_copies
WHERE task_id = %(task_id)s
ORDER BY CASE kind WHEN 'video' THEN 0 ELSE 1 END, kind

-- due_announcements --
-- The tasks whose task.succeeded has waited for their copies as long as it may: each once,
-- the longest waiting first.
SELECT account_id, task_id
FROM output_copies
WHERE announce_by <= %(now)s
GROUP BY account_id, task_id
ORDER BY min(announce_by), task_id
LIMIT %(limit)s

-- stored_copies_before --
-- Retention: stored before a time, oldest first.
SELECT id, account_id, task_id, kind, state, attempts, next_attempt_at, announce_by,
       object_key, size, sha256, content_type, stored_at, error, deleted_at, deleted_reason,
       tries, created_at, updated_at
FROM output_copies
WHERE state = 'stored' AND stored_at < %(before)s
ORDER BY stored_at, id
LIMIT %(limit)s

-- next_copy_at --
-- The next try or announcement after a time: two index seeks.
SELECT min(at)
FROM (
    SELECT min(next_attempt_at)
    FROM output_copies
    WHERE state = 'pending' AND next_attempt_at > %(after)s
    UNION ALL
    SELECT min(announce_by)
    FROM output_copies
    WHERE announce_by > %(after)s
) AS x (at)


-- --- metrics (metrics.py) ------------------------------------------------------------------------

-- count_tasks_by_status --
-- An index-only scan of (account_id, status, pk) where the visibility map allows; /metrics
-- caches the answer.
SELECT status, count(*) FROM tasks GROUP BY status

-- due_deliveries --
-- The partial due index bounds this to what is due, however long the history.
SELECT count(*), min(next_attempt_at)
FROM deliveries
WHERE next_attempt_at <= %(now)s AND (lease_until IS NULL OR lease_until < %(now)s)

-- copies_by_state --
-- Output copies by state, with their bytes (those of 'stored' are the bytes kept), counted
-- per (kind, state), the order of the covering index (an index-only scan where the
-- visibility map allows), then summed by the caller; /metrics caches it.
SELECT state, count(*), coalesce(sum(size), 0) FROM output_copies GROUP BY kind, state


-- --- retention (retention.py) --------------------------------------------------------------------

-- prune_history --
-- Events with nothing left to send: a pending delivery keeps its event, however old.
-- SKIP LOCKED: a batch never waits on rows another instance is writing. Short batches lock
-- only the rows they delete; deliveries and attempts go with their events.
WITH doomed AS (
    SELECT pk
    FROM events AS e
    WHERE created_at < %(before)s
      AND NOT EXISTS (
        SELECT 1 FROM deliveries AS d WHERE d.event_pk = e.pk AND d.status = 'pending'
      )
    ORDER BY created_at, pk  -- the oldest first, a range of events_time
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
gone_deliveries AS (
    DELETE FROM deliveries WHERE event_pk IN (SELECT pk FROM doomed) RETURNING pk
),
gone_attempts AS (
    DELETE FROM attempts WHERE delivery_pk IN (SELECT pk FROM gone_deliveries)
)
DELETE FROM events WHERE pk IN (SELECT pk FROM doomed)

-- prune_finished_tasks --
-- Finished tasks not updated since %(before)s whose events are all gone (prune_history took
-- them; an event kept for a pending delivery keeps its task), the oldest first: a range of
-- tasks_finished (an open task is never in it). With them go their callback destinations
-- (nothing left delivered to them) and the records of their copies that are no more; a
-- stored copy's record stays, its stable link serving it until outputs.retention_days.
WITH doomed AS (
    SELECT id
    FROM tasks AS t
    WHERE status IN ('succeeded', 'failed', 'expired', 'cancelled')
      AND updated_at < %(before)s
      AND NOT EXISTS (
        SELECT 1 FROM events AS e WHERE e.account_id = t.account_id AND e.task_id = t.id
      )
    ORDER BY updated_at, pk
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
gone_copies AS (
    DELETE FROM output_copies
    WHERE task_id IN (SELECT id FROM doomed) AND state IN ('deleted', 'failed')
),
gone_callbacks AS (
    DELETE FROM destinations AS dst
    WHERE kind = 'callback' AND task_id IN (SELECT id FROM doomed)
      AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.destination_id = dst.id)
)
DELETE FROM tasks WHERE id IN (SELECT id FROM doomed)

-- ---------------------------------------------------------------------------------------
-- usage.py: what an account's tasks cost
-- ---------------------------------------------------------------------------------------

-- task_costs --
-- The priced tasks an account finished in [since, until), oldest first (tasks_account_costs).
SELECT completed_at, provider, data, cost_amount, cost_currency
FROM tasks
WHERE account_id = %(account_id)s AND cost_amount IS NOT NULL
  AND completed_at >= %(since)s AND completed_at < %(until)s
ORDER BY completed_at

-- open_estimates --
-- What the account's unfinished tasks likely cost (their estimate when submitted): a budget
-- counts them until they finish (tasks_account_status: only the open ones are read).
SELECT data::jsonb -> 'estimate' ->> 'amount', data::jsonb -> 'estimate' ->> 'currency'
FROM tasks
WHERE account_id = %(account_id)s AND status IN ('queued', 'running')
  AND data::jsonb -> 'estimate' ->> 'amount' IS NOT NULL

-- set_budget --
INSERT INTO account_budgets (account_id, period, amount, currency, updated_at)
VALUES (%(account_id)s, %(period)s, %(amount)s, %(currency)s, %(now)s)
ON CONFLICT (account_id) DO UPDATE
SET period = excluded.period, amount = excluded.amount, currency = excluded.currency,
    updated_at = excluded.updated_at

-- clear_budget --
DELETE FROM account_budgets WHERE account_id = %(account_id)s

-- get_budget --
SELECT period, amount, currency FROM account_budgets WHERE account_id = %(account_id)s

-- ---------------------------------------------------------------------------------------
-- overview.py: the dashboard's overview and search, bounded however long the history
-- ---------------------------------------------------------------------------------------

-- overview_count_status --
-- One status's tasks of an account, counted up to the cap: a range of the index
-- (account_id, status, pk) that stops at the cap.
SELECT count(*) FROM (
    SELECT 1 FROM tasks WHERE account_id = %(account_id)s AND status = %(status)s
    LIMIT %(cap)s
) AS capped

-- overview_recent_tasks --
-- The account's latest tasks: tasks_account backwards, stopping at the limit.
SELECT status, provider, created_at, completed_at
FROM tasks
WHERE account_id = %(account_id)s
ORDER BY pk DESC
LIMIT %(limit)s

-- overview_recent_deliveries --
-- The deliveries of the account's latest events with their attempts (NULLs: none yet):
-- events_account backwards, then deliveries_event and attempts_delivery.
SELECT d.pk, d.status, e.created_at, a.latency_ms, a.outcome
FROM (
    SELECT pk, created_at FROM events WHERE account_id = %(account_id)s
    ORDER BY pk DESC LIMIT %(events)s
) AS e
JOIN deliveries AS d ON d.event_pk = e.pk
LEFT JOIN attempts AS a ON a.delivery_pk = d.pk

-- overview_backlog --
-- The account's deliveries due now and not leased, up to the cap: the partial due index
-- read in order (the first row is the oldest), other accounts' rows skipped.
SELECT count(*), min(next_attempt_at) FROM (
    SELECT next_attempt_at FROM deliveries
    WHERE next_attempt_at <= %(now)s AND account_id = %(account_id)s
      AND (lease_until IS NULL OR lease_until < %(now)s)
    ORDER BY next_attempt_at
    LIMIT %(cap)s
) AS due

-- account_provider_task --
-- The search box's provider task id: one probe of UNIQUE (provider, provider_task_id).
SELECT id FROM tasks
WHERE provider = %(provider)s AND provider_task_id = %(provider_task_id)s
  AND account_id = %(account_id)s

-- last_event_position --
-- Where the live event stream (relay.streams) starts tailing: the latest event's pk.
SELECT coalesce(max(pk), 0) FROM events

-- events_after --
-- The stream's tail: every account's events after a position, in order (the primary key).
-- Concurrent writers commit out of pk order: relay.streams.tail looks again for the gaps.
SELECT pk, id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE pk > %(after)s
ORDER BY pk
LIMIT %(limit)s

-- event_position --
-- Where a stream resumed with Last-Event-ID starts (the account's own events only).
SELECT pk FROM events WHERE id = %(event_id)s AND account_id = %(account_id)s

-- event_positions_after --
-- The tail's place while no stream is open: positions only, no bodies.
SELECT pk FROM events WHERE pk > %(after)s ORDER BY pk LIMIT %(limit)s

-- events_at --
-- Events at positions the tail skipped while their writers had not committed.
SELECT pk, id, account_id, task_id, type, sequence, created_at, body, url_expires_at
FROM events
WHERE pk = ANY(%(positions)s)
ORDER BY pk

-- accounts_wanting --
-- The accounts with an active subscription whose filter names %(type)s (an operational event
-- announced to every account that asked for it: relay.operational).
SELECT DISTINCT account_id
FROM destinations
WHERE kind = 'subscription' AND status = 'active' AND event_types IS NOT NULL
  AND event_types::jsonb ? %(type)s
ORDER BY account_id
