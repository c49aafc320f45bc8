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

-- Published events. The message itself lives in each payload's body.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_id     INTEGER NOT NULL REFERENCES merchants(id),
    topic           TEXT NOT NULL,
    idempotency_key TEXT,
    payloads        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX events_idempotency ON events (merchant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_created ON events (created_at);

-- One payload per (event, matching webhook): what webhook.deliveries lists. The body is
-- rendered once, at publish, and every attempt sends exactly those bytes. No foreign key to
-- webhooks: a deleted webhook's payloads stay, canceled, in the log.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id       INTEGER NOT NULL,
    merchant_id      INTEGER NOT NULL,
    event_id         INTEGER,
    increment_id     INTEGER NOT NULL,
    topic            TEXT NOT NULL,
    body             BLOB NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'retrying', 'success', 'failed', 'canceled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until      INTEGER,
    last_http_status INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER
);
-- The work queue: only payloads still to be sent are in it.
CREATE INDEX deliveries_queue ON deliveries (webhook_id, next_attempt_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_finished ON deliveries (finished_at) WHERE finished_at IS NOT NULL;

-- Every attempt, kept (never overwritten).
CREATE TABLE delivery_attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id     INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempted_at    INTEGER NOT NULL,
    http_status     INTEGER,
    duration_ms     INTEGER NOT NULL,
    response_prefix TEXT NOT NULL,
    error           TEXT
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
