-- Which node takes a webhook's payloads as they come due, and until when (issue 28; see
-- `queue::claim_lane`). Only a hint for the dispatchers' claims: leases still decide who sends
-- what, so a row lost or stale costs efficiency, never a delivery. `until` is on the
-- database's clock, in unix milliseconds.
CREATE TABLE claim_turns (
    webhook_id BIGINT PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    until BIGINT NOT NULL
);
