//! Storage behind narrow traits, one per kind of record, with a SQLite and a Postgres
//! implementation (`sqlite.rs`, `postgres.rs`) generated from one body of SQL (`sql.rs`).
//!
//! Every write carries a [`ChangeEvent`]: the store commits the change, its audit event (on the
//! org's chain, unsealed: the sealer numbers it later) and its outbox row in one transaction, or
//! none of them.

mod audit;
mod audit_sql;
mod console_sql;
mod partners_sql;
mod postgres;
mod receipts_sql;
mod sql;
mod sqlite;
mod status_lists_sql;
mod webhooks_sql;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{json, Value};
use vouch_core::audit::{AuditDraft, PLATFORM_CHAIN};
use vouch_core::ids::WebhookId;
use vouch_core::{
    AgentId, CapabilityId, EventId, EventType, Health, OrgId, Passport, Region, Status, Timestamp,
    TokenId,
};

use crate::error::{Error, Result};

pub use audit::{AuditKeyRow, AuditStore, ChainHead, SealOutcome};
pub use partners_sql::PARTNER_KEY_AGGREGATE;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// The `aggregate_type` of an audit chain's checkpoint in `kv_outbox` (its id: the chain id,
/// its version: the tree size).
pub const CHECKPOINT_AGGREGATE: &str = "audit_checkpoint";
/// The shortest time between two KV writes of one chain's checkpoint.
pub const CHECKPOINT_INTERVAL_MS: i64 = 1_000;

/// An organization.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Org {
    pub org_id: OrgId,
    pub name: String,
    pub slug: String,
    pub created_at: Timestamp,
    /// When the org was frozen (`POST /v1/orgs/{id}/freeze`); absent while it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen_reason: Option<String>,
    /// Orders the org's freeze entries in the status journal.
    #[serde(skip)]
    pub freeze_version: i64,
    /// When it was last frozen or unfrozen.
    #[serde(skip)]
    pub freeze_changed_at: Option<Timestamp>,
}

impl Org {
    /// The org's entry for the status journal, once it has been frozen (or unfrozen) at all.
    pub fn journal_change(&self) -> Option<vouch_core::journal::Change> {
        Some(vouch_core::journal::Change::Org {
            org_id: self.org_id.clone(),
            version: self.freeze_version,
            frozen: self.frozen_at.is_some(),
            reason: self.frozen_reason.clone(),
            changed_at: self.freeze_changed_at?,
        })
    }
}

/// Makes the audit event of a freeze or an unfreeze from what it changed.
pub type FreezeEvent = Box<dyn for<'f> FnOnce(&'f Frozen) -> ChangeEvent + Send>;

/// What a freeze or an unfreeze changed.
#[derive(Clone, Debug)]
pub struct Frozen {
    pub org: Org,
    /// The agents it suspended (a freeze) or reactivated (an unfreeze).
    pub agents: Vec<AgentId>,
    /// The grants a freeze revoked.
    pub grants: u64,
}

/// What an admin token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every org (the bootstrap token).
    Platform,
    /// Its org, including creating tokens.
    Owner,
    /// Its org's agents.
    Admin,
    /// Read only.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Platform => "platform",
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Platform, Role::Owner, Role::Admin, Role::Viewer]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// An admin token's public record (the secret itself is never stored).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AdminToken {
    pub token_id: TokenId,
    pub org_id: Option<OrgId>,
    pub role: Role,
    pub name: String,
    pub created_at: Timestamp,
}

/// Which agents a caller may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Org(OrgId),
}

impl Scope {
    pub fn allows(&self, org: &OrgId) -> bool {
        match self {
            Scope::All => true,
            Scope::Org(own) => own == org,
        }
    }
}

/// Filters of `GET /v1/agents`.
#[derive(Clone, Debug, Default)]
pub struct AgentFilter {
    pub org_id: Option<OrgId>,
    pub status: Option<Status>,
    pub capability: Option<CapabilityId>,
    /// Agents allowed in this region: listed exactly, through their country, or through `*`.
    pub region: Option<Region>,
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
}

/// A page request: at most `limit` rows strictly after the row id `after` in the list's order.
#[derive(Clone, Debug)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<String>,
}

/// A page of rows and the id to continue after, if there may be more.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_after: Option<String>,
}

impl<T> Page<T> {
    /// Cuts `rows` (fetched with `limit + 1`) to a page.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, id: impl Fn(&T) -> String) -> Page<T> {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_after = if more { rows.last().map(id) } else { None };
        Page {
            data: rows,
            next_after,
        }
    }
}

/// One change, as recorded in the audit log and the outbox.
#[derive(Clone, Debug)]
pub struct ChangeEvent {
    pub event_id: EventId,
    /// The org whose chain records it; `None` for platform-wide changes.
    pub org_id: Option<OrgId>,
    pub actor: String,
    pub event_type: EventType,
    pub target_type: &'static str,
    pub target_id: String,
    /// The version of the target after the change (KV ordering); 0 for unversioned targets.
    pub version: i64,
    pub data: Value,
    pub created_at: Timestamp,
    /// The full type of an agent's own event (`agent.custom.<name>`, SPEC §20), which the outbox,
    /// the envelope and the audit log carry instead of `event_type`'s general name.
    pub subtype: Option<String>,
}

