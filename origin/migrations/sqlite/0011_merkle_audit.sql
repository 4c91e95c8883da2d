-- The audit log becomes a Merkle log, sealed after commit (docs/api.md, "Audit log").
--
-- A change's transaction records its event *unsealed* (no `seq`, no leaf hash), so nothing in
-- it serializes one org's writers. One sealer per chain then numbers pending events in the order
-- they were recorded (`pending_id`; SQLite has one writer, so that is commit order), appends
-- their leaves to the chain's tree (`audit_tree`) and signs a checkpoint (`audit_chains`).
-- Events recorded before this migration are pending again, in their old order, and sealed into
-- the new tree; the old hash chain (`prev_hash`, `hash`, `head_seq`, `head_hash`) is gone.

CREATE TABLE audit_events_merkle (
    -- The rowid: the order events were recorded in.
    pending_id   INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    chain_id     TEXT NOT NULL,
    -- NULL until sealed; then 1, 2, 3… within the chain (the leaf is number seq - 1).
    seq          INTEGER,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    -- The RFC 6962 leaf hash (base64), set when sealed.
    leaf_hash    TEXT,
    UNIQUE (chain_id, seq)
);
INSERT INTO audit_events_merkle (event_id, chain_id, actor, action, target_type, target_id, data, created_at)
    SELECT event_id, chain_id, actor, action, target_type, target_id, data, created_at
    FROM audit_events ORDER BY chain_id, seq;
DROP TABLE audit_events;
ALTER TABLE audit_events_merkle RENAME TO audit_events;
CREATE INDEX audit_events_by_target ON audit_events (target_id, event_id);
CREATE INDEX audit_events_pending ON audit_events (chain_id, pending_id) WHERE seq IS NULL;

-- Each chain's signed state: the tree size, its root, the newest checkpoint (a C2SP signed note)
-- and the last one the KV publisher put outside the database.
DROP TABLE audit_chains;
CREATE TABLE audit_chains (
    chain_id              TEXT PRIMARY KEY,
    tree_size             INTEGER NOT NULL DEFAULT 0,
    root_hash             TEXT,
    checkpoint            TEXT,
    signed_at             INTEGER,
    published_checkpoint  TEXT,
    published_at          INTEGER
);

-- The tree's stored hashes: every complete subtree's hash, numbered as Go's sumdb/tlog numbers
-- them (about two per leaf).
CREATE TABLE audit_tree (
    chain_id  TEXT NOT NULL,
    idx       INTEGER NOT NULL,
    hash      BLOB NOT NULL,
    PRIMARY KEY (chain_id, idx)
);

-- The Ed25519 key that signs every chain's checkpoints, sealed with the master key.
CREATE TABLE audit_keys (
    name          TEXT PRIMARY KEY,
    verifier_key  TEXT NOT NULL,
    private_key   TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
