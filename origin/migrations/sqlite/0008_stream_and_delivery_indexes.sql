-- An org's live event stream reads its org's outbox rows in id order; without this index
-- every poll of an idle org's stream walked the whole outbox past its position.
CREATE INDEX outbox_by_org ON outbox (org_id, id);
-- The retention pass deletes settled deliveries (and their attempts) by age.
CREATE INDEX webhook_deliveries_settled ON webhook_deliveries (updated_at) WHERE state <> 'pending';
