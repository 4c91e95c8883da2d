-- Freezing a whole org in one call (the emergency brake): every active agent suspended, its
-- grants revoked, one audit event and one status-journal entry (org:{org_id}) that makes every
-- edge refuse the org's agents at once. frozen_at is NULL while the org is not frozen;
-- freeze_version orders its journal entries; frozen_agents lists the agents the current freeze
-- suspended, which an unfreeze reactivates (agents suspended on their own stay suspended).
ALTER TABLE orgs ADD COLUMN frozen_at INTEGER;
ALTER TABLE orgs ADD COLUMN frozen_reason TEXT;
ALTER TABLE orgs ADD COLUMN freeze_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orgs ADD COLUMN freeze_changed_at INTEGER;
CREATE TABLE frozen_agents (
    org_id    TEXT NOT NULL REFERENCES orgs (org_id),
    agent_id  TEXT NOT NULL REFERENCES agents (agent_id),
    PRIMARY KEY (org_id, agent_id)
);
