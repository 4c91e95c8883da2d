//! PostgreSQL: one pool; agent rows are locked with `FOR UPDATE` while they change.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

pub struct PgStore {
    write: PgPool,
    read: PgPool,
    signals: crate::store::Signals,
}

impl PgStore {
    pub const BACKEND: &'static str = "postgres";

    pub async fn connect(url: &str) -> crate::error::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(crate::error::Error::internal)?;
        Ok(PgStore {
            write: pool.clone(),
            read: pool,
            signals: crate::store::Signals::default(),
        })
    }
}

crate::store::sql::sql_store!(
    PgStore,
    sqlx::Postgres,
    for_update = " FOR UPDATE",
    for_share = " FOR SHARE",
    no_key_update = " FOR NO KEY UPDATE",
    key_share = " FOR KEY SHARE OF w",
    skip_locked = " FOR UPDATE SKIP LOCKED",
    txid_stream = true,
    next_status_index = "nextval('agent_status_index')"
);
