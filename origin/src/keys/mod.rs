//! Token-signing keys: ES256 (P-256), generated here, sealed at rest with the master key,
//! `kid` = RFC 7638 thumbprint, published as a JWK Set at the origin and (through the
//! `jwks` document) in KV for the edge.
//!
//! Rotation makes a new key sign from then on; the old public key stays in the JWKS until
//! every token it signed has expired ([`PUBLISH_AFTER_RETIREMENT`]), then leaves it.

pub mod master;

use std::sync::Arc;
use std::time::{Duration, Instant};

use p256::ecdsa::SigningKey;
use rand::RngCore;
use serde_json::{json, Value};
use tokio::sync::RwLock;
use vouch_core::{jwk, Timestamp};

use crate::error::{Error, Result};
use crate::routes::{change_event, now};
use crate::store::{SigningKeyRow, Store};
pub use master::MasterKey;

/// How long tokens live (SPEC §5: 300 s by default; the origin issues no longer ones).
pub const TOKEN_TTL_SECONDS: i64 = 300;
/// How long a replica may keep signing with a key after another replica rotated it.
const SIGNER_REFRESH: Duration = Duration::from_secs(5);
/// A retired key stays published for the longest token lifetime, the refresh window above and
/// the verifiers' clock skew.
pub const PUBLISH_AFTER_RETIREMENT_MS: i64 = (TOKEN_TTL_SECONDS + 5 + 60) * 1000;

/// Where tokens say they come from and where their keys are published.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    /// `iss` of every token, and the base of the token endpoint.
    pub issuer: String,
    /// Where verifiers fetch the keys (the edge's JWKS when there is an edge).
    pub jwks_uri: String,
}

struct Signer {
    kid: String,
    key: SigningKey,
    loaded: Instant,
}

pub struct Keys {
    store: Arc<dyn Store>,
    master: MasterKey,
    pub settings: TokenSettings,
    signer: RwLock<Option<Signer>>,
}

impl Keys {
    /// Makes sure a signing key exists and the discovery document is current.
    pub async fn start(
        store: Arc<dyn Store>,
        master: MasterKey,
        settings: TokenSettings,
    ) -> Result<Arc<Keys>> {
        let keys = Arc::new(Keys {
            store,
            master,
            settings,
            signer: RwLock::new(None),
        });
        if keys.store.active_key().await?.is_none() {
            keys.rotate("platform").await?;
        }
        // The active key must open with this master key: fail at start, not at the first token.
        keys.signer().await?;
        let event = change_event(
            "platform",
            None,
            "discovery.updated",
            "document",
            "discovery",
            0,
            keys.discovery(),
            now(),
        );
        keys.store
            .put_document("discovery", &keys.discovery().to_string(), &event)
            .await?;
        Ok(keys)
    }

    /// The master key, which also seals webhook secrets.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// A new active key; the previous one keeps being published until its tokens expired.
    pub async fn rotate(&self, actor: &str) -> Result<String> {
        let (row, _) = self.new_key()?;
        let previous = self.store.active_key().await?;
        let event = change_event(
            actor,
            None,
            if previous.is_some() {
                "signing_key.rotated"
            } else {
                "signing_key.created"
            },
            "signing_key",
            &row.kid,
            0,
            json!({ "kid": row.kid, "previous_kid": previous.map(|p| p.kid) }),
            row.created_at,
        );
        let publish_until =
            Timestamp::from_unix_millis(row.created_at.unix_millis() + PUBLISH_AFTER_RETIREMENT_MS);
        self.store.rotate_key(&row, publish_until, &event).await?;
        *self.signer.write().await = None;
        Ok(row.kid)
    }

    /// The active key, reloaded at most every few seconds (another replica may have rotated).
    pub async fn signer(&self) -> Result<(String, SigningKey)> {
        if let Some(s) = self.signer.read().await.as_ref() {
            if s.loaded.elapsed() < SIGNER_REFRESH {
                return Ok((s.kid.clone(), s.key.clone()));
            }
        }
        let row = self
            .store
            .active_key()
            .await?
            .ok_or_else(|| Error::Unavailable("no active signing key".into()))?;
        let scalar = self
            .master
            .open(&row.private_key, row.kid.as_bytes())
            .map_err(Error::internal)?;
        let key = jwk::signing_key_from_bytes(&scalar)
            .map_err(|e| Error::internal(anyhow::anyhow!("{e:?}")))?;
        *self.signer.write().await = Some(Signer {
            kid: row.kid.clone(),
            key: key.clone(),
            loaded: Instant::now(),
        });
        Ok((row.kid, key))
    }

    /// The JWK Set of the keys published now.
    pub async fn jwks(&self) -> Result<Value> {
        let keys = self
            .store
            .published_keys(now())
            .await?
            .iter()
            .map(|row| serde_json::from_str::<Value>(&row.public_jwk).map_err(Error::internal))
            .collect::<Result<Vec<_>>>()?;
        Ok(json!({ "keys": keys }))
    }

    /// The published keys, parsed, to verify tokens the origin issued (token exchange).
    pub async fn jwk_set(&self) -> Result<vouch_core::jwk::JwkSet> {
        let set = self.jwks().await?;
        vouch_core::jwk::JwkSet::from_json(set.to_string().as_bytes())
            .map_err(|e| Error::internal(anyhow::anyhow!("the JWKS does not parse: {e:?}")))
    }

    /// The OpenID discovery document (RFC 8414 fields that apply).
    pub fn discovery(&self) -> Value {
        let issuer = self.settings.issuer.trim_end_matches('/');
        json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/oauth/token"),
            "jwks_uri": self.settings.jwks_uri,
            "grant_types_supported": ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        })
    }

    fn new_key(&self) -> Result<(SigningKeyRow, SigningKey)> {
        // A random 32-byte string is a valid scalar but for a 2^-128 chance; draw again then.
        for _ in 0..8 {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let Ok(key) = jwk::signing_key_from_bytes(&bytes) else {
                continue;
            };
            let verifying = *key.verifying_key();
            let kid = jwk::kid(&verifying);
            let public =
                serde_json::to_string(&jwk::public_jwk(&verifying)).map_err(Error::internal)?;
            let sealed = self
                .master
                .seal(&bytes, kid.as_bytes())
                .map_err(Error::internal)?;
            let row = SigningKeyRow {
                kid,
                public_jwk: public,
                private_key: sealed,
                created_at: now(),
                retired_at: None,
                publish_until: None,
            };
            return Ok((row, key));
        }
        Err(Error::internal(anyhow::anyhow!(
            "could not draw a P-256 scalar"
        )))
    }
}
