-- The audit log becomes a Merkle log, sealed after commit (docs/api.md, "Audit log").
--
-- A change's transaction records its event *unsealed* (no `seq`, no leaf hash), so nothing in
-- it serializes one org's writers. One sealer per chain (the chain's row locked, `SKIP LOCKED`
-- for the background sealer) then numbers the pending events it can see in the order they were
-- recorded (`pending_id`), appends their leaves to the chain's tree (`audit_tree`) and signs a
-- checkpoint (`audit_chains`). An event that commits later is simply sealed in a later batch.
-- Events recorded before this migration are pending again, in their old order, and sealed into
-- the new tree; the old hash chain (`prev_hash`, `hash`, `head_seq`, `head_hash`) is gone.

ALTER TABLE audit_events ADD COLUMN pending_id BIGSERIAL;
UPDATE audit_events a SET pending_id = r.n
    FROM (SELECT event_id, ROW_NUMBER() OVER (ORDER BY chain_id, seq) AS n FROM audit_events) r
    WHERE r.event_id = a.event_id;
SELECT setval(pg_get_serial_sequence('audit_events', 'pending_id'),
              COALESCE((SELECT MAX(pending_id) FROM audit_events), 0) + 1, false);
ALTER TABLE audit_events ALTER COLUMN seq DROP NOT NULL;
UPDATE audit_events SET seq = NULL;
ALTER TABLE audit_events DROP COLUMN prev_hash;
ALTER TABLE audit_events DROP COLUMN hash;
-- The RFC 6962 leaf hash (base64), set when sealed.
ALTER TABLE audit_events ADD COLUMN leaf_hash TEXT;
CREATE INDEX audit_events_pending ON audit_events (chain_id, pending_id) WHERE seq IS NULL;

-- Each chain's signed state: the tree size, its root, the newest checkpoint (a C2SP signed note)
-- and the last one the KV publisher put outside the database.
DROP TABLE audit_chains;
CREATE TABLE audit_chains (
    chain_id              TEXT PRIMARY KEY,
    tree_size             BIGINT NOT NULL DEFAULT 0,
    root_hash             TEXT,
    checkpoint            TEXT,
    signed_at             BIGINT,
    published_checkpoint  TEXT,
    published_at          BIGINT
);

-- The tree's stored hashes: every complete subtree's hash, numbered as Go's sumdb/tlog numbers
-- them (about two per leaf).
CREATE TABLE audit_tree (
    chain_id  TEXT NOT NULL,
    idx       BIGINT NOT NULL,
    hash      BYTEA NOT NULL,
    PRIMARY KEY (chain_id, idx)
);

-- The Ed25519 key that signs every chain's checkpoints, sealed with the master key.
CREATE TABLE audit_keys (
    name          TEXT PRIMARY KEY,
    verifier_key  TEXT NOT NULL,
    private_key   TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
