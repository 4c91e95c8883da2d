//! The webhook sender: leases due deliveries (`webhook_deliveries`), posts each envelope signed
//! the Standard Webhooks way, and records every attempt. A failure is retried on the schedule
//! of [`WebhookSettings`] (honouring `retry-after`); a delivery whose schedule runs out while its
//! subscription has not succeeded since disables the subscription, with a `webhook.disabled`
//! event. Leases make it safe with several origins; a sender that dies mid-attempt leaves the
//! lease to run out, and the delivery is sent again with the same `webhook-id`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use serde_json::json;
use uuid::Uuid;
use vouch_core::{EventType, Timestamp};

use super::{guard, open_secret, WebhookSettings};
use crate::clock::now;
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::store::{Attempt, ChangeEvent, DeliveryWork, Settle, Store};

/// Deliveries one sender attempts at the same time: a pool, refilled as each attempt ends
/// (one slow endpoint holds at most [`super::PER_WEBHOOK_IN_FLIGHT`] of these slots).
const IN_FLIGHT: usize = 32;
/// Deliveries leased by one [`Dispatcher::pass`].
const BATCH: u32 = 32;
/// How often to look for work when nothing wakes the sender (other replicas' events, retries
/// that came due).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often old deliveries are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);
/// How often the backlog gauges are refreshed (one aggregate query each time).
const BACKLOG_EVERY: Duration = Duration::from_secs(15);
/// How much of a receiver's answer is kept in the attempt log.
const RESPONSE_KEEP: usize = 1024;
/// Who disables a failing subscription, in the audit log.
pub const ACTOR: &str = "webhook-sender";

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
    settings: WebhookSettings,
    http: reqwest::Client,
    owner: String,
}

/// What one attempt got back.
struct Answer {
    status: Option<u16>,
    error: Option<String>,
    body: Option<String>,
    retry_after: Option<Duration>,
}

