//! The audit log of the caller's org: its events, their check against the signed checkpoints,
//! the newest checkpoint, and inclusion and consistency proofs (docs/api.md, "Audit log").
//! Every read first seals what the chain has pending, so it sees every change made before it.

use axum::extract::{Path, State};
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use vouch_core::audit::checkpoint::{self, TreeHead};
use vouch_core::audit::{tree, verify_log, AuditEvent, BreakKind, ChainReport, PLATFORM_CHAIN};
use vouch_core::{EventId, OrgId, Timestamp};

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{Error, ErrorBody, Result};
use crate::extract::QueryParams;
use crate::routes::{List, Pagination};
use crate::store::ChainHead;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Platform admin: the org whose log to read (absent: the platform's own log).
    /// Org tokens: their own org (absent or equal).
    pub org_id: Option<OrgId>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The chain the caller asked for and may read.
fn chain_for(caller: &Caller, org_id: Option<&OrgId>) -> Result<String> {
    match (caller.is_platform(), &caller.org_id, org_id) {
        (true, _, Some(org)) => Ok(org.to_string()),
        (true, _, None) => Ok(PLATFORM_CHAIN.to_owned()),
        (false, Some(own), None) => Ok(own.to_string()),
        (false, Some(own), Some(org)) if own == org => Ok(own.to_string()),
        _ => Err(Error::org_not_found()),
    }
}

/// Whether the caller may read chain `chain_id` (the platform admin: every chain; an org token:
/// its org's).
fn may_read(caller: &Caller, chain_id: &str) -> bool {
    caller.is_platform()
        || caller
            .org_id
            .as_ref()
            .is_some_and(|own| own.as_str() == chain_id)
}

fn event_not_found() -> Error {
    Error::NotFound {
        code: "event_not_found",
        message: "no such audit event".into(),
    }
}

/// Audit events, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = List<AuditEvent>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<List<AuditEvent>>> {
    let chain = chain_for(&caller, query.org_id.as_ref())?;
    let page = Pagination {
        limit: query.limit,
        cursor: query.cursor,
    }
    .request()?;
    state.audit.seal_for_read(&chain).await;
    Ok(Json(
        state.store.list_events(&chain, None, &page).await?.into(),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChainQuery {
    pub org_id: Option<OrgId>,
}

/// A signed tree head as the origin holds it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedHead {
    pub tree_size: u64,
    /// Base64.
    pub root_hash: String,
    /// The C2SP checkpoint, a signed note.
    pub checkpoint: String,
    /// When it was signed (the newest) or written to KV (the published one).
    pub at: Option<Timestamp>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub chain_id: String,
    #[serde(flatten)]
    pub report: ChainReport,
    /// The newest checkpoint, checked against the events.
    pub checkpoint: Option<SignedHead>,
    /// The last checkpoint written to KV (as the database recorded it), checked against the
    /// events. `vouch audit verify` checks the copy outside the database.
    pub published: Option<SignedHead>,
    /// The key the checkpoints must be signed by.
    pub verifier_key: String,
    /// Events recorded but not sealed yet (they stay so while the chain does not verify).
    pub pending: i64,
}

/// Opens a stored checkpoint, or records in `report` that it does not open.
fn open_stored(
    report: &mut ChainReport,
    note: &str,
    verifier_key: &str,
    chain: &str,
    at: Option<Timestamp>,
) -> Option<(TreeHead, SignedHead)> {
    match checkpoint::open(note, verifier_key, chain) {
        Ok(head) => Some((
            head,
            SignedHead {
                tree_size: head.size,
                root_hash: head.root.to_string(),
                checkpoint: note.to_owned(),
                at,
            },
        )),
        Err(_) => {
            report.broken(0, None, BreakKind::BadCheckpoint);
            None
        }
    }
}

/// Checks every event of the chain against its newest and its last published checkpoint, and
/// the stored tree against the events: `ok`, or the first place where it breaks and how.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", params(ChainQuery),
    responses((status = 200, body = VerifyReport), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn verify_audit(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ChainQuery>,
) -> Result<Json<VerifyReport>> {
    let chain = chain_for(&caller, query.org_id.as_ref())?;
    // A chain whose tree no longer matches its checkpoint cannot be sealed: reported as it is.
    state.audit.seal_for_read(&chain).await;
    let events = state.store.chain_events(&chain).await?;
    let head = state.store.chain_head(&chain).await?;
    let vkey = state.audit.verifier_key();
    let mut stored = Vec::new();
    let mut heads = Vec::new();
    let mut early = ChainReport {
        ok: true,
        events_checked: 0,
        tree_size: 0,
        root_hash: String::new(),
        first_break: None,
    };
    let (mut newest, mut published) = (None, None);
    if let Some(head) = &head {
        if let Some(note) = &head.checkpoint {
            if let Some((h, signed)) = open_stored(&mut early, note, vkey, &chain, head.signed_at) {
                heads.push(h);
                newest = Some(signed);
            }
        }
        if let Some((note, at)) = &head.published {
            if let Some((h, signed)) = open_stored(&mut early, note, vkey, &chain, Some(*at)) {
                heads.push(h);
                published = Some(signed);
            }
        }
        stored.push(head);
    }
    let mut report = verify_log(&chain, &events, &heads);
    if let Some(b) = early.first_break {
        report.broken(b.seq, b.event_id, b.kind);
    }
    // The stored tree must give the root the events give (proofs are served from it).
    if let Some(head) = stored.first() {
        let hashes = state
            .store
            .tree_hashes(&chain, &tree::frontier(head.tree_size))
            .await?;
        let stored_root = tree::root(head.tree_size, &hashes).ok();
        let computed = (head.tree_size == report.tree_size).then(|| report.root_hash.clone());
        if stored_root.map(|r| r.to_string()) != computed {
            report.broken(
                i64::try_from(head.tree_size).unwrap_or(i64::MAX),
                None,
                BreakKind::TreeMismatch,
            );
        }
    }
    Ok(Json(VerifyReport {
        chain_id: chain,
        report,
        checkpoint: newest,
        published,
        verifier_key: vkey.to_owned(),
        pending: stored.first().map_or(0, |h| h.pending),
    }))
}

/// The chain's newest checkpoint and the key it is signed with.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckpointView {
    pub chain_id: String,
    pub tree_size: u64,
    pub root_hash: String,
    /// The C2SP checkpoint, a signed note (also at the edge, `GET /audit/{chain_id}/checkpoint`,
    /// once published).
    pub checkpoint: String,
    pub signed_at: Option<Timestamp>,
    /// `<name>+<key id>+<base64 public key>`: pin it.
    pub verifier_key: String,
    /// The last checkpoint written to KV.
    pub published: Option<SignedHead>,
}

/// The chain after sealing what is pending, or `404` when nothing was ever recorded on it.
async fn sealed_head(state: &AppState, chain: &str) -> Result<ChainHead> {
    state.audit.seal_for_read(chain).await;
    state
        .store
        .chain_head(chain)
        .await?
        .filter(|h| h.checkpoint.is_some())
        .ok_or_else(|| Error::NotFound {
            code: "checkpoint_not_found",
            message: "nothing has been recorded on this chain yet".into(),
        })
}

/// The newest signed tree head (checkpoint) of the chain.
#[utoipa::path(get, path = "/v1/audit/checkpoint", tag = "audit", params(ChainQuery),
    responses((status = 200, body = CheckpointView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn checkpoint(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ChainQuery>,
) -> Result<Json<CheckpointView>> {
    let chain = chain_for(&caller, query.org_id.as_ref())?;
    let head = sealed_head(&state, &chain).await?;
    let published = head.published.map(|(note, at)| {
        let opened = checkpoint::open(&note, state.audit.verifier_key(), &chain).ok();
        SignedHead {
            tree_size: opened.map_or(0, |h| h.size),
            root_hash: opened.map(|h| h.root.to_string()).unwrap_or_default(),
            checkpoint: note,
            at: Some(at),
        }
    });
    Ok(Json(CheckpointView {
        tree_size: head.tree_size,
        root_hash: head.root_hash.unwrap_or_default(),
        checkpoint: head.checkpoint.unwrap_or_default(),
        signed_at: head.signed_at,
        verifier_key: state.audit.verifier_key().to_owned(),
        published,
        chain_id: chain,
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProofQuery {
    /// The tree to prove inclusion in (default: the newest checkpoint's).
    pub tree_size: Option<u64>,
}

/// An RFC 9162 inclusion proof of one event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InclusionProof {
    pub event_id: EventId,
    pub chain_id: String,
    pub seq: i64,
    /// `seq - 1`.
    pub leaf_index: u64,
    pub tree_size: u64,
    /// The leaf's bytes (base64): SHA-256 of `0x00` and these is `leaf_hash`.
    pub leaf_data: String,
    pub leaf_hash: String,
    /// The audit path, bottom up (base64 hashes).
    pub inclusion_path: Vec<String>,
    pub root_hash: String,
    /// The checkpoint that signs `root_hash`, when `tree_size` is the newest.
    pub checkpoint: Option<String>,
    pub event: AuditEvent,
}

fn out_of_range(field: &str, message: String) -> Error {
    Error::field(field, message)
}

/// The stored hashes at `indexes` (and the root's), or an internal error if any is missing.
async fn hashes_for(
    state: &AppState,
    chain: &str,
    size: u64,
    indexes: Vec<u64>,
) -> Result<tree::Hashes> {
    let mut wanted = indexes;
    wanted.extend(tree::frontier(size));
    wanted.sort_unstable();
    wanted.dedup();
    state.store.tree_hashes(chain, &wanted).await
}

/// Proves that an event is in its chain's tree.
#[utoipa::path(get, path = "/v1/audit/events/{event_id}/proof", tag = "audit",
    params(("event_id" = String, Path, description = "`evt_…`"), ProofQuery),
    responses((status = 200, body = InclusionProof), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn event_proof(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_id): Path<String>,
    QueryParams(query): QueryParams<ProofQuery>,
) -> Result<Json<InclusionProof>> {
    let event_id =
        EventId::parse(&event_id).map_err(|e| Error::field("event_id", e.to_string()))?;
    let (chain, _) = state
        .store
        .audit_event(event_id.as_str())
        .await?
        .filter(|(chain, _)| may_read(&caller, chain))
        .ok_or_else(event_not_found)?;
    let head = sealed_head(&state, &chain).await?;
    let event = state
        .store
        .audit_event(event_id.as_str())
        .await?
        .and_then(|(_, event)| event)
        .ok_or_else(event_not_found)?;
    let index = event
        .leaf_index()
        .ok_or_else(|| Error::internal(anyhow::anyhow!("a sealed event without a place")))?;
    let size = query.tree_size.unwrap_or(head.tree_size);
    if size <= index || size > head.tree_size {
        return Err(out_of_range(
            "tree_size",
            format!(
                "the event is leaf {index}: tree_size must be in {}..={}",
                index + 1,
                head.tree_size
            ),
        ));
    }
    let needs = tree::inclusion_needs(size, index).map_err(Error::internal)?;
    let hashes = hashes_for(&state, &chain, size, needs).await?;
    let path = tree::inclusion_proof(size, index, &hashes).map_err(Error::internal)?;
    let root = tree::root(size, &hashes).map_err(Error::internal)?;
    Ok(Json(InclusionProof {
        event_id: event.event_id.clone(),
        chain_id: chain,
        seq: event.seq,
        leaf_index: index,
        tree_size: size,
        leaf_data: BASE64.encode(event.leaf_data()),
        leaf_hash: event.leaf_hash.clone(),
        inclusion_path: path.iter().map(ToString::to_string).collect(),
        root_hash: root.to_string(),
        checkpoint: (size == head.tree_size)
            .then(|| head.checkpoint.clone())
            .flatten(),
        event,
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    pub org_id: Option<OrgId>,
    /// The older tree size (e.g. a checkpoint you hold).
    pub from: u64,
    /// The newer tree size (default: the newest checkpoint's).
    pub to: Option<u64>,
}

/// An RFC 9162 consistency proof between two sizes of a chain's tree.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsistencyProof {
    pub chain_id: String,
    pub from: u64,
    pub to: u64,
    pub from_root: String,
    pub to_root: String,
    /// Base64 hashes, as RFC 9162 §2.1.4 orders them (empty when `from` is 0 or equals `to`).
    pub proof: Vec<String>,
    /// The checkpoint that signs `to_root`, when `to` is the newest.
    pub checkpoint: Option<String>,
}

/// Proves that the chain's tree at `from` is a prefix of its tree at `to`.
#[utoipa::path(get, path = "/v1/audit/consistency", tag = "audit", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProof), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn consistency(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ConsistencyQuery>,
) -> Result<Json<ConsistencyProof>> {
    let chain = chain_for(&caller, query.org_id.as_ref())?;
    let head = sealed_head(&state, &chain).await?;
    let to = query.to.unwrap_or(head.tree_size);
    if to > head.tree_size {
        return Err(out_of_range(
            "to",
            format!("the tree has {} leaves", head.tree_size),
        ));
    }
    if query.from > to {
        return Err(out_of_range("from", "from must not exceed to".into()));
    }
    let needs = tree::consistency_needs(to, query.from).map_err(Error::internal)?;
    let mut hashes = hashes_for(&state, &chain, to, needs).await?;
    let old = state
        .store
        .tree_hashes(&chain, &tree::frontier(query.from))
        .await?;
    hashes.0.extend(old.0);
    let proof = tree::consistency_proof(to, query.from, &hashes).map_err(Error::internal)?;
    Ok(Json(ConsistencyProof {
        from_root: tree::root(query.from, &hashes)
            .map_err(Error::internal)?
            .to_string(),
        to_root: tree::root(to, &hashes)
            .map_err(Error::internal)?
            .to_string(),
        proof: proof.iter().map(ToString::to_string).collect(),
        checkpoint: (to == head.tree_size)
            .then(|| head.checkpoint.clone())
            .flatten(),
        chain_id: chain,
        from: query.from,
        to,
    }))
}
