-- hookd schema for SQLite. Times are unix milliseconds.

CREATE TABLE merchants (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    code        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'merchant')),
    merchant_id INTEGER REFERENCES merchants(id),
    key_hash    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    CHECK ((role = 'admin') = (merchant_id IS NULL))
);

-- Sessions are stored by the SHA-256 of their id, so a copy of the database logs nobody in.
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE webhooks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_id   INTEGER NOT NULL REFERENCES merchants(id),
    is_active     INTEGER NOT NULL,
    topics        TEXT NOT NULL,
    url           TEXT NOT NULL,
    extra_headers TEXT NOT NULL,
    secret_key    TEXT NOT NULL,
    increment_id  INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);
CREATE INDEX webhooks_merchant ON webhooks (merchant_id, id);

-- The subscription index: one row per (webhook, pattern as written). Publishing looks up
-- the three keys that can match a topic (itself, resource:*, *), never scanning webhooks.
CREATE TABLE webhook_topics (
    merchant_id INTEGER NOT NULL,
    pattern     TEXT NOT NULL,
    webhook_id  INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    PRIMARY KEY (merchant_id, pattern, webhook_id)
) WITHOUT ROWID;
CREATE INDEX webhook_topics_webhook ON webhook_topics (webhook_id);
