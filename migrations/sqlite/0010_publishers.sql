-- Provisioning (CONTRACT §7.1): a third role, `publisher`, with no merchant of its own and
-- optionally limited to some merchants (merchant_codes: comma-separated codes, '' = any);
-- merchants get an optional display name.
-- SQLite cannot change a CHECK constraint, so `users` is rebuilt with the same ids; the
-- rebuild drops the old table (which ends its sessions by cascade), so the sessions are
-- kept aside and put back.
ALTER TABLE merchants ADD COLUMN name TEXT;

CREATE TABLE users_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'merchant', 'publisher')),
    merchant_id    INTEGER REFERENCES merchants(id),
    key_hash       TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    merchant_codes TEXT NOT NULL DEFAULT '',
    CHECK ((role = 'merchant') = (merchant_id IS NOT NULL))
);
INSERT INTO users_new (id, name, role, merchant_id, key_hash, created_at)
    SELECT id, name, role, merchant_id, key_hash, created_at FROM users;
CREATE TEMP TABLE sessions_kept AS SELECT id_hash, user_id, expires_at FROM sessions;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
INSERT INTO sessions (id_hash, user_id, expires_at) SELECT id_hash, user_id, expires_at FROM temp.sessions_kept;
DROP TABLE temp.sessions_kept;
