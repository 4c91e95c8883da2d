//! Checking signed decisions and receipts offline (SPEC §12): the edge's public decision keys,
//! from its `/.well-known/oap/jwks.json` or a saved copy, and each decision's signature checked
//! by the core ([`vouch_core::signing::PublicKeys::verify`]).

use serde_json::Value;
use vouch_core::signing::{PublicKeys, SignatureError};

use crate::{Client, Error, Result};

/// Where the decision keys come from: a JWK Set file or URL, else the edge's published set.
#[derive(Clone, Copy, Debug)]
pub struct KeySource<'a> {
    /// A file or an http(s) URL of a JWK Set.
    pub jwks: Option<&'a str>,
    /// The edge whose `/.well-known/oap/jwks.json` to read.
    pub edge: Option<&'a str>,
}

/// The public decision keys `from` names, and where they came from.
pub async fn decision_keys(client: &Client, from: KeySource<'_>) -> Result<(PublicKeys, String)> {
    let source = match (from.jwks, from.edge) {
        (Some(source), _) => source.to_owned(),
        (None, Some(edge)) => format!(
            "{}{}",
            edge.trim_end_matches('/'),
            vouch_core::packs::JWKS_PATH
        ),
        (None, None) => return Err(Error::Config(
            "say where the decision keys are: --jwks FILE_OR_URL or --edge URL (VOUCH_EDGE_URL)"
                .into(),
        )),
    };
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        client
            .fetch_public(&source)
            .await?
            .ok_or_else(|| Error::Config(format!("{source} has no JWK Set (404)")))?
    } else {
        std::fs::read_to_string(&source)
            .map_err(|e| Error::Config(format!("cannot read the JWK Set file {source}: {e}")))?
    };
    let set: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("{source} is not JSON: {e}")))?;
    let keys = PublicKeys::from_jwks(&set)
        .map_err(|e| Error::Config(format!("{source} is not a JWK Set of decision keys: {e}")))?;
    if keys.is_empty() {
        return Err(Error::Config(format!(
            "{source} holds no Ed25519 decision key"
        )));
    }
    Ok((keys, source))
}

/// One decision's check: its id (if it has one) and the outcome.
#[derive(Debug)]
pub struct ReceiptCheck {
    pub decision_id: Option<String>,
    pub kid: Option<String>,
    pub outcome: std::result::Result<(), SignatureError>,
}

/// Checks every decision in `document`: one signed decision, an array of them, a receipts page
/// (`{"data": [...]}`) or a batch answer (`{"decisions": [...]}`).
pub fn check_receipts(keys: &PublicKeys, document: &Value) -> Vec<ReceiptCheck> {
    let decisions: Vec<&Value> = match document {
        Value::Array(items) => items.iter().collect(),
        Value::Object(members) => match members.get("data").or_else(|| members.get("decisions")) {
            Some(Value::Array(items)) => items.iter().collect(),
            _ => vec![document],
        },
        other => vec![other],
    };
    decisions
        .into_iter()
        .map(|decision| ReceiptCheck {
            decision_id: text(decision, "decision_id"),
            kid: text(decision, "kid"),
            outcome: keys.verify(decision),
        })
        .collect()
}

fn text(value: &Value, member: &str) -> Option<String> {
    value.get(member).and_then(Value::as_str).map(str::to_owned)
}
