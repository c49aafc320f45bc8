-- Portal links (CONTRACT §7.1 portal.link): only the SHA-256 of a link's token is kept;
-- opening the link deletes its row and makes a console session in one transaction.
CREATE TABLE portal_links (
    token_hash TEXT PRIMARY KEY,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    created_by BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    read_only BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX portal_links_expiry ON portal_links (expires_at);
-- A portal session acts as the merchant it names (NULL: the user's own session), and a
-- read-only one changes nothing. It belongs to the admin who made the link.
ALTER TABLE sessions ADD COLUMN merchant_id BIGINT REFERENCES merchants (id) ON DELETE CASCADE;
ALTER TABLE sessions ADD COLUMN read_only BOOLEAN NOT NULL DEFAULT FALSE;
