//! The SQL of [`crate::store::StatusListStore`], instantiated inside `sql_store!` for each
//! database.

/// Implements `StatusListStore` for `$store`.
macro_rules! status_list_store {
    ($store:ty, $db:ty, skip_locked = $skip:literal) => {
        #[async_trait]
        impl crate::store::StatusListStore for $store {
            async fn claim_status_lists(
                &self,
                owner: &str,
                now: Timestamp,
                lease_ms: i64,
                stale_before: Timestamp,
                changed_before: Timestamp,
                limit: u32,
            ) -> Result<Vec<u64>> {
                // Lists that filled up since the last pass (their first registration left a
                // change row) get their row.
                sqlx::query(
                    "INSERT INTO status_lists (list_id) SELECT DISTINCT list_id FROM status_list_changes \
                     WHERE true /* SQLite needs a WHERE before an upsert on INSERT … SELECT */ \
                     ON CONFLICT (list_id) DO NOTHING",
                )
                .execute(&self.write)
                .await?;
                let ids: Vec<i64> = sqlx::query_scalar(&format!(
                    "UPDATE status_lists SET lease_owner = $1, lease_until = $2 WHERE list_id IN ( \
                       SELECT l.list_id FROM status_lists l \
                       WHERE (l.lease_until IS NULL OR l.lease_until < $3) \
                         AND (l.built_at IS NULL OR l.built_at <= $4 \
                              OR (l.built_at <= $5 AND EXISTS \
                                  (SELECT 1 FROM status_list_changes c WHERE c.list_id = l.list_id))) \
                       ORDER BY l.built_at IS NOT NULL, l.built_at LIMIT $6{}) \
                     RETURNING list_id",
                    $skip
                ))
                .bind(owner)
                .bind(now.unix_millis() + lease_ms)
                .bind(now.unix_millis())
                .bind(stale_before.unix_millis())
                .bind(changed_before.unix_millis())
                .bind(i64::from(limit))
                .fetch_all(&self.write)
                .await?;
                Ok(ids.into_iter().filter_map(|id| u64::try_from(id).ok()).collect())
            }

            async fn status_list_snapshot(&self, list_id: u64) -> Result<crate::store::StatusListSnapshot> {
                let id = i64::try_from(list_id).map_err(Error::internal)?;
                // The changes first: whatever they record is committed, so the read below sees it.
                let change_ids: Vec<i64> =
                    sqlx::query_scalar("SELECT id FROM status_list_changes WHERE list_id = $1")
                        .bind(id)
                        .fetch_all(&self.read)
                        .await?;
                let (start, end) = vouch_core::status_list::places_of(list_id);
                let rows = sqlx::query(
                    "SELECT status_index, status FROM agents WHERE status_index >= $1 AND status_index < $2",
                )
                .bind(i64::try_from(start).map_err(Error::internal)?)
                .bind(i64::try_from(end).map_err(Error::internal)?)
                .fetch_all(&self.read)
                .await?;
                let mut statuses = Vec::with_capacity(rows.len());
                for row in &rows {
                    let place: i64 = row.try_get("status_index")?;
                    let status: String = row.try_get("status")?;
                    let status = vouch_core::Status::parse(&status)
                        .ok_or_else(|| Error::internal(anyhow::anyhow!("stored status {status:?}")))?;
                    statuses.push((u64::try_from(place).map_err(Error::internal)?, status));
                }
                Ok(crate::store::StatusListSnapshot { change_ids, statuses })
            }

            async fn store_status_list(
                &self,
                owner: &str,
                list_id: u64,
                body: &str,
                change_ids: &[i64],
                at: Timestamp,
            ) -> Result<bool> {
                let id = i64::try_from(list_id).map_err(Error::internal)?;
                let mut tx = self.write.begin().await?;
                let held = sqlx::query(
                    "UPDATE status_lists SET built_at = $1, lease_owner = NULL, lease_until = NULL \
                     WHERE list_id = $2 AND lease_owner = $3",
                )
                .bind(at.unix_millis())
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !held {
                    return Ok(false);
                }
                write_document(&mut tx, &vouch_core::status_list::kv_key(list_id), body, at).await?;
                for chunk in change_ids.chunks(1_000) {
                    let ids: Vec<String> = chunk.iter().map(ToString::to_string).collect();
                    // Integers, formatted here: nothing from outside reaches this text.
                    sqlx::query(&format!(
                        "DELETE FROM status_list_changes WHERE id IN ({})",
                        ids.join(", ")
                    ))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                self.signals.kv.notify_one();
                Ok(true)
            }

            async fn release_status_list(&self, owner: &str, list_id: u64) -> Result<()> {
                sqlx::query(
                    "UPDATE status_lists SET lease_owner = NULL, lease_until = NULL \
                     WHERE list_id = $1 AND lease_owner = $2",
                )
                .bind(i64::try_from(list_id).map_err(Error::internal)?)
                .bind(owner)
                .execute(&self.write)
                .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use status_list_store;
