//! Token-signing keys: ES256 (P-256), generated here, sealed at rest with the master key,
//! `kid` = RFC 7638 thumbprint, published as a JWK Set at the origin and (through the
//! `jwks` document) in KV for the edge.
//!
//! One key signs; one more *stands by*: it is in the JWKS ahead of signing, so that when a
//! rotation makes it sign, every edge already knows it (a key must have been published for
//! [`TokenSettings::publish_ahead`] before it signs; a rotation before then is scheduled for that
//! moment). The retired key stays in the JWKS until every token it signed has expired
//! ([`PUBLISH_AFTER_RETIREMENT_MS`]), then leaves it. A withdrawn key (a leak) leaves the JWKS at
//! once, and the status journal tells every edge to refuse its tokens within the bound.

pub mod master;

use std::sync::Arc;
use std::time::{Duration, Instant};

use p256::ecdsa::SigningKey;
use rand::RngCore;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::RwLock;
use vouch_core::{jwk, EventType, Timestamp};

use crate::clock::now;
use crate::error::{Error, Result};
use crate::store::{ChangeEvent, SigningKeyRow, Store};
pub use master::MasterKey;

/// How long tokens live (SPEC §5: 300 s by default; the origin issues no longer ones).
pub const TOKEN_TTL_SECONDS: i64 = 300;
/// How long a replica may keep signing with a key after another replica rotated it.
const SIGNER_REFRESH: Duration = Duration::from_secs(5);
/// A retired key stays published for the longest token lifetime, the refresh window above and
/// the verifiers' clock skew.
pub const PUBLISH_AFTER_RETIREMENT_MS: i64 = (TOKEN_TTL_SECONDS + 5 + 60) * 1000;
/// How long a new key is published before it may sign: KV reaches every location within about
/// 60 s and edges cache it for 30 s; ten minutes is "every edge knows it".
pub const PUBLISH_AHEAD: Duration = Duration::from_secs(600);

/// Where tokens say they come from and where their keys are published.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    /// `iss` of every token, and the base of the token endpoint.
    pub issuer: String,
    /// Where verifiers fetch the keys (the edge's JWKS when there is an edge).
    pub jwks_uri: String,
    /// How long a key is published before it signs ([`PUBLISH_AHEAD`]).
    pub publish_ahead: Duration,
    /// Where the token status lists are served and their `ttl` (SPEC §16).
    pub status_lists: crate::status_lists::StatusListSettings,
}

impl TokenSettings {
    pub fn new(issuer: String, jwks_uri: String) -> TokenSettings {
        TokenSettings {
            status_lists: crate::status_lists::StatusListSettings::new(issuer.clone()),
            issuer,
            jwks_uri,
            publish_ahead: PUBLISH_AHEAD,
        }
    }
}

/// What a rotation did.
#[derive(Clone, Debug)]
pub struct Rotation {
    /// The key that signs from `signs_from` on.
    pub kid: String,
    pub signs_from: Timestamp,
    /// The key that signed until then.
    pub previous_kid: Option<String>,
    /// The new standby key.
    pub standby_kid: String,
}

struct Signer {
    kid: String,
    key: SigningKey,
    loaded: Instant,
}

/// A withdrawal.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Withdrawal {
    pub kid: String,
    pub withdrawn_at: Timestamp,
    /// `false`: it was withdrawn already (the call changed nothing).
    #[serde(skip)]
    pub newly: bool,
    /// The key that signs now.
    pub signing_kid: Option<String>,
}

