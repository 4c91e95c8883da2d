//! Workers KV key names (SPEC §9). The origin writes these keys; the edge reads them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::AgentId;

/// The signing keys as a JWK Set.
pub const JWKS_KEY: &str = "jwks";
/// The OpenID discovery document.
pub const DISCOVERY_KEY: &str = "discovery";

/// `passport:{agent_id}` holds an [`crate::edge_view::EdgePassport`].
pub fn passport_key(agent_id: &AgentId) -> String {
    format!("passport:{agent_id}")
}

/// `oap:{passport_id}` holds an [`OapAlias`]: which agent an imported Open Agent Passport's
/// `passport_id` (a lower-case UUID) names, so the OAP verify route finds it (SPEC §13).
pub fn oap_passport_key(passport_id: &str) -> String {
    format!("oap:{passport_id}")
}

/// The KV value of `oap:{passport_id}`. The `passport_id` is fixed at import, so the value
/// never changes; `version` is the passport's, for the publisher's ordering.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OapAlias {
    pub agent_id: AgentId,
    pub version: i64,
}

/// The KV value of a document the edge serves as-is (`jwks`, `discovery`), with the version
/// that orders its writes and names its ETag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionedDocument {
    pub version: i64,
    pub document: Value,
}

/// `checkpoint:{chain_id}` holds an [`AuditCheckpoint`]: the newest published signed tree head
/// of an audit chain (an org id, or `platform`).
pub fn checkpoint_key(chain_id: &str) -> String {
    format!("checkpoint:{chain_id}")
}

/// The KV value of an audit checkpoint: its tree size (which orders the writes) and the signed
/// note, served as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheckpoint {
    pub tree_size: u64,
    pub checkpoint: String,
}

impl AuditCheckpoint {
    /// A strong ETag that changes whenever the note does.
    pub fn etag(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.checkpoint.as_bytes());
        format!(
            "\"checkpoint-{}-{}\"",
            self.tree_size,
            hex::encode(&digest[..8])
        )
    }
}

/// The largest number of pairs one bulk write to the Cloudflare KV REST API may carry.
pub const BULK_WRITE_MAX: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_keys_and_etags() {
        assert_eq!(checkpoint_key("platform"), "checkpoint:platform");
        let a = AuditCheckpoint {
            tree_size: 2,
            checkpoint: "log\n2\nroot\n\n— sig\n".into(),
        };
        let b = AuditCheckpoint {
            checkpoint: "log\n2\nother\n\n— sig\n".into(),
            ..a.clone()
        };
        assert_eq!(a.etag(), "\"checkpoint-2-ef3915bdfcbb1efb\"");
        assert_ne!(a.etag(), b.etag(), "another note, another tag");
    }

    #[test]
    fn passport_keys() {
        let id = AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70").unwrap();
        assert_eq!(
            passport_key(&id),
            "passport:ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"
        );
    }
}
