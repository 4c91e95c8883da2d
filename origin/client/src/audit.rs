//! An audit log checked against its last *published* checkpoint (docs/api.md, "Audit log").
//!
//! The events come from the origin's API, the checkpoint from outside its database (the edge, a
//! URL or a file). Every event's leaf is recomputed here and the tree rebuilt; its root must be
//! the one the published checkpoint and the origin's newest checkpoint sign, the chain must
//! start with its creation, and the origin's consistency proof between the two checkpoints must
//! hold (`vouch_core::audit` does the checking).

use serde_json::{json, Value};
use vouch_core::audit::checkpoint::{self, TreeHead};
use vouch_core::audit::{tree, verify_log, AuditEvent, BreakKind, ChainReport};

use crate::error::{Error, Result};
use crate::{Client, Request};

/// Where the published checkpoint comes from, and the key it must be signed by.
#[derive(Clone, Copy, Debug, Default)]
pub struct Published<'a> {
    /// A file or an http(s) URL.
    pub checkpoint: Option<&'a str>,
    /// An edge: its `/audit/{chain_id}/checkpoint`.
    pub edge: Option<&'a str>,
    /// The pinned verifier key; without it, the key the origin names.
    pub key: Option<&'a str>,
}

/// What [`verify_audit_log`] found.
#[derive(Clone, Debug)]
pub struct AuditVerification {
    pub chain_id: String,
    pub report: ChainReport,
    /// The published checkpoint and where it came from.
    pub published: Option<(TreeHead, String)>,
    /// The origin's newest checkpoint.
    pub newest: Option<TreeHead>,
    /// `verified`, or why the consistency proof was not checked or does not hold.
    pub consistency: &'static str,
    pub verifier_key: String,
    /// `pinned` or `named by the origin`.
    pub verifier_key_source: &'static str,
}

impl AuditVerification {
    /// The report as JSON (what `vouch audit verify --json` prints).
    pub fn to_json(&self) -> Value {
        json!({
            "chain_id": self.chain_id,
            "ok": self.report.ok,
            "events_checked": self.report.events_checked,
            "tree_size": self.report.tree_size,
            "root_hash": self.report.root_hash,
            "first_break": self.report.first_break,
            "published": self.published.as_ref().map(|(head, source)| json!({
                "tree_size": head.size, "root_hash": head.root.to_string(), "source": source,
            })),
            "checkpoint": self.newest.map(|head| json!({
                "tree_size": head.size, "root_hash": head.root.to_string(),
            })),
            "consistency": self.consistency,
            "verifier_key": self.verifier_key,
            "verifier_key_source": self.verifier_key_source,
        })
    }
}

fn protocol(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Protocol(format!(
        "the origin's {what} is not what this client understands ({e})"
    ))
}

fn string_at(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Every sealed event of the chain, oldest first.
async fn all_events(client: &Client, org: Option<&str>) -> Result<Vec<AuditEvent>> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client
            .json(
                &Request::get(&["v1", "audit"])
                    .query("org_id", org)
                    .query("limit", Some(500))
                    .query("cursor", cursor.as_ref()),
            )
            .await?;
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

/// The published checkpoint's text (`None`: not published there) and where it came from;
/// `None` when none was asked for.
async fn published_note(
    client: &Client,
    chain: &str,
    from: &Published<'_>,
) -> Result<Option<(Option<String>, String)>> {
    let source = match (from.checkpoint, from.edge) {
        (Some(source), _) => source.to_owned(),
        (None, Some(edge)) => format!("{}/audit/{chain}/checkpoint", edge.trim_end_matches('/')),
        (None, None) => return Ok(None),
    };
    let text =
        if source.starts_with("http://") || source.starts_with("https://") {
            client.fetch_public(&source).await?
        } else {
            Some(std::fs::read_to_string(&source).map_err(|e| {
                Error::Config(format!("cannot read the checkpoint file {source}: {e}"))
            })?)
        };
    Ok(Some((text, source)))
}

/// Checks the audit chain of `org` (the caller's own without it) against the checkpoint
/// `from` names. A broken chain is `Ok` with `report.ok == false`; a checkpoint asked for but
/// not published is [`Error::Config`].
pub async fn verify_audit_log(
    client: &Client,
    org: Option<&str>,
    from: &Published<'_>,
) -> Result<AuditVerification> {
    // The origin's own check first: it seals what is pending and names the chain and the key.
    let own = client
        .json(&Request::get(&["v1", "audit", "verify"]).query("org_id", org))
        .await?;
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
    let open = |note: &str, report: &mut ChainReport| match checkpoint::open(note, &key, &chain) {
        Ok(head) => Some(head),
        Err(_) => {
            report.broken(0, None, BreakKind::BadCheckpoint);
            None
        }
    };
    // The published checkpoint: outside the origin's database.
    let published = match published_note(client, &chain, from).await? {
        Some((Some(note), source)) => open(&note, &mut report).map(|head| (head, source)),
        Some((None, source)) => {
            return Err(Error::Config(format!(
                "no checkpoint has been published at {source} (yet)"
            )))
        }
        None => None,
    };
    // The origin's newest checkpoint (a wiped chain has none).
    let newest = match client
        .json(&Request::get(&["v1", "audit", "checkpoint"]).query("org_id", org))
        .await
    {
        Ok(view) => string_at(&view, "checkpoint").and_then(|note| open(&note, &mut report)),
        Err(Error::Api { code, .. }) if code == "checkpoint_not_found" => None,
        Err(e) => return Err(e),
    };
    let mut heads: Vec<TreeHead> = Vec::new();
    heads.extend(published.as_ref().map(|(head, _)| *head));
    heads.extend(newest);
    let events = all_events(client, org).await?;
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
            let answer = client
                .json(
                    &Request::get(&["v1", "audit", "consistency"])
                        .query("org_id", org)
                        .query("from", Some(old.size))
                        .query("to", Some(new.size)),
                )
                .await?;
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
    Ok(AuditVerification {
        chain_id: chain,
        report,
        published,
        newest,
        consistency,
        verifier_key: key,
        verifier_key_source: key_source,
    })
}
