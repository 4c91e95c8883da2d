//! SQLite: one writer connection (SQLite serializes writers anyway; one connection avoids
//! `SQLITE_BUSY` on lock upgrades) and a small pool of readers, in WAL mode.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    signals: crate::store::Signals,
}

impl SqliteStore {
    pub const BACKEND: &'static str = "sqlite";

    pub async fn connect(url: &str) -> crate::error::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&write)
            .await
            .map_err(crate::error::Error::internal)?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore {
            write,
            read,
            signals: crate::store::Signals::default(),
        })
    }
}

crate::store::sql::sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    for_update = "",
    for_share = "",
    no_key_update = "",
    key_share = "",
    skip_locked = "",
    txid_stream = false,
    next_status_index = "(SELECT COALESCE(MAX(status_index), -1) + 1 FROM agents)"
);
