//! When a failed call is tried again, and how long it waits first.
//!
//! Only a call that is safe to repeat is retried: an idempotent method (`GET`, `HEAD`, `PUT`,
//! `DELETE`), or one that carries an idempotency key. It is retried on `429` and on `5xx`
//! other than `501`, and when no answer came at all, at most [`RetryPolicy::max_attempts`]
//! times in all. The wait doubles from [`RetryPolicy::base_delay`] (with jitter, so that many
//! clients do not come back in step), up to [`RetryPolicy::max_delay`]; a `retry-after` the
//! server sent is honoured: never retried sooner, and not at all when it asks for longer than
//! `max_delay`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, SystemTime};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: never retry).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, waiting about 0.2 s, 0.4 s and 0.8 s between them; a `retry-after` of up
    /// to 30 s is waited out.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// How long to wait before attempt `attempt + 1` after attempt `attempt` (from 1) failed,
    /// or `None` when it is not to be retried. `retry_after` is what the server asked for.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if let Some(asked) = retry_after {
            return (asked <= self.max_delay).then_some(asked);
        }
        let doubled = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = doubled.min(self.max_delay);
        // Between half the wait and all of it.
        let half = capped / 2;
        let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
        let jitter = if spread == 0 {
            0
        } else {
            RandomState::new().hash_one(attempt) % (spread + 1)
        };
        Some(half + Duration::from_micros(jitter))
    }
}

/// Whether an answer with this status is worth asking again.
pub fn retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status) && status != 501
}

/// A `retry-after` header: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_with_jitter_and_stop() {
        let policy = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        for _ in 0..50 {
            let first = policy.delay(1, None).unwrap();
            assert!((50..=100).contains(&first.as_millis()), "{first:?}");
            let second = policy.delay(2, None).unwrap();
            assert!((100..=200).contains(&second.as_millis()), "{second:?}");
            // Capped at max_delay.
            let third = policy.delay(3, None).unwrap();
            assert!((150..=300).contains(&third.as_millis()), "{third:?}");
        }
        assert_eq!(policy.delay(4, None), None);
        assert_eq!(RetryPolicy::none().delay(1, None), None);
    }

    #[test]
    fn retry_after_is_honoured_or_refused() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(policy.delay(1, Some(Duration::from_secs(31))), None);
        assert_eq!(policy.delay(4, Some(Duration::from_secs(1))), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn statuses() {
        for status in [429, 500, 502, 503, 504] {
            assert!(retryable_status(status), "{status}");
        }
        for status in [200, 304, 400, 401, 404, 409, 412, 501] {
            assert!(!retryable_status(status), "{status}");
        }
    }
}
