-- What the API, replays and retention filter on, so no request reads the whole history
-- (relay/store/sqlite/migrations/0011_history_indexes.sql):
-- - a replay (and its count) walks an account's events by time, in bounded batches;
CREATE INDEX events_account_time ON events (account_id, created_at, pk);
-- - retention picks the oldest events, wherever the account;
CREATE INDEX events_time ON events (created_at, pk);
-- - the feed's delivery_status filter walks an account's deliveries in that status in event
--   order (GET /v1/events?delivery_status=failed reads the failed ones only);
CREATE INDEX deliveries_account_status ON deliveries (account_id, status, event_pk);
-- - retention prunes finished tasks past it, oldest first; an open task is never in it.
CREATE INDEX tasks_finished ON tasks (updated_at, pk)
    WHERE status IN ('succeeded', 'failed', 'expired', 'cancelled');
