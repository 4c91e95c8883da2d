-- The database's first start, recorded once: only that start may generate (and print) a
-- platform admin token. A database that already holds a signing key has started before.
CREATE TABLE first_start (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    started_at  BIGINT NOT NULL
);
INSERT INTO first_start (id, started_at)
SELECT 1, MIN(created_at) FROM signing_keys HAVING COUNT(*) > 0;
