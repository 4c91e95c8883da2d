//! Policy packs (SPEC §13): what an OAP verifier asks at `POST /api/verify/policy/{pack_id}`.
//!
//! A pack is data, not code: a JSON document of our own format (see `docs/policy.md`, "Policy
//! packs") that names
//!
//! * the **capability** it decides (`one_of` a list of ids, the first one the passport holds,
//!   or `by_field`: picked by a context value, e.g. `action: "pr.merge"` → `repo.merge`);
//! * the **minimum assurance**, possibly stepped by the amount (`up_to_minor`);
//! * the **context fields** a request carries, with their types, which are required, and which
//!   of them are the native decision's `amount`, `currency`, `region`, `rows`, `pii`,
//!   `collection` and `reason_code` (`as`);
//! * an ordered list of **checks** drawn from the decision vocabulary of SPEC §11
//!   ([`crate::policy::Check`]) and a few generic ones over the context and the passport's
//!   limits for the capability (`in_list`, `none_in_list`, `all_in_list`, `at_most`,
//!   `same_value`, `one_of`, `idempotency`). Each may name the OAP code it denies with.
//!
//! [`evaluate`] runs every check and lists every failure, in the pack's order: the first reason
//! is the first failing check's, with the pack's deny code. Nothing is evaluated as an
//! expression. The built-in packs are compiled in ([`builtins`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::passport::AssuranceLevel;
use crate::policy::Check;

mod decision;
mod eval;
pub mod request;
#[cfg(test)]
mod tests;

pub use decision::OapDecision;
pub use eval::{evaluate, PackEvaluation};
pub use request::{AgentRef, OapRequest};

/// A policy pack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pack {
    /// `{domain}.{capability}.v{n}`, frozen once published (OAP).
    pub id: String,
    pub name: String,
    pub description: String,
    pub capability: CapabilityRule,
    /// Steps in order: the first whose `up_to_minor` is at least the request's amount (or
    /// has none) gives the minimum level. Empty: no minimum beyond the passport's own limits.
    #[serde(default)]
    pub assurance: Vec<AssuranceStep>,
    /// The context fields a request may carry. Fields the pack does not list are ignored:
    /// no check reads them.
    pub context: BTreeMap<String, FieldSpec>,
    /// In order; the first failing one gives the decision's first reason.
    pub checks: Vec<CheckSpec>,
}

/// How a pack picks the capability it decides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CapabilityRule {
    /// The first of these the passport holds (the first listed when it holds none).
    OneOf(Vec<String>),
    /// The capability named by a context field's value.
    ByField {
        field: String,
        map: BTreeMap<String, String>,
    },
}

/// One step of a pack's minimum assurance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssuranceStep {
    /// The largest amount (minor units of the request's currency) this step covers; `None`:
    /// every amount, and requests without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to_minor: Option<u64>,
    pub level: AssuranceLevel,
}

/// A context field: its type, whether it is required, and its bounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub required: bool,
    /// The smallest integer, the shortest string (characters), or the fewest items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    /// The largest integer, the longest string (characters), or the most items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// The only values a string may take (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub one_of: Vec<String>,
    /// The members of an `object`, or of each item of an `object_list`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldSpec>,
    /// The native decision's context field this one is (SPEC §11).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub native: Option<NativeField>,
}

/// The JSON types a context field may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    /// A non-negative integer.
    Integer,
    /// Money: a non-negative integer in minor units of the request's `currency` (OAP).
    MinorUnits,
    /// Any JSON number.
    Number,
    Boolean,
    /// ISO 4217, upper case.
    Currency,
    /// ISO 3166-1 alpha-2 or ISO 3166-2 (`US`, `US-CA`).
    Region,
    Object,
    StringList,
    ObjectList,
}

/// The native context field (SPEC §11) a pack's field is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NativeField {
    Amount,
    Currency,
    Region,
    Rows,
    Pii,
    Collection,
    ReasonCode,
}

/// One check of a pack. Which parameters it uses depends on `check`; see `docs/policy.md`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    pub check: CheckKind,
    /// The code a failure of this check denies with (its vocabulary default otherwise). A
    /// missing or malformed value stays `oap.invalid_context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_code: Option<String>,
    /// Run the check only when a context field has one of these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
    /// The context field checked (`items[].category` reads every item's `category`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `at_most`: context fields summed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// `same_value`: the other context field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
    /// The limit key under `limits["<capability>"]`; `{field}` is replaced by that context
    /// field's value (`permissions.{data_classification}.allowed_actions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// `at_most`: the limit is multiplied by this (`max_pr_size_kb` × 1000 lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u64>,
    /// `at_most`: the value must be strictly below the limit.
    #[serde(default)]
    pub strict: bool,
    /// `at_most`: compare the number of items of `field`, not its value.
    #[serde(default)]
    pub count: bool,
    /// `at_most`: an absent field passes (otherwise it is required when the limit is set).
    #[serde(default)]
    pub optional: bool,
    /// `one_of`: the values allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A condition on a context field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    pub field: String,
    #[serde(rename = "in")]
    pub one_of: Vec<String>,
}

