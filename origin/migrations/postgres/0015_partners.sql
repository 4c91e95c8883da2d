-- Partners (SPEC §14): the verifiers calling the edge's /verify routes for their own business.
-- Platform-wide records (their audit events are on the platform chain). A partner is revoked,
-- never deleted: its decisions and receipts keep naming it.
CREATE TABLE partners (
    partner_id  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    contact     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    -- When the partner's live key was issued (at creation, then at each rotation).
    key_issued_at BIGINT NOT NULL,
    -- One more on every change (creation 1, each rotation, the revocation).
    version     BIGINT NOT NULL
);

-- Each key a partner was ever given, only as its SHA-256 (the key is shown once). The edge
-- finds a key by this hash (KV `partner:{key_hash}`, and the status journal for changes); a
-- rotation or the partner's revocation revokes a key for good. `version` orders a key's KV and
-- journal writes: 1 when issued, 2 once revoked.
CREATE TABLE partner_keys (
    key_hash    TEXT PRIMARY KEY,
    partner_id  TEXT NOT NULL REFERENCES partners (partner_id),
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    version     BIGINT NOT NULL
);
CREATE INDEX partner_keys_by_partner ON partner_keys (partner_id);
