-- The registry: orgs, admin tokens, agents (passports), the audit hash chains and the outbox.
-- Times are Unix milliseconds; JSON documents are TEXT.

CREATE TABLE orgs (
    org_id      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE admin_tokens (
    token_id    TEXT PRIMARY KEY,
    org_id      TEXT REFERENCES orgs (org_id),
    role        TEXT NOT NULL CHECK (role IN ('platform', 'owner', 'admin', 'viewer')),
    name        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE agents (
    agent_id      TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (org_id),
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    version       BIGINT NOT NULL,
    document      TEXT NOT NULL,
    api_key_hash  TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    last_seen_at  BIGINT,
    health        TEXT NOT NULL DEFAULT 'unknown',
    UNIQUE (org_id, name)
);
CREATE INDEX agents_by_org ON agents (org_id, agent_id);
CREATE INDEX agents_by_status ON agents (status, agent_id);
CREATE INDEX agents_by_org_status ON agents (org_id, status, agent_id);

CREATE TABLE agent_capabilities (
    capability  TEXT NOT NULL,
    agent_id    TEXT NOT NULL REFERENCES agents (agent_id),
    PRIMARY KEY (capability, agent_id)
);
CREATE INDEX agent_capabilities_by_agent ON agent_capabilities (agent_id);

CREATE TABLE agent_regions (
    region      TEXT NOT NULL,
    agent_id    TEXT NOT NULL REFERENCES agents (agent_id),
    PRIMARY KEY (region, agent_id)
);
CREATE INDEX agent_regions_by_agent ON agent_regions (agent_id);

CREATE TABLE audit_chains (
    chain_id    TEXT PRIMARY KEY,
    head_seq    BIGINT NOT NULL,
    head_hash   TEXT NOT NULL
);

CREATE TABLE audit_events (
    event_id     TEXT PRIMARY KEY,
    chain_id     TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    data         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL,
    UNIQUE (chain_id, seq)
);
CREATE INDEX audit_events_by_target ON audit_events (target_id, event_id);

-- Every change also lands here, in the same transaction; the KV publisher, the status journal
-- and webhooks consume it.
CREATE TABLE outbox (
    id                 BIGSERIAL PRIMARY KEY,
    event_id           TEXT NOT NULL UNIQUE,
    org_id             TEXT,
    event_type         TEXT NOT NULL,
    aggregate_type     TEXT NOT NULL,
    aggregate_id       TEXT NOT NULL,
    aggregate_version  BIGINT NOT NULL,
    payload            TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX outbox_by_aggregate ON outbox (aggregate_id, aggregate_version);
