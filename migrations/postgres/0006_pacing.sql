-- Pacing (CONTRACT §6.2). An ordered webhook's claim takes only its head, the queued payload
-- with the lowest increment id; this index finds it without walking past the delivered ones.
CREATE INDEX deliveries_head ON deliveries (webhook_id, increment_id)
    WHERE status IN ('pending', 'retrying');

-- One `max_rate` token bucket per webhook, shared by every node: `pace_at` is the bucket's
-- virtual time in milliseconds (see src/store/pace.rs). Claims lock the row, so nodes take
-- tokens one after the other. A row is made on a webhook's first paced claim. Kept out of
-- `webhooks`, whose rows publishes lock while they number payloads.
CREATE TABLE webhook_pace (
    webhook_id BIGINT PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    pace_at    DOUBLE PRECISION NOT NULL
);
