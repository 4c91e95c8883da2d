-- Receipts (SPEC §12): every committed decision, as the edge signed and answered it, collected
-- from the edge's receipts object by the origin (src/receipts.rs). One row per decision id: a
-- receipt collected twice is stored once. `body` is the signed decision as JSON text;
-- `created_at` is the decision's own (unix ms), the order they are listed in.
CREATE TABLE receipts (
    decision_id  TEXT PRIMARY KEY,
    agent_id     TEXT NOT NULL,
    org_id       TEXT NOT NULL,
    partner_id   TEXT,
    created_at   BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX receipts_by_agent ON receipts (agent_id, created_at DESC, decision_id DESC);
