//! The SQL of [`crate::store::PartnerStore`], instantiated inside `sql_store!` for each database
//! (it uses that expansion's `Tx`, `record_event` and `mark_queue`). Rows are read with
//! `sqlx::FromRow`, the same text for both databases.

use vouch_core::partner::PartnerStatus;
use vouch_core::{PartnerId, Timestamp};

use crate::error::{Error, Result};
use crate::store::{Partner, PartnerKeyRow};

/// The aggregate type of a partner key in `kv_outbox` and `journal_outbox` (its id: the key's hash).
pub const PARTNER_KEY_AGGREGATE: &str = "partner_key";

pub const PARTNER_COLUMNS: &str =
    "partner_id, name, contact, created_at, revoked_at, key_issued_at, version";
pub const PARTNER_KEY_COLUMNS: &str = "key_hash, partner_id, created_at, revoked_at, version";

#[derive(sqlx::FromRow)]
pub struct PartnerRow {
    partner_id: String,
    name: String,
    contact: String,
    created_at: i64,
    revoked_at: Option<i64>,
    key_issued_at: i64,
    version: i64,
}

impl TryFrom<PartnerRow> for Partner {
    type Error = Error;

    fn try_from(row: PartnerRow) -> Result<Partner> {
        Ok(Partner {
            partner_id: PartnerId::parse(&row.partner_id).map_err(Error::internal)?,
            name: row.name,
            contact: row.contact,
            status: match row.revoked_at {
                Some(_) => PartnerStatus::Revoked,
                None => PartnerStatus::Active,
            },
            created_at: Timestamp::from_unix_millis(row.created_at),
            key_issued_at: Timestamp::from_unix_millis(row.key_issued_at),
            revoked_at: row.revoked_at.map(Timestamp::from_unix_millis),
            version: row.version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct PartnerKeyDbRow {
    key_hash: String,
    partner_id: String,
    created_at: i64,
    revoked_at: Option<i64>,
    version: i64,
}

impl TryFrom<PartnerKeyDbRow> for PartnerKeyRow {
    type Error = Error;

    fn try_from(row: PartnerKeyDbRow) -> Result<PartnerKeyRow> {
        Ok(PartnerKeyRow {
            key_hash: row.key_hash,
            partner_id: PartnerId::parse(&row.partner_id).map_err(Error::internal)?,
            version: row.version,
            created_at: Timestamp::from_unix_millis(row.created_at),
            revoked_at: row.revoked_at.map(Timestamp::from_unix_millis),
        })
    }
}

/// The conflict a rotation of a revoked partner's key is.
pub fn partner_revoked() -> Error {
    Error::Conflict {
        code: "partner_revoked",
        message: "this partner is revoked; a revoked partner gets no new key".into(),
    }
}

/// Implements `PartnerStore` for `$store`. `for_update`: how a row is locked for the
/// transaction (Postgres; SQLite's one writer serializes anyway).
macro_rules! partner_store {
    ($store:ty, $db:ty, for_update = $lock:literal) => {
        use crate::store::partners_sql::{
            PartnerKeyDbRow, PartnerRow, PARTNER_COLUMNS, PARTNER_KEY_AGGREGATE, PARTNER_KEY_COLUMNS,
        };

        /// Queues a partner key's current row for KV and the status journal.
        async fn queue_partner_key(tx: &mut Tx, key_hash: &str, version: i64, at: Timestamp) -> Result<()> {
            let key = vouch_core::partner::kv_key(key_hash);
            for queue in ["kv_outbox", "journal_outbox"] {
                mark_queue(tx, queue, &key, PARTNER_KEY_AGGREGATE, key_hash, version, at).await?;
            }
            Ok(())
        }

        async fn insert_partner_key(tx: &mut Tx, partner: &vouch_core::PartnerId, key_hash: &str, at: Timestamp) -> Result<()> {
            sqlx::query(
                "INSERT INTO partner_keys (key_hash, partner_id, created_at, revoked_at, version) \
                 VALUES ($1, $2, $3, NULL, 1)",
            )
            .bind(key_hash)
            .bind(partner.as_str())
            .bind(at.unix_millis())
            .execute(&mut **tx)
            .await?;
            queue_partner_key(tx, key_hash, 1, at).await
        }

        /// Revokes every live key of `partner` (each queued at its new version).
        async fn revoke_partner_keys(tx: &mut Tx, partner: &vouch_core::PartnerId, at: Timestamp) -> Result<()> {
            let revoked: Vec<(String, i64)> = sqlx::query_as(
                "UPDATE partner_keys SET revoked_at = $1, version = version + 1 \
                 WHERE partner_id = $2 AND revoked_at IS NULL RETURNING key_hash, version",
            )
            .bind(at.unix_millis())
            .bind(partner.as_str())
            .fetch_all(&mut **tx)
            .await?;
            for (key_hash, version) in revoked {
                queue_partner_key(tx, &key_hash, version, at).await?;
            }
            Ok(())
        }

        /// The partner, locked for the transaction.
        async fn locked_partner(tx: &mut Tx, id: &vouch_core::PartnerId) -> Result<Option<crate::store::Partner>> {
            let row: Option<PartnerRow> = sqlx::query_as(&format!(
                "SELECT {PARTNER_COLUMNS} FROM partners WHERE partner_id = $1{}",
                $lock
            ))
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
            row.map(crate::store::Partner::try_from).transpose()
        }

        #[async_trait]
        impl crate::store::PartnerStore for $store {
            async fn create_partner(
                &self,
                partner: &crate::store::Partner,
                key_hash: &str,
                event: &ChangeEvent,
            ) -> Result<()> {
                let mut tx = self.write.begin().await?;
                sqlx::query(&format!(
                    "INSERT INTO partners ({PARTNER_COLUMNS}) VALUES ($1, $2, $3, $4, NULL, $5, $6)"
                ))
                .bind(partner.partner_id.as_str())
                .bind(&partner.name)
                .bind(&partner.contact)
                .bind(partner.created_at.unix_millis())
                .bind(partner.key_issued_at.unix_millis())
                .bind(partner.version)
                .execute(&mut *tx)
                .await?;
                insert_partner_key(&mut tx, &partner.partner_id, key_hash, partner.created_at).await?;
                record_event(&mut tx, event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(())
            }

            async fn get_partner(&self, id: &vouch_core::PartnerId) -> Result<Option<crate::store::Partner>> {
                let row: Option<PartnerRow> = sqlx::query_as(&format!(
                    "SELECT {PARTNER_COLUMNS} FROM partners WHERE partner_id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(&self.read)
                .await?;
                row.map(crate::store::Partner::try_from).transpose()
            }

            async fn list_partners(&self, page: &PageRequest) -> Result<Page<crate::store::Partner>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!("SELECT {PARTNER_COLUMNS} FROM partners WHERE 1 = 1"));
                if let Some(after) = &page.after {
                    qb.push(" AND partner_id < ").push_bind(after.clone());
                }
                qb.push(" ORDER BY partner_id DESC LIMIT ").push_bind(i64::from(page.limit) + 1);
                let rows: Vec<PartnerRow> = qb.build_query_as().fetch_all(&self.read).await?;
                let partners = rows
                    .into_iter()
                    .map(crate::store::Partner::try_from)
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(partners, page.limit, |p| p.partner_id.to_string()))
            }

            async fn revoke_partner(
                &self,
                id: &vouch_core::PartnerId,
                at: Timestamp,
                event_of: crate::store::PartnerEvent,
            ) -> Result<Option<(crate::store::Partner, bool)>> {
                let mut tx = self.write.begin().await?;
                let Some(current) = locked_partner(&mut tx, id).await? else {
                    return Ok(None);
                };
                if current.revoked_at.is_some() {
                    return Ok(Some((current, false)));
                }
                let row: PartnerRow = sqlx::query_as(&format!(
                    "UPDATE partners SET revoked_at = $1, version = version + 1 WHERE partner_id = $2 \
                     RETURNING {PARTNER_COLUMNS}"
                ))
                .bind(at.unix_millis())
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
                let revoked = crate::store::Partner::try_from(row)?;
                revoke_partner_keys(&mut tx, id, at).await?;
                record_event(&mut tx, &event_of(&revoked)).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(Some((revoked, true)))
            }

            async fn rotate_partner_key(
                &self,
                id: &vouch_core::PartnerId,
                key_hash: &str,
                at: Timestamp,
                event_of: crate::store::PartnerEvent,
            ) -> Result<Option<crate::store::Partner>> {
                let mut tx = self.write.begin().await?;
                let Some(current) = locked_partner(&mut tx, id).await? else {
                    return Ok(None);
                };
                if current.revoked_at.is_some() {
                    return Err(crate::store::partners_sql::partner_revoked());
                }
                revoke_partner_keys(&mut tx, id, at).await?;
                insert_partner_key(&mut tx, id, key_hash, at).await?;
                let row: PartnerRow = sqlx::query_as(&format!(
                    "UPDATE partners SET key_issued_at = $1, version = version + 1 WHERE partner_id = $2 \
                     RETURNING {PARTNER_COLUMNS}"
                ))
                .bind(at.unix_millis())
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
                let rotated = crate::store::Partner::try_from(row)?;
                record_event(&mut tx, &event_of(&rotated)).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(Some(rotated))
            }

            async fn partner_keys_by_hashes(&self, hashes: &[String]) -> Result<Vec<crate::store::PartnerKeyRow>> {
                if hashes.is_empty() {
                    return Ok(Vec::new());
                }
                let rows: Vec<PartnerKeyDbRow> = where_in(
                    format!("SELECT {PARTNER_KEY_COLUMNS} FROM partner_keys WHERE key_hash IN ("),
                    hashes,
                )
                .build_query_as()
                .fetch_all(&self.read)
                .await?;
                rows.into_iter().map(crate::store::PartnerKeyRow::try_from).collect()
            }
        }
    };
}

pub(crate) use partner_store;
