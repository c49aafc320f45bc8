-- Webhook lifecycle (webhook.update, rotate_secret, payloads, recover, delivery.list).
-- `version` moves with every change of a webhook's target (URL, headers, secrets): the claim
-- returns it, so every node's dispatcher reloads a target it has cached once it changed.
-- During a secret's overlap the previous key signs too, until `previous_expires_at`.
-- None of these columns is indexed, so publishes' increment_id bumps stay HOT.
ALTER TABLE webhooks ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN previous_secret_key TEXT;
ALTER TABLE webhooks ADD COLUMN previous_expires_at BIGINT;
-- webhook.payloads reads a range of one webhook's increment ids.
CREATE INDEX deliveries_by_increment ON deliveries (webhook_id, increment_id);
-- delivery.list pages through one merchant's payloads, newest first.
CREATE INDEX deliveries_by_merchant ON deliveries (merchant_id, id);
-- delivery.list's event_id filter: an event's few payloads, found directly (ids only grow,
-- so the index is appended to at its right edge).
CREATE INDEX deliveries_by_event ON deliveries (event_id);
-- webhook.recover finds one webhook's failed payloads (few: only these rows are indexed).
CREATE INDEX deliveries_failed ON deliveries (webhook_id, created_at) WHERE status = 'failed';
