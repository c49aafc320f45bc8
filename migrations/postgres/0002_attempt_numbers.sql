-- Each attempt is logged once. Its number (1-based, per payload) is unique, so an outcome
-- recorded twice (a write-back retried after an unclear failure) adds no second row.
-- Attempts logged before are numbered in the order they were logged.
ALTER TABLE delivery_attempts ADD COLUMN attempt_no BIGINT NOT NULL DEFAULT 0;
UPDATE delivery_attempts a SET attempt_no = numbered.n
FROM (SELECT id, row_number() OVER (PARTITION BY delivery_id ORDER BY id) AS n FROM delivery_attempts) AS numbered
WHERE numbered.id = a.id;
ALTER TABLE delivery_attempts ALTER COLUMN attempt_no DROP DEFAULT;
DROP INDEX delivery_attempts_delivery;
CREATE UNIQUE INDEX delivery_attempts_number ON delivery_attempts (delivery_id, attempt_no);
