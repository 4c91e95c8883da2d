//! Workers KV behind a bounded per-isolate cache.
//!
//! A warm `/verify` (and its `304`) must not read KV on every request, and a suspension must
//! still reach the edge quickly: every entry, found or missing, lives at most [`TTL_MS`], and the
//! map holds at most [`MAX_ENTRIES`]. Isolate globals survive between requests without
//! guarantee, which is fine for a cache whose every entry expires.
//!
//! Passports and grants come back with the status journal's newer changes laid over them
//! ([`crate::journal`]); the callers check the journal's freshness before answering.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;
use vouch_core::delegation::{self, Grant};
use vouch_core::edge_view::EdgePassport;
use vouch_core::ids::DelegationId;
use vouch_core::kv::VersionedDocument;
use worker::{Date, Env};

use crate::journal;
use crate::respond::EdgeError;

/// How long an isolate reuses what it read from KV.
pub const TTL_MS: u64 = 250;
/// The bound on cached keys per isolate.
pub const MAX_ENTRIES: usize = 10_000;
/// The KV edge cache TTL passed on every read (Workers KV's minimum is 30 s).
pub const KV_CACHE_TTL_SECONDS: u64 = 30;
/// The binding name of the namespace the origin publishes to.
pub const BINDING: &str = "VOUCH_KV";

/// A passport read from KV, with its `/verify` answer and its digest (what signed decisions
/// name it by, SPEC §12) computed once per read.
pub struct PassportEntry {
    pub view: EdgePassport,
    pub digest: String,
    pub etag: String,
    pub verify_status: u16,
    pub verify_body: String,
}

/// A served-as-is document (`jwks`, `discovery`) rendered once per read.
pub struct DocumentEntry {
    /// The version the origin published it under.
    pub version: i64,
    pub etag: String,
    /// The document as served.
    pub body: String,
    /// The same document, parsed (for the issuer of `discovery`).
    pub document: Value,
}

/// An audit chain's published checkpoint (a signed note), with its ETag.
pub struct CheckpointEntry {
    pub etag: String,
    pub note: String,
}

#[derive(Clone)]
enum Cached {
    Passport(Rc<PassportEntry>),
    Document(Rc<DocumentEntry>),
    Checkpoint(Rc<CheckpointEntry>),
    Grant(Rc<Grant>),
    Alias(vouch_core::AgentId),
    PartnerKey(Rc<vouch_core::partner::PartnerKey>),
    Missing,
}

struct Slot {
    value: Cached,
    expires_at: u64,
}

thread_local! {
    static CACHE: RefCell<HashMap<String, Slot>> = RefCell::new(HashMap::new());
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

fn lookup(key: &str) -> Option<Cached> {
    let now = now_ms();
    CACHE.with(|cache| {
        cache
            .borrow()
            .get(key)
            .filter(|slot| slot.expires_at > now)
            .map(|slot| slot.value.clone())
    })
}

fn store(key: &str, value: Cached) {
    let now = now_ms();
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, slot| slot.expires_at > now);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key.to_owned(),
            Slot {
                value,
                expires_at: now + TTL_MS,
            },
        );
    });
}

async fn read_kv(env: &Env, key: &str) -> Result<Option<String>, EdgeError> {
    let kv = env.kv(BINDING)?;
    kv.get(key)
        .cache_ttl(KV_CACHE_TTL_SECONDS)
        .text()
        .await
        .map_err(|e| EdgeError::Internal(format!("KV read of {key}: {e}")))
}

/// The passport as the edge must see it: the KV view under `key`, with a newer status from the
/// status journal laid over it (SPEC §10), and suspended while the journal says its org is
/// frozen.
pub async fn passport(env: &Env, key: &str) -> Result<Option<Rc<PassportEntry>>, EdgeError> {
    let Some(entry) = passport_in_kv(env, key).await? else {
        return Ok(None);
    };
    let entry = match journal::change(key)
        .and_then(|change| vouch_core::journal::overlay_passport(&entry.view, &change.change))
    {
        Some(view) => {
            let etag = vouch_core::journal::overlay_etag(view.version, entry.view.version);
            Rc::new(PassportEntry::render(view, etag))
        }
        None => entry,
    };
    let Some(org) = journal::org_change(entry.view.org_id.as_str()) else {
        return Ok(Some(entry));
    };
    Ok(Some(
        match vouch_core::journal::overlay_org(&entry.view, &org.change) {
            Some(view) => {
                let etag = vouch_core::journal::frozen_etag(&entry.etag, org.change.version());
                Rc::new(PassportEntry::render(view, etag))
            }
            None => entry,
        },
    ))
}

impl PassportEntry {
    fn render(view: EdgePassport, etag: String) -> PassportEntry {
        let answer = view.verify_answer();
        PassportEntry {
            etag,
            verify_status: answer.status,
            verify_body: answer.body.to_string(),
            digest: view.digest(),
            view,
        }
    }
}

/// The passport stored under `key` in KV, if any.
async fn passport_in_kv(env: &Env, key: &str) -> Result<Option<Rc<PassportEntry>>, EdgeError> {
    match lookup(key) {
        Some(Cached::Passport(entry)) => return Ok(Some(entry)),
        Some(Cached::Missing) => return Ok(None),
        _ => {}
    }
    let Some(text) = read_kv(env, key).await? else {
        store(key, Cached::Missing);
        return Ok(None);
    };
    let view: EdgePassport = serde_json::from_str(&text)
        .map_err(|e| EdgeError::Internal(format!("KV value of {key} is not a passport: {e}")))?;
    let etag = view.etag();
    let entry = Rc::new(PassportEntry::render(view, etag));
    store(key, Cached::Passport(entry.clone()));
    Ok(Some(entry))
}

