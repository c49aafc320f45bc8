-- Receiver steering (CONTRACT §6.2). `disabled_reason` says why hookd turned a webhook off
-- (410 Gone, failing for too long); `failing_since` is when its current run of failed
-- attempts began (null after a success), which auto-disable measures. `ordered`,
-- `max_rate` and `filter` are the webhook's own settings.
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT;
ALTER TABLE webhooks ADD COLUMN failing_since INTEGER;
ALTER TABLE webhooks ADD COLUMN ordered INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN max_rate REAL;
ALTER TABLE webhooks ADD COLUMN filter TEXT;
