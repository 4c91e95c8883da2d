//! Reading an OAP verify request (SPEC §13): `{ "context": { "agent_id", "policy_id"?, …action
//! fields } }`, or the older nested `{ "context": { "agent_id", "policy_id", "context": {…} } }`.

use serde_json::{Map, Value};

use crate::caps::IdempotencyKey;
use crate::error::CoreError;
use crate::ids::AgentId;

/// Who the request is about: the registry's own id, or an OAP `passport_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentRef {
    Agent(AgentId),
    /// A UUID in its lower-case hyphenated form.
    Passport(String),
}

impl AgentRef {
    /// Reads `ap_…` or a UUID (any case, hyphenated).
    pub fn parse(raw: &str) -> Option<AgentRef> {
        if raw.starts_with(AgentId::PREFIX) {
            return AgentId::parse(raw).ok().map(AgentRef::Agent);
        }
        canonical_uuid(raw).map(AgentRef::Passport)
    }

    /// The agent id a passport id stands for when the registry minted it: an exported
    /// passport's `passport_id` is its agent id's UUID ([`passport_id_of`]).
    pub fn derived_agent(&self) -> Option<AgentId> {
        match self {
            AgentRef::Agent(id) => Some(id.clone()),
            AgentRef::Passport(uuid) => {
                AgentId::parse(&format!("{}{}", AgentId::PREFIX, uuid.replace('-', ""))).ok()
            }
        }
    }
}

/// The OAP `passport_id` of an agent the registry minted: its id's UUID, hyphenated.
pub fn passport_id_of(agent: &AgentId) -> String {
    let hex = agent
        .as_str()
        .strip_prefix(AgentId::PREFIX)
        .unwrap_or_default();
    let part = |from: usize, to: usize| hex.get(from..to).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// `raw` as a lower-case hyphenated UUID (8-4-4-4-12 hex digits), if it is one.
pub fn canonical_uuid(raw: &str) -> Option<String> {
    let groups: Vec<&str> = raw.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let hex = groups
        .iter()
        .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    (lengths == [8, 4, 4, 4, 12] && hex).then(|| raw.to_ascii_lowercase())
}

/// One OAP verify request.
#[derive(Clone, Debug, PartialEq)]
pub struct OapRequest {
    pub agent: AgentRef,
    /// The action fields, without `agent_id` and `policy_id`.
    pub context: Map<String, Value>,
    /// The `Idempotency-Key` header: commit the decision against the agent's daily caps, once
    /// per key.
    pub commit: Option<IdempotencyKey>,
    /// An idempotency key the context carries (`idempotency_key`), or the header's.
    pub idempotency_key: Option<String>,
}

impl OapRequest {
    /// Reads the body of `POST /api/verify/policy/{pack_id}` and its `Idempotency-Key` header.
    /// Anything malformed is a `400 invalid_request` naming the field.
    pub fn from_json(
        body: Value,
        pack_id: &str,
        header_key: Option<&str>,
    ) -> Result<OapRequest, CoreError> {
        let Value::Object(mut body) = body else {
            return Err(CoreError::invalid(
                "the body must be a JSON object with `context`",
            ));
        };
        if let Some(unknown) = body.keys().find(|k| k.as_str() != "context") {
            return Err(CoreError::field(
                unknown.clone(),
                format!("unknown field `{unknown}`; the body is `{{ \"context\": {{ … }} }}`"),
            ));
        }
        let Some(Value::Object(mut outer)) = body.remove("context") else {
            return Err(CoreError::field(
                "context",
                "`context` is required and must be a JSON object",
            ));
        };
        // The older shape nests the action fields one level down.
        let (mut context, at) = match outer.remove("context") {
            Some(Value::Object(inner)) => (inner, "context.context."),
            Some(_) => {
                return Err(CoreError::field(
                    "context.context",
                    "the nested `context` must be a JSON object",
                ))
            }
            None => (Map::new(), "context."),
        };
        let agent_id = outer.remove("agent_id");
        let policy_id = outer.remove("policy_id");
        if at == "context." {
            context = outer;
        } else if let Some(unknown) = outer.keys().next() {
            return Err(CoreError::field(
                format!("context.{unknown}"),
                format!("unknown field `{unknown}` beside the nested `context`"),
            ));
        }
        let agent = match agent_id {
            Some(Value::String(raw)) => AgentRef::parse(&raw).ok_or_else(|| {
                CoreError::field(
                    "context.agent_id",
                    "`agent_id` must be an `ap_…` id or an OAP passport_id (a UUID)",
                )
            })?,
            Some(_) => {
                return Err(CoreError::field(
                    "context.agent_id",
                    "`agent_id` must be a string",
                ))
            }
            None => {
                return Err(CoreError::field(
                    "context.agent_id",
                    "`agent_id` is required",
                ))
            }
        };
        match policy_id {
            None | Some(Value::Null) => {}
            Some(Value::String(id)) if id == pack_id => {}
            Some(other) => {
                return Err(CoreError::field(
                    "context.policy_id",
                    format!("`policy_id` {other} does not match the pack in the path ({pack_id})"),
                ))
            }
        }
        let commit = header_key
            .map(IdempotencyKey::parse)
            .transpose()
            .map_err(|message| CoreError::field("Idempotency-Key", message))?;
        let in_context = match context.get("idempotency_key") {
            None => None,
            Some(Value::String(key)) => Some(key.clone()),
            // A key of the wrong type is the pack's `oap.invalid_context` to report.
            Some(_) => None,
        };
        if let (Some(header), Some(body)) = (&commit, &in_context) {
            if header.as_str() != body {
                return Err(CoreError::field(
                    format!("{at}idempotency_key"),
                    "the `Idempotency-Key` header and `idempotency_key` differ; send one key",
                ));
            }
        }
        // The header stands for the context's `idempotency_key` (packs may require one).
        if let (Some(header), None) = (&commit, &in_context) {
            context.insert(
                "idempotency_key".to_owned(),
                Value::String(header.to_string()),
            );
        }
        let idempotency_key = in_context.or_else(|| commit.as_ref().map(|k| k.to_string()));
        Ok(OapRequest {
            agent,
            context,
            commit,
            idempotency_key,
        })
    }

    /// What identifies a commit for its idempotency key (SHA-256, hex): the pack, the agent it
    /// was decided for and the context (keys sorted, so their order never matters).
    pub fn fingerprint(&self, pack_id: &str, agent: &AgentId) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::json!({
            "pack": pack_id,
            "agent": agent,
            "context": self.context,
        });
        hex::encode(Sha256::digest(canonical.to_string()))
    }
}
