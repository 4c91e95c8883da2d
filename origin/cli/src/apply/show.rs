//! A plan as text, one line per change (`+` create, `~` change, `-` revoke or delete) with
//! field-level `old → new` lines under updates, in the plan's order.

use serde_json::Value;

use super::plan::{Change, FieldDiff, Party, Plan, RevokeWhy, Unmanaged};

/// The whole plan: its changes, what is left as it is, and a count.
pub fn plan(plan: &Plan, source: &str) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str(&format!("No changes: the registry matches {source}.\n"));
    } else {
        for change in &plan.changes {
            out.push_str(&change_line(change));
            out.push('\n');
            for diff in diff_of(change) {
                out.push_str(&format!("    {}\n", diff_line(diff)));
            }
        }
        let (create, change, remove) = plan.counts();
        out.push_str(&format!(
            "\nPlan: {create} to create, {change} to change, {remove} to revoke or delete.\n"
        ));
    }
    if !plan.unmanaged.is_empty() {
        out.push_str(&format!(
            "\nNot in {source}, left as they are (--prune revokes or deletes them):\n"
        ));
        for item in &plan.unmanaged {
            out.push_str(&format!("    {}\n", unmanaged_line(item)));
        }
    }
    out
}

fn diff_of(change: &Change) -> &[FieldDiff] {
    match change {
        Change::UpdateAgent { diff, .. } | Change::UpdateWebhook { diff, .. } => diff,
        _ => &[],
    }
}

/// `"Support Bot" (ap_…)`, or `"Support Bot" (new)` for an agent this plan creates.
fn party(party: &Party) -> String {
    match &party.agent_id {
        Some(id) if id.as_str() != party.name => format!("{:?} ({id})", party.name),
        Some(id) => id.to_string(),
        None => format!("{:?} (new)", party.name),
    }
}

fn scopes(scopes: &[String]) -> String {
    format!("[{}]", scopes.join(", "))
}

/// One line for one change.
pub fn change_line(change: &Change) -> String {
    let sign = change.sign();
    match change {
        Change::CreateAgent { name, body } => format!(
            "{sign} create agent {name:?} ({})",
            body.get("status")
                .and_then(Value::as_str)
                .unwrap_or("draft")
        ),
        Change::UpdateAgent {
            name,
            agent_id,
            if_match,
            ..
        } => format!("{sign} update agent {name:?} ({agent_id}, version {if_match})"),
        Change::SetStatus {
            name,
            agent_id,
            from,
            to,
            pruned,
            ..
        } => {
            let verb = match to {
                vouch_core::Status::Active => "activate",
                vouch_core::Status::Suspended => "suspend",
                vouch_core::Status::Revoked => "revoke",
                vouch_core::Status::Draft => "return to draft",
            };
            let why = if *pruned { ": not in the file" } else { "" };
            format!("{sign} {verb} agent {name:?} ({agent_id}, {from} → {to}){why}")
        }
        Change::CreateWebhook {
            url,
            events,
            enabled,
            ..
        } => {
            let state = if *enabled { "" } else { ", disabled" };
            format!(
                "{sign} create webhook {url} (events {}{state})",
                events.join(", ")
            )
        }
        Change::UpdateWebhook {
            webhook_id, url, ..
        } => format!("{sign} update webhook {url} ({webhook_id})"),
        Change::DeleteWebhook { webhook_id, url } => {
            format!("{sign} delete webhook {url} ({webhook_id}): not in the file")
        }
        Change::CreateDelegation {
            delegator,
            delegatee,
            scopes: s,
            ttl_seconds,
            max_depth,
        } => format!(
            "{sign} create delegation {} → {} {} (ttl {ttl_seconds} s, max depth {max_depth})",
            party(delegator),
            party(delegatee),
            scopes(s)
        ),
        Change::RevokeDelegation {
            delegation_id,
            delegator,
            delegatee,
            scopes: s,
            why,
        } => {
            let why = match why {
                RevokeWhy::Replaced => "replaced by the grant above",
                RevokeWhy::Pruned => "not in the file",
            };
            format!(
                "{sign} revoke delegation {delegation_id} {} → {} {}: {why}",
                party(delegator),
                party(delegatee),
                scopes(s)
            )
        }
    }
}