/// A key and where it stands: `standby` (published, not signing yet), `scheduled` (signs from
/// `signs_from`), `signing`, `retired` (published until `publish_until`), `withdrawn`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    pub kid: String,
    pub state: &'static str,
    pub created_at: Timestamp,
    pub signs_from: Option<Timestamp>,
    pub retired_at: Option<Timestamp>,
    pub publish_until: Option<Timestamp>,
    pub withdrawn_at: Option<Timestamp>,
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
        keys.ensure_keys().await?;
        // The active key must open with this master key: fail at start, not at the first token.
        keys.signer().await?;
        let event = ChangeEvent::new(
            "platform",
            None,
            EventType::DiscoveryUpdated,
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

    /// Makes sure a key signs (the first key signs at once: no edge can know an older one) and
    /// one stands by.
    async fn ensure_keys(&self) -> Result<()> {
        let at = now();
        let keys = self.store.list_keys().await?;
        let usable = |k: &&SigningKeyRow| k.withdrawn_at.is_none();
        if self.store.active_key(at).await?.is_none()
            && !keys
                .iter()
                .filter(usable)
                .any(|k| k.signs_from.is_some_and(|s| s > at))
        {
            self.add_key("platform", Some(at)).await?;
        }
        if !keys.iter().filter(usable).any(|k| k.signs_from.is_none()) {
            self.add_key("platform", None).await?;
        }
        Ok(())
    }

    /// Adds a key that signs from `signs_from`, or stands by (`None`).
    async fn add_key(&self, actor: &str, signs_from: Option<Timestamp>) -> Result<String> {
        let (mut row, _) = self.new_key()?;
        row.signs_from = signs_from;
        let event = ChangeEvent::new(
            actor,
            None,
            EventType::SigningKeyCreated,
            "signing_key",
            &row.kid,
            0,
            json!({ "kid": row.kid, "signs_from": signs_from, "standby": signs_from.is_none() }),
            row.created_at,
        );
        self.store.add_key(&row, &event).await?;
        Ok(row.kid)
    }

    /// Rotates: the standby key signs as soon as it has been published for
    /// [`TokenSettings::publish_ahead`] (at once, normally: it has stood by since the last
    /// rotation), the signing key retires then, and a new key stands by.
    pub async fn rotate(&self, actor: &str) -> Result<Rotation> {
        self.ensure_keys().await?;
        let at = now();
        let keys = self.store.list_keys().await?;
        let standby = keys
            .iter()
            .find(|k| k.withdrawn_at.is_none() && k.signs_from.is_none())
            .ok_or_else(|| Error::Unavailable("no standby signing key".into()))?;
        let previous = self.store.active_key(at).await?;
        let ahead = i64::try_from(self.settings.publish_ahead.as_millis()).unwrap_or(i64::MAX);
        let signs_from = Timestamp::from_unix_millis(
            at.unix_millis()
                .max(standby.created_at.unix_millis().saturating_add(ahead)),
        );
        let (next, _) = self.new_key()?;
        let rotation = Rotation {
            kid: standby.kid.clone(),
            signs_from,
            previous_kid: previous.map(|p| p.kid),
            standby_kid: next.kid.clone(),
        };
        let event = ChangeEvent::new(
            actor,
            None,
            EventType::SigningKeyRotated,
            "signing_key",
            &rotation.kid,
            0,
            json!({ "kid": rotation.kid, "previous_kid": rotation.previous_kid,
                    "signs_from": signs_from, "standby_kid": rotation.standby_kid }),
            next.created_at,
        );
        let publish_until =
            Timestamp::from_unix_millis(signs_from.unix_millis() + PUBLISH_AFTER_RETIREMENT_MS);
        self.store
            .rotate_key(&standby.kid, signs_from, publish_until, &next, &event)
            .await?;
        *self.signer.write().await = None;
        Ok(rotation)
    }

    /// Withdraws `kid` at once (a leaked key): out of the JWKS, its tokens refused by every edge
    /// within the bound (through the status journal); if it was signing, a key every edge knows
    /// signs from now on (see [`crate::store::KeyStore::withdraw_key`]). `None` when there is no
    /// such key.
    pub async fn withdraw(
        &self,
        actor: &str,
        kid: &str,
        reason: Option<String>,
    ) -> Result<Option<Withdrawal>> {
        let (mut next, _) = self.new_key()?;
        // Signs at once only if nothing else can (the store decides).
        next.signs_from = Some(next.created_at);
        let at = next.created_at;
        let event = ChangeEvent::new(
            actor,
            None,
            EventType::SigningKeyWithdrawn,
            "signing_key",
            kid,
            1,
            json!({ "kid": kid, "reason": reason, "refuse_until": Self::refuse_until(at) }),
            at,
        );
        let ahead = i64::try_from(self.settings.publish_ahead.as_millis()).unwrap_or(i64::MAX);
        let published_before = Timestamp::from_unix_millis(at.unix_millis().saturating_sub(ahead));
        let Some(done) = self
            .store
            .withdraw_key(kid, published_before, &next, &event)
            .await?
        else {
            return Ok(None);
        };
        *self.signer.write().await = None;
        let signing = self.store.active_key(now()).await?.map(|k| k.kid);
        Ok(Some(Withdrawal {
            kid: kid.to_owned(),
            withdrawn_at: done.key.withdrawn_at.unwrap_or(at),
            newly: done.newly,
            signing_kid: signing,
        }))
    }

    /// Until when the edges must refuse the tokens of a key withdrawn at `at`: its tokens expire
    /// by then even where the old JWKS is still cached.
    pub fn refuse_until(at: Timestamp) -> Timestamp {
        Timestamp::from_unix_millis(at.unix_millis() + PUBLISH_AFTER_RETIREMENT_MS)
    }

    /// Every key with its state, newest first.
    pub async fn list(&self) -> Result<Vec<KeyInfo>> {
        let at = now();
        let signing = self.store.active_key(at).await?.map(|k| k.kid);
        Ok(self
            .store
            .list_keys()
            .await?
            .into_iter()
            .map(|k| {
                let state = if k.withdrawn_at.is_some() {
                    "withdrawn"
                } else if signing.as_deref() == Some(k.kid.as_str()) {
                    "signing"
                } else if k.signs_from.is_none() {
                    "standby"
                } else if k.signs_from.is_some_and(|s| s > at) {
                    "scheduled"
                } else {
                    "retired"
                };
                KeyInfo {
                    kid: k.kid,
                    state,
                    created_at: k.created_at,
                    signs_from: k.signs_from,
                    retired_at: k.retired_at,
                    publish_until: k.publish_until,
                    withdrawn_at: k.withdrawn_at,
                }
            })
            .collect())
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
            .active_key(now())
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
                signs_from: None,
                withdrawn_at: None,
            };
            return Ok((row, key));
        }
        Err(Error::internal(anyhow::anyhow!(
            "could not draw a P-256 scalar"
        )))
    }
}
