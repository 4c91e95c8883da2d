-- An agent imported from an Open Agent Passport keeps its `passport_id` (SPEC §13): at most one
-- agent per passport_id, across orgs, since the edge finds the agent by it; `q` searches it.
ALTER TABLE agents ADD COLUMN oap_passport_id TEXT;
CREATE UNIQUE INDEX agents_by_oap_passport_id ON agents (oap_passport_id);
