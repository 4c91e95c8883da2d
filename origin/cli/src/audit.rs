//! `vouch audit verify`: the audit log checked against its last *published* checkpoint.
//!
//! The events come from the origin's API, the checkpoint from outside its database (the edge,
//! a URL or a file). Every event's leaf is recomputed here and the tree rebuilt; its root must
//! be the one the published checkpoint and the origin's newest checkpoint sign, the chain must
//! start with its creation, and the origin's consistency proof between the two checkpoints must
//! hold (`vouch_core::audit` does the checking).

use serde_json::{json, Value};
use vouch_core::audit::checkpoint::{self, TreeHead};
use vouch_core::audit::{tree, verify_log, AuditEvent, BreakKind, ChainReport};

use crate::client::{Call, Client};
use crate::commands::Output;
use crate::error::{CliError, Result};
use crate::render;

/// Where the published checkpoint comes from.
pub struct Published<'a> {
    /// `--checkpoint`: a file or an http(s) URL.
    pub checkpoint: Option<&'a str>,
    /// `--edge`: its `/audit/{chain_id}/checkpoint`.
    pub edge: Option<&'a str>,
    /// `--key`: the pinned verifier key.
    pub key: Option<&'a str>,
}

fn protocol(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Protocol(format!(
        "the origin's {what} is not what this CLI understands ({e})"
    ))
}

fn string_at(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Every sealed event of the chain, oldest first.
fn all_events(client: &Client, org: Option<&String>) -> Result<Vec<AuditEvent>> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client.send(
            Call::get(&["v1", "audit"])
                .query("org_id", org)
                .query("limit", Some(500))
                .query("cursor", cursor.as_ref()),
        )?;
        let data = page.get("data").cloned().unwrap_or(Value::Null);
        let batch: Vec<AuditEvent> =
            serde_json::from_value(data).map_err(|e| protocol("audit log", e))?;
        events.extend(batch);
        cursor = string_at(&page, "next_cursor");
        if cursor.is_none() {
            break;
        }
    }
    events.reverse();
    Ok(events)
}

/// The published checkpoint's text and where it came from; `None` when none was asked for.
fn published_note(
    client: &Client,
    chain: &str,
    from: &Published<'_>,
) -> Result<Option<(Option<String>, String)>> {
    let source = match (from.checkpoint, from.edge) {
        (Some(source), _) => source.to_owned(),
        (None, Some(edge)) => format!("{}/audit/{chain}/checkpoint", edge.trim_end_matches('/')),
        (None, None) => return Ok(None),
    };
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        client.fetch_public(&source)?
    } else {
        Some(std::fs::read_to_string(&source).map_err(|e| {
            CliError::Usage(format!("cannot read the checkpoint file {source}: {e}"))
        })?)
    };
    Ok(Some((text, source)))
}