impl ChangeEvent {
    /// A change event stamped with a fresh id.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        actor: &str,
        org_id: Option<&OrgId>,
        event_type: EventType,
        target_type: &'static str,
        target_id: &str,
        version: i64,
        data: Value,
        at: Timestamp,
    ) -> ChangeEvent {
        ChangeEvent {
            event_id: EventId::from_uuid(uuid::Uuid::now_v7()),
            org_id: org_id.cloned(),
            actor: actor.to_owned(),
            event_type,
            target_type,
            target_id: target_id.to_owned(),
            version,
            data,
            created_at: at,
            subtype: None,
        }
    }

    /// The type the outbox, the envelope and the audit log name: [`ChangeEvent::subtype`], else
    /// the event type's wire name.
    pub fn type_name(&self) -> &str {
        self.subtype
            .as_deref()
            .unwrap_or_else(|| self.event_type.as_str())
    }

    /// The KV key this change must be published to, if any.
    /// (Documents queue their own KV writes, with their own versions.)
    pub fn kv_key(&self) -> Option<String> {
        match self.target_type {
            "agent" => AgentId::parse(&self.target_id)
                .ok()
                .map(|id| vouch_core::kv::passport_key(&id)),
            "delegation" => vouch_core::ids::DelegationId::parse(&self.target_id)
                .ok()
                .map(|id| vouch_core::delegation::kv_key(&id)),
            _ => None,
        }
    }

    /// The key of the status journal this change must reach within seconds (SPEC §10), if any:
    /// status changes, token revocations and delegation revocations.
    pub fn journal_key(&self) -> Option<String> {
        if !self.event_type.reaches_journal() {
            return None;
        }
        match self.event_type {
            EventType::SigningKeyWithdrawn => {
                Some(vouch_core::journal::key_withdrawal_key(&self.target_id))
            }
            EventType::OrgFrozen | EventType::OrgUnfrozen => OrgId::parse(&self.target_id)
                .ok()
                .map(|id| vouch_core::journal::org_key(&id)),
            _ => self.kv_key(),
        }
    }

    pub fn chain_id(&self) -> &str {
        self.org_id.as_ref().map_or(PLATFORM_CHAIN, |o| o.as_str())
    }

    pub fn audit_draft(&self) -> AuditDraft {
        AuditDraft {
            event_id: self.event_id.clone(),
            chain_id: self.chain_id().to_owned(),
            actor: self.actor.clone(),
            action: self.type_name().to_owned(),
            target_type: self.target_type.to_owned(),
            target_id: self.target_id.clone(),
            data: self.data.to_string(),
            created_at: self.created_at,
        }
    }

    /// The outbox payload: a Stripe-like envelope the publishers and webhooks send on.
    pub fn envelope(&self) -> String {
        json!({
            "id": self.event_id,
            "type": self.type_name(),
            "created_at": self.created_at,
            "org_id": self.org_id,
            "data": self.data,
        })
        .to_string()
    }
}

/// A stored outbox row.
#[derive(Clone, Debug, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub aggregate_id: String,
    pub aggregate_version: i64,
    pub payload: String,
}

/// What a mutation of an agent produces.
pub struct AgentChange {
    pub passport: Passport,
    /// A new API key hash, when the key is rotated.
    pub api_key_hash: Option<String>,
    pub event: ChangeEvent,
}

/// An agent before and after a mutation (the same when nothing changed).
pub struct Mutated {
    pub before: Passport,
    pub after: Passport,
}

/// Decides, from the current passport, what to change. `Ok(None)` changes nothing.
pub type AgentMutation = Box<dyn FnOnce(&Passport) -> Result<Option<AgentChange>> + Send + 'static>;

#[async_trait]
pub trait OrgStore {
    async fn create_org(&self, org: &Org, event: &ChangeEvent) -> Result<()>;
    async fn get_org(&self, org_id: &OrgId) -> Result<Option<Org>>;
    /// In one transaction: suspends every active agent of the org (with `reason`), revokes
    /// their live grants, marks the org frozen (a new freeze version) and records `event` (made
    /// by `event_of` from the outcome), which queues the org's one status-journal entry. The
    /// agents' and grants' new versions go to KV. `None` when the org does not exist;
    /// `409 org_frozen` when it is frozen already.
    async fn freeze_org(
        &self,
        org_id: &OrgId,
        reason: &str,
        at: Timestamp,
        event_of: FreezeEvent,
    ) -> Result<Option<Frozen>>;
    /// In one transaction: reactivates the agents the freeze suspended (those still suspended by
    /// it), each queued for KV and the status journal, marks the org unfrozen and records
    /// `event`. `None` when the org does not exist; `409 org_not_frozen` when it is not frozen.
    async fn unfreeze_org(
        &self,
        org_id: &OrgId,
        at: Timestamp,
        event_of: FreezeEvent,
    ) -> Result<Option<Frozen>>;
}

