//! The origin's one clock. Every layer reads the time here (the core takes `now` as an argument).

use vouch_core::Timestamp;

/// The current time, to the millisecond.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    Timestamp::from_unix_millis(ms)
}
