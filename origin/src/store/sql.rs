//! The SQL behind every store trait, written once and instantiated for SQLite and Postgres.
//!
//! Both databases take `$1`-style parameters, `ON CONFLICT … DO NOTHING` and `RETURNING`, so
//! one text serves both. The one difference is row locking: Postgres locks rows with
//! `FOR UPDATE` (an agent while it changes, an audit chain while it is sealed); SQLite has a
//! single writer connection, so its transactions are serial anyway.

/// Implements every store trait for `$store`, whose `write` and `read` fields are pools of `$db`.
macro_rules! sql_store {
    ($store:ty, $db:ty, for_update = $lock:literal, for_share = $share:literal, no_key_update = $nku:literal, key_share = $key_share:literal, skip_locked = $skip:literal, txid_stream = $txid:literal, next_status_index = $next_index:literal) => {
        use async_trait::async_trait;
        use sqlx::Row;
        use vouch_core::{AgentId, Health, OrgId, Passport, Timestamp, TokenId};

        use crate::error::{Error, Result};
        use crate::store::{
            AdminToken, AgentFilter, AgentMutation, AgentStore, ChangeEvent, JournalOutboxStore, KvOutboxStore,
            KvWork, Mutated, Org, OrgStore, OutboxRow, OutboxStore, Page, PageRequest, Role, Scope, Store, TokenStore,
        };

        type Tx = sqlx::Transaction<'static, $db>;

        /// Records the event inside `tx`: its outbox row (and KV and journal queue rows), its
        /// audit event — unsealed: the sealer gives it its place in the chain after commit, so
        /// no lock here serializes the org's writers — and its webhook deliveries.
        async fn record_event(tx: &mut Tx, event: &ChangeEvent) -> Result<()> {
            sqlx::query(
                "INSERT INTO outbox (event_id, org_id, event_type, aggregate_type, aggregate_id, \
                 aggregate_version, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(event.event_id.as_str())
            .bind(event.org_id.as_ref().map(|o| o.as_str().to_owned()))
            .bind(event.type_name())
            .bind(event.target_type)
            .bind(&event.target_id)
            .bind(event.version)
            .bind(event.envelope())
            .bind(event.created_at.unix_millis())
            .execute(&mut **tx)
            .await?;
            if let Some(key) = event.kv_key() {
                mark_queue(tx, "kv_outbox", &key, event.target_type, &event.target_id, event.version, event.created_at).await?;
            }
            if let Some(key) = event.journal_key() {
                mark_queue(tx, "journal_outbox", &key, event.target_type, &event.target_id, event.version, event.created_at).await?;
            }
            let draft = event.audit_draft();
            sqlx::query(
                "INSERT INTO audit_events (event_id, chain_id, actor, action, target_type, target_id, \
                 data, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(draft.event_id.as_str())
            .bind(&draft.chain_id)
            .bind(&draft.actor)
            .bind(&draft.action)
            .bind(&draft.target_type)
            .bind(&draft.target_id)
            .bind(&draft.data)
            .bind(draft.created_at.unix_millis())
            .execute(&mut **tx)
            .await?;
            queue_webhooks(tx, event).await?;
            Ok(())
        }

        async fn insert_token(tx: &mut Tx, token: &AdminToken, hash: &str) -> Result<()> {
            sqlx::query(
                "INSERT INTO admin_tokens (token_id, org_id, role, name, token_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(token.token_id.as_str())
            .bind(token.org_id.as_ref().map(|o| o.as_str().to_owned()))
            .bind(token.role.as_str())
            .bind(&token.name)
            .bind(hash)
            .bind(token.created_at.unix_millis())
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// Queues one delivery of `event` per enabled subscription that wants it (of the event's
        /// org; of every org for platform-wide events).
        async fn queue_webhooks(tx: &mut Tx, event: &ChangeEvent) -> Result<()> {
            let Some((kind, typed)) = crate::webhooks::events::filter_names(event) else {
                return Ok(());
            };
            // An org's event looks at that org's subscriptions only (an index lookup); a
            // platform-wide one at all of them.
            let mut qb = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at, created_at, updated_at) \
                 SELECT w.webhook_id, ",
            );
            qb.push_bind(event.event_id.as_str().to_owned());
            for _ in 0..3 {
                qb.push(", ").push_bind(event.created_at.unix_millis());
            }
            qb.push(" FROM webhooks w WHERE w.status = 'enabled'");
            if let Some(org) = &event.org_id {
                qb.push(" AND w.org_id = ").push_bind(org.as_str().to_owned());
            }
            qb.push(
                " AND EXISTS (SELECT 1 FROM webhook_event_types t WHERE t.webhook_id = w.webhook_id \
                 AND t.event_type IN (",
            );
            qb.push_bind(kind.to_owned())
                .push(", ")
                .push_bind(typed.unwrap_or(kind).to_owned())
                .push(", '*'))");
            // Postgres: lock each subscription's key while its delivery is queued, so that a
            // delete committing meanwhile is waited for and its row skipped, instead of failing
            // this (unrelated) write on the deliveries' foreign key.
            qb.push($key_share);
            qb.build().execute(&mut **tx).await?;
            Ok(())
        }

        /// Queues `key` at `version` in `queue` (`kv_outbox`, `journal_outbox`), coalescing with
        /// what is queued there.
        async fn mark_queue(
            tx: &mut Tx,
            queue: &str,
            key: &str,
            aggregate_type: &str,
            aggregate_id: &str,
            version: i64,
            at: Timestamp,
        ) -> Result<()> {
            sqlx::query(&format!(
                "INSERT INTO {queue} (kv_key, aggregate_type, aggregate_id, target_version, dirty_since) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (kv_key) DO UPDATE SET \
                   dirty_since = CASE WHEN {queue}.published_version >= {queue}.target_version \
                                 THEN excluded.dirty_since ELSE {queue}.dirty_since END, \
                   target_version = CASE WHEN excluded.target_version > {queue}.target_version \
                                    THEN excluded.target_version ELSE {queue}.target_version END{retry_now}",
                // A new status change goes to the journal at once, even while an older one of the
                // same key waits out a backoff (KV keeps its backoff: it may be rate limiting).
                // A checkpoint is published at most once a second per chain (KV takes one write
                // per second per key): a newer one waits until then, the newest wins.
                retry_now = if queue == "journal_outbox" {
                    ", next_attempt_at = 0".to_owned()
                } else if aggregate_type == crate::store::CHECKPOINT_AGGREGATE {
                    format!(
                        ", next_attempt_at = CASE WHEN {queue}.published_at IS NOT NULL \
                           AND {queue}.published_at + {ms} > {queue}.next_attempt_at \
                           THEN {queue}.published_at + {ms} ELSE {queue}.next_attempt_at END",
                        ms = crate::store::CHECKPOINT_INTERVAL_MS
                    )
                } else {
                    String::new()
                },
            ))
            .bind(key)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(version)
            .bind(at.unix_millis())
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// Writes document `name` if `body` differs from what is stored: a version above both the
        /// stored one and `at` (ms), queued for KV. Returns whether it wrote.
        async fn write_document(tx: &mut Tx, name: &str, body: &str, at: Timestamp) -> Result<bool> {
            let current = sqlx::query("SELECT body, version FROM documents WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?;
            let version = match &current {
                Some(row) if row.try_get::<String, _>("body")? == body => return Ok(false),
                Some(row) => (row.try_get::<i64, _>("version")? + 1).max(at.unix_millis()),
                None => at.unix_millis(),
            };
            sqlx::query(
                "INSERT INTO documents (name, body, version, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET body = excluded.body, version = excluded.version, \
                   updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(body)
            .bind(version)
            .bind(at.unix_millis())
            .execute(&mut **tx)
            .await?;
            mark_queue(tx, "kv_outbox", name, "document", name, version, at).await?;
            Ok(true)
        }

        /// The JWK Set of the keys published at `now`, newest first.
        async fn jwks_body(tx: &mut Tx, now: Timestamp) -> Result<String> {
            let rows = sqlx::query(
                "SELECT public_jwk FROM signing_keys WHERE withdrawn_at IS NULL \
                 AND (publish_until IS NULL OR publish_until > $1) ORDER BY created_at DESC",
            )
            .bind(now.unix_millis())
            .fetch_all(&mut **tx)
            .await?;
            let keys = rows
                .iter()
                .map(|row| {
                    let text: String = row.try_get("public_jwk")?;
                    serde_json::from_str::<serde_json::Value>(&text).map_err(Error::internal)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(serde_json::json!({ "keys": keys }).to_string())
        }

        async fn insert_key(tx: &mut Tx, key: &crate::store::SigningKeyRow) -> Result<()> {
            sqlx::query(&format!(
                "INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, NULL, NULL, $5, NULL)"
            ))
            .bind(&key.kid)
            .bind(&key.public_jwk)
            .bind(&key.private_key)
            .bind(key.created_at.unix_millis())
            .bind(key.signs_from.map(|t| t.unix_millis()))
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        fn key_from_row(row: &<$db as sqlx::Database>::Row) -> Result<crate::store::SigningKeyRow> {
            let at = |column: &str| -> Result<Option<Timestamp>> {
                Ok(row.try_get::<Option<i64>, _>(column)?.map(Timestamp::from_unix_millis))
            };
            Ok(crate::store::SigningKeyRow {
                kid: row.try_get("kid")?,
                public_jwk: row.try_get("public_jwk")?,
                private_key: row.try_get("private_key")?,
                created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
                retired_at: at("retired_at")?,
                publish_until: at("publish_until")?,
                signs_from: at("signs_from")?,
                withdrawn_at: at("withdrawn_at")?,
            })
        }

        /// `query_up_to_in_paren` followed by the bound `ids` and `)`.
        fn where_in(query_up_to_in_paren: String, ids: &[String]) -> sqlx::QueryBuilder<'static, $db> {
            let mut qb = sqlx::QueryBuilder::<$db>::new(query_up_to_in_paren);
            let mut list = qb.separated(", ");
            for id in ids {
                list.push_bind(id.clone());
            }
            qb.push(")");
            qb
        }

        const DELEGATION_COLUMNS: &str = "delegation_id, org_id, delegator, delegatee, scopes, \
             max_depth, created_at, expires_at, revoked_at, version";

        fn delegation_from_row(row: &<$db as sqlx::Database>::Row) -> Result<crate::store::DelegationRecord> {
            let bad = |e: vouch_core::ids::IdError| Error::internal(anyhow::anyhow!("{e}"));
            let scopes: String = row.try_get("scopes")?;
            let revoked: Option<i64> = row.try_get("revoked_at")?;
            let max_depth: i32 = row.try_get::<i32, _>("max_depth")?;
            Ok(crate::store::DelegationRecord {
                grant: vouch_core::delegation::Grant {
                    delegation_id: vouch_core::ids::DelegationId::parse(&row.try_get::<String, _>("delegation_id")?).map_err(bad)?,
                    delegator: AgentId::parse(&row.try_get::<String, _>("delegator")?).map_err(bad)?,
                    delegatee: AgentId::parse(&row.try_get::<String, _>("delegatee")?).map_err(bad)?,
                    scopes: serde_json::from_str(&scopes).map_err(Error::internal)?,
                    expires_at: Timestamp::from_unix_millis(row.try_get("expires_at")?),
                    max_depth: u32::try_from(max_depth).unwrap_or(0),
                    revoked: revoked.is_some(),
                },
                org_id: OrgId::parse(&row.try_get::<String, _>("org_id")?).map_err(bad)?,
                created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
                revoked_at: revoked.map(Timestamp::from_unix_millis),
                version: row.try_get("version")?,
            })
        }

        /// Kills every live grant `agent` is a party to (it left `active`), each with its event.
        async fn revoke_grants_of(tx: &mut Tx, agent: &AgentId, actor: &str, at: Timestamp) -> Result<()> {
            let rows = sqlx::query(&format!(
                "UPDATE delegations SET revoked_at = $1, version = version + 1 \
                 WHERE (delegator = $2 OR delegatee = $2) AND revoked_at IS NULL \
                 RETURNING {DELEGATION_COLUMNS}"
            ))
            .bind(at.unix_millis())
            .bind(agent.as_str())
            .fetch_all(&mut **tx)
            .await?;
            for row in &rows {
                let record = delegation_from_row(row)?;
                let event = record.revoked_event(actor, &format!("party {agent} left active"));
                record_event(tx, &event).await?;
            }
            Ok(())
        }

        const KEY_COLUMNS: &str = "kid, public_jwk, private_key, created_at, retired_at, publish_until, \
             signs_from, withdrawn_at";
        /// The condition of the key that signs at `$1` (the newest of those whose time has come).
        const SIGNING_AT: &str = "withdrawn_at IS NULL AND signs_from IS NOT NULL AND signs_from <= $1 \
             AND (retired_at IS NULL OR retired_at > $1)";

        /// Writes the capability and region index rows of an agent (`replace`: drops the old
        /// ones first), one multi-row INSERT per table.
        async fn index_agent(tx: &mut Tx, passport: &Passport, replace: bool) -> Result<()> {
            let id = passport.agent_id.as_str();
            let caps = passport.fields.capabilities.iter().map(|c| c.id.as_str());
            let regions = passport.fields.regions.iter().map(|r| r.as_str());
            let tables: [(&str, &str, Vec<&str>); 2] = [
                ("agent_capabilities", "capability", caps.collect()),
                ("agent_regions", "region", regions.collect()),
            ];
            for (table, column, values) in tables {
                if replace {
                    sqlx::query(&format!("DELETE FROM {table} WHERE agent_id = $1"))
                        .bind(id)
                        .execute(&mut **tx)
                        .await?;
                }
                if values.is_empty() {
                    continue;
                }
                let mut qb =
                    sqlx::QueryBuilder::<$db>::new(format!("INSERT INTO {table} ({column}, agent_id) "));
                qb.push_values(values, |mut row, value| {
                    row.push_bind(value.to_owned()).push_bind(id.to_owned());
                });
                qb.build().execute(&mut **tx).await?;
            }
            Ok(())
        }

        fn document(passport: &Passport) -> Result<String> {
            serde_json::to_string(passport).map_err(Error::internal)
        }

        /// A passport from `document`, `last_seen_at` and `health` columns.
        fn passport_from_row<R: Row>(row: &R) -> Result<Passport>
        where
            for<'c> &'c str: sqlx::ColumnIndex<R>,
            String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            let doc: String = row.try_get("document")?;
            let mut passport: Passport = serde_json::from_str(&doc).map_err(Error::internal)?;
            let last_seen: Option<i64> = row.try_get("last_seen_at")?;
            let health: String = row.try_get("health")?;
            let status_index: Option<i64> = row.try_get("status_index")?;
            passport.last_seen_at = last_seen.map(Timestamp::from_unix_millis);
            passport.health = Health::parse(&health).unwrap_or_default();
            passport.status_index = status_index.and_then(|n| u64::try_from(n).ok());
            Ok(passport)
        }

        const ORG_COLUMNS: &str =
            "org_id, name, slug, created_at, frozen_at, frozen_reason, freeze_version, freeze_changed_at";

        fn org_from_row(row: &<$db as sqlx::Database>::Row) -> Result<Org> {
            let at = |column: &str| -> Result<Option<Timestamp>> {
                Ok(row.try_get::<Option<i64>, _>(column)?.map(Timestamp::from_unix_millis))
            };
            Ok(Org {
                org_id: OrgId::parse(&row.try_get::<String, _>("org_id")?).map_err(Error::internal)?,
                name: row.try_get("name")?,
                slug: row.try_get("slug")?,
                created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
                frozen_at: at("frozen_at")?,
                frozen_reason: row.try_get("frozen_reason")?,
                freeze_version: row.try_get("freeze_version")?,
                freeze_changed_at: at("freeze_changed_at")?,
            })
        }

        /// Refuses to make an agent of a frozen org active. The org row is read with a shared
        /// lock (Postgres), so a freeze committing meanwhile is waited for, and seen.
        async fn refuse_if_frozen(tx: &mut Tx, org_id: &OrgId) -> Result<()> {
            let frozen: Option<Option<i64>> = sqlx::query_scalar(&format!(
                "SELECT frozen_at FROM orgs WHERE org_id = $1{}", $share
            ))
            .bind(org_id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
            if frozen.flatten().is_some() {
                return Err(Error::Conflict {
                    code: "org_frozen",
                    message: "the org is frozen: no agent of it can be activated until it is unfrozen".into(),
                });
            }
            Ok(())
        }

        const AGENT_COLUMNS: &str = "a.document, a.last_seen_at, a.health, a.status_index";

        /// Notes, in the change's transaction, that the status list holding `agent` must be
        /// built again (its status changed, or it was just registered).
        async fn mark_status_change(tx: &mut Tx, agent: &AgentId, at: Timestamp) -> Result<()> {
            sqlx::query(&format!(
                "INSERT INTO status_list_changes (list_id, created_at) \
                 SELECT status_index / {size}, $1 FROM agents WHERE agent_id = $2 AND status_index IS NOT NULL",
                size = vouch_core::status_list::LIST_SIZE
            ))
            .bind(at.unix_millis())
            .bind(agent.as_str())
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// [`mark_status_change`] for every agent an org's freeze (or unfreeze) changed: one row
        /// per list they sit in.
        async fn mark_frozen_status_changes(tx: &mut Tx, org_id: &OrgId, at: Timestamp) -> Result<()> {
            sqlx::query(&format!(
                "INSERT INTO status_list_changes (list_id, created_at) \
                 SELECT DISTINCT a.status_index / {size}, $1 FROM agents a \
                 JOIN frozen_agents f ON f.agent_id = a.agent_id \
                 WHERE f.org_id = $2 AND a.status_index IS NOT NULL",
                size = vouch_core::status_list::LIST_SIZE
            ))
            .bind(at.unix_millis())
            .bind(org_id.as_str())
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        #[async_trait]
        impl OrgStore for $store {
            async fn create_org(&self, org: &Org, event: &ChangeEvent) -> Result<()> {
                let mut tx = self.write.begin().await?;
                sqlx::query("INSERT INTO orgs (org_id, name, slug, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(org.org_id.as_str())
                    .bind(&org.name)
                    .bind(&org.slug)
                    .bind(org.created_at.unix_millis())
                    .execute(&mut *tx)
                    .await?;
                record_event(&mut tx, event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(())
            }

            async fn get_org(&self, org_id: &OrgId) -> Result<Option<Org>> {
                let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE org_id = $1"))
                    .bind(org_id.as_str())
                    .fetch_optional(&self.read)
                    .await?;
                row.as_ref().map(org_from_row).transpose()
            }

            async fn freeze_org(
                &self,
                org_id: &OrgId,
                reason: &str,
                at: Timestamp,
                event_of: crate::store::FreezeEvent,
            ) -> Result<Option<crate::store::Frozen>> {
                let mut tx = self.write.begin().await?;
                // The org first (activations wait on it), then its agents in one order.
                let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE org_id = $1{}", $lock))
                    .bind(org_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(mut org) = row.as_ref().map(org_from_row).transpose()? else {
                    return Ok(None);
                };
                if org.frozen_at.is_some() {
                    return Err(Error::Conflict {
                        code: "org_frozen",
                        message: "the org is frozen already".into(),
                    });
                }
                let rows = sqlx::query(&format!(
                    "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.org_id = $1 AND a.status = 'active' \
                     ORDER BY a.agent_id{}", $lock
                ))
                .bind(org_id.as_str())
                .fetch_all(&mut *tx)
                .await?;
                let mut agents = Vec::with_capacity(rows.len());
                for row in &rows {
                    let current = passport_from_row(row)?;
                    let next = vouch_core::lifecycle::change_status(
                        &current,
                        vouch_core::Status::Suspended,
                        Some(reason.to_owned()),
                        at,
                    )?;
                    sqlx::query(
                        "UPDATE agents SET status = $1, version = $2, document = $3, updated_at = $4 \
                         WHERE agent_id = $5",
                    )
                    .bind(next.status.as_str())
                    .bind(next.version)
                    .bind(document(&next)?)
                    .bind(next.updated_at.unix_millis())
                    .bind(next.agent_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                    // KV learns it in due course; the org's journal entry refuses it at once.
                    let key = vouch_core::kv::passport_key(&next.agent_id);
                    mark_queue(&mut tx, "kv_outbox", &key, "agent", next.agent_id.as_str(), next.version, at).await?;
                    sqlx::query("INSERT INTO frozen_agents (org_id, agent_id) VALUES ($1, $2)")
                        .bind(org_id.as_str())
                        .bind(next.agent_id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    agents.push(next.agent_id);
                }
                mark_frozen_status_changes(&mut tx, org_id, at).await?;
                // Their grants die with them (and stay dead after an unfreeze), each through KV
                // and the journal like any revocation.
                let grants = sqlx::query(&format!(
                    "UPDATE delegations SET revoked_at = $1, version = version + 1 \
                     WHERE revoked_at IS NULL AND (org_id = $2 \
                       OR delegator IN (SELECT agent_id FROM frozen_agents WHERE org_id = $2) \
                       OR delegatee IN (SELECT agent_id FROM frozen_agents WHERE org_id = $2)) \
                     RETURNING {DELEGATION_COLUMNS}"
                ))
                .bind(at.unix_millis())
                .bind(org_id.as_str())
                .fetch_all(&mut *tx)
                .await?;
                for row in &grants {
                    let record = delegation_from_row(row)?;
                    let key = record.grant.kv_key();
                    let id = record.grant.delegation_id.as_str();
                    mark_queue(&mut tx, "kv_outbox", &key, "delegation", id, record.version, at).await?;
                    mark_queue(&mut tx, "journal_outbox", &key, "delegation", id, record.version, at).await?;
                }
                org.frozen_at = Some(at);
                org.frozen_reason = Some(reason.to_owned());
                org.freeze_version += 1;
                org.freeze_changed_at = Some(at);
                sqlx::query(
                    "UPDATE orgs SET frozen_at = $1, frozen_reason = $2, freeze_version = $3, \
                     freeze_changed_at = $1 WHERE org_id = $4",
                )
                .bind(at.unix_millis())
                .bind(reason)
                .bind(org.freeze_version)
                .bind(org_id.as_str())
                .execute(&mut *tx)
                .await?;
                let frozen = crate::store::Frozen { org, agents, grants: grants.len() as u64 };
                record_event(&mut tx, &event_of(&frozen)).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(Some(frozen))
            }

            async fn unfreeze_org(
                &self,
                org_id: &OrgId,
                at: Timestamp,
                event_of: crate::store::FreezeEvent,
            ) -> Result<Option<crate::store::Frozen>> {
                let mut tx = self.write.begin().await?;
                let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE org_id = $1{}", $lock))
                    .bind(org_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(mut org) = row.as_ref().map(org_from_row).transpose()? else {
                    return Ok(None);
                };
                if org.frozen_at.is_none() {
                    return Err(Error::Conflict {
                        code: "org_not_frozen",
                        message: "the org is not frozen".into(),
                    });
                }
                let rows = sqlx::query(&format!(
                    "SELECT {AGENT_COLUMNS} FROM agents a JOIN frozen_agents f ON f.agent_id = a.agent_id \
                     WHERE f.org_id = $1 AND a.status = 'suspended' ORDER BY a.agent_id{}", $lock
                ))
                .bind(org_id.as_str())
                .fetch_all(&mut *tx)
                .await?;
                let mut agents = Vec::with_capacity(rows.len());
                for row in &rows {
                    let current = passport_from_row(row)?;
                    let next = vouch_core::lifecycle::change_status(
                        &current,
                        vouch_core::Status::Active,
                        None,
                        at,
                    )?;
                    sqlx::query(
                        "UPDATE agents SET status = $1, version = $2, document = $3, updated_at = $4 \
                         WHERE agent_id = $5",
                    )
                    .bind(next.status.as_str())
                    .bind(next.version)
                    .bind(document(&next)?)
                    .bind(next.updated_at.unix_millis())
                    .bind(next.agent_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                    // KV still says suspended for a while: the journal carries each reactivation.
                    let key = vouch_core::kv::passport_key(&next.agent_id);
                    let id = next.agent_id.as_str();
                    mark_queue(&mut tx, "kv_outbox", &key, "agent", id, next.version, at).await?;
                    mark_queue(&mut tx, "journal_outbox", &key, "agent", id, next.version, at).await?;
                    agents.push(next.agent_id);
                }
                mark_frozen_status_changes(&mut tx, org_id, at).await?;
                sqlx::query("DELETE FROM frozen_agents WHERE org_id = $1")
                    .bind(org_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                org.frozen_at = None;
                org.frozen_reason = None;
                org.freeze_version += 1;
                org.freeze_changed_at = Some(at);
                sqlx::query(
                    "UPDATE orgs SET frozen_at = NULL, frozen_reason = NULL, freeze_version = $1, \
                     freeze_changed_at = $2 WHERE org_id = $3",
                )
                .bind(org.freeze_version)
                .bind(at.unix_millis())
                .bind(org_id.as_str())
                .execute(&mut *tx)
                .await?;
                let unfrozen = crate::store::Frozen { org, agents, grants: 0 };
                record_event(&mut tx, &event_of(&unfrozen)).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(Some(unfrozen))
            }
        }

        #[async_trait]
        impl TokenStore for $store {
            async fn create_token(&self, token: &AdminToken, hash: &str, event: &ChangeEvent) -> Result<()> {
                let mut tx = self.write.begin().await?;
                insert_token(&mut tx, token, hash).await?;
                record_event(&mut tx, event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(())
            }

            async fn token_by_hash(&self, hash: &str) -> Result<Option<(AdminToken, String)>> {
                let row = sqlx::query(
                    "SELECT token_id, org_id, role, name, token_hash, created_at FROM admin_tokens \
                     WHERE token_hash = $1 AND revoked_at IS NULL",
                )
                .bind(hash)
                .fetch_optional(&self.read)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let org_id: Option<String> = row.try_get("org_id")?;
                let role: String = row.try_get("role")?;
                let token = AdminToken {
                    token_id: TokenId::parse(&row.try_get::<String, _>("token_id")?)
                        .map_err(Error::internal)?,
                    org_id: org_id
                        .map(|o| OrgId::parse(&o))
                        .transpose()
                        .map_err(Error::internal)?,
                    role: Role::parse(&role)
                        .ok_or_else(|| Error::internal(anyhow::anyhow!("stored role {role:?}")))?,
                    name: row.try_get("name")?,
                    created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
                };
                Ok(Some((token, row.try_get("token_hash")?)))
            }

            async fn revoke_token(&self, org_id: &OrgId, token_id: &TokenId, event: &ChangeEvent) -> Result<bool> {
                let mut tx = self.write.begin().await?;
                let done = sqlx::query(
                    "UPDATE admin_tokens SET revoked_at = $1 \
                     WHERE token_id = $2 AND org_id = $3 AND revoked_at IS NULL",
                )
                .bind(event.created_at.unix_millis())
                .bind(token_id.as_str())
                .bind(org_id.as_str())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                record_event(&mut tx, event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(true)
            }

            async fn revoke_platform_tokens(&self, event: &ChangeEvent) -> Result<u64> {
                let mut tx = self.write.begin().await?;
                let done = sqlx::query("DELETE FROM admin_tokens WHERE role = 'platform'")
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() > 0 {
                    record_event(&mut tx, event).await?;
                    tx.commit().await?;
                    self.signals.committed();
                }
                Ok(done.rows_affected())
            }

            async fn record_first_start(
                &self,
                at: Timestamp,
                token: Option<(&AdminToken, &str, &ChangeEvent)>,
            ) -> Result<bool> {
                let mut tx = self.write.begin().await?;
                let first = sqlx::query(
                    "INSERT INTO first_start (id, started_at) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                )
                .bind(at.unix_millis())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !first {
                    return Ok(false);
                }
                if let Some((token, hash, event)) = token {
                    insert_token(&mut tx, token, hash).await?;
                    record_event(&mut tx, event).await?;
                }
                tx.commit().await?;
                self.signals.committed();
                Ok(true)
            }

            async fn platform_token_exists(&self) -> Result<bool> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM admin_tokens WHERE role = 'platform'")
                    .fetch_one(&self.write)
                    .await?;
                Ok(row.try_get::<i64, _>("n")? > 0)
            }
        }

        #[async_trait]
        impl AgentStore for $store {
            async fn insert_agent(&self, passport: &Passport, api_key_hash: &str, event: &ChangeEvent) -> Result<()> {
                let mut tx = self.write.begin().await?;
                if passport.status == vouch_core::Status::Active {
                    refuse_if_frozen(&mut tx, &passport.org_id).await?;
                }
                // The passport's place in the status lists: the next number, fixed from now on.
                sqlx::query(&format!(
                    "INSERT INTO agents (agent_id, org_id, name, status, version, document, \
                     api_key_hash, created_at, updated_at, oap_passport_id, status_index) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, {})", $next_index
                ))
                .bind(passport.agent_id.as_str())
                .bind(passport.org_id.as_str())
                .bind(&passport.name)
                .bind(passport.status.as_str())
                .bind(passport.version)
                .bind(document(passport)?)
                .bind(api_key_hash)
                .bind(passport.created_at.unix_millis())
                .bind(passport.updated_at.unix_millis())
                .bind(passport.oap_passport_id.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(db)
                        if db.is_unique_violation()
                            && (db.constraint().is_some_and(|c| c.contains("oap_passport_id"))
                                || db.message().contains("oap_passport_id")) =>
                    {
                        Error::Conflict {
                            code: "oap_passport_exists",
                            message: "an agent with this OAP passport_id is already registered".into(),
                        }
                    }
                    _ => Error::from(e),
                })?;
                index_agent(&mut tx, passport, false).await?;
                mark_status_change(&mut tx, &passport.agent_id, passport.created_at).await?;
                record_event(&mut tx, event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(())
            }

            async fn get_agent(&self, scope: &Scope, agent_id: &AgentId) -> Result<Option<Passport>> {
                let row = sqlx::query(&format!(
                    "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.agent_id = $1"
                ))
                .bind(agent_id.as_str())
                .fetch_optional(&self.read)
                .await?;
                let passport = row.as_ref().map(passport_from_row).transpose()?;
                Ok(passport.filter(|p| scope.allows(&p.org_id)))
            }

            async fn list_agents(&self, scope: &Scope, filter: &AgentFilter, page: &PageRequest) -> Result<Page<Passport>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {AGENT_COLUMNS} FROM agents a WHERE 1 = 1"
                ));
                if let Scope::Org(org) = scope {
                    qb.push(" AND a.org_id = ").push_bind(org.as_str().to_owned());
                }
                if let Some(org) = &filter.org_id {
                    qb.push(" AND a.org_id = ").push_bind(org.as_str().to_owned());
                }
                if let Some(status) = filter.status {
                    qb.push(" AND a.status = ").push_bind(status.as_str());
                }
                if let Some(cap) = &filter.capability {
                    qb.push(" AND EXISTS (SELECT 1 FROM agent_capabilities c WHERE c.agent_id = a.agent_id AND c.capability = ")
                        .push_bind(cap.as_str().to_owned())
                        .push(")");
                }
                if let Some(region) = &filter.region {
                    let country = region.as_str().split('-').next().unwrap_or_default().to_owned();
                    qb.push(" AND EXISTS (SELECT 1 FROM agent_regions r WHERE r.agent_id = a.agent_id AND r.region IN (")
                        .push_bind(region.as_str().to_owned())
                        .push(", ")
                        .push_bind(country)
                        .push(", '*'))");
                }
                if let Some(q) = &filter.q {
                    let escaped = q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                    // The name, or exactly the OAP passport_id an agent was imported under.
                    qb.push(" AND (lower(a.name) LIKE ")
                        .push_bind(format!("%{escaped}%"))
                        .push(" ESCAPE '\\' OR a.oap_passport_id = ")
                        .push_bind(q.to_lowercase())
                        .push(")");
                }
                if let Some(after) = &page.after {
                    qb.push(" AND a.agent_id < ").push_bind(after.clone());
                }
                qb.push(" ORDER BY a.agent_id DESC LIMIT ").push_bind(i64::from(page.limit) + 1);
                let rows = qb.build().fetch_all(&self.read).await?;
                let passports = rows.iter().map(passport_from_row).collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(passports, page.limit, |p| p.agent_id.to_string()))
            }

            async fn mutate_agent(&self, scope: &Scope, agent_id: &AgentId, mutation: AgentMutation) -> Result<Mutated> {
                let mut tx = self.write.begin().await?;
                let row = sqlx::query(&format!(
                    "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.agent_id = $1{}", $lock
                ))
                .bind(agent_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let current = row.as_ref().map(passport_from_row).transpose()?;
                let current = current
                    .filter(|p| scope.allows(&p.org_id))
                    .ok_or_else(Error::agent_not_found)?;
                let Some(change) = mutation(&current)? else {
                    return Ok(Mutated { before: current.clone(), after: current });
                };
                let next = change.passport;
                if next.status == vouch_core::Status::Active && current.status != vouch_core::Status::Active {
                    refuse_if_frozen(&mut tx, &next.org_id).await?;
                }
                sqlx::query(
                    "UPDATE agents SET status = $1, version = $2, document = $3, updated_at = $4, \
                     api_key_hash = COALESCE($5, api_key_hash) WHERE agent_id = $6",
                )
                .bind(next.status.as_str())
                .bind(next.version)
                .bind(document(&next)?)
                .bind(next.updated_at.unix_millis())
                .bind(change.api_key_hash)
                .bind(next.agent_id.as_str())
                .execute(&mut *tx)
                .await?;
                if next.fields.capabilities != current.fields.capabilities
                    || next.fields.regions != current.fields.regions
                {
                    index_agent(&mut tx, &next, true).await?;
                }
                record_event(&mut tx, &change.event).await?;
                if next.status != current.status {
                    mark_status_change(&mut tx, &next.agent_id, next.updated_at).await?;
                }
                if current.status == vouch_core::Status::Active && next.status != vouch_core::Status::Active {
                    revoke_grants_of(&mut tx, &next.agent_id, &change.event.actor, next.updated_at).await?;
                }
                tx.commit().await?;
                self.signals.committed();
                Ok(Mutated { before: current, after: next })
            }

            async fn agent_by_key_hash(&self, hash: &str) -> Result<Option<(Passport, String)>> {
                let row = sqlx::query(&format!(
                    "SELECT {AGENT_COLUMNS}, a.api_key_hash FROM agents a WHERE a.api_key_hash = $1"
                ))
                .bind(hash)
                .fetch_optional(&self.read)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some((passport_from_row(&row)?, row.try_get("api_key_hash")?)))
            }

            async fn record_agent_event(&self, agent_id: &AgentId, event: &ChangeEvent) -> Result<()> {
                let mut tx = self.write.begin().await?;
                // Shared lock (Postgres): a revocation committing meanwhile is waited for, and seen.
                let status: Option<String> = sqlx::query_scalar(&format!(
                    "SELECT status FROM agents WHERE agent_id = $1{}", $share
                ))
                .bind(agent_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if status.is_none_or(|s| s == vouch_core::Status::Revoked.as_str()) {
                    return Err(Error::Unauthorized);
                }
                record_event(&mut tx, event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(())
            }

            async fn record_heartbeat(&self, agent_id: &AgentId, health: Health, at: Timestamp) -> Result<()> {
                sqlx::query("UPDATE agents SET last_seen_at = $1, health = $2 WHERE agent_id = $3")
                    .bind(at.unix_millis())
                    .bind(health.as_str())
                    .bind(agent_id.as_str())
                    .execute(&self.write)
                    .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl OutboxStore for $store {
            async fn outbox_after(&self, after_id: i64, limit: u32) -> Result<Vec<OutboxRow>> {
                let rows = sqlx::query(
                    "SELECT id, event_id, event_type, aggregate_id, aggregate_version, payload \
                     FROM outbox WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(OutboxRow {
                            id: row.try_get("id")?,
                            event_id: row.try_get("event_id")?,
                            event_type: row.try_get("event_type")?,
                            aggregate_id: row.try_get("aggregate_id")?,
                            aggregate_version: row.try_get("aggregate_version")?,
                            payload: row.try_get("payload")?,
                        })
                    })
                    .collect()
            }
        }

        #[async_trait]
        impl Store for $store {
            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.read).await?;
                Ok(())
            }

            fn backend(&self) -> &'static str {
                <$store>::BACKEND
            }

            fn signals(&self) -> &crate::store::Signals {
                &self.signals
            }
        }


        crate::store::webhooks_sql::webhook_store!($store, $db, no_key_update = $nku, skip_locked = $skip, txid_stream = $txid);
        crate::store::audit_sql::audit_store!($store, $db, for_update = $lock, skip_locked = $skip);
        crate::store::console_sql::console_store!($store);
        crate::store::receipts_sql::receipt_store!($store, $db);
        crate::store::partners_sql::partner_store!($store, $db, for_update = $lock);
        crate::store::status_lists_sql::status_list_store!($store, $db, skip_locked = $skip);

        #[async_trait]
        impl crate::store::DelegationStore for $store {
            async fn create_delegation(&self, record: &crate::store::DelegationRecord, event: &ChangeEvent) -> Result<()> {
                let mut tx = self.write.begin().await?;
                let grant = &record.grant;
                // Both parties must be active when the grant commits, not only when the request
                // was read: lock their rows (in id order, so two grants cannot deadlock) so that a
                // suspension either precedes this check or sees the grant and kills it.
                let mut parties = [&grant.delegator, &grant.delegatee];
                parties.sort();
                for agent in parties {
                    let row = sqlx::query(&format!(
                        "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.agent_id = $1{}", $lock
                    ))
                    .bind(agent.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                    let party = row
                        .as_ref()
                        .map(passport_from_row)
                        .transpose()?
                        .ok_or_else(Error::agent_not_found)?;
                    if party.status != vouch_core::Status::Active {
                        return Err(vouch_core::delegation::DelegationError::AgentNotActive {
                            agent: party.agent_id,
                            status: party.status,
                        }
                        .into());
                    }
                }
                sqlx::query(&format!(
                    "INSERT INTO delegations ({DELEGATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9)"
                ))
                .bind(grant.delegation_id.as_str())
                .bind(record.org_id.as_str())
                .bind(grant.delegator.as_str())
                .bind(grant.delegatee.as_str())
                .bind(serde_json::to_string(&grant.scopes).map_err(Error::internal)?)
                .bind(i32::try_from(grant.max_depth).unwrap_or(i32::MAX))
                .bind(record.created_at.unix_millis())
                .bind(grant.expires_at.unix_millis())
                .bind(record.version)
                .execute(&mut *tx)
                .await?;
                record_event(&mut tx, event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(())
            }

            async fn get_delegation(&self, id: &vouch_core::ids::DelegationId) -> Result<Option<crate::store::DelegationRecord>> {
                let row = sqlx::query(&format!(
                    "SELECT {DELEGATION_COLUMNS} FROM delegations WHERE delegation_id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(&self.read)
                .await?;
                row.as_ref().map(delegation_from_row).transpose()
            }

            async fn revoke_delegation(
                &self,
                id: &vouch_core::ids::DelegationId,
                at: Timestamp,
                actor: &str,
                reason: &str,
            ) -> Result<Option<crate::store::DelegationRecord>> {
                let mut tx = self.write.begin().await?;
                let row = sqlx::query(&format!(
                    "UPDATE delegations SET revoked_at = $1, version = version + 1 \
                     WHERE delegation_id = $2 AND revoked_at IS NULL RETURNING {DELEGATION_COLUMNS}"
                ))
                .bind(at.unix_millis())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    drop(tx);
                    return self.get_delegation(id).await;
                };
                let record = delegation_from_row(&row)?;
                record_event(&mut tx, &record.revoked_event(actor, reason)).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(Some(record))
            }

            async fn live_delegation(&self, delegator: &AgentId, delegatee: &AgentId, now: Timestamp) -> Result<Option<crate::store::DelegationRecord>> {
                let row = sqlx::query(&format!(
                    "SELECT {DELEGATION_COLUMNS} FROM delegations WHERE delegator = $1 AND delegatee = $2 \
                     AND revoked_at IS NULL AND expires_at > $3 ORDER BY created_at DESC LIMIT 1"
                ))
                .bind(delegator.as_str())
                .bind(delegatee.as_str())
                .bind(now.unix_millis())
                .fetch_optional(&self.read)
                .await?;
                row.as_ref().map(delegation_from_row).transpose()
            }

            async fn delegations_by_ids(&self, ids: &[String]) -> Result<Vec<crate::store::DelegationRecord>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let rows = where_in(
                    format!("SELECT {DELEGATION_COLUMNS} FROM delegations WHERE delegation_id IN ("),
                    ids,
                )
                .build()
                .fetch_all(&self.read)
                .await?;
                rows.iter().map(delegation_from_row).collect()
            }

            async fn list_delegations(
                &self,
                scope: &Scope,
                filter: &crate::store::DelegationFilter,
                page: &PageRequest,
            ) -> Result<Page<crate::store::DelegationRecord>> {
                use crate::store::DelegationState;
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {DELEGATION_COLUMNS} FROM delegations WHERE 1 = 1"
                ));
                if let Scope::Org(org) = scope {
                    qb.push(" AND org_id = ").push_bind(org.as_str().to_owned());
                }
                if let Some(org) = &filter.org_id {
                    qb.push(" AND org_id = ").push_bind(org.as_str().to_owned());
                }
                if let Some(agent) = &filter.agent_id {
                    qb.push(" AND (delegator = ")
                        .push_bind(agent.as_str().to_owned())
                        .push(" OR delegatee = ")
                        .push_bind(agent.as_str().to_owned())
                        .push(")");
                }
                // The same rule as the view's `status` (a grant is dead at `expires_at`).
                match filter.state {
                    Some(DelegationState::Active) => {
                        qb.push(" AND revoked_at IS NULL AND expires_at > ").push_bind(filter.now.unix_millis());
                    }
                    Some(DelegationState::Expired) => {
                        qb.push(" AND revoked_at IS NULL AND expires_at <= ").push_bind(filter.now.unix_millis());
                    }
                    Some(DelegationState::Revoked) => {
                        qb.push(" AND revoked_at IS NOT NULL");
                    }
                    None => {}
                }
                if let Some(after) = &page.after {
                    qb.push(" AND delegation_id < ").push_bind(after.clone());
                }
                qb.push(" ORDER BY delegation_id DESC LIMIT ").push_bind(i64::from(page.limit) + 1);
                let rows = qb.build().fetch_all(&self.read).await?;
                let grants = rows.iter().map(delegation_from_row).collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(grants, page.limit, |g| g.grant.delegation_id.to_string()))
            }
        }

        #[async_trait]
        impl crate::store::KeyStore for $store {
            async fn active_key(&self, now: Timestamp) -> Result<Option<crate::store::SigningKeyRow>> {
                let row = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM signing_keys WHERE {SIGNING_AT} ORDER BY signs_from DESC LIMIT 1"
                ))
                .bind(now.unix_millis())
                .fetch_optional(&self.write)
                .await?;
                row.as_ref().map(key_from_row).transpose()
            }

            async fn list_keys(&self) -> Result<Vec<crate::store::SigningKeyRow>> {
                let rows = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at DESC"
                ))
                .fetch_all(&self.read)
                .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn published_keys(&self, now: Timestamp) -> Result<Vec<crate::store::SigningKeyRow>> {
                let rows = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM signing_keys WHERE withdrawn_at IS NULL \
                     AND (publish_until IS NULL OR publish_until > $1) ORDER BY created_at DESC"
                ))
                .bind(now.unix_millis())
                .fetch_all(&self.read)
                .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn add_key(&self, key: &crate::store::SigningKeyRow, event: &ChangeEvent) -> Result<()> {
                let mut tx = self.write.begin().await?;
                insert_key(&mut tx, key).await?;
                let body = jwks_body(&mut tx, key.created_at).await?;
                write_document(&mut tx, "jwks", &body, key.created_at).await?;
                record_event(&mut tx, event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(())
            }

            async fn rotate_key(
                &self,
                standby_kid: &str,
                signs_from: Timestamp,
                publish_until: Timestamp,
                next: &crate::store::SigningKeyRow,
                event: &ChangeEvent,
            ) -> Result<()> {
                let mut tx = self.write.begin().await?;
                let now = next.created_at;
                let pending = sqlx::query(
                    "SELECT kid FROM signing_keys WHERE withdrawn_at IS NULL AND signs_from > $1",
                )
                .bind(now.unix_millis())
                .fetch_optional(&mut *tx)
                .await?;
                if pending.is_some() {
                    return Err(Error::Conflict {
                        code: "rotation_pending",
                        message: "a rotation is already scheduled; the next one can follow once that key signs".into(),
                    });
                }
                // The key signing now stops when the standby starts, and stays published until
                // every token it signed has expired.
                sqlx::query(&format!(
                    "UPDATE signing_keys SET retired_at = $2, publish_until = $3 WHERE {SIGNING_AT}"
                ))
                .bind(now.unix_millis())
                .bind(signs_from.unix_millis())
                .bind(publish_until.unix_millis())
                .execute(&mut *tx)
                .await?;
                let promoted = sqlx::query(
                    "UPDATE signing_keys SET signs_from = $1 \
                     WHERE kid = $2 AND signs_from IS NULL AND withdrawn_at IS NULL",
                )
                .bind(signs_from.unix_millis())
                .bind(standby_kid)
                .execute(&mut *tx)
                .await?;
                if promoted.rows_affected() != 1 {
                    return Err(Error::Conflict {
                        code: "rotation_pending",
                        message: "the standby key changed meanwhile (another rotation or a withdrawal); try again".into(),
                    });
                }
                insert_key(&mut tx, next).await?;
                let body = jwks_body(&mut tx, now).await?;
                write_document(&mut tx, "jwks", &body, now).await?;
                record_event(&mut tx, event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(())
            }

            async fn withdraw_key(
                &self,
                kid: &str,
                published_before: Timestamp,
                next: &crate::store::SigningKeyRow,
                event: &ChangeEvent,
            ) -> Result<Option<crate::store::Withdrawn>> {
                let now = next.created_at;
                let mut tx = self.write.begin().await?;
                let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM signing_keys WHERE kid = $1"))
                    .bind(kid)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(key) = row.as_ref().map(key_from_row).transpose()? else {
                    return Ok(None);
                };
                if key.withdrawn_at.is_some() {
                    return Ok(Some(crate::store::Withdrawn { key, newly: false }));
                }
                let signing: Option<String> = sqlx::query_scalar(&format!(
                    "SELECT kid FROM signing_keys WHERE {SIGNING_AT} ORDER BY signs_from DESC LIMIT 1"
                ))
                .bind(now.unix_millis())
                .fetch_optional(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE signing_keys SET withdrawn_at = $1, publish_until = $1, \
                       retired_at = COALESCE(retired_at, $1) WHERE kid = $2",
                )
                .bind(now.unix_millis())
                .bind(kid)
                .execute(&mut *tx)
                .await?;
                if let Some(scheduled) = key.signs_from.filter(|at| *at > now) {
                    // A scheduled key withdrawn: the key it was to replace keeps signing.
                    sqlx::query(
                        "UPDATE signing_keys SET retired_at = NULL, publish_until = NULL \
                         WHERE retired_at = $1 AND withdrawn_at IS NULL",
                    )
                    .bind(scheduled.unix_millis())
                    .execute(&mut *tx)
                    .await?;
                }
                if signing.as_deref() == Some(kid) {
                    // The signing key withdrawn: the next signer should be one every edge knows.
                    // First a waiting key published long enough; else the key that signed last
                    // before (still published); else the oldest waiting key, at once.
                    let waiting = |published_before: Option<Timestamp>| {
                        let mut query = String::from(
                            "SELECT kid FROM signing_keys WHERE withdrawn_at IS NULL \
                             AND (signs_from IS NULL OR signs_from > $1)",
                        );
                        if published_before.is_some() {
                            query.push_str(" AND created_at <= $2");
                        }
                        query.push_str(" ORDER BY created_at LIMIT 1");
                        query
                    };
                    let known: Option<String> = sqlx::query_scalar(&waiting(Some(published_before)))
                        .bind(now.unix_millis())
                        .bind(published_before.unix_millis())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let previous: Option<String> = if known.is_none() {
                        sqlx::query_scalar(
                            "SELECT kid FROM signing_keys WHERE withdrawn_at IS NULL \
                             AND retired_at IS NOT NULL AND retired_at <= $1 AND publish_until > $1 \
                             ORDER BY retired_at DESC LIMIT 1",
                        )
                        .bind(now.unix_millis())
                        .fetch_optional(&mut *tx)
                        .await?
                    } else {
                        None
                    };
                    if let Some(previous) = previous {
                        sqlx::query(
                            "UPDATE signing_keys SET retired_at = NULL, publish_until = NULL WHERE kid = $1",
                        )
                        .bind(previous)
                        .execute(&mut *tx)
                        .await?;
                    } else {
                        let promoted = match known {
                            Some(kid) => Some(kid),
                            None => sqlx::query_scalar(&waiting(None))
                                .bind(now.unix_millis())
                                .fetch_optional(&mut *tx)
                                .await?,
                        };
                        if let Some(promoted) = promoted {
                            sqlx::query("UPDATE signing_keys SET signs_from = $1 WHERE kid = $2")
                                .bind(now.unix_millis())
                                .bind(promoted)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                }
                let standbys: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM signing_keys WHERE withdrawn_at IS NULL AND signs_from IS NULL",
                )
                .fetch_one(&mut *tx)
                .await?;
                let signers: i64 = sqlx::query_scalar(&format!(
                    "SELECT COUNT(*) FROM signing_keys WHERE {SIGNING_AT}"
                ))
                .bind(now.unix_millis())
                .fetch_one(&mut *tx)
                .await?;
                if standbys == 0 || signers == 0 {
                    // `next` signs at once when nothing else can (the caller made it so), or
                    // stands by.
                    let mut next = next.clone();
                    if signers > 0 {
                        next.signs_from = None;
                    }
                    insert_key(&mut tx, &next).await?;
                }
                let body = jwks_body(&mut tx, now).await?;
                write_document(&mut tx, "jwks", &body, now).await?;
                record_event(&mut tx, event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(Some(crate::store::Withdrawn { key, newly: true }))
            }

            async fn refresh_jwks(&self, now: Timestamp) -> Result<bool> {
                let mut tx = self.write.begin().await?;
                let body = jwks_body(&mut tx, now).await?;
                let wrote = write_document(&mut tx, "jwks", &body, now).await?;
                tx.commit().await?;
                if wrote {
                    self.signals.committed();
                }
                Ok(wrote)
            }

            async fn put_document(&self, name: &str, body: &str, event: &ChangeEvent) -> Result<bool> {
                let mut tx = self.write.begin().await?;
                let wrote = write_document(&mut tx, name, body, event.created_at).await?;
                if wrote {
                    record_event(&mut tx, event).await?;
                    tx.commit().await?;
                    self.signals.committed();
                }
                Ok(wrote)
            }

            async fn documents(&self, names: &[String]) -> Result<Vec<(String, i64, String)>> {
                let mut out = Vec::new();
                for name in names {
                    let row = sqlx::query("SELECT body, version FROM documents WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&self.read)
                        .await?;
                    if let Some(row) = row {
                        out.push((name.clone(), row.try_get("version")?, row.try_get("body")?));
                    }
                }
                Ok(out)
            }
        }

        /// The publishers' queues (`kv_outbox`, `journal_outbox`) share their shape and these
        /// statements.
        impl $store {
            async fn claim_from(&self, queue: &str, owner: &str, now: Timestamp, lease_ms: i64, limit: u32) -> Result<Vec<KvWork>> {
                let rows = sqlx::query(&format!(
                    "UPDATE {queue} SET lease_owner = $1, lease_until = $2 WHERE kv_key IN ( \
                       SELECT kv_key FROM {queue} \
                       WHERE published_version < target_version AND next_attempt_at <= $3 \
                         AND (lease_until IS NULL OR lease_until < $3) \
                       ORDER BY dirty_since LIMIT $4{}) \
                     RETURNING kv_key, aggregate_type, aggregate_id, target_version, dirty_since, attempts",
                    $skip
                ))
                .bind(owner)
                .bind(now.unix_millis() + lease_ms)
                .bind(now.unix_millis())
                .bind(i64::from(limit))
                .fetch_all(&self.write)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(KvWork {
                            key: row.try_get("kv_key")?,
                            aggregate_type: row.try_get("aggregate_type")?,
                            aggregate_id: row.try_get("aggregate_id")?,
                            target_version: row.try_get("target_version")?,
                            dirty_since: Timestamp::from_unix_millis(row.try_get("dirty_since")?),
                            attempts: i64::from(row.try_get::<i32, _>("attempts")?),
                        })
                    })
                    .collect()
            }

            /// Records `version` as published and releases the lease; `extra` assignments may use
            /// `$4` (`at`) and, when `seq` is given, `$5` (its value, possibly NULL).
            #[allow(clippy::too_many_arguments)]
            async fn complete_in(&self, queue: &str, extra: &str, owner: &str, key: &str, version: i64, at: Timestamp, seq: Option<Option<i64>>) -> Result<()> {
                let sql = format!(
                    "UPDATE {queue} SET \
                       published_version = CASE WHEN $1 > published_version THEN $1 ELSE published_version END, \
                       attempts = 0, next_attempt_at = 0, last_error = NULL, lease_owner = NULL, lease_until = NULL{extra} \
                     WHERE kv_key = $2 AND lease_owner = $3"
                );
                let mut query = sqlx::query(&sql)
                .bind(version)
                .bind(key)
                .bind(owner)
                .bind(at.unix_millis());
                if let Some(seq) = seq {
                    query = query.bind(seq);
                }
                query.execute(&self.write).await?;
                Ok(())
            }

            async fn retry_in(&self, queue: &str, owner: &str, key: &str, next_attempt_at: Timestamp, error: &str) -> Result<()> {
                sqlx::query(&format!(
                    "UPDATE {queue} SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, \
                       lease_owner = NULL, lease_until = NULL \
                     WHERE kv_key = $3 AND lease_owner = $4"
                ))
                .bind(next_attempt_at.unix_millis())
                .bind(error)
                .bind(key)
                .bind(owner)
                .execute(&self.write)
                .await?;
                Ok(())
            }

            async fn backlog_of(&self, queue: &str) -> Result<(i64, Option<Timestamp>)> {
                let row = sqlx::query(&format!(
                    "SELECT COUNT(*) AS n, MIN(dirty_since) AS oldest FROM {queue} \
                     WHERE published_version < target_version"
                ))
                .fetch_one(&self.read)
                .await?;
                let oldest: Option<i64> = row.try_get("oldest")?;
                Ok((row.try_get("n")?, oldest.map(Timestamp::from_unix_millis)))
            }
        }

        #[async_trait]
        impl JournalOutboxStore for $store {
            async fn claim_journal(&self, owner: &str, now: Timestamp, lease_ms: i64, limit: u32) -> Result<Vec<KvWork>> {
                self.claim_from("journal_outbox", owner, now, lease_ms, limit).await
            }

            async fn complete_journal(&self, owner: &str, key: &str, version: i64, seq: Option<i64>, stored_at: Timestamp) -> Result<()> {
                self.complete_in(
                    "journal_outbox",
                    ", stored_at = CASE WHEN $1 >= published_version THEN $4 ELSE stored_at END, \
                       journal_seq = CASE WHEN $1 >= published_version THEN $5 ELSE journal_seq END",
                    owner, key, version, stored_at, Some(seq),
                ).await?;
                self.signals.journal_stored.notify_waiters();
                Ok(())
            }

            async fn retry_journal(&self, owner: &str, key: &str, next_attempt_at: Timestamp, error: &str) -> Result<()> {
                self.retry_in("journal_outbox", owner, key, next_attempt_at, error).await
            }

            async fn journal_backlog(&self) -> Result<(i64, Option<Timestamp>)> {
                self.backlog_of("journal_outbox").await
            }

            async fn journal_settled(&self, settled_before: Timestamp, limit: u32) -> Result<Vec<(String, i64)>> {
                let rows = sqlx::query(
                    "SELECT j.kv_key, j.published_version FROM journal_outbox j \
                     JOIN kv_outbox k ON k.kv_key = j.kv_key \
                     WHERE j.journal_seq IS NOT NULL AND k.published_at IS NOT NULL \
                       AND k.published_at <= $1 AND k.published_version >= j.published_version \
                     ORDER BY j.journal_seq LIMIT $2",
                )
                .bind(settled_before.unix_millis())
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?;
                rows.iter()
                    .map(|row| Ok((row.try_get("kv_key")?, row.try_get("published_version")?)))
                    .collect()
            }

            async fn journal_forgot(&self, entries: &[(String, i64)]) -> Result<()> {
                let mut tx = self.write.begin().await?;
                for (key, version) in entries {
                    sqlx::query(
                        "UPDATE journal_outbox SET journal_seq = NULL \
                         WHERE kv_key = $1 AND published_version = $2",
                    )
                    .bind(key)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn journal_epoch(&self) -> Result<Option<i64>> {
                let row = sqlx::query("SELECT value FROM journal_state WHERE name = 'epoch'")
                    .fetch_optional(&self.read)
                    .await?;
                Ok(match row {
                    Some(row) => Some(row.try_get("value")?),
                    None => None,
                })
            }

            async fn adopt_journal_epoch(&self, epoch: i64, now: Timestamp) -> Result<u64> {
                let mut tx = self.write.begin().await?;
                sqlx::query(
                    "INSERT INTO journal_state (name, value) VALUES ('epoch', $1) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(epoch)
                .execute(&mut *tx)
                .await?;
                let done = sqlx::query(
                    "UPDATE journal_outbox SET published_version = 0, journal_seq = NULL, stored_at = NULL, \
                       attempts = 0, next_attempt_at = 0, dirty_since = $1 \
                     WHERE journal_seq IS NOT NULL",
                )
                .bind(now.unix_millis())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                self.signals.journal.notify_one();
                Ok(done.rows_affected())
            }

            async fn journal_stored_at(&self, key: &str, version: i64) -> Result<Option<Timestamp>> {
                let row = sqlx::query(
                    "SELECT stored_at FROM journal_outbox WHERE kv_key = $1 AND published_version >= $2",
                )
                .bind(key)
                .bind(version)
                .fetch_optional(&self.read)
                .await?;
                Ok(match row {
                    Some(row) => row.try_get::<Option<i64>, _>("stored_at")?.map(Timestamp::from_unix_millis),
                    None => None,
                })
            }
        }

        #[async_trait]
        impl KvOutboxStore for $store {
            async fn claim_kv(&self, owner: &str, now: Timestamp, lease_ms: i64, limit: u32) -> Result<Vec<KvWork>> {
                self.claim_from("kv_outbox", owner, now, lease_ms, limit).await
            }

            async fn kv_written_at(&self, key: &str, version: i64) -> Result<Option<Timestamp>> {
                let row = sqlx::query(
                    "SELECT published_at FROM kv_outbox WHERE kv_key = $1 AND published_version >= $2",
                )
                .bind(key)
                .bind(version)
                .fetch_optional(&self.read)
                .await?;
                Ok(match row {
                    Some(row) => row.try_get::<Option<i64>, _>("published_at")?.map(Timestamp::from_unix_millis),
                    None => None,
                })
            }

            async fn complete_kv(&self, owner: &str, key: &str, version: i64) -> Result<()> {
                let at = crate::clock::now();
                self.complete_in("kv_outbox", ", published_at = $4", owner, key, version, at, None).await
            }

            async fn retry_kv(&self, owner: &str, key: &str, next_attempt_at: Timestamp, error: &str) -> Result<()> {
                self.retry_in("kv_outbox", owner, key, next_attempt_at, error).await
            }

            async fn kv_backlog(&self) -> Result<(i64, Option<Timestamp>)> {
                self.backlog_of("kv_outbox").await
            }

            async fn mark_all_kv_dirty(&self, now: Timestamp) -> Result<i64> {
                let mut tx = self.write.begin().await?;
                let done = sqlx::query(
                    "INSERT INTO kv_outbox (kv_key, aggregate_type, aggregate_id, target_version, dirty_since) \
                     SELECT 'passport:' || agent_id, 'agent', agent_id, version, $1 FROM agents \
                     WHERE true /* SQLite needs a WHERE before an upsert on INSERT … SELECT */ \
                     ON CONFLICT (kv_key) DO UPDATE SET target_version = excluded.target_version, \
                       published_version = 0, dirty_since = excluded.dirty_since, attempts = 0, next_attempt_at = 0",
                )
                .bind(now.unix_millis())
                .execute(&mut *tx)
                .await?;
                // Partner keys too: an edge's KV must know every key, live or revoked.
                let keys = sqlx::query(
                    "INSERT INTO kv_outbox (kv_key, aggregate_type, aggregate_id, target_version, dirty_since) \
                     SELECT 'partner:' || key_hash, 'partner_key', key_hash, version, $1 FROM partner_keys \
                     WHERE true \
                     ON CONFLICT (kv_key) DO UPDATE SET target_version = excluded.target_version, \
                       published_version = 0, dirty_since = excluded.dirty_since, attempts = 0, next_attempt_at = 0",
                )
                .bind(now.unix_millis())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(i64::try_from(done.rows_affected() + keys.rows_affected()).unwrap_or(i64::MAX))
            }

            async fn agents_by_ids(&self, ids: &[String]) -> Result<Vec<Passport>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let rows = where_in(
                    format!("SELECT {AGENT_COLUMNS} FROM agents a WHERE a.agent_id IN ("),
                    ids,
                )
                .build()
                .fetch_all(&self.read)
                .await?;
                rows.iter().map(passport_from_row).collect()
            }
        }
    };
}

pub(crate) use sql_store;
