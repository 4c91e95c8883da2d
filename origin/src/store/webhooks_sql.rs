//! The SQL of [`crate::store::WebhookStore`], instantiated inside `sql_store!` for each
//! database (it uses that expansion's `Tx` and `record_event`).

/// Implements `WebhookStore` for `$store`. `txid_stream`: the outbox has a `txid` column
/// (Postgres) and the stream reads in `(txid, id)` order below the oldest running transaction;
/// otherwise (SQLite, serial writes) `id` order is commit order.
macro_rules! webhook_store {
    ($store:ty, $db:ty, no_key_update = $nku:literal, skip_locked = $skip:literal, txid_stream = $txid:literal) => {
        const WEBHOOK_COLUMNS: &str = "w.webhook_id, w.org_id, w.url, w.description, w.events, \
             w.status, w.disabled_reason, w.secret, w.previous_secret, w.previous_until, \
             w.created_at, w.updated_at, w.last_success_at";

        const DELIVERY_COLUMNS: &str = "d.id AS d_id, d.event_id AS d_event_id, \
             d.webhook_id AS d_webhook_id, d.state AS d_state, d.attempts AS d_attempts, \
             d.retry_index AS d_retry_index, d.next_attempt_at AS d_next_attempt_at, \
             d.created_at AS d_created_at, d.updated_at AS d_updated_at, o.event_type AS o_event_type";

        fn webhook_from_row(row: &<$db as sqlx::Database>::Row) -> Result<crate::store::WebhookRecord> {
            let bad = |e: vouch_core::ids::IdError| Error::internal(anyhow::anyhow!("{e}"));
            let at = |v: Option<i64>| v.map(Timestamp::from_unix_millis);
            let events: String = row.try_get("events")?;
            let status: String = row.try_get("status")?;
            Ok(crate::store::WebhookRecord {
                webhook_id: vouch_core::ids::WebhookId::parse(&row.try_get::<String, _>("webhook_id")?).map_err(bad)?,
                org_id: OrgId::parse(&row.try_get::<String, _>("org_id")?).map_err(bad)?,
                url: row.try_get("url")?,
                description: row.try_get("description")?,
                events: serde_json::from_str(&events).map_err(Error::internal)?,
                enabled: status == "enabled",
                disabled_reason: row.try_get("disabled_reason")?,
                secret: row.try_get("secret")?,
                previous_secret: row.try_get("previous_secret")?,
                previous_until: at(row.try_get("previous_until")?),
                created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
                updated_at: Timestamp::from_unix_millis(row.try_get("updated_at")?),
                last_success_at: at(row.try_get("last_success_at")?),
            })
        }

        fn delivery_from_row(row: &<$db as sqlx::Database>::Row) -> Result<crate::store::Delivery> {
            let state: String = row.try_get("d_state")?;
            let next: i64 = row.try_get("d_next_attempt_at")?;
            Ok(crate::store::Delivery {
                id: row.try_get("d_id")?,
                event_id: row.try_get("d_event_id")?,
                event_type: row.try_get("o_event_type")?,
                webhook_id: row.try_get("d_webhook_id")?,
                next_attempt_at: (state == "pending").then(|| Timestamp::from_unix_millis(next)),
                status: state,
                attempt_count: i64::from(row.try_get::<i32, _>("d_attempts")?),
                created_at: Timestamp::from_unix_millis(row.try_get("d_created_at")?),
                updated_at: Timestamp::from_unix_millis(row.try_get("d_updated_at")?),
                attempts: Vec::new(),
            })
        }

        /// Fills in the attempts of `deliveries`.
        async fn with_attempts<'e, E>(executor: E, mut deliveries: Vec<crate::store::Delivery>) -> Result<Vec<crate::store::Delivery>>
        where
            E: sqlx::Executor<'e, Database = $db>,
        {
            if deliveries.is_empty() {
                return Ok(deliveries);
            }
            // The newest attempts of each delivery only: redeliveries can make the log long.
            let mut qb = sqlx::QueryBuilder::<$db>::new(
                "SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code, a.error, \
                 a.response_body, a.next_attempt_at FROM webhook_attempts a \
                 JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE a.attempt > d.attempts - ",
            );
            qb.push_bind(crate::webhooks::ATTEMPTS_SHOWN).push(" AND a.delivery_id IN (");
            let mut list = qb.separated(", ");
            for d in &deliveries {
                list.push_bind(d.id);
            }
            qb.push(") ORDER BY a.delivery_id, a.attempt");
            let rows = qb.build().fetch_all(executor).await?;
            for row in &rows {
                let delivery_id: i64 = row.try_get("delivery_id")?;
                let status: Option<i32> = row.try_get("status_code")?;
                let next: Option<i64> = row.try_get("next_attempt_at")?;
                let attempt = crate::store::Attempt {
                    attempt: i64::from(row.try_get::<i32, _>("attempt")?),
                    started_at: Timestamp::from_unix_millis(row.try_get("started_at")?),
                    duration_ms: row.try_get("duration_ms")?,
                    status_code: status.and_then(|s| u16::try_from(s).ok()),
                    error: row.try_get("error")?,
                    response_body: row.try_get("response_body")?,
                    next_attempt_at: next.map(Timestamp::from_unix_millis),
                };
                if let Some(d) = deliveries.iter_mut().find(|d| d.id == delivery_id) {
                    d.attempts.push(attempt);
                }
            }
            Ok(deliveries)
        }

        /// Writes the subscription's event types (after deleting the old ones).
        async fn write_event_types(tx: &mut Tx, webhook: &crate::store::WebhookRecord) -> Result<()> {
            sqlx::query("DELETE FROM webhook_event_types WHERE webhook_id = $1")
                .bind(webhook.webhook_id.as_str())
                .execute(&mut **tx)
                .await?;
            let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO webhook_event_types (webhook_id, event_type) ");
            qb.push_values(&webhook.events, |mut row, kind| {
                row.push_bind(webhook.webhook_id.as_str().to_owned()).push_bind(kind.clone());
            });
            qb.build().execute(&mut **tx).await?;
            Ok(())
        }

        fn stream_pos(row: &<$db as sqlx::Database>::Row) -> Result<crate::store::StreamPos> {
            let tx: String = row.try_get("tx")?;
            Ok(crate::store::StreamPos {
                tx: tx.parse().map_err(Error::internal)?,
                id: row.try_get("id")?,
            })
        }

        /// ` AND …`: the rows a stream of `scope` sees.
        fn push_stream_scope(qb: &mut sqlx::QueryBuilder<'_, $db>, scope: &crate::store::StreamScope) {
            use crate::store::StreamScope;
            match scope {
                StreamScope::All => {}
                StreamScope::Org(org) => {
                    qb.push(" AND (org_id = ").push_bind(org.as_str().to_owned()).push(" OR event_type IN (");
                    let mut list = qb.separated(", ");
                    for kind in crate::webhooks::events::platform_wide() {
                        list.push_bind(kind);
                    }
                    qb.push("))");
                }
                StreamScope::Agent(agent) => {
                    qb.push(" AND aggregate_id = ").push_bind(agent.as_str().to_owned());
                }
            }
        }

        #[async_trait]
        impl crate::store::WebhookStore for $store {
            async fn create_webhook(&self, webhook: &crate::store::WebhookRecord, event: &ChangeEvent) -> Result<()> {
                let mut tx = self.write.begin().await?;
                // The org row, locked (Postgres) so that concurrent creations count one by one.
                let org = sqlx::query(&format!("SELECT org_id FROM orgs WHERE org_id = $1{}", $nku))
                    .bind(webhook.org_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if org.is_none() {
                    return Err(Error::org_not_found());
                }
                let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM webhooks WHERE org_id = $1")
                    .bind(webhook.org_id.as_str())
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                if count >= crate::webhooks::MAX_PER_ORG {
                    return Err(crate::webhooks::limit_reached());
                }
                sqlx::query(
                    "INSERT INTO webhooks (webhook_id, org_id, url, description, events, status, disabled_reason, \
                     secret, previous_secret, previous_until, created_at, updated_at, last_success_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, NULL, NULL, $8, $8, NULL)",
                )
                .bind(webhook.webhook_id.as_str())
                .bind(webhook.org_id.as_str())
                .bind(&webhook.url)
                .bind(&webhook.description)
                .bind(serde_json::to_string(&webhook.events).map_err(Error::internal)?)
                .bind(if webhook.enabled { "enabled" } else { "disabled" })
                .bind(&webhook.secret)
                .bind(webhook.created_at.unix_millis())
                .execute(&mut *tx)
                .await?;
                write_event_types(&mut tx, webhook).await?;
                record_event(&mut tx, event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(())
            }

            async fn get_webhook(&self, scope: &Scope, id: &vouch_core::ids::WebhookId) -> Result<Option<crate::store::WebhookRecord>> {
                let row = sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.webhook_id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(&self.write)
                    .await?;
                let webhook = row.as_ref().map(webhook_from_row).transpose()?;
                Ok(webhook.filter(|w| scope.allows(&w.org_id)))
            }

            async fn list_webhooks(&self, scope: &Scope, page: &PageRequest) -> Result<Page<crate::store::WebhookRecord>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE 1 = 1"));
                if let Scope::Org(org) = scope {
                    qb.push(" AND w.org_id = ").push_bind(org.as_str().to_owned());
                }
                if let Some(after) = &page.after {
                    qb.push(" AND w.webhook_id < ").push_bind(after.clone());
                }
                qb.push(" ORDER BY w.webhook_id DESC LIMIT ").push_bind(i64::from(page.limit) + 1);
                let rows = qb.build().fetch_all(&self.read).await?;
                let hooks = rows.iter().map(webhook_from_row).collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(hooks, page.limit, |w| w.webhook_id.to_string()))
            }

            async fn modify_webhook(
                &self,
                scope: &Scope,
                id: &vouch_core::ids::WebhookId,
                mutation: crate::store::WebhookMutation,
            ) -> Result<crate::store::WebhookRecord> {
                let mut tx = self.write.begin().await?;
                // Read inside the write transaction, the row locked (Postgres; SQLite's one
                // writer serializes): a rotation or the sender's auto-disable is not overwritten.
                let row = sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.webhook_id = $1{}", $nku))
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let current = row
                    .as_ref()
                    .map(webhook_from_row)
                    .transpose()?
                    .filter(|w| scope.allows(&w.org_id))
                    .ok_or_else(crate::webhooks::not_found)?;
                let Some((next, event)) = mutation(&current)? else {
                    return Ok(current);
                };
                // Only the fields that changed.
                let mut qb = sqlx::QueryBuilder::<$db>::new("UPDATE webhooks SET updated_at = ");
                qb.push_bind(next.updated_at.unix_millis());
                if next.url != current.url {
                    qb.push(", url = ").push_bind(next.url.clone());
                }
                if next.description != current.description {
                    qb.push(", description = ").push_bind(next.description.clone());
                }
                if next.events != current.events {
                    qb.push(", events = ").push_bind(serde_json::to_string(&next.events).map_err(Error::internal)?);
                }
                if next.enabled != current.enabled || next.disabled_reason != current.disabled_reason {
                    qb.push(", status = ").push_bind(if next.enabled { "enabled" } else { "disabled" });
                    qb.push(", disabled_reason = ").push_bind(next.disabled_reason.clone());
                }
                qb.push(" WHERE webhook_id = ").push_bind(id.as_str().to_owned());
                qb.build().execute(&mut *tx).await?;
                if next.events != current.events {
                    write_event_types(&mut tx, &next).await?;
                }
                if next.enabled && !current.enabled {
                    // Deliveries that waited while it was disabled go now, on a fresh schedule.
                    sqlx::query(
                        "UPDATE webhook_deliveries SET next_attempt_at = $1, retry_index = 0, updated_at = $1 \
                         WHERE webhook_id = $2 AND state = 'pending'",
                    )
                    .bind(next.updated_at.unix_millis())
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                record_event(&mut tx, &event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(next)
            }

            async fn rotate_webhook_secret(
                &self,
                scope: &Scope,
                id: &vouch_core::ids::WebhookId,
                sealed: &str,
                until: Option<Timestamp>,
                event: &ChangeEvent,
            ) -> Result<bool> {
                let mut tx = self.write.begin().await?;
                // One statement, the secret columns only: the current secret becomes the
                // previous one as it is at this moment.
                let mut qb = sqlx::QueryBuilder::<$db>::new(if until.is_some() {
                    "UPDATE webhooks SET previous_secret = secret, previous_until = "
                } else {
                    "UPDATE webhooks SET previous_secret = NULL, previous_until = "
                });
                qb.push_bind(until.map(|t| t.unix_millis()))
                    .push(", secret = ")
                    .push_bind(sealed.to_owned())
                    .push(", updated_at = ")
                    .push_bind(event.created_at.unix_millis())
                    .push(" WHERE webhook_id = ")
                    .push_bind(id.as_str().to_owned());
                if let Scope::Org(org) = scope {
                    qb.push(" AND org_id = ").push_bind(org.as_str().to_owned());
                }
                if qb.build().execute(&mut *tx).await?.rows_affected() == 0 {
                    return Ok(false);
                }
                record_event(&mut tx, event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(true)
            }

            async fn delete_webhook(&self, scope: &Scope, id: &vouch_core::ids::WebhookId, event: &ChangeEvent) -> Result<bool> {
                let mut tx = self.write.begin().await?;
                // Locks in the order every other transaction takes them (Postgres): first the
                // subscription row as its updates do (`FOR NO KEY UPDATE`: concurrent queueing,
                // `FOR KEY SHARE`, goes on), then the event (`webhook.deleted` is not delivered,
                // so it queues nothing and takes no key share), and only then the delete itself,
                // which waits for deliveries being queued to it by changes in flight.
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT webhook_id FROM webhooks WHERE webhook_id = ");
                qb.push_bind(id.as_str().to_owned());
                if let Scope::Org(org) = scope {
                    qb.push(" AND org_id = ").push_bind(org.as_str().to_owned());
                }
                qb.push($nku);
                if qb.build().fetch_optional(&mut *tx).await?.is_none() {
                    return Ok(false);
                }
                record_event(&mut tx, event).await?;
                let done = sqlx::query("DELETE FROM webhooks WHERE webhook_id = $1")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                tx.commit().await?;
                self.signals.committed();
                Ok(true)
            }

            async fn claim_deliveries(&self, owner: &str, now: Timestamp, lease_ms: i64, limit: u32) -> Result<Vec<crate::store::DeliveryWork>> {
                // Fair: each subscription's oldest due deliveries first, round-robin across
                // subscriptions (rank within the subscription, then due time), and never more
                // than `PER_WEBHOOK_IN_FLIGHT` of one subscription leased at once, so one slow
                // endpoint cannot take every sender slot. The attempt is counted here.
                // The conditions of a due, unleased delivery are repeated where the rows are
                // locked and updated: Postgres re-checks only those against a row another
                // replica changed meanwhile (the ranking query saw its old version), so a
                // delivery just leased elsewhere is skipped instead of leased twice.
                let claimed = sqlx::query(&format!(
                    "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM webhook_deliveries WHERE id IN ( \
                       SELECT c.id FROM ( \
                         SELECT d.id AS id, d.next_attempt_at AS due, \
                           ROW_NUMBER() OVER (PARTITION BY d.webhook_id ORDER BY d.next_attempt_at, d.id) AS rank, \
                           COALESCE(b.busy, 0) AS busy \
                         FROM webhook_deliveries d \
                         JOIN webhooks w ON w.webhook_id = d.webhook_id AND w.status = 'enabled' \
                         LEFT JOIN (SELECT webhook_id, COUNT(*) AS busy FROM webhook_deliveries \
                           WHERE state = 'pending' AND lease_until >= $3 GROUP BY webhook_id) b \
                           ON b.webhook_id = d.webhook_id \
                         WHERE d.state = 'pending' AND d.next_attempt_at <= $3 \
                           AND (d.lease_until IS NULL OR d.lease_until < $3)) c \
                       WHERE c.rank + c.busy <= $5 \
                       ORDER BY c.rank, c.due, c.id LIMIT $4) \
                       AND state = 'pending' AND next_attempt_at <= $3 \
                       AND (lease_until IS NULL OR lease_until < $3){}) \
                     AND state = 'pending' AND next_attempt_at <= $3 \
                     AND (lease_until IS NULL OR lease_until < $3) \
                     RETURNING id",
                    $skip
                ))
                .bind(owner)
                .bind(now.unix_millis() + lease_ms)
                .bind(now.unix_millis())
                .bind(i64::from(limit))
                .bind(crate::webhooks::PER_WEBHOOK_IN_FLIGHT)
                .fetch_all(&self.write)
                .await?;
                if claimed.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {DELIVERY_COLUMNS}, o.payload AS o_payload, {WEBHOOK_COLUMNS} \
                     FROM webhook_deliveries d JOIN outbox o ON o.event_id = d.event_id \
                     JOIN webhooks w ON w.webhook_id = d.webhook_id WHERE d.lease_owner = "
                ));
                qb.push_bind(owner.to_owned()).push(" AND d.id IN (");
                let mut list = qb.separated(", ");
                for row in &claimed {
                    list.push_bind(row.try_get::<i64, _>("id")?);
                }
                qb.push(")");
                let rows = qb.build().fetch_all(&self.write).await?;
                rows.iter()
                    .map(|row| {
                        let delivery = delivery_from_row(row)?;
                        Ok(crate::store::DeliveryWork {
                            delivery_id: delivery.id,
                            event_id: delivery.event_id,
                            event_type: delivery.event_type,
                            attempt: delivery.attempt_count,
                            retry_index: i64::from(row.try_get::<i32, _>("d_retry_index")?),
                            created_at: delivery.created_at,
                            payload: row.try_get("o_payload")?,
                            webhook: webhook_from_row(row)?,
                        })
                    })
                    .collect()
            }

            async fn settle_delivery(
                &self,
                owner: &str,
                work: &crate::store::DeliveryWork,
                attempt: &crate::store::Attempt,
                outcome: &crate::store::Settle,
            ) -> Result<()> {
                use crate::store::Settle;
                let at = attempt.started_at.unix_millis() + attempt.duration_ms;
                let mut tx = self.write.begin().await?;
                if !matches!(outcome, Settle::Retry(_)) {
                    // The subscription row before the delivery, as a PATCH that re-enables it
                    // (it then reschedules the deliveries) and a delete take them (Postgres):
                    // the same order everywhere, no deadlock.
                    sqlx::query(&format!("SELECT webhook_id FROM webhooks WHERE webhook_id = $1{}", $nku))
                        .bind(work.webhook.webhook_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                }
                let (state, next, step) = match outcome {
                    Settle::Succeeded => ("succeeded", at, 0),
                    Settle::Retry(next) => ("pending", next.unix_millis(), 1),
                    Settle::Exhausted { .. } => ("failed", at, 0),
                };
                let settled = sqlx::query(
                    "UPDATE webhook_deliveries SET state = $1, retry_index = retry_index + $2, \
                     next_attempt_at = $3, updated_at = $4, lease_owner = NULL, lease_until = NULL \
                     WHERE id = $5 AND lease_owner = $6 AND attempts = $7",
                )
                .bind(state)
                .bind(step)
                .bind(next)
                .bind(at)
                .bind(work.delivery_id)
                .bind(owner)
                .bind(i32::try_from(work.attempt).unwrap_or(i32::MAX))
                .execute(&mut *tx)
                .await?;
                let lease_lost = settled.rows_affected() == 0;
                // The attempt is logged either way (its number was taken when it was leased);
                // one whose lease ran out (another sender took the delivery over, or it was
                // redelivered) settles nothing and has no side effects.
                sqlx::query(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, \
                     error, response_body, next_attempt_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1)",
                )
                .bind(work.delivery_id)
                .bind(i32::try_from(attempt.attempt).unwrap_or(i32::MAX))
                .bind(attempt.started_at.unix_millis())
                .bind(attempt.duration_ms)
                .bind(attempt.status_code.map(i32::from))
                .bind(&attempt.error)
                .bind(&attempt.response_body)
                .bind(if lease_lost { None } else { attempt.next_attempt_at.map(|t| t.unix_millis()) })
                .execute(&mut *tx)
                .await?;
                if lease_lost {
                    tx.commit().await?;
                    tracing::warn!(
                        delivery_id = work.delivery_id,
                        attempt = attempt.attempt,
                        "a webhook attempt outlived its lease: logged, not settled"
                    );
                    metrics::counter!("vouch_webhook_lease_lost_total").increment(1);
                    return Ok(());
                }
                let mut disabled = false;
                match outcome {
                    Settle::Succeeded => {
                        sqlx::query("UPDATE webhooks SET last_success_at = $1 WHERE webhook_id = $2")
                            .bind(at)
                            .bind(work.webhook.webhook_id.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                    Settle::Retry(_) => {}
                    Settle::Exhausted { disable } => {
                        // Disabled only if nothing got through since this delivery began.
                        let done = sqlx::query(
                            "UPDATE webhooks SET status = 'disabled', disabled_reason = 'retries_exhausted', \
                             updated_at = $1 WHERE webhook_id = $2 AND status = 'enabled' \
                             AND (last_success_at IS NULL OR last_success_at < $3)",
                        )
                        .bind(at)
                        .bind(work.webhook.webhook_id.as_str())
                        .bind(work.created_at.unix_millis())
                        .execute(&mut *tx)
                        .await?;
                        if done.rows_affected() > 0 {
                            record_event(&mut tx, disable).await?;
                            disabled = true;
                        }
                    }
                }
                tx.commit().await?;
                if disabled {
                    self.signals.committed();
                }
                Ok(())
            }

            async fn list_deliveries(&self, webhook_id: &vouch_core::ids::WebhookId, page: &PageRequest) -> Result<Page<crate::store::Delivery>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN outbox o ON o.event_id = d.event_id \
                     WHERE d.webhook_id = "
                ));
                qb.push_bind(webhook_id.as_str().to_owned());
                if let Some(after) = &page.after {
                    let after: i64 = after.parse().map_err(|_| Error::field("cursor", "invalid cursor"))?;
                    qb.push(" AND d.id < ").push_bind(after);
                }
                qb.push(" ORDER BY d.id DESC LIMIT ").push_bind(i64::from(page.limit) + 1);
                let rows = qb.build().fetch_all(&self.read).await?;
                let deliveries = rows.iter().map(delivery_from_row).collect::<Result<Vec<_>>>()?;
                let page = Page::from_rows(deliveries, page.limit, |d| d.id.to_string());
                Ok(Page {
                    data: with_attempts(&self.read, page.data).await?,
                    next_after: page.next_after,
                })
            }

            async fn redeliver(
                &self,
                webhook_id: &vouch_core::ids::WebhookId,
                event_id: &str,
                now: Timestamp,
                event: &ChangeEvent,
            ) -> Result<crate::store::Redelivery> {
                use crate::store::Redelivery;
                let mut tx = self.write.begin().await?;
                // The subscription row first, as a delete and a settling take it (Postgres): a
                // delete holding it then waits for nothing this holds.
                sqlx::query(&format!("SELECT webhook_id FROM webhooks WHERE webhook_id = $1{}", $nku))
                    .bind(webhook_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                // Not while a sender holds it: its settling would undo this. The lease is
                // cleared, so the sender whose lease ran out cannot settle it any more.
                let done = sqlx::query(
                    "UPDATE webhook_deliveries SET state = 'pending', retry_index = 0, next_attempt_at = $1, \
                     updated_at = $1, lease_owner = NULL, lease_until = NULL \
                     WHERE webhook_id = $2 AND event_id = $3 \
                     AND (lease_until IS NULL OR lease_until < $1)",
                )
                .bind(now.unix_millis())
                .bind(webhook_id.as_str())
                .bind(event_id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    let exists = sqlx::query("SELECT 1 AS one FROM webhook_deliveries WHERE webhook_id = $1 AND event_id = $2")
                        .bind(webhook_id.as_str())
                        .bind(event_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    return Ok(if exists.is_some() { Redelivery::InFlight } else { Redelivery::NotFound });
                }
                let row = sqlx::query(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN outbox o ON o.event_id = d.event_id \
                     WHERE d.webhook_id = $1 AND d.event_id = $2"
                ))
                .bind(webhook_id.as_str())
                .bind(event_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    return Ok(Redelivery::NotFound);
                };
                let delivery = delivery_from_row(&row)?;
                let delivery = with_attempts(&mut *tx, vec![delivery]).await?.pop();
                record_event(&mut tx, event).await?;
                tx.commit().await?;
                self.signals.committed();
                Ok(delivery.map_or(Redelivery::NotFound, Redelivery::Queued))
            }

            async fn prune_deliveries(&self, before: Timestamp) -> Result<u64> {
                // In slices, so that one pass never holds the writer for long. The conditions
                // are repeated at the deleting level: Postgres re-checks only those against a row
                // changed meanwhile, so a delivery just redelivered (pending again) is kept.
                let mut total = 0;
                loop {
                    let done = sqlx::query(
                        "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
                         WHERE state <> 'pending' AND updated_at < $1 LIMIT 500) \
                         AND state <> 'pending' AND updated_at < $1",
                    )
                    .bind(before.unix_millis())
                    .execute(&self.write)
                    .await?;
                    total += done.rows_affected();
                    if done.rows_affected() < 500 {
                        return Ok(total);
                    }
                }
            }

            async fn delivery_backlog(&self) -> Result<(i64, Option<Timestamp>)> {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM webhook_deliveries \
                     WHERE state = 'pending' AND webhook_id IN (SELECT webhook_id FROM webhooks WHERE status = 'enabled')",
                )
                .fetch_one(&self.read)
                .await?;
                let oldest: Option<i64> = row.try_get("oldest")?;
                Ok((row.try_get("n")?, oldest.map(Timestamp::from_unix_millis)))
            }

            async fn stream_after(&self, scope: &crate::store::StreamScope, after: crate::store::StreamPos, limit: u32) -> Result<crate::store::StreamBatch> {
                // First the frontier: every row at or before it has committed (Postgres: its
                // transaction is older than every one still running), so the read below, bounded
                // by it, sees all of them, and a stream may move past what it did not want.
                let frontier = if $txid {
                    let row = sqlx::query(
                        "SELECT f.tx AS tx, f.id AS id, \
                         (SELECT MIN(b.created_at) FROM outbox b WHERE b.txid >= h.xmin) AS held \
                         FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) h \
                         LEFT JOIN LATERAL (SELECT o.txid::text AS tx, o.id AS id FROM outbox o \
                           WHERE o.txid < h.xmin ORDER BY o.txid DESC, o.id DESC LIMIT 1) f ON true",
                    )
                    .fetch_one(&self.read)
                    .await?;
                    // How long committed events wait behind a transaction still running.
                    let held: Option<i64> = row.try_get("held")?;
                    let lag = held.map_or(0.0, |t| (crate::clock::now().unix_millis() - t).max(0) as f64 / 1000.0);
                    metrics::gauge!("vouch_event_stream_horizon_lag_seconds").set(lag);
                    match row.try_get::<Option<String>, _>("tx")? {
                        Some(tx) => crate::store::StreamPos {
                            tx: tx.parse().map_err(Error::internal)?,
                            id: row.try_get("id")?,
                        },
                        None => after,
                    }
                } else {
                    let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS id, '0' AS tx FROM outbox")
                        .fetch_one(&self.read)
                        .await?;
                    stream_pos(&row)?
                };
                if frontier <= after {
                    return Ok(crate::store::StreamBatch { rows: Vec::new(), frontier: after });
                }
                let mut qb = if $txid {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT id, txid::text AS tx, event_type, payload FROM outbox WHERE (txid, id) > (",
                    );
                    qb.push_bind(after.tx.to_string()).push("::text::xid8, ").push_bind(after.id).push(")");
                    qb.push(" AND (txid, id) <= (").push_bind(frontier.tx.to_string()).push("::text::xid8, ")
                        .push_bind(frontier.id).push(")");
                    qb
                } else {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT id, '0' AS tx, event_type, payload FROM outbox WHERE id > ",
                    );
                    qb.push_bind(after.id).push(" AND id <= ").push_bind(frontier.id);
                    qb
                };
                push_stream_scope(&mut qb, scope);
                qb.push(if $txid { " ORDER BY txid, id LIMIT " } else { " ORDER BY id LIMIT " });
                qb.push_bind(i64::from(limit));
                let rows = qb.build().fetch_all(&self.read).await?;
                let rows = rows
                    .iter()
                    .map(|row| {
                        Ok(crate::store::StreamRow {
                            pos: stream_pos(row)?,
                            event_type: row.try_get("event_type")?,
                            payload: row.try_get("payload")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(crate::store::StreamBatch { rows, frontier })
            }

            async fn stream_pos_of(&self, scope: &crate::store::StreamScope, id: i64) -> Result<Option<crate::store::StreamPos>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(if $txid {
                    "SELECT id, txid::text AS tx FROM outbox WHERE id = "
                } else {
                    "SELECT id, '0' AS tx FROM outbox WHERE id = "
                });
                qb.push_bind(id);
                push_stream_scope(&mut qb, scope);
                let row = qb.build().fetch_optional(&self.read).await?;
                row.as_ref().map(stream_pos).transpose()
            }

            async fn stream_head(&self, scope: &crate::store::StreamScope) -> Result<crate::store::StreamHead> {
                let (pos, seen) = if $txid {
                    // One statement, one snapshot: the horizon and what already lies beyond it.
                    let rows = sqlx::query(
                        "SELECT h.xmin::text AS tx, o.id AS id FROM \
                         (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) h \
                         LEFT JOIN outbox o ON o.txid >= h.xmin",
                    )
                    .fetch_all(&self.read)
                    .await?;
                    let mut tx = 0;
                    let mut seen = std::collections::HashSet::new();
                    for row in &rows {
                        let text: String = row.try_get("tx")?;
                        tx = text.parse().map_err(Error::internal)?;
                        if let Some(id) = row.try_get::<Option<i64>, _>("id")? {
                            seen.insert(id);
                        }
                    }
                    (crate::store::StreamPos { tx, id: 0 }, seen)
                } else {
                    let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS id, '0' AS tx FROM outbox")
                        .fetch_one(&self.read)
                        .await?;
                    (stream_pos(&row)?, std::collections::HashSet::new())
                };
                // The newest row before the start that the caller sees (rows there are final).
                let mut qb = if $txid {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT id FROM outbox WHERE txid < ");
                    qb.push_bind(pos.tx.to_string()).push("::text::xid8");
                    qb
                } else {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT id FROM outbox WHERE id <= ");
                    qb.push_bind(pos.id);
                    qb
                };
                push_stream_scope(&mut qb, scope);
                qb.push(if $txid { " ORDER BY txid DESC, id DESC LIMIT 1" } else { " ORDER BY id DESC LIMIT 1" });
                let resume_id = match qb.build().fetch_optional(&self.read).await? {
                    Some(row) => row.try_get("id")?,
                    None => 0,
                };
                Ok(crate::store::StreamHead { pos, seen, resume_id })
            }
        }
    };
}

pub(crate) use webhook_store;
