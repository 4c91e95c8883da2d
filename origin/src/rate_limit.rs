//! Rate limits of `POST /oauth/token` and the admin API (`/v1/…`): per credential and per
//! client address, each a GCRA bucket (`governor`) refilled at its rate with bursts of twice it.
//! Past a limit the answer is `429 rate_limited` with `retry-after` (SPEC §14).
//!
//! * The **address** is the TCP peer, or with `VOUCH_TRUST_FORWARDED_FOR` the rightmost
//!   `X-Forwarded-For` entry (the one the nearest proxy added); IPv6 addresses count per /64, the
//!   block one host usually holds. It is checked first, before anything is authenticated, so a
//!   flood of bad credentials costs nothing but its address's budget.
//! * The **credential** is the secret presented — an admin token or agent key (the bearer), an
//!   agent's client secret, an exchange's actor token — keyed by its SHA-256. Only its holder can
//!   spend its budget: naming a victim's agent id with a wrong secret draws on another key.
//!
//! Counts live in this origin's memory: with several replicas each enforces its own. Idle keys are
//! dropped as the maps grow. The library's state starts with every limit off; `vouch-origin serve`
//! turns on the configured ones ([`RateSettings`]).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};

use crate::app::AppState;

/// Requests per second for each limit (`0`: off); bursts may reach twice the rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateSettings {
    pub token_per_credential: u32,
    pub token_per_address: u32,
    pub admin_per_credential: u32,
    pub admin_per_address: u32,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
}

impl RateSettings {
    /// An agent needs a token every few minutes; a host may run many agents.
    pub const TOKEN_PER_CREDENTIAL: u32 = 10;
    pub const TOKEN_PER_ADDRESS: u32 = 100;
    /// About Stripe's 100 requests per second per account; a host may hold a few credentials.
    pub const ADMIN_PER_CREDENTIAL: u32 = 100;
    pub const ADMIN_PER_ADDRESS: u32 = 200;

    /// Every limit off.
    pub const OFF: RateSettings = RateSettings {
        token_per_credential: 0,
        token_per_address: 0,
        admin_per_credential: 0,
        admin_per_address: 0,
        trust_forwarded_for: false,
    };
}

/// Which limits a request falls under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /oauth/token`.
    Token,
    /// Everything under `/v1/`, and the console's pages (`/console`, but for its static files).
    Admin,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Admin => "admin",
        }
    }
}

/// A refusal: which limit, and how long until a request would pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub by: &'static str,
    pub retry_after: Duration,
}

impl Limited {
    /// Whole seconds for `retry-after`, at least 1.
    pub fn retry_after_seconds(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        if self.retry_after.subsec_nanos() > 0 || secs == 0 {
            secs + 1
        } else {
            secs
        }
    }

    pub fn message(&self) -> String {
        format!(
            "too many requests from this {}; retry after {} s",
            self.by,
            self.retry_after_seconds()
        )
    }
}

/// How many checks pass between looks at a map's size.
const SWEEP_EVERY: u64 = 4_096;
/// A map holding more keys than this drops those whose bucket is full again.
const SWEEP_ABOVE: usize = 10_000;

struct Limiter<K: std::hash::Hash + Eq + Clone> {
    by: &'static str,
    buckets: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: std::hash::Hash + Eq + Clone> Limiter<K> {
    fn new(by: &'static str, per_second: u32) -> Option<Limiter<K>> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
        Some(Limiter {
            by,
            buckets: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
        })
    }

    fn check(&self, endpoint: Endpoint, key: &K) -> Result<(), Limited> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1
            && self.buckets.len() > SWEEP_ABOVE
        {
            self.buckets.retain_recent();
            self.buckets.shrink_to_fit();
        }
        self.buckets.check_key(key).map_err(|not_until| {
            metrics::counter!("vouch_rate_limited_total", "endpoint" => endpoint.name(), "by" => self.by)
                .increment(1);
            Limited {
                by: self.by,
                retry_after: not_until.wait_time_from(self.buckets.clock().now()),
            }
        })
    }
}

/// The limits of one endpoint.
struct Limits {
    credential: Option<Limiter<[u8; 32]>>,
    address: Option<Limiter<IpAddr>>,
}

impl Limits {
    fn new(per_credential: u32, per_address: u32) -> Limits {
        Limits {
            credential: Limiter::new("credential", per_credential),
            address: Limiter::new("address", per_address),
        }
    }
}

/// Every rate limit of this origin, with its counts.
pub struct RateLimits {
    token: Limits,
    admin: Limits,
    trust_forwarded_for: bool,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::new(RateSettings::OFF)
    }
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

impl RateLimits {
    pub fn new(settings: RateSettings) -> RateLimits {
        RateLimits {
            token: Limits::new(settings.token_per_credential, settings.token_per_address),
            admin: Limits::new(settings.admin_per_credential, settings.admin_per_address),
            trust_forwarded_for: settings.trust_forwarded_for,
        }
    }

    fn limits(&self, endpoint: Endpoint) -> &Limits {
        match endpoint {
            Endpoint::Token => &self.token,
            Endpoint::Admin => &self.admin,
        }
    }

    /// Counts a request from `address` (`None`: unknown, not counted).
    pub fn check_address(
        &self,
        endpoint: Endpoint,
        address: Option<IpAddr>,
    ) -> Result<(), Limited> {
        match (&self.limits(endpoint).address, address) {
            (Some(limiter), Some(address)) => limiter.check(endpoint, &address_key(address)),
            _ => Ok(()),
        }
    }

    /// Counts a request presenting `secret`.
    pub fn check_credential(&self, endpoint: Endpoint, secret: &str) -> Result<(), Limited> {
        match &self.limits(endpoint).credential {
            Some(limiter) => limiter.check(endpoint, &Sha256::digest(secret.as_bytes()).into()),
            None => Ok(()),
        }
    }

