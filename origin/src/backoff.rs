//! Exponential backoff with jitter, shared by the background workers that retry (the KV
//! publisher, the webhook sender).

use rand::Rng;

/// The longest wait before retry number `attempts` (0-based): `base · 2^attempts`, at most `max`.
pub fn ceiling_ms(base_ms: i64, max_ms: i64, attempts: i64) -> i64 {
    base_ms
        .saturating_mul(1_i64 << attempts.clamp(0, 20))
        .min(max_ms)
}

/// A wait drawn from the upper half of [`ceiling_ms`] ("equal jitter"): retries of many
/// failures spread out, and the schedule never shrinks below half its ceiling.
pub fn jittered_ms(base_ms: i64, max_ms: i64, attempts: i64) -> i64 {
    let ceiling = ceiling_ms(base_ms, max_ms, attempts).max(1);
    rand::thread_rng().gen_range(ceiling / 2..=ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_is_capped() {
        for attempts in 0..40 {
            let ceiling = (200_i64 << attempts.min(20)).min(60_000);
            let d = jittered_ms(200, 60_000, attempts);
            assert!(d >= ceiling / 2 && d <= ceiling, "{attempts}: {d}");
        }
        assert!(jittered_ms(200, 60_000, 0) <= 200);
        assert!(jittered_ms(200, 60_000, 30) >= 30_000);
    }
}
