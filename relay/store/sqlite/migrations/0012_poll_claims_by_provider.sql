-- Polls are claimed per provider, each no more than it can begin soon
-- (relay.polling.claims): its due tasks in due order.
CREATE INDEX tasks_poll_due_by_provider ON tasks (provider, next_poll_at)
WHERE next_poll_at IS NOT NULL;
-- The leased tasks, which release_poll_leases frees at start-up (a handful, not a scan).
CREATE INDEX tasks_poll_leased ON tasks (poll_lease_until) WHERE poll_lease_until IS NOT NULL;
