//! A2A agent cards (SPEC §15): the registry's signed statement, in the Agent2Agent protocol's
//! own shape (A2A 1.0 `AgentCard`), of who an active agent is, who answers for it, what it may
//! do and within which limits, and where to verify one use of it.
//!
//! - [`unsigned_card`] builds the card from the edge's view of a passport ([`card`]);
//! - [`CardToSign`] signs it as A2A §8.4 says: a JWS over the RFC 8785 form of the card without
//!   `signatures`, with the edge's decision key (the key that signs decisions, SPEC §12), its
//!   `kid` and the JWK Set's URL (`jku`) in the protected header ([`signature`]);
//! - [`verify_card`] is the other side, against the published decision keys.
//!
//! The edge serves a card only for an active agent; every other status answers as `/verify`
//! does, so a card in hand was true when it was served (and is cacheable for at most the
//! propagation bound).

mod card;
mod signature;
#[cfg(test)]
mod tests;

pub use card::{
    binding_uri, extension_uri, jwks_url, record_url, unsigned_card, BINDING_PATH, DEFAULT_MODES,
    EXTENSION_PATH, JWKS_PATH, PROTOCOL_VERSION,
};
pub use signature::{verify_card, CardSignatureError, CardToSign, ALG, SIGNATURES_MEMBER, TYP};

use crate::edge_view::EdgePassport;
use crate::signing::{DecisionKey, SignatureError};

/// The card of `view` served by the edge at `edge` (its origin, no trailing `/`), ready to be
/// signed by `key`: its ETag is known before the signature is computed.
pub fn card_to_sign<'k>(
    view: &EdgePassport,
    edge: &str,
    key: &'k DecisionKey,
) -> Result<CardToSign<'k>, SignatureError> {
    CardToSign::new(unsigned_card(view, edge), key, &jwks_url(edge))
}
