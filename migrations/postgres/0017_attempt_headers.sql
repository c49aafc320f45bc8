-- The request headers as sent (CONTRACT §7.7: a delivery's page shows each attempt's headers).
-- Most of a request's headers follow from the payload and the attempt's time; what does not
-- (the webhook's extra headers at the time, and whether a previous key signed too) is kept per
-- attempt in `sent_headers`: '' when there was none of it (the common case, one byte), else the
-- compact text `domain::SentHeaders` reads. Attempts logged before this migration hold NULL,
-- and their page rebuilds the headers from the webhook as it is now, saying so.
ALTER TABLE delivery_attempts ADD COLUMN sent_headers TEXT;
-- The console's time-range filter: one merchant's payloads made in a range, newest first, are
-- one range of this index wherever the range lies in history (keyset on (created_at, id)).
CREATE INDEX deliveries_by_merchant_time ON deliveries (merchant_id, created_at, id);
