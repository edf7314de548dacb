-- The instance that took a task's poll lease (the app's owner id, as deliveries' lease_owner),
-- beside poll_lease_holder, the store object that took it (what release_leases frees).
-- NULL while no lease holds. No default and no rewrite: adding a nullable column is instant.
ALTER TABLE tasks ADD COLUMN poll_lease_owner text;
