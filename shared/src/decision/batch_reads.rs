//! The bound on what one `POST /verify/batch` may make the edge read (SPEC §8): its requests
//! together may need at most [`BATCH_MAX_KV_READS`] distinct KV keys. Without it, one
//! unauthenticated call of 100 delegated tokens could fan out into ~1,100 KV reads. Keys are
//! counted whether or not an isolate has them cached, so the answer does not depend on which
//! isolate takes the request; the same key twice counts once.

use std::collections::BTreeSet;

use crate::error::CoreError;
use crate::ids::AgentId;
use crate::kv;
use crate::token::{self, Claims};

/// The most distinct KV keys one batch may need: a batch of 100 requests about 100 agents
/// (with the two signing documents a token needs) fits, with room for some delegations.
pub const BATCH_MAX_KV_READS: usize = 200;

/// The distinct KV keys a batch's decisions read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReads {
    keys: BTreeSet<String>,
}

impl BatchReads {
    /// A request naming an agent reads its passport.
    pub fn add_agent(&mut self, agent: &AgentId) {
        self.keys.insert(kv::passport_key(agent));
    }

    /// A request carrying a token reads the signing keys and the discovery document (for the
    /// issuer), whether or not the token turns out valid.
    pub fn add_token(&mut self) {
        self.keys.insert(kv::JWKS_KEY.to_owned());
        self.keys.insert(kv::DISCOVERY_KEY.to_owned());
    }

    /// A verified token also reads every grant its chain rests on and every passport of the
    /// chain. (A refused token reads nothing more.)
    pub fn add_verified(&mut self, claims: &Claims) {
        for id in &claims.dlg {
            self.keys.insert(crate::delegation::kv_key(id));
        }
        for agent in token::chain(claims) {
            self.add_agent(&agent);
        }
    }

    /// How many distinct keys so far.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `400 invalid_request` (field `requests`) past [`BATCH_MAX_KV_READS`].
    pub fn check(&self) -> Result<(), CoreError> {
        if self.len() > BATCH_MAX_KV_READS {
            return Err(CoreError::field(
                "requests",
                format!(
                    "this batch needs {} distinct passports, delegations and signing documents; \
                     a batch may need at most {BATCH_MAX_KV_READS}: split it",
                    self.len()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::tests::{agent, grant_id, own_token};
    use crate::token::Actor;

    fn agent_n(n: u32) -> AgentId {
        AgentId::parse(&format!("ap_0192f2a4c3b87d9e8f1a2b3c{n:08x}")).unwrap()
    }

    #[test]
    fn a_hundred_agents_fit_and_repeats_count_once() {
        let mut reads = BatchReads::default();
        for n in 0..100 {
            reads.add_agent(&agent_n(n));
            reads.add_agent(&agent_n(n));
            reads.add_token();
        }
        assert_eq!(reads.len(), 102);
        assert!(reads.check().is_ok());
    }

    #[test]
    fn a_delegated_chain_reads_its_grants_and_every_agent() {
        let mut claims = own_token(agent(1), "payments.refund");
        claims.act = Some(Actor::nest(agent(3), Some(Actor::nest(agent(2), None))));
        claims.dlg = vec![grant_id(1), grant_id(2)];
        let mut reads = BatchReads::default();
        reads.add_token();
        reads.add_verified(&claims);
        assert_eq!(reads.len(), 2 + 2 + 3);
        // The same token a hundred times is still seven reads.
        for _ in 0..100 {
            reads.add_token();
            reads.add_verified(&claims);
        }
        assert_eq!(reads.len(), 7);
    }

    #[test]
    fn past_the_bound_the_batch_is_refused_naming_requests() {
        let mut reads = BatchReads::default();
        for n in 0..BATCH_MAX_KV_READS as u32 {
            reads.add_agent(&agent_n(n));
        }
        assert!(reads.check().is_ok());
        reads.add_token();
        let err = reads.check().unwrap_err();
        assert_eq!(err.field_name(), Some("requests"));
        assert!(err.to_string().contains("202"), "{err}");
    }
}