/// The document stored under `key` (`jwks`, `discovery`), if any; `kind` names its ETag.
pub async fn document(
    env: &Env,
    key: &str,
    kind: &str,
) -> Result<Option<Rc<DocumentEntry>>, EdgeError> {
    match lookup(key) {
        Some(Cached::Document(entry)) => return Ok(Some(entry)),
        Some(Cached::Missing) => return Ok(None),
        _ => {}
    }
    let Some(text) = read_kv(env, key).await? else {
        store(key, Cached::Missing);
        return Ok(None);
    };
    let doc: VersionedDocument = serde_json::from_str(&text)
        .map_err(|e| EdgeError::Internal(format!("KV value of {key} is not a document: {e}")))?;
    let entry = Rc::new(DocumentEntry {
        version: doc.version,
        etag: vouch_core::edge_view::etag(kind, doc.version),
        body: doc.document.to_string(),
        document: doc.document,
    });
    store(key, Cached::Document(entry.clone()));
    Ok(Some(entry))
}

/// The newest checkpoint the origin published for audit chain `chain_id`, if any.
pub async fn checkpoint(
    env: &Env,
    chain_id: &str,
) -> Result<Option<Rc<CheckpointEntry>>, EdgeError> {
    let key = vouch_core::kv::checkpoint_key(chain_id);
    match lookup(&key) {
        Some(Cached::Checkpoint(entry)) => return Ok(Some(entry)),
        Some(Cached::Missing) => return Ok(None),
        _ => {}
    }
    let Some(text) = read_kv(env, &key).await? else {
        store(&key, Cached::Missing);
        return Ok(None);
    };
    let value: vouch_core::kv::AuditCheckpoint = serde_json::from_str(&text)
        .map_err(|e| EdgeError::Internal(format!("KV value of {key} is not a checkpoint: {e}")))?;
    let entry = Rc::new(CheckpointEntry {
        etag: value.etag(),
        note: value.checkpoint,
    });
    store(&key, Cached::Checkpoint(entry.clone()));
    Ok(Some(entry))
}

/// The delegation grant `id` as the edge must see it: as published (`delegation:{id}`), and
/// revoked when the status journal says so.
pub async fn grant(env: &Env, id: &DelegationId) -> Result<Option<Rc<Grant>>, EdgeError> {
    let key = delegation::kv_key(id);
    let found = grant_in_kv(env, &key).await?;
    let (Some(grant), Some(change)) = (&found, journal::change(&key)) else {
        return Ok(found);
    };
    Ok(Some(
        vouch_core::journal::overlay_grant(grant, &change.change)
            .map_or_else(|| grant.clone(), Rc::new),
    ))
}

async fn grant_in_kv(env: &Env, key: &str) -> Result<Option<Rc<Grant>>, EdgeError> {
    match lookup(key) {
        Some(Cached::Grant(entry)) => return Ok(Some(entry)),
        Some(Cached::Missing) => return Ok(None),
        _ => {}
    }
    let Some(text) = read_kv(env, key).await? else {
        store(key, Cached::Missing);
        return Ok(None);
    };
    let grant: Grant = serde_json::from_str(&text)
        .map_err(|e| EdgeError::Internal(format!("KV value of {key} is not a grant: {e}")))?;
    let entry = Rc::new(grant);
    store(key, Cached::Grant(entry.clone()));
    Ok(Some(entry))
}

/// The agent an imported OAP `passport_id` names (`oap:{passport_id}`), if any.
pub async fn oap_alias(
    env: &Env,
    passport_id: &str,
) -> Result<Option<vouch_core::AgentId>, EdgeError> {
    let key = vouch_core::kv::oap_passport_key(passport_id);
    match lookup(&key) {
        Some(Cached::Alias(agent)) => return Ok(Some(agent)),
        Some(Cached::Missing) => return Ok(None),
        _ => {}
    }
    let Some(text) = read_kv(env, &key).await? else {
        store(&key, Cached::Missing);
        return Ok(None);
    };
    let alias: vouch_core::kv::OapAlias = serde_json::from_str(&text)
        .map_err(|e| EdgeError::Internal(format!("KV value of {key} is not an alias: {e}")))?;
    store(&key, Cached::Alias(alias.agent_id.clone()));
    Ok(Some(alias.agent_id))
}

/// The partner key record KV holds under `key` (`partner:{sha256}`), if any, as published: the
/// caller lays the status journal over it ([`vouch_core::partner::overlay`]).
pub async fn partner_key(
    env: &Env,
    key: &str,
) -> Result<Option<Rc<vouch_core::partner::PartnerKey>>, EdgeError> {
    match lookup(key) {
        Some(Cached::PartnerKey(record)) => return Ok(Some(record)),
        Some(Cached::Missing) => return Ok(None),
        _ => {}
    }
    let Some(text) = read_kv(env, key).await? else {
        store(key, Cached::Missing);
        return Ok(None);
    };
    let record: vouch_core::partner::PartnerKey = serde_json::from_str(&text)
        .map_err(|e| EdgeError::Internal(format!("KV value of {key} is not a partner key: {e}")))?;
    let record = Rc::new(record);
    store(key, Cached::PartnerKey(record.clone()));
    Ok(Some(record))
}