pub fn verify(
    client: &Client,
    out: &Output,
    org: Option<&String>,
    from: &Published<'_>,
) -> Result<()> {
    // The origin's own check first: it seals what is pending and names the chain and the key.
    let own = client.send(Call::get(&["v1", "audit", "verify"]).query("org_id", org))?;
    let chain =
        string_at(&own, "chain_id").ok_or_else(|| protocol("audit report", "no chain_id"))?;
    let (key, key_source) = match from.key {
        Some(key) => (key.to_owned(), "pinned"),
        None => (
            string_at(&own, "verifier_key")
                .ok_or_else(|| protocol("audit report", "no verifier_key"))?,
            "named by the origin",
        ),
    };
    let mut report = ChainReport {
        ok: true,
        events_checked: 0,
        tree_size: 0,
        root_hash: String::new(),
        first_break: None,
    };
    let mut heads: Vec<TreeHead> = Vec::new();
    let open = |note: &str, report: &mut ChainReport| match checkpoint::open(note, &key, &chain) {
        Ok(head) => Some(head),
        Err(_) => {
            report.broken(0, None, BreakKind::BadCheckpoint);
            None
        }
    };
    // The published checkpoint: outside the origin's database.
    let published = match published_note(client, &chain, from)? {
        Some((Some(note), source)) => open(&note, &mut report).map(|head| (head, source)),
        Some((None, source)) => {
            return Err(CliError::Usage(format!(
                "no checkpoint has been published at {source} (yet)"
            )))
        }
        None => None,
    };
    // The origin's newest checkpoint (a wiped chain has none).
    let newest = match client.send(Call::get(&["v1", "audit", "checkpoint"]).query("org_id", org)) {
        Ok(view) => string_at(&view, "checkpoint").and_then(|note| open(&note, &mut report)),
        Err(CliError::Api { code, .. }) if code == "checkpoint_not_found" => None,
        Err(e) => return Err(e),
    };
    heads.extend(published.as_ref().map(|(head, _)| *head));
    heads.extend(newest);
    let events = all_events(client, org)?;
    let found = verify_log(&chain, &events, &heads);
    let early = report.first_break.take();
    report = found;
    if let Some(b) = early {
        report.broken(b.seq, b.event_id, b.kind);
    }
    // The origin's proof that its newest tree extends the published one.
    let mut consistency = "not checked (no published checkpoint)";
    if let (Some((old, _)), Some(new)) = (&published, &newest) {
        consistency = if old.size > new.size {
            "refuted: the origin's newest checkpoint is smaller than the published one"
        } else {
            let answer = client.send(
                Call::get(&["v1", "audit", "consistency"])
                    .query("org_id", org)
                    .query("from", Some(old.size))
                    .query("to", Some(new.size)),
            )?;
            let proof: Vec<tree::Hash> = answer
                .get("proof")
                .and_then(Value::as_array)
                .map(|hashes| {
                    hashes
                        .iter()
                        .filter_map(|h| h.as_str().and_then(tree::parse_hash))
                        .collect()
                })
                .unwrap_or_default();
            if tree::verify_consistency(&proof, new.size, new.root, old.size, old.root) {
                "verified"
            } else {
                "refuted: the consistency proof does not hold"
            }
        };
        if consistency != "verified" {
            report.broken(
                i64::try_from(old.size).unwrap_or(i64::MAX),
                None,
                BreakKind::Inconsistent,
            );
        }
    } else if published.is_some() && newest.is_none() {
        consistency = "refuted: the origin has no checkpoint for a chain that was published";
        report.broken(1, None, BreakKind::Truncated);
    }
    let body = json!({
        "chain_id": chain,
        "ok": report.ok,
        "events_checked": report.events_checked,
        "tree_size": report.tree_size,
        "root_hash": report.root_hash,
        "first_break": report.first_break,
        "published": published.as_ref().map(|(head, source)| json!({
            "tree_size": head.size, "root_hash": head.root.to_string(), "source": source,
        })),
        "checkpoint": newest.map(|head| json!({ "tree_size": head.size, "root_hash": head.root.to_string() })),
        "consistency": consistency,
        "verifier_key": key,
        "verifier_key_source": key_source,
    });
    out.show(&body, |body| {
        let mut summary = if report.ok {
            format!(
                "The audit log {chain} is intact: {} events verified.",
                report.events_checked
            )
        } else {
            format!("The audit log {chain} is BROKEN.")
        };
        match &published {
            Some((head, source)) => summary.push_str(&format!(
                "\nChecked against the checkpoint published at {source} ({} events).",
                head.size
            )),
            None => summary.push_str(
                "\nNo published checkpoint was given (--edge or --checkpoint): checked against the origin's own checkpoints only.",
            ),
        }
        if key_source != "pinned" {
            summary.push_str("\nThe verifier key was named by the origin; pin it with --key.");
        }
        let mut rows = body.clone();
        if let (Some(map), Some(brk)) = (rows.as_object_mut(), &report.first_break) {
            map.insert("break_seq".into(), json!(brk.seq));
            map.insert("break_event_id".into(), json!(brk.event_id));
            map.insert("break_kind".into(), json!(brk.kind));
        }
        format!(
            "{summary}\n{}",
            render::object(
                &rows,
                &[
                    "chain_id",
                    "ok",
                    "events_checked",
                    "tree_size",
                    "root_hash",
                    "consistency",
                    "verifier_key",
                    "break_seq",
                    "break_event_id",
                    "break_kind"
                ]
            )
        )
    });
    if report.ok {
        Ok(())
    } else {
        Err(CliError::ChainBroken(broken_message(&chain, &report)))
    }
}

/// Where and how the log breaks, as one sentence.
fn broken_message(chain: &str, report: &ChainReport) -> String {
    let Some(brk) = &report.first_break else {
        return format!(
            "the audit log {chain} does not verify ({} events checked)",
            report.events_checked
        );
    };
    let how = match brk.kind {
        BreakKind::HashMismatch => "the event's contents do not match its hash (it was edited)",
        BreakKind::MissingEvent => {
            "a sequence number is missing (an event was deleted or inserted out of order)"
        }
        BreakKind::MissingGenesis => {
            "the chain does not start with its creation event (it was wiped or its first events deleted)"
        }
        BreakKind::Truncated => {
            "a signed checkpoint commits to more events than the log holds (the newest were deleted)"
        }
        BreakKind::RootMismatch => {
            "the events do not hash to the root a signed checkpoint commits to (history was rewritten: a fork)"
        }
        BreakKind::Inconsistent => {
            "the origin's newest checkpoint does not extend the published one"
        }
        BreakKind::BadCheckpoint => "a checkpoint is not validly signed by the log key",
        BreakKind::TreeMismatch => "the origin's stored tree does not match its events",
    };
    let event = brk
        .event_id
        .as_ref()
        .map(|id| format!(" (event {id})"))
        .unwrap_or_default();
    format!(
        "the audit log {chain} is broken at seq {}{event}: {how}; {} events verified before it",
        brk.seq, report.events_checked
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_are_explained() {
        let report: ChainReport = serde_json::from_value(json!({
            "ok": false, "events_checked": 3, "tree_size": 3, "root_hash": "",
            "first_break": { "seq": 4, "event_id": null, "kind": "missing_event" }
        }))
        .unwrap();
        let message = broken_message("org_1", &report);
        assert!(message.contains("seq 4"), "{message}");
        assert!(message.contains("missing"), "{message}");
        assert!(message.contains("3 events verified"), "{message}");
    }
}
