-- Leases on SQLite live in memory (one process serves one file), so nothing writes or reads
-- these columns any more.
ALTER TABLE deliveries DROP COLUMN lease_owner;
ALTER TABLE deliveries DROP COLUMN lease_until;
