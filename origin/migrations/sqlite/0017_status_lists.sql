-- Token status lists (SPEC §16). Every passport has a fixed place, `status_index`: entry
-- `status_index % 65536` of list `status_index / 65536`. New agents take the next number at
-- registration, in the registration's transaction (SQLite writes are serial, so MAX + 1 is
-- safe); the agents that exist now get theirs here, in id order (= registration order, ids
-- being UUIDv7).
ALTER TABLE agents ADD COLUMN status_index INTEGER;
UPDATE agents SET status_index = r.n
FROM (SELECT agent_id, ROW_NUMBER() OVER (ORDER BY agent_id) - 1 AS n FROM agents) AS r
WHERE r.agent_id = agents.agent_id;
CREATE UNIQUE INDEX agents_by_status_index ON agents (status_index, status);

-- One row per list: when its token was last built and signed (unix ms; NULL: never), and the
-- builder holding it (src/status_lists.rs; several origins build each list in turn).
CREATE TABLE status_lists (
    list_id      INTEGER PRIMARY KEY,
    built_at     INTEGER,
    lease_owner  TEXT,
    lease_until  INTEGER
);
INSERT INTO status_lists (list_id) SELECT DISTINCT status_index / 65536 FROM agents;

-- A status change not yet in its list's published token, written in the change's own
-- transaction (insert-only: concurrent changes never wait on each other here). The builder
-- deletes the rows it saw once a token built after them is stored.
CREATE TABLE status_list_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    list_id     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX status_list_changes_by_list ON status_list_changes (list_id, id);
INSERT INTO status_list_changes (list_id, created_at) SELECT list_id, 0 FROM status_lists;
