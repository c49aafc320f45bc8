-- The event catalog (CONTRACT §7.4): each topic with its description, the JSON Schema of its
-- messages and an example message (JSON text; NULL: none). `version` moves on every change,
-- so a node's compiled schema is known stale by one point read. Seeded at start-up from the
-- topics file (missing topics only).
CREATE TABLE topic_catalog (
    topic TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    schema TEXT,
    example TEXT,
    version BIGINT NOT NULL DEFAULT 1,
    updated_at BIGINT NOT NULL DEFAULT 0
);
