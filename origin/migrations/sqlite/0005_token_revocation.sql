-- Admin tokens can be revoked (DELETE /v1/orgs/{org_id}/tokens/{token_id}); a revoked one authenticates as nobody.
ALTER TABLE admin_tokens ADD COLUMN revoked_at INTEGER;
