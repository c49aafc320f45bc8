-- The attempt log holds every request sent. Two requests can carry one attempt number (the
-- payload was claimed again once its lease ran out while the first request was still out);
-- both are logged, told apart by `request`, a random number drawn per request, while one
-- request recorded again (a write-back retried) still adds no second row. Attempts logged
-- before are request 0.
ALTER TABLE delivery_attempts ADD COLUMN request INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX delivery_attempts_request ON delivery_attempts (delivery_id, attempt_no, request);
DROP INDEX delivery_attempts_number;
