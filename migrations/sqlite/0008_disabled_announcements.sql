-- `webhook:disabled` announcements that survive a crash. `announce_pending` is set in the
-- same write that turns a webhook off (with `disabled_at`, when that was), and cleared once
-- the event is published; a process starting after a crash in between finds it and publishes
-- it then. `disabled_at` also makes the publish's idempotency key, so publishing again
-- after a crash between the publish and the clear is answered as a replay. The partial
-- index holds only the pending rows, so the sweep reads nothing else.
ALTER TABLE webhooks ADD COLUMN announce_pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN disabled_at INTEGER;
CREATE INDEX webhooks_announce_pending ON webhooks (id) WHERE announce_pending = 1;
