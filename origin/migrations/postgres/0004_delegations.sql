-- Delegation grants (SPEC §6): the delegatee may act for the delegator within `scopes`, for a
-- while, at most `max_depth` hops deep. Dead when expired, revoked (deleted), or when either party
-- left `active` (`revoked_at` is then set in the same transaction as the status change).
CREATE TABLE delegations (
    delegation_id  TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs (org_id),
    delegator      TEXT NOT NULL REFERENCES agents (agent_id),
    delegatee      TEXT NOT NULL REFERENCES agents (agent_id),
    scopes         TEXT NOT NULL,
    max_depth      INTEGER NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    version        BIGINT NOT NULL
);
CREATE INDEX delegations_by_delegator ON delegations (delegator, delegatee);
CREATE INDEX delegations_by_delegatee ON delegations (delegatee);
