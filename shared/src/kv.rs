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

/// The KV value of a document the edge serves as-is (`jwks`, `discovery`), with the version
/// that orders its writes and names its ETag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionedDocument {
    pub version: i64,
    pub document: Value,
}

/// The largest number of pairs one bulk write to the Cloudflare KV REST API may carry.
pub const BULK_WRITE_MAX: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passport_keys() {
        let id = AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70").unwrap();
        assert_eq!(
            passport_key(&id),
            "passport:ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"
        );
    }
}
