-- Keys have a lifecycle: a public id (derived from the hash, as relay.keys.key_id does, so keys
-- issued before this have one too), the first characters of the key for people to recognise it
-- (unknown for older keys), and when the key stops working (NULL: it does not; a time in the
-- future: a rotation's grace).
ALTER TABLE api_keys ADD COLUMN id TEXT;
ALTER TABLE api_keys ADD COLUMN prefix TEXT;
ALTER TABLE api_keys ADD COLUMN revoked_at REAL;
UPDATE api_keys SET id = 'key_' || substr(key_hash, 1, 24);
CREATE UNIQUE INDEX api_keys_id ON api_keys (id);
CREATE INDEX api_keys_account ON api_keys (account_id, created_at);
CREATE INDEX api_keys_prefix ON api_keys (prefix) WHERE prefix IS NOT NULL;

-- A dashboard sign-in, checked on every dashboard request: it holds while its row does, its
-- key is active and it has not expired. Signing out deletes the row, so a copy of the cookie
-- is worthless afterwards; revoking (or deleting) the key ends it at once.
CREATE TABLE dashboard_sessions (
    id         TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
