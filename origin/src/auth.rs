//! Who is calling: an admin token (platform, or an org's owner/admin/viewer) or an agent's API
//! key. Missing or unknown credentials are `401 unauthorized`; an org token never learns whether
//! another org's records exist (they are `404`).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use vouch_core::{AgentId, OrgId, Passport, Status};

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::secrets;
use crate::store::{Role, Scope};

/// An authenticated admin.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token id, or `platform` for the configured bootstrap token.
    pub actor: String,
    pub role: Role,
    /// The org the token belongs to; `None` for the platform admin.
    pub org_id: Option<OrgId>,
}

impl Caller {
    pub fn is_platform(&self) -> bool {
        self.role == Role::Platform
    }

    /// The agents this caller may see.
    pub fn scope(&self) -> Scope {
        match &self.org_id {
            Some(org) if !self.is_platform() => Scope::Org(org.clone()),
            _ => Scope::All,
        }
    }

    /// Whether the caller may see records of `org`.
    pub fn sees_org(&self, org: &OrgId) -> bool {
        self.scope().allows(org)
    }

    pub fn require_platform(&self) -> Result<()> {
        if self.is_platform() {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "this needs the platform admin token".into(),
            ))
        }
    }

    /// Refuses read-only tokens.
    pub fn require_writer(&self) -> Result<()> {
        if self.role == Role::Viewer {
            Err(Error::Forbidden(
                "a viewer token cannot make changes".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Refuses a write to an agent: `404` if the caller cannot see it, `403` if it may only read.
    pub async fn authorize_agent_write(&self, state: &AppState, agent_id: &AgentId) -> Result<()> {
        if self.role == Role::Viewer {
            state
                .store
                .get_agent(&self.scope(), agent_id)
                .await?
                .ok_or_else(Error::agent_not_found)?;
        }
        self.require_writer()
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer(parts).ok_or(Error::Unauthorized)?;
        Caller::authenticate(state, token).await
    }
}

impl Caller {
    /// The admin that `token` authenticates now; `401` if none.
    pub async fn authenticate(state: &AppState, token: &str) -> Result<Caller> {
        let hash = secrets::hash(token);
        // The configured platform token may be any string of 32 or more characters.
        if let Some(platform) = Caller::platform(state, &hash) {
            return Ok(platform);
        }
        if !token.starts_with(secrets::ADMIN_TOKEN_PREFIX) {
            return Err(Error::Unauthorized);
        }
        Caller::stored(state, &hash).await
    }

    /// The admin whose token hashes to `hash` now (a console session keeps only the hash);
    /// `401` if none.
    pub async fn authenticate_hash(state: &AppState, hash: &str) -> Result<Caller> {
        match Caller::platform(state, hash) {
            Some(platform) => Ok(platform),
            None => Caller::stored(state, hash).await,
        }
    }

    /// The platform admin, if `hash` is the configured platform token's.
    fn platform(state: &AppState, hash: &str) -> Option<Caller> {
        let platform = state.platform_token_hash.as_deref()?;
        secrets::hashes_equal(hash, platform).then(|| Caller {
            actor: "platform".into(),
            role: Role::Platform,
            org_id: None,
        })
    }

    /// The admin of the live stored token whose hash is `hash`.
    async fn stored(state: &AppState, hash: &str) -> Result<Caller> {
        match state.store.token_by_hash(hash).await? {
            // An org role without an org would see every org: refuse such a row outright.
            Some((token, _)) if token.role != Role::Platform && token.org_id.is_none() => {
                Err(Error::Unauthorized)
            }
            Some((token, stored)) if secrets::hashes_equal(hash, &stored) => Ok(Caller {
                actor: token.token_id.to_string(),
                role: token.role,
                org_id: token.org_id,
            }),
            _ => Err(Error::Unauthorized),
        }
    }
}

/// An agent authenticated by its own credential: its API key (`vk_agent_…`) or an access token
/// the registry issued to it (SPEC §4: heartbeats; §20: its own events). Revoked agents'
/// credentials are dead. A valid admin token is `403`: an agent's signals come from the agent.
pub struct AgentCaller(pub Passport);

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let credential = bearer(parts).ok_or(Error::Unauthorized)?;
        AgentCaller::authenticate_credential(state, credential).await
    }
}

impl AgentCaller {
    /// The agent `credential` speaks for: an API key, or an access token (three dot-separated
    /// segments). A live admin token is `403 forbidden`; anything else `401`.
    pub async fn authenticate_credential(
        state: &AppState,
        credential: &str,
    ) -> Result<AgentCaller> {
        if credential.starts_with(secrets::AGENT_KEY_PREFIX) {
            return AgentCaller::authenticate(state, credential).await;
        }
        if credential.split('.').count() == 3 {
            return AgentCaller::from_token(state, credential).await;
        }
        Caller::authenticate(state, credential).await?;
        Err(Error::Forbidden(
            "this takes the agent's own API key or access token, not an admin token".into(),
        ))
    }

    /// The subject of an access token the registry signed with a published key, valid now, the
    /// agent's own (no `act`: a delegated token speaks for its subject, but the actor presents
    /// it), not issued before the agent's tokens were revoked; `401` otherwise.
    async fn from_token(state: &AppState, token: &str) -> Result<AgentCaller> {
        use vouch_core::token;
        let keys = state.keys.jwk_set().await?;
        let issuer = state.keys.settings.issuer.trim_end_matches('/');
        let expect = token::Expectations {
            issuer,
            audience: None,
            skew_seconds: token::MAX_SKEW_SECONDS,
            max_len: token::DEFAULT_MAX_LEN,
        };
        let now = crate::clock::now().unix_seconds();
        let (_, claims) = token::verify(token, &|kid| keys.get(kid), &expect, now)
            .map_err(|_| Error::Unauthorized)?;
        if claims.act.is_some() {
            return Err(Error::Unauthorized);
        }
        let passport = state
            .store
            .get_agent(&Scope::All, &claims.sub)
            .await?
            .filter(|p| p.status != Status::Revoked && p.org_id == claims.org)
            .ok_or(Error::Unauthorized)?;
        let cut = passport.tokens_not_before;
        if token::revoked(&claims, &|agent| {
            cut.filter(|_| agent == &passport.agent_id)
        })
        .is_some()
        {
            return Err(Error::Unauthorized);
        }
        Ok(AgentCaller(passport))
    }

    /// The agent whose live key `key` is now; `401` if none (or it is revoked).
    pub async fn authenticate(state: &AppState, key: &str) -> Result<AgentCaller> {
        if !key.starts_with(secrets::AGENT_KEY_PREFIX) {
            return Err(Error::Unauthorized);
        }
        let hash = secrets::hash(key);
        match state.store.agent_by_key_hash(&hash).await? {
            Some((passport, stored))
                if secrets::hashes_equal(&hash, &stored) && passport.status != Status::Revoked =>
            {
                Ok(AgentCaller(passport))
            }
            _ => Err(Error::Unauthorized),
        }
    }
}

/// Whoever may read the live event stream: an admin token, or an agent's own API key (which
/// sees the events about that agent, so its SDK can drain work when it is being suspended).
pub struct Reader {
    pub kind: ReaderKind,
    /// The credential as presented, so that a long-lived stream can check it again (a
    /// revoked token or a rotated key ends the stream). Never logged.
    credential: Credential,
}

/// What a [`Reader`] presented.
enum Credential {
    /// A bearer token or agent key.
    Bearer(String),
    /// A console session: the hash of its secret (a signed-out or expired session, or a revoked
    /// token behind it, ends the stream).
    Session(String),
}

pub enum ReaderKind {
    Admin(Caller),
    /// The agent its key authenticated, and its org.
    Agent {
        agent_id: AgentId,
        org_id: OrgId,
    },
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("credential", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl Reader {
    async fn authenticate(state: &AppState, credential: &str) -> Result<ReaderKind> {
        if credential.starts_with(secrets::AGENT_KEY_PREFIX) {
            let AgentCaller(passport) = AgentCaller::authenticate(state, credential).await?;
            Ok(ReaderKind::Agent {
                agent_id: passport.agent_id,
                org_id: passport.org_id,
            })
        } else {
            Ok(ReaderKind::Admin(
                Caller::authenticate(state, credential).await?,
            ))
        }
    }

    /// Whether the credential still authenticates the same caller with the same rights
    /// (`Err` only when the database cannot tell).
    pub async fn still_valid(&self, state: &AppState) -> Result<bool> {
        let now = match &self.credential {
            Credential::Bearer(credential) => Reader::authenticate(state, credential).await,
            Credential::Session(session_hash) => {
                crate::console::session::caller_of(state, session_hash)
                    .await
                    .map(ReaderKind::Admin)
            }
        };
        let now = match now {
            Ok(kind) => kind,
            Err(Error::Unauthorized) => return Ok(false),
            Err(e) => return Err(e),
        };
        Ok(match (&self.kind, &now) {
            (ReaderKind::Admin(was), ReaderKind::Admin(is)) => {
                was.actor == is.actor && was.role == is.role && was.org_id == is.org_id
            }
            (
                ReaderKind::Agent {
                    agent_id: was,
                    org_id: was_org,
                },
                ReaderKind::Agent {
                    agent_id: is,
                    org_id: is_org,
                },
            ) => was == is && was_org == is_org,
            _ => false,
        })
    }

    /// A key naming the credential (its hash), e.g. to count its open streams.
    pub fn credential_key(&self) -> String {
        match &self.credential {
            Credential::Bearer(credential) => secrets::hash(credential),
            Credential::Session(session_hash) => format!("session:{session_hash}"),
        }
    }

    /// The reader of a console session, authenticated as `caller`.
    pub fn session(caller: Caller, session_hash: String) -> Reader {
        Reader {
            kind: ReaderKind::Admin(caller),
            credential: Credential::Session(session_hash),
        }
    }

    /// The org the credential belongs to (`None`: the platform admin).
    pub fn org(&self) -> Option<&OrgId> {
        match &self.kind {
            ReaderKind::Admin(caller) => caller.org_id.as_ref(),
            ReaderKind::Agent { org_id, .. } => Some(org_id),
        }
    }
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let credential = bearer(parts).ok_or(Error::Unauthorized)?.to_owned();
        let kind = Reader::authenticate(state, &credential).await?;
        Ok(Reader {
            kind,
            credential: Credential::Bearer(credential),
        })
    }
}
