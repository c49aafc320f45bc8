-- Each merchant's number of webhooks, kept by webhook create and delete, so a create checks
-- the merchant's limit without counting its webhooks.
ALTER TABLE merchants ADD COLUMN webhook_count BIGINT NOT NULL DEFAULT 0;
UPDATE merchants m SET webhook_count = (SELECT COUNT(*) FROM webhooks w WHERE w.merchant_id = m.id);
