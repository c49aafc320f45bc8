-- Provisioning (CONTRACT §7.1): a third role, `publisher`, with no merchant of its own and
-- optionally limited to some merchants (merchant_codes: comma-separated codes, '' = any);
-- merchants get an optional display name.
ALTER TABLE merchants ADD COLUMN name TEXT;
ALTER TABLE users ADD COLUMN merchant_codes TEXT NOT NULL DEFAULT '';
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users DROP CONSTRAINT users_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'merchant', 'publisher'));
ALTER TABLE users ADD CONSTRAINT users_merchant_check CHECK ((role = 'merchant') = (merchant_id IS NOT NULL));
