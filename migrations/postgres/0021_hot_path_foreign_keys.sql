-- Two foreign keys on the publish and outcome paths, dropped (issue 28). PostgreSQL checks a
-- foreign key per inserted row with a query of its own that locks the referenced row FOR KEY
-- SHARE:
-- * events.merchant_id: every event locked its merchant's row. Publishes of one merchant on
--   two nodes at once share that lock, so PostgreSQL made a MultiXact for the row each time.
--   Merchants are never deleted, and the publish takes the merchant from its caller's login.
-- * delivery_attempts.delivery_id: every attempt logged locked its payload's row, the row the
--   same statement had just updated (one more WAL record). The outcome write logs attempts
--   only of payloads it finds, and retention deletes a payload's attempts with it
--   (src/store/postgres/deliveries.rs, `purge`), as ON DELETE CASCADE did.
ALTER TABLE events DROP CONSTRAINT events_merchant_id_fkey;
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_delivery_id_fkey;
