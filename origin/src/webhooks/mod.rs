//! Webhooks (SPEC §7): subscriptions, signed delivery with the Standard Webhooks scheme, and
//! the retry schedule. Deliveries are queued in the same transaction as the change they
//! announce (see `store::sql`), so the sender here only leases due rows, posts them, and
//! records each attempt.

mod dispatcher;
pub mod events;
pub mod guard;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;

pub use dispatcher::Dispatcher;

use crate::keys::MasterKey;

/// What a webhook secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";

/// How webhooks are delivered (serve flags; tests shorten the schedule).
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Deliver to loopback, private and link-local addresses, and over plain http.
    pub allow_private: bool,
    /// How long one attempt may take, connection included.
    pub timeout: Duration,
    /// The first retry's delay; each further one doubles, up to [`MAX_DELAY_FACTOR`] times it.
    pub retry_base: Duration,
    /// Attempts per delivery (the first one included) before it is given up.
    pub max_attempts: u32,
    /// How long settled deliveries (and their attempts) are kept.
    pub retention: Duration,
}

/// The longest base delay (1 h: the longest delay is then 120 days).
pub const MAX_RETRY_BASE_MS: i64 = 3_600_000;

/// The longest delay between two attempts, as a multiple of the base delay (8 h by default).
pub const MAX_DELAY_FACTOR: i64 = 2_880;

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow_private: false,
            timeout: Duration::from_secs(15),
            retry_base: Duration::from_secs(10),
            max_attempts: 18,
            retention: Duration::from_secs(30 * 24 * 3_600),
        }
    }
}

impl WebhookSettings {
    /// The base delay in milliseconds, between 1 ms and [`MAX_RETRY_BASE_MS`] (so that no
    /// delay, and no `now + delay`, can overflow).
    fn base_ms(&self) -> i64 {
        i64::try_from(self.retry_base.as_millis())
            .unwrap_or(i64::MAX)
            .clamp(1, MAX_RETRY_BASE_MS)
    }

    /// The longest single delay (a `retry-after` beyond it is cut to it).
    pub fn max_delay_ms(&self) -> i64 {
        self.base_ms().saturating_mul(MAX_DELAY_FACTOR)
    }

    /// The delay after failed attempt number `retry_index` (0-based) of a schedule.
    pub fn retry_delay_ms(&self, retry_index: i64) -> i64 {
        crate::backoff::jittered_ms(self.base_ms(), self.max_delay_ms(), retry_index)
    }

    /// The shortest time from the first attempt to the last (every delay at its jitter floor).
    pub fn min_schedule_ms(&self) -> i64 {
        (0..i64::from(self.max_attempts.saturating_sub(1)))
            .map(|k| crate::backoff::ceiling_ms(self.base_ms(), self.max_delay_ms(), k) / 2)
            .sum()
    }

    /// How long a sender holds a delivery: longer than an attempt can take.
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.timeout.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_add(5_000)
    }
}

/// Subscriptions one org may have (as many as Stripe allows).
pub const MAX_PER_ORG: i64 = 16;
/// Deliveries of one subscription that senders attempt at the same time, at most.
pub const PER_WEBHOOK_IN_FLIGHT: i64 = 4;
/// Attempts shown per delivery in the delivery log (the newest ones).
pub const ATTEMPTS_SHOWN: i64 = 20;

/// `409 webhook_limit_reached`: the org has [`MAX_PER_ORG`] subscriptions.
pub fn limit_reached() -> crate::error::Error {
    crate::error::Error::Conflict {
        code: "webhook_limit_reached",
        message: format!(
            "an organization may have at most {MAX_PER_ORG} webhook subscriptions; delete one first"
        ),
    }
}

/// `404 webhook_not_found`: no such subscription, or another org's.
pub fn not_found() -> crate::error::Error {
    crate::error::Error::NotFound {
        code: "webhook_not_found",
        message: "no such webhook".into(),
    }
}

/// A new signing secret: `whsec_` and the base64 of 32 random bytes (the Standard Webhooks form).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// Seals a secret for storage, bound to its subscription.
pub fn seal_secret(master: &MasterKey, secret: &str, webhook_id: &str) -> anyhow::Result<String> {
    master.seal(secret.as_bytes(), webhook_id.as_bytes())
}

/// Opens what [`seal_secret`] sealed.
pub fn open_secret(master: &MasterKey, sealed: &str, webhook_id: &str) -> anyhow::Result<String> {
    let bytes = master.open(sealed, webhook_id.as_bytes())?;
    Ok(String::from_utf8(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_production_schedule_lasts_at_least_a_day() {
        let settings = WebhookSettings::default();
        let day_ms = 24 * 3_600 * 1_000;
        assert!(
            settings.min_schedule_ms() >= day_ms,
            "retries end after {} h at the earliest",
            settings.min_schedule_ms() / 3_600_000
        );
        // …and not absurdly longer: at most three days between the first and the last attempt.
        let max: i64 = (0..i64::from(settings.max_attempts - 1))
            .map(|k| crate::backoff::ceiling_ms(10_000, settings.max_delay_ms(), k))
            .sum();
        assert!(max <= 3 * day_ms, "{max}");
        assert_eq!(settings.max_delay_ms(), 8 * 3_600 * 1_000);
    }

    #[test]
    fn huge_retry_bases_are_clamped() {
        let settings = WebhookSettings {
            retry_base: Duration::from_secs(u64::MAX / 2),
            ..WebhookSettings::default()
        };
        assert_eq!(
            settings.max_delay_ms(),
            MAX_RETRY_BASE_MS * MAX_DELAY_FACTOR
        );
        for k in [0, 5, 17, 60, i64::MAX] {
            let delay = settings.retry_delay_ms(k);
            assert!(
                (0..=settings.max_delay_ms()).contains(&delay),
                "{k}: {delay}"
            );
        }
    }

    #[test]
    fn secrets_seal_and_sign() {
        let master =
            MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let secret = new_secret();
        assert!(secret.starts_with(SECRET_PREFIX));
        let sealed = seal_secret(&master, &secret, "wh_1").unwrap();
        assert!(!sealed.contains(&secret));
        assert_eq!(open_secret(&master, &sealed, "wh_1").unwrap(), secret);
        assert!(open_secret(&master, &sealed, "wh_2").is_err());
        assert!(standardwebhooks::Webhook::new(&secret).is_ok());
    }
}
