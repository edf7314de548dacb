-- What the API, replays and retention filter on, so no request reads the whole history on
-- the one reader or writer thread:
-- - a replay (and its count) walks an account's events by time, in bounded batches
--   ((created_at, pk) order: the rowid closes each entry);
CREATE INDEX events_account_time ON events (account_id, created_at);
-- - retention picks the oldest events, wherever the account;
CREATE INDEX events_time ON events (created_at);
-- - the feed's delivery_status filter walks an account's deliveries in that status in event
--   order (GET /v1/events?delivery_status=failed reads the failed ones only);
CREATE INDEX deliveries_account_status ON deliveries (account_id, status, event_pk);
-- - retention prunes finished tasks past it, oldest first; an open task is never in it.
CREATE INDEX tasks_finished ON tasks (updated_at)
    WHERE status IN ('succeeded', 'failed', 'expired', 'cancelled');
