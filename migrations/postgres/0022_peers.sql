-- Nodes that take publishes forwarded by other nodes (src/cluster): each running node with a
-- peer listener records the address other nodes dial and refreshes `seen_at` every few
-- seconds; a node not seen for a while is left out of the choice of owners.
CREATE TABLE peers (
    node TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The secret nodes prove to one another on a peer link (HMAC over both sides' nonces),
-- made by the first node that needs it. Anyone who can read it can publish for any
-- merchant through a peer link, as anyone who can write this database can.
CREATE TABLE peer_secret (
    id BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    secret BYTEA NOT NULL CHECK (length(secret) = 32)
);
