//! The SQL of [`crate::store::SessionStore`] and [`crate::store::ConsoleStore`], instantiated
//! inside `sql_store!` for each database (the same text serves both; it uses that expansion's
//! delivery helpers).

/// Implements `SessionStore` and `ConsoleStore` for `$store`.
macro_rules! console_store {
    ($store:ty) => {
        #[async_trait]
        impl crate::store::SessionStore for $store {
            async fn create_session(
                &self,
                session_hash: &str,
                token_hash: &str,
                created_at: Timestamp,
                expires_at: Timestamp,
            ) -> Result<()> {
                let mut tx = self.write.begin().await?;
                sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
                    .bind(created_at.unix_millis())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO console_sessions (session_hash, token_hash, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(session_hash)
                .bind(token_hash)
                .bind(created_at.unix_millis())
                .bind(expires_at.unix_millis())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn session_token(&self, session_hash: &str, now: Timestamp) -> Result<Option<String>> {
                let row = sqlx::query(
                    "SELECT token_hash FROM console_sessions WHERE session_hash = $1 AND expires_at > $2",
                )
                .bind(session_hash)
                .bind(now.unix_millis())
                .fetch_optional(&self.read)
                .await?;
                Ok(match row {
                    Some(row) => Some(row.try_get("token_hash")?),
                    None => None,
                })
            }

            async fn delete_session(&self, session_hash: &str) -> Result<bool> {
                let done = sqlx::query("DELETE FROM console_sessions WHERE session_hash = $1")
                    .bind(session_hash)
                    .execute(&self.write)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl crate::store::ConsoleStore for $store {
            async fn delegations_of(&self, agent_id: &AgentId, limit: u32) -> Result<Vec<crate::store::DelegationRecord>> {
                let rows = sqlx::query(
                    "SELECT delegation_id FROM delegations WHERE delegator = $1 OR delegatee = $1 \
                     ORDER BY created_at DESC, delegation_id DESC LIMIT $2",
                )
                .bind(agent_id.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?;
                let ids = rows
                    .iter()
                    .map(|row| row.try_get::<String, _>("delegation_id"))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let mut found = crate::store::DelegationStore::delegations_by_ids(self, &ids).await?;
                found.sort_by(|a, b| b.created_at.cmp(&a.created_at));
                Ok(found)
            }

            async fn deliveries_about(&self, agent_id: &AgentId, limit: u32) -> Result<Vec<crate::store::Delivery>> {
                let rows = sqlx::query(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN outbox o ON o.event_id = d.event_id \
                     WHERE o.aggregate_id = $1 ORDER BY d.id DESC LIMIT $2"
                ))
                .bind(agent_id.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await?;
                let deliveries = rows.iter().map(delivery_from_row).collect::<Result<Vec<_>>>()?;
                with_attempts(&self.read, deliveries).await
            }

            async fn tokens_of(&self, org_id: &OrgId) -> Result<Vec<(AdminToken, Option<Timestamp>)>> {
                let rows = sqlx::query(
                    "SELECT token_id, org_id, role, name, created_at, revoked_at FROM admin_tokens \
                     WHERE org_id = $1 ORDER BY created_at DESC, token_id DESC",
                )
                .bind(org_id.as_str())
                .fetch_all(&self.read)
                .await?;
                rows.iter()
                    .map(|row| {
                        let role: String = row.try_get("role")?;
                        let token = AdminToken {
                            token_id: TokenId::parse(&row.try_get::<String, _>("token_id")?).map_err(Error::internal)?,
                            org_id: Some(org_id.clone()),
                            role: Role::parse(&role)
                                .ok_or_else(|| Error::internal(anyhow::anyhow!("stored role {role:?}")))?,
                            name: row.try_get("name")?,
                            created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
                        };
                        let revoked = row.try_get::<Option<i64>, _>("revoked_at")?.map(Timestamp::from_unix_millis);
                        Ok((token, revoked))
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use console_store;
