//! The SQL of [`crate::store::AuditStore`], instantiated inside `sql_store!` for each database
//! (it uses that expansion's `Tx` and `mark_queue`).

/// Implements `AuditStore` for `$store`. `for_update` / `skip_locked`: how the sealer takes a
/// chain's row (Postgres: waiting, or skipping a chain another sealer holds; SQLite: its one
/// writer serializes sealers anyway).
macro_rules! audit_store {
    ($store:ty, $db:ty, for_update = $lock:literal, skip_locked = $skip:literal) => {
        const EVENT_COLUMNS: &str = "event_id, chain_id, seq, actor, action, target_type, \
             target_id, data, created_at, leaf_hash";

        /// A sealed event (the queries select only rows with a `seq`).
        fn event_from_row(row: &<$db as sqlx::Database>::Row) -> Result<vouch_core::audit::AuditEvent> {
            Ok(vouch_core::audit::AuditEvent {
                event_id: vouch_core::EventId::parse(&row.try_get::<String, _>("event_id")?)
                    .map_err(Error::internal)?,
                chain_id: row.try_get("chain_id")?,
                seq: row.try_get::<Option<i64>, _>("seq")?.unwrap_or_default(),
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                target_type: row.try_get("target_type")?,
                target_id: row.try_get("target_id")?,
                data: row.try_get("data")?,
                created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
                leaf_hash: row.try_get::<Option<String>, _>("leaf_hash")?.unwrap_or_default(),
            })
        }

        fn hash_from_bytes(bytes: Vec<u8>) -> Result<vouch_core::audit::Hash> {
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|_| Error::internal(anyhow::anyhow!("a stored tree hash is not 32 bytes")))?;
            Ok(vouch_core::audit::Hash(bytes))
        }

        fn size_of(value: i64) -> Result<u64> {
            u64::try_from(value).map_err(|_| Error::internal(anyhow::anyhow!("a negative tree size")))
        }

        fn size_to_db(value: u64) -> Result<i64> {
            i64::try_from(value).map_err(|_| Error::internal(anyhow::anyhow!("the tree is too large")))
        }

        /// The chain's stored hashes at `indexes`, inside `executor`'s view.
        async fn read_tree<'e, E>(executor: E, chain_id: &str, indexes: &[u64]) -> Result<vouch_core::audit::tree::Hashes>
        where
            E: sqlx::Executor<'e, Database = $db>,
        {
            let mut hashes = vouch_core::audit::tree::Hashes::default();
            if indexes.is_empty() {
                return Ok(hashes);
            }
            let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT idx, hash FROM audit_tree WHERE chain_id = ");
            qb.push_bind(chain_id.to_owned()).push(" AND idx IN (");
            let mut list = qb.separated(", ");
            for index in indexes {
                list.push_bind(size_to_db(*index)?);
            }
            qb.push(")");
            for row in qb.build().fetch_all(executor).await? {
                let index = size_of(row.try_get("idx")?)?;
                hashes.0.insert(index, hash_from_bytes(row.try_get("hash")?)?);
            }
            Ok(hashes)
        }

        #[async_trait]
        impl crate::store::AuditStore for $store {
            async fn list_events(&self, chain_id: &str, target_id: Option<&str>, page: &PageRequest) -> Result<Page<vouch_core::audit::AuditEvent>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq IS NOT NULL AND chain_id = "
                ));
                qb.push_bind(chain_id.to_owned());
                if let Some(target) = target_id {
                    qb.push(" AND target_id = ").push_bind(target.to_owned());
                }
                if let Some(after) = &page.after {
                    let seq: i64 = after.parse().map_err(|_| Error::field("cursor", "invalid cursor"))?;
                    qb.push(" AND seq < ").push_bind(seq);
                }
                qb.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(page.limit) + 1);
                let rows = qb.build().fetch_all(&self.read).await?;
                let events = rows.iter().map(event_from_row).collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(events, page.limit, |e| e.seq.to_string()))
            }

            async fn chain_events(&self, chain_id: &str) -> Result<Vec<vouch_core::audit::AuditEvent>> {
                let rows = sqlx::query(&format!(
                    "SELECT {EVENT_COLUMNS} FROM audit_events WHERE chain_id = $1 AND seq IS NOT NULL ORDER BY seq"
                ))
                .bind(chain_id)
                .fetch_all(&self.read)
                .await?;
                rows.iter().map(event_from_row).collect()
            }

            async fn audit_event(&self, event_id: &str) -> Result<Option<(String, Option<vouch_core::audit::AuditEvent>)>> {
                let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE event_id = $1"))
                    .bind(event_id)
                    .fetch_optional(&self.read)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let chain: String = row.try_get("chain_id")?;
                let sealed = row.try_get::<Option<i64>, _>("seq")?.is_some();
                Ok(Some((chain, if sealed { Some(event_from_row(&row)?) } else { None })))
            }

            async fn pending_chains(&self, limit: u32) -> Result<Vec<String>> {
                let rows = sqlx::query(
                    "SELECT DISTINCT chain_id FROM audit_events WHERE seq IS NULL LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?;
                rows.iter().map(|row| Ok(row.try_get("chain_id")?)).collect()
            }

            async fn seal_chain(&self, chain_id: &str, key: &vouch_core::audit::checkpoint::LogKey, limit: u32, wait: bool) -> Result<crate::store::SealOutcome> {
                use crate::store::SealOutcome;
                let mut tx = self.write.begin().await?;
                // The chain's row, locked: one sealer per chain (Postgres); a background sealer
                // passes over a chain another one holds.
                let select = format!(
                    "SELECT tree_size, checkpoint FROM audit_chains WHERE chain_id = $1{}",
                    if wait { $lock } else { $skip }
                );
                let mut row = sqlx::query(&select).bind(chain_id).fetch_optional(&mut *tx).await?;
                if row.is_none() {
                    let created = sqlx::query(
                        "INSERT INTO audit_chains (chain_id, tree_size) VALUES ($1, 0) \
                         ON CONFLICT (chain_id) DO NOTHING RETURNING chain_id",
                    )
                    .bind(chain_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    row = match (created, wait) {
                        (Some(_), _) | (None, true) => sqlx::query(&select).bind(chain_id).fetch_optional(&mut *tx).await?,
                        (None, false) => return Ok(SealOutcome::Busy),
                    };
                }
                let Some(row) = row else {
                    return Ok(SealOutcome::Busy);
                };
                let size = size_of(row.try_get("tree_size")?)?;
                let last: Option<String> = row.try_get("checkpoint")?;
                let pending = sqlx::query(
                    "SELECT event_id, chain_id, actor, action, target_type, target_id, data, created_at \
                     FROM audit_events WHERE chain_id = $1 AND seq IS NULL ORDER BY pending_id LIMIT $2",
                )
                .bind(chain_id)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                if pending.is_empty() {
                    return Ok(SealOutcome::Idle);
                }
                let drafts = pending
                    .iter()
                    .map(|row| {
                        Ok(vouch_core::audit::AuditDraft {
                            event_id: vouch_core::EventId::parse(&row.try_get::<String, _>("event_id")?)
                                .map_err(Error::internal)?,
                            chain_id: row.try_get("chain_id")?,
                            actor: row.try_get("actor")?,
                            action: row.try_get("action")?,
                            target_type: row.try_get("target_type")?,
                            target_id: row.try_get("target_id")?,
                            data: row.try_get("data")?,
                            created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let frontier = read_tree(&mut *tx, chain_id, &vouch_core::audit::tree::frontier(size)).await?;
                let sealed = vouch_core::audit::seal::seal(key, chain_id, size, last.as_deref(), &frontier, drafts)
                    .map_err(|e| {
                        if matches!(e, vouch_core::audit::seal::SealError::Tampered { .. }) {
                            metrics::counter!("vouch_audit_seal_refused_total").increment(1);
                        }
                        Error::internal(e)
                    })?;
                // Each event's place and leaf, a few hundred per statement.
                for batch in sealed.events.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("WITH v (event_id, seq, leaf_hash) AS (");
                    qb.push_values(batch, |mut row, event| {
                        row.push_bind(event.event_id.as_str().to_owned())
                            .push_bind(event.seq)
                            .push_bind(event.leaf_hash.clone());
                    });
                    qb.push(
                        ") UPDATE audit_events SET seq = v.seq, leaf_hash = v.leaf_hash FROM v \
                         WHERE audit_events.event_id = v.event_id AND audit_events.seq IS NULL",
                    );
                    let done = qb.build().execute(&mut *tx).await?;
                    if done.rows_affected() != batch.len() as u64 {
                        return Err(Error::internal(anyhow::anyhow!(
                            "sealing {chain_id}: {} of {} events were still pending",
                            done.rows_affected(),
                            batch.len()
                        )));
                    }
                }
                for batch in sealed.stored.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO audit_tree (chain_id, idx, hash) ");
                    let mut values = Vec::with_capacity(batch.len());
                    for (index, hash) in batch {
                        values.push((size_to_db(*index)?, hash.0.to_vec()));
                    }
                    qb.push_values(values, |mut row, (index, hash)| {
                        row.push_bind(chain_id.to_owned()).push_bind(index).push_bind(hash);
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                let at = crate::clock::now();
                let new_size = size_to_db(sealed.head.size)?;
                sqlx::query(
                    "UPDATE audit_chains SET tree_size = $1, root_hash = $2, checkpoint = $3, signed_at = $4 \
                     WHERE chain_id = $5",
                )
                .bind(new_size)
                .bind(sealed.head.root.to_string())
                .bind(&sealed.checkpoint)
                .bind(at.unix_millis())
                .bind(chain_id)
                .execute(&mut *tx)
                .await?;
                mark_queue(
                    &mut tx,
                    "kv_outbox",
                    &vouch_core::kv::checkpoint_key(chain_id),
                    crate::store::CHECKPOINT_AGGREGATE,
                    chain_id,
                    new_size,
                    at,
                )
                .await?;
                tx.commit().await?;
                self.signals.kv.notify_one();
                Ok(SealOutcome::Sealed {
                    events: sealed.events.len() as u64,
                    tree_size: sealed.head.size,
                })
            }

            async fn chain_head(&self, chain_id: &str) -> Result<Option<crate::store::ChainHead>> {
                let row = sqlx::query(
                    "SELECT c.tree_size, c.root_hash, c.checkpoint, c.signed_at, c.published_checkpoint, c.published_at, \
                     (SELECT COUNT(*) FROM audit_events e WHERE e.chain_id = c.chain_id AND e.seq IS NULL) AS pending \
                     FROM audit_chains c WHERE c.chain_id = $1",
                )
                .bind(chain_id)
                .fetch_optional(&self.read)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let at = |v: Option<i64>| v.map(Timestamp::from_unix_millis);
                let published: Option<String> = row.try_get("published_checkpoint")?;
                let published_at = at(row.try_get("published_at")?);
                Ok(Some(crate::store::ChainHead {
                    chain_id: chain_id.to_owned(),
                    tree_size: size_of(row.try_get("tree_size")?)?,
                    root_hash: row.try_get("root_hash")?,
                    checkpoint: row.try_get("checkpoint")?,
                    signed_at: at(row.try_get("signed_at")?),
                    published: published.zip(published_at),
                    pending: row.try_get("pending")?,
                }))
            }

            async fn tree_hashes(&self, chain_id: &str, indexes: &[u64]) -> Result<vouch_core::audit::tree::Hashes> {
                read_tree(&self.read, chain_id, indexes).await
            }

            async fn checkpoints(&self, chain_ids: &[String]) -> Result<Vec<(String, u64, String)>> {
                if chain_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let rows = where_in(
                    "SELECT chain_id, tree_size, checkpoint FROM audit_chains WHERE checkpoint IS NOT NULL AND chain_id IN (".into(),
                    chain_ids,
                )
                .build()
                .fetch_all(&self.read)
                .await?;
                rows.iter()
                    .map(|row| Ok((row.try_get("chain_id")?, size_of(row.try_get("tree_size")?)?, row.try_get("checkpoint")?)))
                    .collect()
            }

            async fn checkpoint_published(&self, chain_id: &str, tree_size: u64, checkpoint: &str, at: Timestamp) -> Result<()> {
                // Only forward: a slower publisher never records an older tree over a newer one.
                sqlx::query(
                    "UPDATE audit_chains SET published_checkpoint = $1, published_at = $2 \
                     WHERE chain_id = $3 AND (published_checkpoint IS NULL OR $4 >= \
                       (SELECT k.published_version FROM kv_outbox k WHERE k.kv_key = $5))",
                )
                .bind(checkpoint)
                .bind(at.unix_millis())
                .bind(chain_id)
                .bind(size_to_db(tree_size)?)
                .bind(vouch_core::kv::checkpoint_key(chain_id))
                .execute(&self.write)
                .await?;
                Ok(())
            }

            async fn audit_key(&self) -> Result<Option<crate::store::AuditKeyRow>> {
                let row = sqlx::query("SELECT name, verifier_key, private_key, created_at FROM audit_keys")
                    .fetch_optional(&self.write)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(crate::store::AuditKeyRow {
                    name: row.try_get("name")?,
                    verifier_key: row.try_get("verifier_key")?,
                    private_key: row.try_get("private_key")?,
                    created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
                }))
            }

            async fn create_audit_key(&self, key: &crate::store::AuditKeyRow) -> Result<bool> {
                let mut tx = self.write.begin().await?;
                let signed: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_chains WHERE tree_size > 0")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                if signed > 0 {
                    return Ok(false);
                }
                let done = sqlx::query(
                    "INSERT INTO audit_keys (name, verifier_key, private_key, created_at) \
                     SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM audit_keys)",
                )
                .bind(&key.name)
                .bind(&key.verifier_key)
                .bind(&key.private_key)
                .bind(key.created_at.unix_millis())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use audit_store;
