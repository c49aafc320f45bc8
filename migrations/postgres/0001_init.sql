-- hookd schema for PostgreSQL. Times are unix milliseconds (BIGINT), as in the SQLite schema,
-- so both stores share one notion of time and the same Rust types.

CREATE TABLE merchants (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'merchant')),
    merchant_id BIGINT REFERENCES merchants(id),
    key_hash    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    CHECK ((role = 'admin') = (merchant_id IS NULL))
);

-- Sessions are stored by the SHA-256 of their id, so a copy of the database logs nobody in.
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX sessions_user ON sessions (user_id);

-- Every publish bumps increment_id on its webhooks' rows; no index covers that column, so the
-- spare room left on each page lets those updates stay HOT (no index writes).
CREATE TABLE webhooks (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id   BIGINT NOT NULL REFERENCES merchants(id),
    is_active     BOOLEAN NOT NULL,
    topics        TEXT NOT NULL,
    url           TEXT NOT NULL,
    extra_headers TEXT NOT NULL,
    secret_key    TEXT NOT NULL,
    increment_id  BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
) WITH (fillfactor = 70);
CREATE INDEX webhooks_merchant ON webhooks (merchant_id, id);

-- The subscription index: one row per (webhook, pattern as written). Publishing looks up
-- the three keys that can match a topic (itself, resource:*, *), never scanning webhooks.
CREATE TABLE webhook_topics (
    merchant_id BIGINT NOT NULL,
    pattern     TEXT NOT NULL,
    webhook_id  BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    PRIMARY KEY (merchant_id, pattern, webhook_id)
);
CREATE INDEX webhook_topics_webhook ON webhook_topics (webhook_id);

-- Published events. The message itself lives in each payload's body.
CREATE TABLE events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id     BIGINT NOT NULL REFERENCES merchants(id),
    topic           TEXT NOT NULL,
    idempotency_key TEXT,
    payloads        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX events_idempotency ON events (merchant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_created ON events (created_at);

-- One payload per (event, matching webhook): what webhook.deliveries lists. The body is
-- rendered once, at publish, and every attempt sends exactly those bytes. No foreign key to
-- webhooks: a deleted webhook's payloads stay, canceled, in the log.
CREATE TABLE deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       BIGINT NOT NULL,
    merchant_id      BIGINT NOT NULL,
    event_id         BIGINT,
    increment_id     BIGINT NOT NULL,
    topic            TEXT NOT NULL,
    body             BYTEA NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'retrying', 'success', 'failed', 'canceled')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    last_http_status BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    finished_at      BIGINT
);
-- The work queue: only payloads still to be sent are in it. Claims read it in
-- (next_attempt_at, id) order per webhook; the queue scan hops across its webhook ids.
CREATE INDEX deliveries_queue ON deliveries (webhook_id, next_attempt_at, id)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_finished ON deliveries (finished_at) WHERE finished_at IS NOT NULL;

-- Every attempt, kept (never overwritten).
CREATE TABLE delivery_attempts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id     BIGINT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempted_at    BIGINT NOT NULL,
    http_status     BIGINT,
    duration_ms     BIGINT NOT NULL,
    response_prefix TEXT NOT NULL,
    error           TEXT
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