/// The checks a pack may list: those of the decision vocabulary (`passport_active`, `region`,
/// `amount_per_tx`, … see [`Check`]), and the generic ones ([`Generic`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CheckKind {
    Vocabulary(Check),
    Generic(Generic),
}

/// The checks over the context and the capability's limits that only packs run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generic {
    /// `idempotency_required: true` needs an idempotency key (header or context).
    Idempotency,
    /// The field's value is in the limit's list (an absent or empty list restricts nothing).
    InList,
    /// No value of the field is in the limit's list.
    NoneInList,
    /// Every value of the field matches an entry of the limit's list (`src/*` matches by prefix).
    AllInList,
    /// The field (or the sum of `fields`, or the item count) is at most the limit × `scale`.
    AtMost,
    /// `field` and `other` are equal when both are present.
    SameValue,
    /// The field's value is one of `values`.
    OneOf,
}

impl CheckKind {
    /// The vocabulary check this is, if it is one.
    pub fn vocabulary(self) -> Option<Check> {
        match self {
            CheckKind::Vocabulary(check) => Some(check),
            CheckKind::Generic(_) => None,
        }
    }
}

impl Pack {
    /// Whether one of the pack's checks enforces the pack-only limit `key`
    /// ([`crate::policy::PACK_ONLY_KEYS`]).
    pub fn enforces(&self, key: &str) -> bool {
        self.checks.iter().any(|c| {
            c.limit
                .as_deref()
                .and_then(|l| l.split('.').next())
                .is_some_and(|root| root == key)
        })
    }

    /// The pack-only limit keys the pack enforces.
    pub fn enforced_keys(&self) -> Vec<&str> {
        crate::policy::PACK_ONLY_KEYS
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| self.enforces(k))
            .collect()
    }

    /// Every capability id the pack may decide.
    pub fn capabilities(&self) -> Vec<&str> {
        match &self.capability {
            CapabilityRule::OneOf(ids) => ids.iter().map(String::as_str).collect(),
            CapabilityRule::ByField { map, .. } => {
                let mut ids: Vec<&str> = map.values().map(String::as_str).collect();
                ids.sort_unstable();
                ids.dedup();
                ids
            }
        }
    }
}

/// A strong ETag for a pack's body: it changes only with the pack's text.
pub fn etag(pack: &Pack) -> String {
    let text = serde_json::to_string(pack).unwrap_or_default();
    discovery_etag(&text)
}

/// A strong ETag derived from a body's bytes.
pub fn discovery_etag(body: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "\"oap-{}\"",
        hex::encode(&Sha256::digest(body.as_bytes())[..8])
    )
}

/// The `/.well-known/oap/` discovery document (OAP's `well-known-schema.json`) of an edge at
/// `edge` (scheme and host) whose origin is at `origin` (the edge itself when unknown).
pub fn discovery(edge: &str, origin: Option<&str>) -> serde_json::Value {
    let edge = edge.trim_end_matches('/');
    let origin = origin.unwrap_or(edge).trim_end_matches('/');
    let mut capabilities: Vec<&str> = builtins()
        .iter()
        .flat_map(|p| p.capabilities())
        .filter(|id| {
            id.split('.').all(|s| {
                s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
        })
        .collect();
    capabilities.sort_unstable();
    capabilities.dedup();
    serde_json::json!({
        "oap_version": "1.0",
        "authorization_endpoint": format!("{edge}/verify?agent_id={{agent_id}}"),
        "passport_endpoint": format!("{origin}/v1/agents/{{agent_id}}/oap"),
        "policy_endpoint": format!("{edge}/api/policies/{{policy_name}}"),
        "jwks_uri": format!("{edge}{JWKS_PATH}"),
        "supported_capabilities": capabilities,
        "supported_assurance_levels": ["L0", "L1", "L2", "L3"],
        "spec_uri": "https://github.com/aporthq/aport-spec/blob/main/oap/oap-spec.md",
    })
}

/// Where the edge publishes the keys its OAP decisions are signed with (SPEC §12).
pub const JWKS_PATH: &str = "/.well-known/oap/jwks.json";

const SOURCES: [&str; 5] = [
    include_str!("builtin/finance.payment.refund.v1.json"),
    include_str!("builtin/finance.payment.charge.v1.json"),
    include_str!("builtin/data.export.create.v1.json"),
    include_str!("builtin/governance.data.access.v1.json"),
    include_str!("builtin/code.repository.merge.v1.json"),
];

/// The built-in packs, parsed once. A file that does not parse is left out (a unit test
/// proves every one parses, so none is in a build).
pub fn builtins() -> &'static [Pack] {
    static PACKS: OnceLock<Vec<Pack>> = OnceLock::new();
    PACKS.get_or_init(|| {
        SOURCES
            .iter()
            .filter_map(|s| serde_json::from_str(s).ok())
            .collect()
    })
}

/// The built-in pack with this id.
pub fn builtin(id: &str) -> Option<&'static Pack> {
    builtins().iter().find(|p| p.id == id)
}
