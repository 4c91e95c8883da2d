-- An org's live event stream reads its org's outbox rows in (txid, id) order; without these
-- indexes every poll of an idle org's stream walked the whole outbox past its position.
CREATE INDEX outbox_by_org ON outbox (org_id, id);
CREATE INDEX outbox_by_org_txid ON outbox (org_id, txid, id);
-- The retention pass deletes settled deliveries (and their attempts) by age.
CREATE INDEX webhook_deliveries_settled ON webhook_deliveries (updated_at) WHERE state <> 'pending';
