-- Publish-ahead rotation and withdrawal of signing keys (the emergency brake).
-- signs_from: when the key starts signing; NULL for the standby key, which is published in the
-- JWKS ahead of signing so that a rotation never makes an edge refuse good tokens. A key stops
-- signing at retired_at (which may lie in the future: the next key's signs_from).
-- withdrawn_at: taken out of the JWKS at once (a leaked key); never signs or verifies again.
ALTER TABLE signing_keys ADD COLUMN signs_from INTEGER;
ALTER TABLE signing_keys ADD COLUMN withdrawn_at INTEGER;
UPDATE signing_keys SET signs_from = created_at;
