-- The attempt log holds every request sent. Two requests can carry one attempt number (a
-- node sent the payload after another's lease on it ran out, while that one was sending it
-- too); both are logged, told apart by `request`, a random number drawn per request, while
-- one request recorded again (a write-back retried) still adds no second row. Attempts
-- logged before are request 0.
ALTER TABLE delivery_attempts ADD COLUMN request BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX delivery_attempts_request ON delivery_attempts (delivery_id, attempt_no, request);
DROP INDEX delivery_attempts_number;
