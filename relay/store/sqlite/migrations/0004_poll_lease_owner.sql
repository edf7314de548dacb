-- Who holds a task's poll lease (NULL: nobody), as deliveries record their lease_owner: the
-- claim sets it, and save_task and release_leases clear it with poll_lease_until.
ALTER TABLE tasks ADD COLUMN poll_lease_owner TEXT;
