//! Console sessions and CSRF (SPEC §18).
//!
//! Sign-in exchanges an admin token for a random session secret in an HttpOnly,
//! SameSite=Strict cookie (Secure unless the console is reached on loopback); the database keeps
//! only the secret's SHA-256 and the token's hash, so every request authenticates again as that
//! token (a revoked token ends its sessions). Every form carries a CSRF token derived from the
//! session secret — which the page's scripts cannot read — and every POST checks it in constant
//! time. The sign-in form, before any session, uses a double-submit cookie the same way.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

use super::ConsoleError;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::secrets;

/// The session cookie; its value is the session secret.
pub const COOKIE: &str = "vouch_session";
/// The sign-in form's double-submit cookie.
pub const SIGN_IN_COOKIE: &str = "vouch_sign_in";
/// How long a session lasts from sign-in.
pub const TTL: std::time::Duration = std::time::Duration::from_secs(8 * 3_600);
/// The prefix of session secrets (never shown; it makes a leaked one recognisable).
const SECRET_PREFIX: &str = "vk_console_";

/// A signed-in console user: who the session's token authenticates now, and the form token.
#[derive(Clone, Debug)]
pub struct Session {
    pub caller: Caller,
    /// SHA-256 of the session secret (the row's key).
    pub session_hash: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

impl Session {
    /// Refuses a form whose CSRF token is not this session's (`403`).
    pub fn check_csrf(&self, presented: &str) -> Result<(), ConsoleError> {
        if secrets::hashes_equal(presented, &self.csrf) {
            Ok(())
        } else {
            Err(ConsoleError::csrf())
        }
    }

    /// Whether this session may change things (a viewer may not).
    pub fn can_write(&self) -> bool {
        self.caller.require_writer().is_ok()
    }
}

/// The CSRF token of the session (or sign-in form) whose secret is `secret`.
pub fn csrf_of(secret: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"vouch console csrf\0");
    digest.update(secret.as_bytes());
    hex::encode(digest.finalize())
}

/// A fresh random secret for a session or a sign-in form.
pub fn new_secret() -> String {
    secrets::generate(SECRET_PREFIX)
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Whether the request reached the console on a loopback host (no TLS there: cookies cannot
/// be `Secure`).
fn on_loopback(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, on `/console`, Secure unless on loopback;
/// `max_age` `None` deletes it.
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: Option<u64>) -> String {
    let secure = if on_loopback(headers) { "" } else { "; Secure" };
    let age = max_age.unwrap_or(0);
    format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={age}{secure}")
}

/// Exchanges `token` for a session: `(cookie value, Set-Cookie header)`; `401` for a token that
/// does not authenticate.
pub async fn sign_in(state: &AppState, headers: &HeaderMap, token: &str) -> Result<String> {
    Caller::authenticate(state, token.trim()).await?;
    let secret = new_secret();
    let now = crate::clock::now();
    let ttl_ms = i64::try_from(TTL.as_millis()).unwrap_or(i64::MAX);
    let expires = vouch_core::Timestamp::from_unix_millis(now.unix_millis().saturating_add(ttl_ms));
    state
        .store
        .create_session(
            &secrets::hash(&secret),
            &secrets::hash(token.trim()),
            now,
            expires,
        )
        .await?;
    Ok(set_cookie(headers, COOKIE, &secret, Some(TTL.as_secs())))
}

/// Ends the session (the row is deleted; the cookie too).
pub async fn sign_out(state: &AppState, headers: &HeaderMap, session: &Session) -> Result<String> {
    state.store.delete_session(&session.session_hash).await?;
    Ok(set_cookie(headers, COOKIE, "", None))
}

/// The admin a session stands for now: `401` when the session is unknown, expired or signed
/// out, or its token no longer authenticates.
pub async fn caller_of(state: &AppState, session_hash: &str) -> Result<Caller> {
    let token_hash = state
        .store
        .session_token(session_hash, crate::clock::now())
        .await?
        .ok_or(Error::Unauthorized)?;
    Caller::authenticate_hash(state, &token_hash).await
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let secret = cookie(&parts.headers, COOKIE).ok_or(ConsoleError::SignIn)?;
        let session_hash = secrets::hash(secret);
        let caller = match caller_of(state, &session_hash).await {
            Ok(caller) => caller,
            Err(Error::Unauthorized) => return Err(ConsoleError::SignIn),
            Err(other) => return Err(other.into()),
        };
        Ok(Session {
            caller,
            session_hash,
            csrf: csrf_of(secret),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        h
    }

    #[test]
    fn cookies_are_secure_except_on_loopback() {
        for local in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "localhost",
        ] {
            let c = set_cookie(&headers(local), COOKIE, "v", Some(5));
            assert!(!c.contains("Secure"), "{local}: {c}");
            assert!(
                c.contains("HttpOnly") && c.contains("SameSite=Strict"),
                "{c}"
            );
        }
        for public in [
            "vouch.example.com",
            "10.0.0.5:8080",
            "localhost.example.com",
        ] {
            let c = set_cookie(&headers(public), COOKIE, "v", Some(5));
            assert!(c.ends_with("; Secure"), "{public}: {c}");
        }
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; vouch_session=abc; b=".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(cookie(&h, "vouch"), None);
    }

    #[test]
    fn csrf_tokens_are_per_secret_and_fixed() {
        // Golden: a change of derivation would silently break every open form.
        assert_eq!(
            csrf_of("vk_console_x"),
            "3b436d0c4264ffe2f0d065c899cdb1625dc2d9a74908769f848496c52501464e"
        );
        assert_ne!(csrf_of("a"), csrf_of("b"));
    }
}
