-- Each merchant's number of webhooks, kept by webhook create and delete, so a create checks
-- the merchant's limit without counting its webhooks.
ALTER TABLE merchants ADD COLUMN webhook_count INTEGER NOT NULL DEFAULT 0;
UPDATE merchants SET webhook_count = (SELECT COUNT(*) FROM webhooks WHERE webhooks.merchant_id = merchants.id);
