//! `vouch receipts list|verify` and `vouch decision-key` (SPEC §12).

use std::io::Read as _;

use serde_json::{json, Value};
use vouch_client::{check_receipts, decision_keys, KeySource};
use vouch_core::signing::DecisionKey;

use crate::args::{PageArgs, ReceiptsCommand};
use crate::client::{Call, Client};
use crate::commands::{list_text, paged, shell_word, Output};
use crate::error::{CliError, Result};
use crate::render;

pub fn run(client: &Client, out: &Output, cmd: &ReceiptsCommand) -> Result<()> {
    match cmd {
        ReceiptsCommand::List { agent_id, page } => list(client, out, agent_id, page),
        ReceiptsCommand::Verify { file, jwks, edge } => verify(
            client,
            out,
            file,
            KeySource {
                jwks: jwks.as_deref(),
                edge: edge.as_deref(),
            },
        ),
    }
}

fn list(client: &Client, out: &Output, agent_id: &str, page: &PageArgs) -> Result<()> {
    let list = client.send(paged(
        Call::get(&["v1", "agents", agent_id, "receipts"]),
        page,
    ))?;
    out.show(&list, |list| {
        let base = format!("vouch receipts list {}", shell_word(agent_id));
        list_text(list, "No receipts.", render::receipts, &base, page)
    });
    Ok(())
}

fn read_document(file: &str) -> Result<Value> {
    let text = if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?;
        text
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| CliError::Usage(format!("cannot read {file}: {e}")))?
    };
    serde_json::from_str(&text).map_err(|e| CliError::Usage(format!("{file} is not JSON: {e}")))
}

fn verify(client: &Client, out: &Output, file: &str, from: KeySource<'_>) -> Result<()> {
    let document = read_document(file)?;
    let (keys, source) = client.block_on(decision_keys(client.inner(), from))?;
    let checks = check_receipts(&keys, &document);
    let failed = checks.iter().filter(|c| c.outcome.is_err()).count();
    let body = json!({
        "ok": failed == 0,
        "keys": source,
        "checked": checks.len(),
        "results": checks.iter().map(|c| json!({
            "decision_id": c.decision_id,
            "kid": c.kid,
            "ok": c.outcome.is_ok(),
            "error": c.outcome.as_ref().err().map(ToString::to_string),
        })).collect::<Vec<_>>(),
    });
    out.show(&body, |_| {
        let mut lines = Vec::new();
        for check in &checks {
            let id = check.decision_id.as_deref().unwrap_or("(no decision_id)");
            lines.push(match &check.outcome {
                Ok(()) => format!(
                    "✓ {id}: authentic, signed by {}",
                    check.kid.as_deref().unwrap_or("-")
                ),
                Err(e) => format!("✗ {id}: NOT AUTHENTIC: {e}"),
            });
        }
        lines.push(format!("Checked against the decision keys at {source}."));
        lines.join("\n")
    });
    if failed > 0 {
        return Err(CliError::NotAuthentic(format!(
            "{failed} of {} decisions did not verify",
            checks.len()
        )));
    }
    Ok(())
}

/// `vouch decision-key`: a new private JWK from the operating system's randomness.
pub fn new_key(out: &Output) -> Result<()> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| CliError::Usage(format!("no randomness from the operating system: {e}")))?;
    let key = DecisionKey::from_seed(&seed);
    let jwk = key.private_jwk();
    // The JWK itself on standard output (for `wrangler secret put`), even without --json.
    out.text(&jwk.to_string());
    eprintln!(
        "A new decision key, kid {}. It is a secret: store it as the edge's VOUCH_DECISION_KEY, nowhere else.",
        key.kid()
    );
    Ok(())
}
