-- Pacing (CONTRACT §6.2). An ordered webhook's claim takes only its head, the queued payload
-- with the lowest increment id; this index finds it without walking past the delivered ones.
-- (`max_rate` buckets live in memory on SQLite: one process serves one file.)
CREATE INDEX deliveries_head ON deliveries (webhook_id, increment_id)
    WHERE status IN ('pending', 'retrying');
