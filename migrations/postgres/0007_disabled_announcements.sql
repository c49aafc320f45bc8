-- `webhook:disabled` announcements that survive a crash. `announce_pending` is set in the
-- same write that turns a webhook off (with `disabled_at`, when that was), and cleared once
-- the event is published; a node starting after a crash in between (or any node's periodic
-- sweep) finds it and publishes it then. `disabled_at` also makes the publish's idempotency
-- key, so publishing again (after a crash between the publish and the clear, or by two
-- nodes sweeping at once) is answered as a replay. The partial index holds only the pending
-- rows, so the sweep reads nothing else; publishes' increment_id bumps change neither
-- column, so they stay HOT.
ALTER TABLE webhooks ADD COLUMN announce_pending BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE webhooks ADD COLUMN disabled_at BIGINT;
CREATE INDEX webhooks_announce_pending ON webhooks (id) WHERE announce_pending;
