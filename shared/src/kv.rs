//! Workers KV key names (SPEC §9). The origin writes these keys; the edge reads them.

use crate::ids::AgentId;

/// The signing keys as a JWK Set.
pub const JWKS_KEY: &str = "jwks";
/// The OpenID discovery document.
pub const DISCOVERY_KEY: &str = "discovery";

/// `passport:{agent_id}` holds an [`crate::edge_view::EdgePassport`].
pub fn passport_key(agent_id: &AgentId) -> String {
    format!("passport:{agent_id}")
}

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
