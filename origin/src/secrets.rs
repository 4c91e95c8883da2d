//! Secrets shown once: admin tokens (`vk_admin_…`), agent API keys (`vk_agent_…`) and partner
//! keys (`vk_partner_…`).
//! 256 random bits each, stored only as SHA-256 (a slow hash adds nothing for keys this
//! random), compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const ADMIN_TOKEN_PREFIX: &str = "vk_admin_";
pub const AGENT_KEY_PREFIX: &str = "vk_agent_";
pub const PARTNER_KEY_PREFIX: &str = vouch_core::partner::KEY_PREFIX;

/// A fresh secret: `prefix` followed by 43 base64url characters (32 random bytes).
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a secret: lowercase hex SHA-256.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time equality of two stored hashes.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hashed() {
        let a = generate(AGENT_KEY_PREFIX);
        let b = generate(AGENT_KEY_PREFIX);
        assert!(a.starts_with("vk_agent_"));
        assert_eq!(a.len(), AGENT_KEY_PREFIX.len() + 43);
        assert_ne!(a, b);
        assert_eq!(hash(&a).len(), 64);
        assert!(hashes_equal(&hash(&a), &hash(&a)));
        assert!(!hashes_equal(&hash(&a), &hash(&b)));
        assert!(!hashes_equal("ab", "abc"));
        // The edge hashes partner keys with the core's function: the same hash.
        let p = generate(PARTNER_KEY_PREFIX);
        assert_eq!(hash(&p), vouch_core::partner::key_hash(&p));
    }
}
