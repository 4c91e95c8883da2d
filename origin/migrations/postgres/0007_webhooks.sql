-- Webhook subscriptions (SPEC §7) and their deliveries. A delivery row is written in the same
-- transaction as the change it announces (one per matching subscription), so a committed change
-- always has its deliveries and a rolled-back one never does; the sender leases due rows.
CREATE TABLE webhooks (
    webhook_id        TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs (org_id),
    url               TEXT NOT NULL,
    description       TEXT NOT NULL,
    -- The event types as given, a JSON array; `webhook_event_types` indexes them.
    events            TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
    disabled_reason   TEXT,
    -- The signing secret, sealed with the master key (signing needs it in the clear).
    secret            TEXT NOT NULL,
    -- The secret before the last rotation, still signing until `previous_until`.
    previous_secret   TEXT,
    previous_until    BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    last_success_at   BIGINT
);
CREATE INDEX webhooks_by_org ON webhooks (org_id, webhook_id);

CREATE TABLE webhook_event_types (
    webhook_id  TEXT NOT NULL REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    PRIMARY KEY (webhook_id, event_type)
);

CREATE TABLE webhook_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'succeeded', 'failed')),
    -- Attempts made so far (numbers the attempt log) and the position in the retry schedule
    -- (a manual redelivery starts the schedule again).
    attempts         INTEGER NOT NULL DEFAULT 0,
    retry_index      INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);

CREATE TABLE webhook_attempts (
    delivery_id      BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt          INTEGER NOT NULL,
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    response_body    TEXT,
    -- When the next attempt is due (NULL: this one settled the delivery).
    next_attempt_at  BIGINT,
    PRIMARY KEY (delivery_id, attempt)
);

-- The live event stream reads the outbox in commit-safe order: concurrent transactions take
-- `id`s in one order and may commit in another, so a reader that follows `id` alone could step
-- past a row that commits later. Each row records its transaction; the stream reads in
-- (txid, id) order and only rows of transactions older than every one still running.
ALTER TABLE outbox ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX outbox_by_txid ON outbox (txid, id);
