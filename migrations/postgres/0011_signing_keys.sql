-- Signatures and secrets (CONTRACT §7.3).
-- `signature_scheme`: "hmac" (as before) or "hmac+ed25519", with the webhook's Ed25519 pair:
-- `signing_key` (the private seed, base64, or its encrypted form) and `public_key` (whpk_…).
-- `previous_keys`: a JSON array, newest first, of the keys that still sign after rotations,
-- each until the expiry its rotation announced. The one previous key of the 0004 columns
-- moves there, and those columns are emptied (no secret is kept in two places).
ALTER TABLE webhooks ADD COLUMN signature_scheme TEXT NOT NULL DEFAULT 'hmac';
ALTER TABLE webhooks ADD COLUMN signing_key TEXT;
ALTER TABLE webhooks ADD COLUMN public_key TEXT;
ALTER TABLE webhooks ADD COLUMN previous_keys TEXT;
UPDATE webhooks
   SET previous_keys = jsonb_build_array(jsonb_build_object('secret_key', previous_secret_key,
                                              'signing_key', NULL::text,
                                              'expires_at', previous_expires_at))::text
 WHERE previous_secret_key IS NOT NULL AND previous_expires_at IS NOT NULL;
UPDATE webhooks SET previous_secret_key = NULL, previous_expires_at = NULL
 WHERE previous_secret_key IS NOT NULL;
