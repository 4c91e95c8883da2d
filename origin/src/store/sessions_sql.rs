//! The SQL of [`crate::store::SessionStore`], instantiated inside `sql_store!` for each
//! database (the same text serves both).

/// Implements `SessionStore` for `$store`.
macro_rules! session_store {
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
    };
}

pub(crate) use session_store;
