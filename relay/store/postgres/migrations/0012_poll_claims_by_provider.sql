-- Polls are claimed per provider, each no more than it can begin soon
-- (relay.polling.claims): its due tasks in due order.
CREATE INDEX tasks_poll_due_by_provider ON tasks (provider, next_poll_at, pk)
WHERE next_poll_at IS NOT NULL;
-- The tasks this store object leased, which release_poll_leases frees (a handful, not a scan).
CREATE INDEX tasks_poll_leased ON tasks (poll_lease_holder) WHERE poll_lease_holder IS NOT NULL;
