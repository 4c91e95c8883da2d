-- Sessions of the admin console (SPEC §18). The admin token is exchanged at sign-in for a
-- random session secret held in an HttpOnly cookie; only its SHA-256 is stored, beside the hash
-- of the token it stands for (the same hash `admin_tokens` keeps), so every request
-- authenticates again as that token: a revoked token ends its sessions at once.
CREATE TABLE console_sessions (
    session_hash  TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
