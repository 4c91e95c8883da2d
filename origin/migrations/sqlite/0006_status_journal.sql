-- The status journal's share of the outbox (SPEC §10): one row per key whose status changes must
-- reach the edge within seconds (agents' status changes, delegation revocations), written in the
-- same transaction as the change, coalesced like kv_outbox. The publisher appends each key's
-- current status to the edge's journal and records the journal's sequence number and store time.
CREATE TABLE journal_outbox (
    kv_key             TEXT PRIMARY KEY,
    aggregate_type     TEXT NOT NULL,
    aggregate_id       TEXT NOT NULL,
    target_version     INTEGER NOT NULL,
    published_version  INTEGER NOT NULL DEFAULT 0,
    -- When the oldest change not yet in the journal was committed (Unix ms).
    dirty_since        INTEGER NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    INTEGER NOT NULL DEFAULT 0,
    last_error         TEXT,
    lease_owner        TEXT,
    lease_until        INTEGER,
    -- The journal entry that holds the published version, and when the journal stored it.
    journal_seq        INTEGER,
    stored_at          INTEGER
);
CREATE INDEX journal_outbox_pending ON journal_outbox (dirty_since) WHERE published_version < target_version;
CREATE INDEX journal_outbox_by_seq ON journal_outbox (journal_seq);

-- When KV last took a write of the key: the journal may drop an entry once KV has had it for
-- longer than KV takes to reach every location.
ALTER TABLE kv_outbox ADD COLUMN published_at INTEGER;

-- What the origin knows of the journal: its epoch (a journal of another epoch was reset or
-- replaced, and gets every change it must hold appended again).
CREATE TABLE journal_state (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