#[async_trait]
pub trait TokenStore {
    async fn create_token(&self, token: &AdminToken, hash: &str, event: &ChangeEvent)
        -> Result<()>;
    async fn token_by_hash(&self, hash: &str) -> Result<Option<(AdminToken, String)>>;
    async fn platform_token_exists(&self) -> Result<bool>;
    /// Revokes a live token of `org_id`, with `event`; `false` when there is no such live token.
    async fn revoke_token(
        &self,
        org_id: &OrgId,
        token_id: &TokenId,
        event: &ChangeEvent,
    ) -> Result<bool>;
    /// Deletes stored platform tokens (a configured `VOUCH_ADMIN_TOKEN` replaces them), with
    /// `event` when there were any; returns how many.
    async fn revoke_platform_tokens(&self, event: &ChangeEvent) -> Result<u64>;
    /// Records the database's first start at `at`, with `token` (its record, hash and event)
    /// in the same transaction; `false`, storing nothing, when it has started before (or
    /// another replica's first start won).
    async fn record_first_start(
        &self,
        at: Timestamp,
        token: Option<(&AdminToken, &str, &ChangeEvent)>,
    ) -> Result<bool>;
}

#[async_trait]
pub trait AgentStore {
    async fn insert_agent(
        &self,
        passport: &Passport,
        api_key_hash: &str,
        event: &ChangeEvent,
    ) -> Result<()>;
    async fn get_agent(&self, scope: &Scope, agent_id: &AgentId) -> Result<Option<Passport>>;
    async fn list_agents(
        &self,
        scope: &Scope,
        filter: &AgentFilter,
        page: &PageRequest,
    ) -> Result<Page<Passport>>;
    /// Loads the agent (locked for the transaction), lets `mutation` decide, writes the result.
    async fn mutate_agent(
        &self,
        scope: &Scope,
        agent_id: &AgentId,
        mutation: AgentMutation,
    ) -> Result<Mutated>;
    /// The agent whose API key hashes to `hash`, with its stored hash.
    async fn agent_by_key_hash(&self, hash: &str) -> Result<Option<(Passport, String)>>;
    /// Records an agent's own event (SPEC §20: audit event, outbox row, webhook deliveries) in
    /// one transaction, while the agent is not revoked (`401` once it is: its credentials died).
    async fn record_agent_event(&self, agent_id: &AgentId, event: &ChangeEvent) -> Result<()>;
    async fn record_heartbeat(
        &self,
        agent_id: &AgentId,
        health: Health,
        at: Timestamp,
    ) -> Result<()>;
}

/// A token-signing key as stored: the public JWK and the sealed private scalar.
#[derive(Clone, Debug)]
pub struct SigningKeyRow {
    pub kid: String,
    pub public_jwk: String,
    /// Sealed with the master key, the kid as associated data.
    pub private_key: String,
    pub created_at: Timestamp,
    /// When it stops signing (may be ahead: the next key's `signs_from`).
    pub retired_at: Option<Timestamp>,
    /// When it leaves the JWKS (`None`: not scheduled to).
    pub publish_until: Option<Timestamp>,
    /// When it starts signing; `None` for the standby key, published ahead of signing.
    pub signs_from: Option<Timestamp>,
    /// Taken out of the JWKS at once; it never signs or verifies again.
    pub withdrawn_at: Option<Timestamp>,
}

/// A withdrawn key as it was, and whether this call withdrew it (`false`: it already was).
#[derive(Clone, Debug)]
pub struct Withdrawn {
    pub key: SigningKeyRow,
    pub newly: bool,
}

/// A stored delegation grant and its bookkeeping.
#[derive(Clone, Debug)]
pub struct DelegationRecord {
    pub grant: vouch_core::delegation::Grant,
    pub org_id: OrgId,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub version: i64,
}

impl DelegationRecord {
    /// The `delegation.revoked` event of this (just revoked) grant.
    pub fn revoked_event(&self, actor: &str, reason: &str) -> ChangeEvent {
        ChangeEvent::new(
            actor,
            Some(&self.org_id),
            EventType::DelegationRevoked,
            "delegation",
            self.grant.delegation_id.as_str(),
            self.version,
            json!({ "delegation_id": self.grant.delegation_id, "reason": reason }),
            self.revoked_at.unwrap_or(self.created_at),
        )
    }
}

#[async_trait]
pub trait DelegationStore {
    /// Stores a new grant (version 1) with its event, queued for KV.
    async fn create_delegation(&self, record: &DelegationRecord, event: &ChangeEvent)
        -> Result<()>;
    async fn get_delegation(
        &self,
        id: &vouch_core::ids::DelegationId,
    ) -> Result<Option<DelegationRecord>>;
    /// Revokes a live grant (a new version, queued for KV, with its `delegation.revoked` event);
    /// an already dead grant is returned as it is; `None` when the grant does not exist.
    async fn revoke_delegation(
        &self,
        id: &vouch_core::ids::DelegationId,
        at: Timestamp,
        actor: &str,
        reason: &str,
    ) -> Result<Option<DelegationRecord>>;
    /// The newest live grant from `delegator` to `delegatee` at `now`.
    async fn live_delegation(
        &self,
        delegator: &AgentId,
        delegatee: &AgentId,
        now: Timestamp,
    ) -> Result<Option<DelegationRecord>>;
    async fn delegations_by_ids(&self, ids: &[String]) -> Result<Vec<DelegationRecord>>;
    /// The grants `filter` selects among those `scope` sees, newest first.
    async fn list_delegations(
        &self,
        scope: &Scope,
        filter: &DelegationFilter,
        page: &PageRequest,
    ) -> Result<Page<DelegationRecord>>;
}

