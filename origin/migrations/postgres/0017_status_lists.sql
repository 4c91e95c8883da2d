-- Token status lists (SPEC §16). Every passport has a fixed place, `status_index`: entry
-- `status_index % 65536` of list `status_index / 65536`. New agents take the next number of
-- `agent_status_index` at registration, in the registration's transaction (a rolled-back
-- registration leaves a gap, which no token names); the agents that exist now get theirs
-- here, in id order (= registration order, ids being UUIDv7).
CREATE SEQUENCE agent_status_index AS BIGINT MINVALUE 0 START WITH 0;
ALTER TABLE agents ADD COLUMN status_index BIGINT;
UPDATE agents SET status_index = r.n
FROM (SELECT agent_id, ROW_NUMBER() OVER (ORDER BY agent_id) - 1 AS n FROM agents) AS r
WHERE r.agent_id = agents.agent_id;
SELECT setval('agent_status_index', (SELECT COUNT(*) FROM agents), false);
ALTER TABLE agents ALTER COLUMN status_index SET NOT NULL;
CREATE UNIQUE INDEX agents_by_status_index ON agents (status_index) INCLUDE (status);

-- One row per list: when its token was last built and signed (unix ms; NULL: never), and the
-- builder holding it (src/status_lists.rs; several origins build each list in turn).
CREATE TABLE status_lists (
    list_id      BIGINT PRIMARY KEY,
    built_at     BIGINT,
    lease_owner  TEXT,
    lease_until  BIGINT
);
INSERT INTO status_lists (list_id) SELECT DISTINCT status_index / 65536 FROM agents;

-- A status change not yet in its list's published token, written in the change's own
-- transaction (insert-only: concurrent changes never wait on each other here). The builder
-- deletes the rows it saw once a token built after them is stored.
CREATE TABLE status_list_changes (
    id          BIGSERIAL PRIMARY KEY,
    list_id     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX status_list_changes_by_list ON status_list_changes (list_id, id);
INSERT INTO status_list_changes (list_id, created_at) SELECT list_id, 0 FROM status_lists;
