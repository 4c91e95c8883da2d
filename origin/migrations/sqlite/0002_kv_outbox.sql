-- The KV publisher's share of the outbox: one row per KV key, written in the same transaction as
-- the change. Coalescing is built in (one row per key, `target_version` only grows); a publisher
-- leases keys, writes the current state, and records the version it wrote.
CREATE TABLE kv_outbox (
    kv_key             TEXT PRIMARY KEY,
    aggregate_type     TEXT NOT NULL,
    aggregate_id       TEXT NOT NULL,
    target_version     INTEGER NOT NULL,
    published_version  INTEGER NOT NULL DEFAULT 0,
    -- When the oldest change not yet in KV was committed (Unix ms): the publish lag starts here.
    dirty_since        INTEGER NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    INTEGER NOT NULL DEFAULT 0,
    last_error         TEXT,
    lease_owner        TEXT,
    lease_until        INTEGER
);
CREATE INDEX kv_outbox_pending ON kv_outbox (dirty_since) WHERE published_version < target_version;