impl Dispatcher {
    pub fn new(store: Arc<dyn Store>, keys: Arc<Keys>, settings: WebhookSettings) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(guard::GuardedResolver {
                allow_private: settings.allow_private,
            }))
            .user_agent(concat!("vouch-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::internal)?;
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                store,
                keys,
                settings,
                http,
                owner: format!("webhooks-{}", Uuid::now_v7().simple()),
            }),
        })
    }

    /// Sends until `stopping` turns true; the attempts in flight then finish and are recorded.
    /// Up to [`IN_FLIGHT`] attempts run at once, and a slot is refilled as soon as an attempt
    /// ends: a slow endpoint delays nobody else's deliveries.
    pub async fn run(self, mut stopping: tokio::sync::watch::Receiver<bool>) {
        let signals = self.inner.store.signals();
        let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let finished = Arc::new(tokio::sync::Notify::new());
        let mut tasks = tokio::task::JoinSet::new();
        // Pruning and the backlog report keep their own schedule: a saturated send loop
        // (always leasing) never delays them.
        let housekeeping = tokio::spawn(self.clone().housekeep(stopping.clone()));
        while !*stopping.borrow() {
            while let Some(done) = tasks.try_join_next() {
                log_task(done);
            }
            let free = slots.available_permits();
            let mut claimed = 0;
            if free > 0 {
                let inner = &self.inner;
                let lease = inner.settings.lease_ms();
                let limit = u32::try_from(free).unwrap_or(u32::MAX);
                match inner
                    .store
                    .claim_deliveries(&inner.owner, now(), lease, limit)
                    .await
                {
                    Ok(work) => {
                        claimed = work.len();
                        for item in work {
                            let permit = slots.clone().try_acquire_owned().ok();
                            let (this, finished) = (self.clone(), finished.clone());
                            tasks.spawn(async move {
                                let done = this.attempt(item).await;
                                drop(permit);
                                finished.notify_one();
                                done
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not lease webhook deliveries"),
                }
            }
            if claimed > 0 && claimed == free {
                // There may be more due: lease again as slots come free.
                continue;
            }
            tokio::select! {
                _ = signals.webhooks.notified() => {}
                _ = finished.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                changed = stopping.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        while let Some(done) = tasks.join_next().await {
            log_task(done);
        }
        if let Err(e) = housekeeping.await {
            tracing::warn!(error = %e, "the webhook housekeeping task failed");
        }
    }

    /// Until `stopping` turns true: deletes old deliveries every [`PRUNE_EVERY`] (first at
    /// start) and reports the backlog every [`BACKLOG_EVERY`].
    async fn housekeep(self, mut stopping: tokio::sync::watch::Receiver<bool>) {
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        let mut report = tokio::time::interval(BACKLOG_EVERY);
        for timer in [&mut prune, &mut report] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        while !*stopping.borrow() {
            tokio::select! {
                _ = prune.tick() => {
                    if let Err(e) = self.prune().await {
                        tracing::warn!(error = %e, "could not delete old webhook deliveries");
                    }
                }
                _ = report.tick() => self.report_backlog().await,
                changed = stopping.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
    }

    /// Leases one batch of due deliveries and attempts each, waiting for all; returns how many.
    pub async fn pass(&self) -> Result<usize> {
        let inner = &self.inner;
        let work = inner
            .store
            .claim_deliveries(&inner.owner, now(), inner.settings.lease_ms(), BATCH)
            .await?;
        let count = work.len();
        let mut tasks = tokio::task::JoinSet::new();
        for item in work {
            let this = self.clone();
            tasks.spawn(async move { this.attempt(item).await });
        }
        while let Some(done) = tasks.join_next().await {
            log_task(done);
        }
        Ok(count)
    }

    /// Deletes settled deliveries (and their attempts) older than the retention period;
    /// returns how many.
    pub async fn prune(&self) -> Result<u64> {
        let keep = i64::try_from(self.inner.settings.retention.as_millis()).unwrap_or(i64::MAX);
        let before = Timestamp::from_unix_millis(now().unix_millis().saturating_sub(keep));
        let deleted = self.inner.store.prune_deliveries(before).await?;
        if deleted > 0 {
            tracing::info!(deleted, "deleted old webhook deliveries");
        }
        Ok(deleted)
    }

    async fn attempt(&self, work: DeliveryWork) -> Result<()> {
        let inner = &self.inner;
        let started_at = now();
        let clock = Instant::now();
        let answer = self.send(&work).await;
        let duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
        let ok = answer.status.is_some_and(|s| (200..300).contains(&s));
        let settings = &inner.settings;
        let last = work.retry_index + 1 >= i64::from(settings.max_attempts);
        let outcome = if ok {
            Settle::Succeeded
        } else if last {
            Settle::Exhausted {
                disable: ChangeEvent::new(
                    ACTOR,
                    Some(&work.webhook.org_id),
                    EventType::WebhookDisabled,
                    "webhook",
                    work.webhook.webhook_id.as_str(),
                    0,
                    json!({
                        "webhook_id": work.webhook.webhook_id,
                        "url": guard::redacted(&work.webhook.url),
                        "reason": "retries_exhausted",
                        "event_id": work.event_id,
                        "attempts": work.attempt,
                    }),
                    now(),
                ),
            }
        } else {
            let backoff = settings.retry_delay_ms(work.retry_index);
            let asked = answer
                .retry_after
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let delay = backoff.max(asked).min(settings.max_delay_ms());
            Settle::Retry(Timestamp::from_unix_millis(
                now().unix_millis().saturating_add(delay),
            ))
        };
        let attempt = Attempt {
            attempt: work.attempt,
            started_at,
            duration_ms,
            status_code: answer.status,
            error: answer.error,
            response_body: answer.body,
            next_attempt_at: match &outcome {
                Settle::Retry(at) => Some(*at),
                _ => None,
            },
        };
        let label = match &outcome {
            Settle::Succeeded => "succeeded",
            Settle::Retry(_) => "retrying",
            Settle::Exhausted { .. } => "failed",
        };
        metrics::counter!("vouch_webhook_attempts_total", "outcome" => label).increment(1);
        metrics::histogram!("vouch_webhook_attempt_duration_seconds")
            .record(duration_ms as f64 / 1000.0);
        if ok {
            let lag = (now().unix_millis() - work.created_at.unix_millis()).max(0) as f64 / 1000.0;
            metrics::histogram!("vouch_webhook_delivery_lag_seconds").record(lag);
        } else {
            tracing::info!(
                webhook_id = %work.webhook.webhook_id,
                event_id = %work.event_id,
                attempt = attempt.attempt,
                status = ?attempt.status_code,
                error = ?attempt.error,
                outcome = label,
                "webhook attempt failed"
            );
        }
        inner
            .store
            .settle_delivery(&inner.owner, &work, &attempt, &outcome)
            .await
    }

    /// Posts the envelope; never fails, the answer says what happened.
    async fn send(&self, work: &DeliveryWork) -> Answer {
        let refused = |error: String| Answer {
            status: None,
            error: Some(error),
            body: None,
            retry_after: None,
        };
        let settings = &self.inner.settings;
        // A literal address never reaches the resolver: check it here, every time.
        let url = match guard::check_url(&work.webhook.url, settings.allow_private) {
            Ok(url) => url,
            Err(why) => return refused(format!("refused: {why}")),
        };
        let headers = match self.signed_headers(work) {
            Ok(headers) => headers,
            Err(e) => return refused(format!("could not sign: {e}")),
        };
        let sent = self
            .inner
            .http
            .post(url)
            .headers(headers)
            .body(work.payload.clone())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return refused(format!(
                    "timed out after {} ms",
                    settings.timeout.as_millis()
                ))
            }
            Err(e) => return refused(root_cause(&e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        while body.len() < RESPONSE_KEEP {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(RESPONSE_KEEP);
        let error = (!(200..300).contains(&status)).then(|| format!("HTTP {status}"));
        Answer {
            status: Some(status),
            error,
            body: Some(String::from_utf8_lossy(&body).into_owned()).filter(|b| !b.is_empty()),
            retry_after,
        }
    }

    /// `webhook-id` (the event id, the same on every attempt), `webhook-timestamp` (this
    /// attempt's), and one `v1,` signature per live secret (two during a rotation's grace).
    fn signed_headers(&self, work: &DeliveryWork) -> anyhow::Result<HeaderMap> {
        let hook = &work.webhook;
        let master = self.inner.keys.master();
        let id = hook.webhook_id.as_str();
        let mut secrets = vec![open_secret(master, &hook.secret, id)?];
        if let (Some(previous), Some(until)) = (&hook.previous_secret, hook.previous_until) {
            if until > now() {
                secrets.push(open_secret(master, previous, id)?);
            }
        }
        let timestamp = now().unix_millis() / 1000;
        let signatures = secrets
            .iter()
            .map(|secret| {
                standardwebhooks::Webhook::new(secret)
                    .and_then(|wh| wh.sign(&work.event_id, timestamp, work.payload.as_bytes()))
                    .map_err(|e| anyhow::anyhow!("{e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("webhook-id", HeaderValue::from_str(&work.event_id)?);
        headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
        headers.insert(
            "webhook-signature",
            HeaderValue::from_str(&signatures.join(" "))?,
        );
        Ok(headers)
    }

    async fn report_backlog(&self) {
        if let Ok((pending, oldest)) = self.inner.store.delivery_backlog().await {
            metrics::gauge!("vouch_webhook_backlog_deliveries").set(pending as f64);
            let age = oldest.map_or(0.0, |t| {
                (now().unix_millis() - t.unix_millis()).max(0) as f64 / 1000.0
            });
            metrics::gauge!("vouch_webhook_oldest_pending_seconds").set(age);
        }
    }
}

fn log_task(done: Result<Result<()>, tokio::task::JoinError>) {
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not record a webhook attempt"),
        Err(e) => tracing::warn!(error = %e, "a webhook attempt task failed"),
    }
}

/// The innermost cause: "refused: `x` resolves to no public address" or "Connection refused".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
