//! `vouch audit verify`: the audit log checked against its last *published* checkpoint.
//!
//! The events come from the origin's API, the checkpoint from outside its database (the edge,
//! a URL or a file). Every event's leaf is recomputed here and the tree rebuilt; its root must
//! be the one the published checkpoint and the origin's newest checkpoint sign, the chain must
//! start with its creation, and the origin's consistency proof between the two checkpoints must
//! hold (`vouch_core::audit` does the checking).

use serde_json::json;
pub use vouch_client::Published;
use vouch_core::audit::{BreakKind, ChainReport};

use crate::client::Client;
use crate::commands::Output;
use crate::error::{CliError, Result};
use crate::render;

pub fn verify(
    client: &Client,
    out: &Output,
    org: Option<&String>,
    from: &Published<'_>,
) -> Result<()> {
    let found = client.block_on(vouch_client::verify_audit_log(
        client.inner(),
        org.map(String::as_str),
        from,
    ))?;
    let body = found.to_json();
    let (chain, report, published, key_source) = (
        &found.chain_id,
        &found.report,
        &found.published,
        found.verifier_key_source,
    );
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
        Err(CliError::ChainBroken(broken_message(chain, report)))
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