/// `~ path: old → new`, `+ path: new`, `- path: old`.
pub fn diff_line(diff: &FieldDiff) -> String {
    let text = |v: &Value| v.to_string();
    match (&diff.old, &diff.new) {
        (Some(old), Some(new)) => format!("~ {}: {} → {}", diff.path, text(old), text(new)),
        (None, Some(new)) => format!("+ {}: {}", diff.path, text(new)),
        (Some(old), None) => format!("- {}: {}", diff.path, text(old)),
        (None, None) => format!("~ {}", diff.path),
    }
}

fn unmanaged_line(item: &Unmanaged) -> String {
    match item {
        Unmanaged::Agent {
            name,
            agent_id,
            status,
        } => format!("agent {name:?} ({agent_id}, {status})"),
        Unmanaged::Delegation {
            delegation_id,
            delegator,
            delegatee,
            scopes: s,
        } => format!(
            "delegation {delegation_id} {} → {} {}",
            party(delegator),
            party(delegatee),
            scopes(s)
        ),
        Unmanaged::Webhook { webhook_id, url } => format!("webhook {url} ({webhook_id})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use vouch_core::{AgentId, Status};

    fn id(n: u8) -> AgentId {
        AgentId::parse(&format!("ap_{:032x}", n)).unwrap()
    }

    #[test]
    fn a_plan_reads_like_terraform() {
        let plan = Plan {
            org_id: None,
            changes: vec![
                Change::CreateAgent {
                    name: "Refund Worker".into(),
                    body: json!({ "status": "active" }),
                },
                Change::UpdateAgent {
                    name: "Support Bot".into(),
                    agent_id: id(1),
                    if_match: 3,
                    patch: serde_json::Map::new(),
                    diff: vec![
                        FieldDiff {
                            path: "limits.refund_usd_max_per_tx".into(),
                            old: Some(json!(100)),
                            new: Some(json!(250)),
                        },
                        FieldDiff {
                            path: "limits.allow_pii".into(),
                            old: Some(json!(false)),
                            new: None,
                        },
                        FieldDiff {
                            path: "metadata.team".into(),
                            old: None,
                            new: Some(json!("billing")),
                        },
                    ],
                },
                Change::SetStatus {
                    name: "Old Bot".into(),
                    agent_id: id(2),
                    from: Status::Active,
                    to: Status::Revoked,
                    if_match: 4,
                    reason: String::new(),
                    pruned: true,
                },
                Change::CreateDelegation {
                    delegator: Party {
                        name: "Support Bot".into(),
                        agent_id: Some(id(1)),
                    },
                    delegatee: Party {
                        name: "Refund Worker".into(),
                        agent_id: None,
                    },
                    scopes: vec!["payments.refund".into()],
                    ttl_seconds: 3600,
                    max_depth: 1,
                },
            ],
            unmanaged: vec![Unmanaged::Webhook {
                webhook_id: "wh_1".into(),
                url: "https://x.example/".into(),
            }],
        };
        let a = id(1);
        let b = id(2);
        assert_eq!(
            super::plan(&plan, "agents.yaml"),
            format!(
                "+ create agent \"Refund Worker\" (active)
~ update agent \"Support Bot\" ({a}, version 3)
    ~ limits.refund_usd_max_per_tx: 100 → 250
    - limits.allow_pii: false
    + metadata.team: \"billing\"
- revoke agent \"Old Bot\" ({b}, active → revoked): not in the file
+ create delegation \"Support Bot\" ({a}) → \"Refund Worker\" (new) [payments.refund] (ttl 3600 s, max depth 1)

Plan: 2 to create, 1 to change, 1 to revoke or delete.

Not in agents.yaml, left as they are (--prune revokes or deletes them):
    webhook https://x.example/ (wh_1)
"
            )
        );
    }

    #[test]
    fn an_empty_plan_says_so() {
        assert_eq!(
            super::plan(&Plan::default(), "agents.yaml"),
            "No changes: the registry matches agents.yaml.\n"
        );
    }
}
