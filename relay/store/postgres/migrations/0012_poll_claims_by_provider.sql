-- Polls are claimed per provider, each no more than it can begin soon
-- (relay.polling.claims): its due tasks in due order. A claim now moves next_poll_at to the
-- lease's end (so no claim steps over leased rows), which makes it an update of an indexed
-- column: no longer a HOT update, the price of a due index that holds only what is due.
CREATE INDEX tasks_poll_due_by_provider ON tasks (provider, next_poll_at, pk)
WHERE next_poll_at IS NOT NULL;