    /// The client's address: the TCP peer, or the rightmost `X-Forwarded-For` entry when the
    /// origin is configured to trust it.
    pub fn client_address(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        if self.trust_forwarded_for {
            // The rightmost entry of the last header line; anything unreadable there falls back
            // to the peer (an entry further left is the client's own word).
            let rightmost = headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|entry| entry.trim().parse::<IpAddr>().ok());
            if rightmost.is_some() {
                return rightmost;
            }
        }
        peer.map(|p| p.ip())
    }
}

/// The key an address counts under: IPv4 as is (also when mapped into IPv6), IPv6 by its /64.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The bearer credential of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The address limits of both endpoints (the console's pages count as the admin API's) and the
/// credential limit of the admin API, before any handler runs. (The token endpoint counts its credential itself, once it has read the form.)
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    // The console acts through the admin API's handlers: its pages count as admin requests
    // (by address: they carry a session, not a bearer), and its sign-in cannot be hammered.
    let console = path.starts_with("/console") && !path.starts_with("/console/static/");
    let endpoint = if path == "/oauth/token" {
        Endpoint::Token
    } else if path.starts_with("/v1/") || console {
        Endpoint::Admin
    } else {
        return next.run(request).await;
    };
    let limits = &state.limits;
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let address = limits.client_address(request.headers(), peer);
    let mut checked = limits.check_address(endpoint, address);
    if endpoint == Endpoint::Admin {
        if let (Ok(()), Some(secret)) = (&checked, bearer(request.headers())) {
            checked = limits.check_credential(endpoint, secret);
        }
    }
    match (checked, endpoint) {
        (Ok(()), _) => next.run(request).await,
        (Err(limited), Endpoint::Token) => {
            crate::routes::oauth::rate_limited(limited).into_response()
        }
        (Err(limited), Endpoint::Admin) if console => {
            crate::console::ConsoleError::from(crate::error::Error::RateLimited(limited))
                .into_response()
        }
        (Err(limited), Endpoint::Admin) => {
            crate::error::Error::RateLimited(limited).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_second: u32) -> RateSettings {
        RateSettings {
            token_per_credential: per_second,
            token_per_address: per_second,
            admin_per_credential: per_second,
            admin_per_address: per_second,
            trust_forwarded_for: false,
        }
    }

    #[test]
    fn a_burst_of_twice_the_rate_then_refusals_with_a_wait() {
        let limits = RateLimits::new(settings(5));
        for _ in 0..10 {
            assert!(limits.check_credential(Endpoint::Admin, "secret").is_ok());
        }
        let limited = limits
            .check_credential(Endpoint::Admin, "secret")
            .unwrap_err();
        assert_eq!(limited.by, "credential");
        assert!(
            limited.retry_after <= Duration::from_millis(200),
            "{limited:?}"
        );
        assert_eq!(limited.retry_after_seconds(), 1);
        // Another credential, and the same one at the other endpoint, are not affected.
        assert!(limits.check_credential(Endpoint::Admin, "other").is_ok());
        assert!(limits.check_credential(Endpoint::Token, "secret").is_ok());
    }

    #[test]
    fn off_limits_never_refuse() {
        let limits = RateLimits::default();
        for _ in 0..1_000 {
            assert!(limits.check_credential(Endpoint::Token, "s").is_ok());
            let address = Some("192.0.2.1".parse().unwrap());
            assert!(limits.check_address(Endpoint::Admin, address).is_ok());
        }
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limits = RateLimits::new(settings(1));
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limits.check_address(Endpoint::Admin, Some(a)).is_ok());
        assert!(limits.check_address(Endpoint::Admin, Some(b)).is_ok());
        assert!(
            limits.check_address(Endpoint::Admin, Some(a)).is_err(),
            "same /64"
        );
        assert!(limits
            .check_address(Endpoint::Admin, Some(elsewhere))
            .is_ok());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(limits.check_address(Endpoint::Token, Some(v4)).is_ok());
        assert!(limits.check_address(Endpoint::Token, Some(mapped)).is_ok());
        assert!(limits.check_address(Endpoint::Token, Some(v4)).is_err());
        assert!(
            limits.check_address(Endpoint::Token, None).is_ok(),
            "unknown: not counted"
        );
    }

    #[test]
    fn forwarded_for_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.4".parse().unwrap(),
        );
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let untrusting = RateLimits::new(settings(1));
        assert_eq!(
            untrusting.client_address(&headers, Some(peer)),
            Some(peer.ip())
        );
        let trusting = RateLimits::new(RateSettings {
            trust_forwarded_for: true,
            ..settings(1)
        });
        assert_eq!(
            trusting.client_address(&headers, Some(peer)),
            "198.51.100.4".parse().ok(),
            "the rightmost entry: the one the nearest proxy added"
        );
        assert_eq!(
            trusting.client_address(&HeaderMap::new(), Some(peer)),
            Some(peer.ip())
        );
    }

    #[test]
    fn idle_keys_are_swept_as_the_map_grows() {
        // At a million a second, a bucket used once is full again within microseconds.
        let limits = RateLimits::new(settings(1_000_000));
        let checks = SWEEP_ABOVE as u64 + 2 * SWEEP_EVERY;
        for i in 0..checks {
            let _ = limits.check_credential(Endpoint::Admin, &i.to_string());
        }
        let Some(limiter) = &limits.admin.credential else {
            panic!("the limit is on")
        };
        let kept = limiter.buckets.len() as u64;
        assert!(kept <= checks - SWEEP_EVERY, "{kept} of {checks} keys kept");
    }
}