/// Where a grant stands at an instant: live, past its expiry, or revoked (deleted, or killed by
/// a party leaving `active`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DelegationState {
    Active,
    Expired,
    Revoked,
}

/// Filters of `GET /v1/delegations`.
#[derive(Clone, Debug)]
pub struct DelegationFilter {
    pub org_id: Option<OrgId>,
    /// Grants naming this agent as delegator or delegatee.
    pub agent_id: Option<AgentId>,
    /// Grants in this state at `now`.
    pub state: Option<DelegationState>,
    pub now: Timestamp,
}

/// A partner (SPEC §14), as the API shows it. Its keys are stored only as hashes
/// ([`PartnerKeyRow`]).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Partner {
    pub partner_id: vouch_core::PartnerId,
    #[schema(example = "Acme Payments")]
    pub name: String,
    /// Who answers for the partner's use of the edge.
    #[schema(example = "security@acme-payments.example")]
    pub contact: String,
    /// `active`, or `revoked` (for good: its key is refused at every edge within the bound).
    pub status: vouch_core::partner::PartnerStatus,
    pub created_at: Timestamp,
    /// When its live key was issued (creation, or the last rotation).
    pub key_issued_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// One more on every change.
    #[serde(skip)]
    pub version: i64,
}

/// One key a partner was given, as stored: its SHA-256 only.
#[derive(Clone, Debug)]
pub struct PartnerKeyRow {
    pub key_hash: String,
    pub partner_id: vouch_core::PartnerId,
    /// 1 while live, 2 once revoked (KV and journal ordering).
    pub version: i64,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl PartnerKeyRow {
    pub fn status(&self) -> vouch_core::partner::PartnerStatus {
        match self.revoked_at {
            Some(_) => vouch_core::partner::PartnerStatus::Revoked,
            None => vouch_core::partner::PartnerStatus::Active,
        }
    }

    /// Its KV value (`partner:{key_hash}`).
    pub fn kv_value(&self) -> vouch_core::partner::PartnerKey {
        vouch_core::partner::PartnerKey {
            partner_id: self.partner_id.clone(),
            status: self.status(),
            version: self.version,
        }
    }

    /// Its status-journal entry.
    pub fn journal_change(&self) -> vouch_core::journal::Change {
        vouch_core::journal::Change::PartnerKey {
            key_hash: self.key_hash.clone(),
            partner_id: self.partner_id.clone(),
            version: self.version,
            status: self.status(),
            changed_at: self.revoked_at.unwrap_or(self.created_at),
        }
    }
}

/// Makes a partner change's audit event from the partner as the change left it.
pub type PartnerEvent = Box<dyn FnOnce(&Partner) -> ChangeEvent + Send>;

/// Partners and their keys. Every key change queues the key's hash for KV and the status
/// journal (`partner:{key_hash}`, aggregate `partner_key`) in the change's transaction.
#[async_trait]
pub trait PartnerStore {
    /// Stores a new partner (version 1) and its first key, with `event`.
    async fn create_partner(
        &self,
        partner: &Partner,
        key_hash: &str,
        event: &ChangeEvent,
    ) -> Result<()>;
    async fn get_partner(&self, id: &vouch_core::PartnerId) -> Result<Option<Partner>>;
    /// Newest first.
    async fn list_partners(&self, page: &PageRequest) -> Result<Page<Partner>>;
    /// Revokes a live partner and every live key of it, with the event `event_of` makes; a
    /// revoked partner is returned as it is, nothing written (`false`). `None`: no such partner.
    async fn revoke_partner(
        &self,
        id: &vouch_core::PartnerId,
        at: Timestamp,
        event_of: PartnerEvent,
    ) -> Result<Option<(Partner, bool)>>;
    /// Replaces a live partner's key: every live key of it is revoked and `key_hash` issued, with
    /// the event `event_of` makes. `409 partner_revoked` for a revoked partner; `None`: no such
    /// partner.
    async fn rotate_partner_key(
        &self,
        id: &vouch_core::PartnerId,
        key_hash: &str,
        at: Timestamp,
        event_of: PartnerEvent,
    ) -> Result<Option<Partner>>;
    /// The keys with these hashes (the publishers), in no particular order.
    async fn partner_keys_by_hashes(&self, hashes: &[String]) -> Result<Vec<PartnerKeyRow>>;
}

/// Signing keys and the documents derived from them (`jwks`, `discovery`).
#[async_trait]
pub trait KeyStore {
    /// The key that signs at `now`, if any.
    async fn active_key(&self, now: Timestamp) -> Result<Option<SigningKeyRow>>;
    /// Every key, newest first.
    async fn list_keys(&self) -> Result<Vec<SigningKeyRow>>;
    /// Keys still in the JWKS at `now`, newest first.
    async fn published_keys(&self, now: Timestamp) -> Result<Vec<SigningKeyRow>>;
    /// Adds `key` (signing from its `signs_from`, or standing by), rewrites the `jwks` document,
    /// records `event`.
    async fn add_key(&self, key: &SigningKeyRow, event: &ChangeEvent) -> Result<()>;
    /// In one transaction: the standby `standby_kid` signs from `signs_from`, the key signing
    /// until then retires at that moment (published until `publish_until`), `next` becomes the
    /// standby, the `jwks` document is rewritten, `event` recorded. `409 rotation_pending` while
    /// another rotation is scheduled or when the standby changed meanwhile.
    async fn rotate_key(
        &self,
        standby_kid: &str,
        signs_from: Timestamp,
        publish_until: Timestamp,
        next: &SigningKeyRow,
        event: &ChangeEvent,
    ) -> Result<()>;
    /// In one transaction: takes `kid` out of the JWKS at once (at `next.created_at`); if it was
    /// signing, a key every edge knows signs from now on (a waiting key created before
    /// `published_before`, else the previous signer while it is still published, else the oldest
    /// waiting key); `next` is added when no standby (or no signer) is left; the `jwks` document is
    /// rewritten, `event` recorded (which queues the withdrawal for the status journal). `None`
    /// when there is no such key.
    async fn withdraw_key(
        &self,
        kid: &str,
        published_before: Timestamp,
        next: &SigningKeyRow,
        event: &ChangeEvent,
    ) -> Result<Option<Withdrawn>>;
    /// Rewrites the `jwks` document from the keys published at `now`, if it changed (a retired
    /// key's time ran out); returns whether it did.
    async fn refresh_jwks(&self, now: Timestamp) -> Result<bool>;
    /// Stores a document if its body changed (a new version, queued for KV); returns whether it did.
    async fn put_document(&self, name: &str, body: &str, event: &ChangeEvent) -> Result<bool>;
    /// `(name, version, body)` of the named documents that exist.
    async fn documents(&self, names: &[String]) -> Result<Vec<(String, i64, String)>>;
}

/// A KV key whose stored version is behind the database, leased to one publisher.
#[derive(Clone, Debug)]
pub struct KvWork {
    pub key: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub target_version: i64,
    /// When the oldest change not yet in KV was committed.
    pub dirty_since: Timestamp,
    /// Failed writes so far (drives the backoff).
    pub attempts: i64,
}

/// The KV publisher's queue (`kv_outbox`), filled in the same transaction as each change.
#[async_trait]
pub trait KvOutboxStore {
    /// Leases up to `limit` keys that are behind and due, for `lease_ms`, to `owner`.
    async fn claim_kv(
        &self,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<KvWork>>;
    /// Records that `version` of `key` is in KV and releases the lease.
    async fn complete_kv(&self, owner: &str, key: &str, version: i64) -> Result<()>;
    /// Releases the lease and schedules another attempt.
    async fn retry_kv(
        &self,
        owner: &str,
        key: &str,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<()>;
    /// When KV last took a write of `version` (or a newer one) of `key`, if it has.
    async fn kv_written_at(&self, key: &str, version: i64) -> Result<Option<Timestamp>>;
    /// Keys behind KV, and when the oldest of their changes was committed.
    async fn kv_backlog(&self) -> Result<(i64, Option<Timestamp>)>;
    /// Marks every agent's and partner key's KV key for publishing again (`kv resync`);
    /// returns how many.
    async fn mark_all_kv_dirty(&self, now: Timestamp) -> Result<i64>;
    /// The passports of these agents (any org), in no particular order.
    async fn agents_by_ids(&self, ids: &[String]) -> Result<Vec<Passport>>;
}

/// The journal publisher's queue (`journal_outbox`, rows shaped like [`KvWork`]), filled in the
/// same transaction as each status change and delegation revocation.
#[async_trait]
pub trait JournalOutboxStore {
    /// Leases up to `limit` keys the journal is behind on, for `lease_ms`, to `owner`.
    async fn claim_journal(
        &self,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<KvWork>>;
    /// Records that the journal stored `version` of `key` as entry `seq` at `stored_at`
    /// (`seq` `None`: there was nothing to append, e.g. the record is gone).
    async fn complete_journal(
        &self,
        owner: &str,
        key: &str,
        version: i64,
        seq: Option<i64>,
        stored_at: Timestamp,
    ) -> Result<()>;
    async fn retry_journal(
        &self,
        owner: &str,
        key: &str,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<()>;
    /// Keys the journal is behind on, and when the oldest of their changes was committed.
    async fn journal_backlog(&self) -> Result<(i64, Option<Timestamp>)>;
    /// Up to `limit` journal entries (key, version) that KV has held since before
    /// `settled_before`: the journal may drop them.
    async fn journal_settled(
        &self,
        settled_before: Timestamp,
        limit: u32,
    ) -> Result<Vec<(String, i64)>>;
    /// Records that the journal dropped these entries (a key appended again since keeps its own).
    async fn journal_forgot(&self, entries: &[(String, i64)]) -> Result<()>;
    /// The epoch of the journal the origin appends to, if it knows one.
    async fn journal_epoch(&self) -> Result<Option<i64>>;
    /// Adopts a journal of another epoch (new, or reset): every change the old one held is
    /// queued to be appended again. Returns how many.
    async fn adopt_journal_epoch(&self, epoch: i64, now: Timestamp) -> Result<u64>;
    /// When the journal stored `version` (or a newer one) of `key`, if it has.
    async fn journal_stored_at(&self, key: &str, version: i64) -> Result<Option<Timestamp>>;
}

/// The admin console's sessions (`console_sessions`): the hash of each session's secret and
/// the hash of the admin token it was exchanged for.
#[async_trait]
pub trait SessionStore {
    /// Stores a new session (and forgets the sessions that expired before `created_at`).
    async fn create_session(
        &self,
        session_hash: &str,
        token_hash: &str,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()>;
    /// The token hash of the session whose secret hashes to `session_hash`, unless it has
    /// expired by `now`.
    async fn session_token(&self, session_hash: &str, now: Timestamp) -> Result<Option<String>>;
    /// Ends a session; `false` when there was none.
    async fn delete_session(&self, session_hash: &str) -> Result<bool>;
}

/// What the console shows beside the API's lists: an agent's delegations and the webhook
/// deliveries of its events, and an org's admin tokens (never their hashes). Callers check that
/// the caller may see the agent or org first.
#[async_trait]
pub trait ConsoleStore {
    /// The newest `limit` grants naming `agent_id` as delegator or delegatee.
    async fn delegations_of(&self, agent_id: &AgentId, limit: u32)
        -> Result<Vec<DelegationRecord>>;
    /// The newest `limit` webhook deliveries of events about `agent_id`.
    async fn deliveries_about(&self, agent_id: &AgentId, limit: u32) -> Result<Vec<Delivery>>;
    /// The org's admin tokens, newest first, with when each was revoked.
    async fn tokens_of(&self, org_id: &OrgId) -> Result<Vec<(AdminToken, Option<Timestamp>)>>;
}

/// A committed decision as the edge signed it (SPEC §12), collected by the origin.
#[derive(Clone, Debug)]
pub struct ReceiptRow {
    pub decision_id: String,
    pub agent_id: AgentId,
    pub org_id: OrgId,
    pub partner_id: Option<String>,
    /// The decision's own `created_at`.
    pub created_at: Timestamp,
    /// When the origin stored it.
    pub received_at: Timestamp,
    /// The signed decision, as JSON text.
    pub body: String,
}

impl ReceiptRow {
    /// Where a page of receipts (newest first) continues: `{created_at ms}.{decision_id}`.
    pub fn cursor(&self) -> String {
        format!("{}.{}", self.created_at.unix_millis(), self.decision_id)
    }

    pub fn parse_cursor(cursor: &str) -> Result<(i64, String)> {
        cursor
            .split_once('.')
            .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
            .ok_or_else(|| crate::error::Error::field("cursor", "invalid cursor"))
    }
}

/// A status list's places as the database holds them now, and the changes that snapshot
/// covers (SPEC §16).
#[derive(Clone, Debug, Default)]
pub struct StatusListSnapshot {
    /// The `status_list_changes` rows seen before the statuses were read: a token built from
    /// `statuses` reflects every one of them.
    pub change_ids: Vec<i64>,
    /// `(place, status)` of every passport in the list.
    pub statuses: Vec<(u64, Status)>,
}

/// The token status lists (SPEC §16): which lists must be built, what they hold, and storing a
/// built one (as the document `status:{list_id}`, queued for KV like `jwks`).
#[async_trait]
pub trait StatusListStore {
    /// Leases, for `lease_ms`, up to `limit` lists that are free and either never built, built
    /// at or before `stale_before`, or changed since they were built at or before
    /// `changed_before` (a list is written to KV at most once a second); their ids.
    async fn claim_status_lists(
        &self,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        stale_before: Timestamp,
        changed_before: Timestamp,
        limit: u32,
    ) -> Result<Vec<u64>>;
    /// The changes of `list_id` so far, then the statuses of its places (in that order, so the
    /// statuses reflect at least those changes).
    async fn status_list_snapshot(&self, list_id: u64) -> Result<StatusListSnapshot>;
    /// In one transaction, if `owner` still holds `list_id`: stores `body` as its document,
    /// deletes the changes `change_ids` (the snapshot it was built from covers them), records
    /// it built at `at` and releases the lease. `false` (nothing written) if the lease was lost.
    async fn store_status_list(
        &self,
        owner: &str,
        list_id: u64,
        body: &str,
        change_ids: &[i64],
        at: Timestamp,
    ) -> Result<bool>;
    /// Releases a lease without building (the build failed; another pass retries).
    async fn release_status_list(&self, owner: &str, list_id: u64) -> Result<()>;
}

/// The receipts of SPEC §12.
#[async_trait]
pub trait ReceiptStore {
    /// Stores each receipt not stored yet (by decision id); how many were new.
    async fn store_receipts(&self, receipts: &[ReceiptRow]) -> Result<u64>;
    /// An agent's receipts, newest first. The caller checks that it may see the agent.
    async fn list_receipts(
        &self,
        agent_id: &AgentId,
        page: &PageRequest,
    ) -> Result<Page<ReceiptRow>>;
}

#[async_trait]
pub trait OutboxStore {
    /// Outbox rows after `after_id`, oldest first.
    async fn outbox_after(&self, after_id: i64, limit: u32) -> Result<Vec<OutboxRow>>;
}

/// A webhook subscription as stored (its secrets sealed with the master key).
#[derive(Clone, Debug)]
pub struct WebhookRecord {
    pub webhook_id: WebhookId,
    pub org_id: OrgId,
    pub url: String,
    pub description: String,
    /// Event types as given (`*` for all).
    pub events: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// The current signing secret, sealed.
    pub secret: String,
    /// The secret before the last rotation, sealed; it also signs until `previous_until`.
    pub previous_secret: Option<String>,
    pub previous_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_success_at: Option<Timestamp>,
}

/// Decides, from the current subscription, what to change: the new record and its event, or
/// `None` to change nothing.
pub type WebhookMutation = Box<
    dyn FnOnce(&WebhookRecord) -> Result<Option<(WebhookRecord, ChangeEvent)>> + Send + 'static,
>;

/// What a manual redelivery did.
#[derive(Debug)]
pub enum Redelivery {
    Queued(Delivery),
    /// No such delivery (or its subscription went away).
    NotFound,
    /// A sender is attempting it right now.
    InFlight,
}

/// A delivery due now, leased to one sender.
#[derive(Clone, Debug)]
pub struct DeliveryWork {
    pub delivery_id: i64,
    pub event_id: String,
    pub event_type: String,
    /// This attempt's number (1 for the first): counted when the delivery was leased, so a
    /// sender that loses its lease never shares a number with the one that took it over.
    pub attempt: i64,
    /// Failed attempts in the current retry schedule.
    pub retry_index: i64,
    pub created_at: Timestamp,
    /// The event envelope, sent as it is.
    pub payload: String,
    pub webhook: WebhookRecord,
}

/// One delivery attempt, as recorded.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt: i64,
    pub started_at: Timestamp,
    pub duration_ms: i64,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
    /// The start of the receiver's answer (at most 1 KiB), for debugging.
    pub response_body: Option<String>,
    /// When the next attempt is due; `null` when this one settled the delivery.
    pub next_attempt_at: Option<Timestamp>,
}

/// How an attempt leaves its delivery.
#[derive(Clone, Debug)]
pub enum Settle {
    Succeeded,
    /// Failed; try again at this time.
    Retry(Timestamp),
    /// Failed and the retry schedule is exhausted. If the subscription has had no success since
    /// the delivery was created, it is disabled with `disable` (a `webhook.disabled` event).
    Exhausted {
        disable: ChangeEvent,
    },
}

/// One event's delivery to one subscription, with every attempt.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// The event delivered; also the `webhook-id` header of every attempt.
    pub event_id: String,
    pub event_type: String,
    pub webhook_id: String,
    /// `pending`, `succeeded` or `failed` (retries exhausted).
    pub status: String,
    pub attempt_count: i64,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Oldest first.
    pub attempts: Vec<Attempt>,
    #[serde(skip)]
    pub(crate) id: i64,
}

/// Whose events a live stream shows.
#[derive(Clone, Debug)]
pub enum StreamScope {
    /// Every event (the platform admin).
    All,
    /// One org's events, and the platform's signing-key rotations.
    Org(OrgId),
    /// Events about one agent (its own API key).
    Agent(AgentId),
}

/// A place in the outbox, in the order the stream reads it: `(tx, id)` (Postgres: the writing
/// transaction, so rows that commit late are not stepped over; SQLite, whose writes are
/// serial: always 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamPos {
    pub tx: i64,
    pub id: i64,
}

/// An outbox row as the stream sends it.
#[derive(Clone, Debug)]
pub struct StreamRow {
    pub pos: StreamPos,
    pub event_type: String,
    pub payload: String,
}

/// Webhook subscriptions, their deliveries, and the live stream's reads of the outbox.
#[async_trait]
pub trait WebhookStore {
    async fn create_webhook(&self, webhook: &WebhookRecord, event: &ChangeEvent) -> Result<()>;
    async fn get_webhook(&self, scope: &Scope, id: &WebhookId) -> Result<Option<WebhookRecord>>;
    /// Newest first.
    async fn list_webhooks(&self, scope: &Scope, page: &PageRequest)
        -> Result<Page<WebhookRecord>>;
    /// Loads the subscription (locked for the transaction), lets `mutation` decide, and writes
    /// the fields it changed (URL, description, events, status) with its event; the secret
    /// columns and what the sender writes are left alone. Enabling it makes its waiting
    /// deliveries due at once. `404 webhook_not_found` when `scope` does not see it.
    async fn modify_webhook(
        &self,
        scope: &Scope,
        id: &WebhookId,
        mutation: WebhookMutation,
    ) -> Result<WebhookRecord>;
    /// Replaces the signing secret (`sealed`); the current one keeps signing until `until`
    /// (`None`: it is dropped at once). Writes the secret columns only, with `event`; `false`
    /// when `scope` does not see the subscription.
    async fn rotate_webhook_secret(
        &self,
        scope: &Scope,
        id: &WebhookId,
        sealed: &str,
        until: Option<Timestamp>,
        event: &ChangeEvent,
    ) -> Result<bool>;
    /// Deletes a subscription and its delivery log, with `event`; `false` if there was none.
    async fn delete_webhook(
        &self,
        scope: &Scope,
        id: &WebhookId,
        event: &ChangeEvent,
    ) -> Result<bool>;
    /// Leases up to `limit` due deliveries of enabled subscriptions, for `lease_ms`, to `owner`.
    async fn claim_deliveries(
        &self,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<DeliveryWork>>;
    /// Records `attempt` and settles the delivery as `outcome` says, in one transaction.
    async fn settle_delivery(
        &self,
        owner: &str,
        work: &DeliveryWork,
        attempt: &Attempt,
        outcome: &Settle,
    ) -> Result<()>;
    /// A subscription's deliveries, newest first.
    async fn list_deliveries(
        &self,
        webhook_id: &WebhookId,
        page: &PageRequest,
    ) -> Result<Page<Delivery>>;
    /// Makes a delivery due now with a fresh retry schedule, with `event` (audit), unless a
    /// sender holds it right now.
    async fn redeliver(
        &self,
        webhook_id: &WebhookId,
        event_id: &str,
        now: Timestamp,
        event: &ChangeEvent,
    ) -> Result<Redelivery>;
    /// Deletes settled deliveries (and their attempts) last changed before `before`; returns
    /// how many.
    async fn prune_deliveries(&self, before: Timestamp) -> Result<u64>;
    /// Pending deliveries of enabled subscriptions, and when the oldest of them was created.
    async fn delivery_backlog(&self) -> Result<(i64, Option<Timestamp>)>;
    /// Outbox rows visible to `scope` after `after`, in stream order, up to the frontier of
    /// what is safe to read now; the frontier comes back too, so that a stream that found
    /// fewer than `limit` rows can move its position there and not scan the same rows again.
    async fn stream_after(
        &self,
        scope: &StreamScope,
        after: StreamPos,
        limit: u32,
    ) -> Result<StreamBatch>;
    /// Where the stream stands after the outbox row `id`; `None` if there is no such row or
    /// `scope` does not see it (the two are not told apart).
    async fn stream_pos_of(&self, scope: &StreamScope, id: i64) -> Result<Option<StreamPos>>;
    /// Where a stream of events "from now on" starts (see [`StreamHead`]).
    async fn stream_head(&self, scope: &StreamScope) -> Result<StreamHead>;
}

/// What one read of the stream found.
#[derive(Clone, Debug)]
pub struct StreamBatch {
    pub rows: Vec<StreamRow>,
    /// Every row up to here was read (when `rows` is shorter than the limit).
    pub frontier: StreamPos,
}

/// The start of a stream of events "from now on".
#[derive(Clone, Debug)]
pub struct StreamHead {
    pub pos: StreamPos,
    /// Ids of rows after `pos` that had already committed (to skip). (On Postgres a
    /// transaction still running may take an earlier place than one already committed; it
    /// must not be stepped over.)
    pub seen: std::collections::HashSet<i64>,
    /// The newest row at or before `pos` that `scope` sees (0: none): a client that resumes
    /// after it misses nothing that came after the start.
    pub resume_id: i64,
}

/// Wake-ups after commits, for the background workers and live streams of this process
/// (other replicas' commits are found by polling).
pub struct Signals {
    /// A commit may have left work for the KV publisher.
    pub kv: tokio::sync::Notify,
    /// A commit may have left work for the journal publisher.
    pub journal: tokio::sync::Notify,
    /// The journal publisher stored something (`?wait=propagated` listens).
    pub journal_stored: tokio::sync::Notify,
    pub webhooks: tokio::sync::Notify,
    /// A commit recorded audit events for the sealer.
    pub audit: tokio::sync::Notify,
    /// A commit may have changed a status list's places.
    pub status_lists: tokio::sync::Notify,
    events: tokio::sync::watch::Sender<u64>,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            kv: tokio::sync::Notify::new(),
            journal: tokio::sync::Notify::new(),
            journal_stored: tokio::sync::Notify::new(),
            webhooks: tokio::sync::Notify::new(),
            audit: tokio::sync::Notify::new(),
            status_lists: tokio::sync::Notify::new(),
            events: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Signals {
    /// Called after every commit that recorded events.
    pub fn committed(&self) {
        self.kv.notify_one();
        self.journal.notify_one();
        self.webhooks.notify_one();
        self.audit.notify_one();
        self.status_lists.notify_one();
        self.events.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes whenever a commit recorded events.
    pub fn events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }
}

/// Everything the HTTP layer needs from storage.
#[async_trait]
pub trait Store:
    OrgStore
    + TokenStore
    + AgentStore
    + AuditStore
    + OutboxStore
    + KvOutboxStore
    + JournalOutboxStore
    + KeyStore
    + DelegationStore
    + WebhookStore
    + SessionStore
    + ConsoleStore
    + ReceiptStore
    + PartnerStore
    + StatusListStore
    + Send
    + Sync
{
    async fn ping(&self) -> Result<()>;
    fn backend(&self) -> &'static str;
    /// Wake-ups for the publishers, the webhook sender, live streams and `?wait=propagated`.
    fn signals(&self) -> &Signals;
}

/// Opens the database `url` names (`sqlite://…` or `postgres://…`) and runs its migrations.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(PgStore::connect(url).await?))
    } else {
        Err(Error::internal(anyhow::anyhow!(
            "DATABASE_URL must start with sqlite: or postgres://"
        )))
    }
}
