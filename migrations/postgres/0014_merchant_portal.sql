-- The merchant portal (CONTRACT §7.7).
-- A webhook's description, shown as its name.
ALTER TABLE webhooks ADD COLUMN description TEXT NOT NULL DEFAULT '';
-- Health reads one webhook's attempts of the last 24 hours: each attempt names its webhook
-- (written with the outcome), and the index covers what health reads, so the query is one
-- range of this index (an index-only scan). Attempts logged before this migration have no
-- webhook (NULL) and are not indexed; those of the last day are filled in here.
ALTER TABLE delivery_attempts ADD COLUMN webhook_id BIGINT;
UPDATE delivery_attempts a SET webhook_id = d.webhook_id FROM deliveries d
WHERE d.id = a.delivery_id AND a.attempted_at >= (extract(epoch FROM now()) * 1000)::BIGINT - 86400000;
CREATE INDEX delivery_attempts_health ON delivery_attempts (webhook_id, attempted_at, http_status, duration_ms)
    WHERE webhook_id IS NOT NULL;
-- The console's deliveries page filters one merchant's payloads by status, newest first
-- (keyset on id).
CREATE INDEX deliveries_by_merchant_status ON deliveries (merchant_id, status, id);
