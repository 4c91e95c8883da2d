-- Token-signing keys (ES256). The private scalar is sealed with the master key (the kid is the
-- associated data); only the public half is ever published.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    public_jwk     TEXT NOT NULL,
    private_key    TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    -- When it stopped signing (NULL: the active key; there is at most one).
    retired_at     INTEGER,
    -- When every token it signed has expired: it leaves the JWKS then.
    publish_until  INTEGER
);

-- Documents the edge serves as they are (jwks, discovery), with the version that orders their
-- KV writes and names their ETags.
CREATE TABLE documents (
    name        TEXT PRIMARY KEY,
    body        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
