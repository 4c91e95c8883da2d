//! The SQL of [`crate::store::ReceiptStore`], instantiated inside `sql_store!` for each database.

/// Implements `ReceiptStore` for `$store`.
macro_rules! receipt_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl crate::store::ReceiptStore for $store {
            async fn store_receipts(&self, receipts: &[crate::store::ReceiptRow]) -> Result<u64> {
                let mut tx = self.write.begin().await?;
                let mut stored = 0;
                for receipt in receipts {
                    let done = sqlx::query(
                        "INSERT INTO receipts (decision_id, agent_id, org_id, partner_id, created_at, \
                         received_at, body) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (decision_id) DO NOTHING",
                    )
                    .bind(&receipt.decision_id)
                    .bind(receipt.agent_id.as_str())
                    .bind(receipt.org_id.as_str())
                    .bind(receipt.partner_id.as_deref())
                    .bind(receipt.created_at.unix_millis())
                    .bind(receipt.received_at.unix_millis())
                    .bind(&receipt.body)
                    .execute(&mut *tx)
                    .await?;
                    stored += done.rows_affected();
                }
                tx.commit().await?;
                Ok(stored)
            }

            async fn list_receipts(
                &self,
                agent_id: &AgentId,
                page: &PageRequest,
            ) -> Result<Page<crate::store::ReceiptRow>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT decision_id, agent_id, org_id, partner_id, created_at, received_at, body \
                     FROM receipts WHERE agent_id = ",
                );
                qb.push_bind(agent_id.as_str().to_owned());
                if let Some(after) = &page.after {
                    let (at, id) = crate::store::ReceiptRow::parse_cursor(after)?;
                    qb.push(" AND (created_at < ")
                        .push_bind(at)
                        .push(" OR (created_at = ")
                        .push_bind(at)
                        .push(" AND decision_id < ")
                        .push_bind(id)
                        .push("))");
                }
                qb.push(" ORDER BY created_at DESC, decision_id DESC LIMIT ")
                    .push_bind(i64::from(page.limit) + 1);
                let rows = qb.build().fetch_all(&self.read).await?;
                let receipts = rows
                    .iter()
                    .map(|row| {
                        let agent: String = row.try_get("agent_id")?;
                        let org: String = row.try_get("org_id")?;
                        Ok(crate::store::ReceiptRow {
                            decision_id: row.try_get("decision_id")?,
                            agent_id: AgentId::parse(&agent).map_err(Error::internal)?,
                            org_id: OrgId::parse(&org).map_err(Error::internal)?,
                            partner_id: row.try_get("partner_id")?,
                            created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
                            received_at: Timestamp::from_unix_millis(row.try_get("received_at")?),
                            body: row.try_get("body")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(receipts, page.limit, crate::store::ReceiptRow::cursor))
            }
        }
    };
}

pub(crate) use receipt_store;
