//! The difference between what a registry file asks for and what the registry holds: an
//! ordered list of changes, each with the precondition it is applied under. Pure: no I/O, the
//! current state and the time come in as values.
//!
//! Order: the file's agents (create, update, then status), its webhooks, its delegations (after
//! the agents they need are active), then what `--prune` removes (grants, webhooks, agents, each
//! sorted). Every update and status change of an existing agent carries `if_match`, the
//! version the plan was made from; a status change right after this plan's own update expects
//! that update's version (one more).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vouch_client::{Delegation, Webhook};
use vouch_core::passport::MutableFields;
use vouch_core::{lifecycle, AgentId, OrgId, Passport, Status, Timestamp};

use super::file::{normalize_url, sorted_set, Desired, DesiredAgent, DesiredDelegation};

/// What the registry holds now, in the file's org.
#[derive(Clone, Debug, Default)]
pub struct Current {
    /// Every agent of the org, revoked ones included.
    pub agents: Vec<Passport>,
    /// The org's grants (any status; only live ones count).
    pub delegations: Vec<Delegation>,
    /// The org's webhook subscriptions.
    pub webhooks: Vec<Webhook>,
}

/// The status reason `vouch apply` gives when the file moves an agent.
pub const REASON: &str = "vouch apply";
/// The status reason of an agent `--prune` revokes.
pub const PRUNE_REASON: &str = "vouch apply --prune: not in the registry file";

/// One changed value: `path` inside the resource (`limits.refund_usd_max_per_tx`), the value
/// before and after (`None`: absent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// An agent a change names: by id when it exists, by name only when this plan creates it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Party {
    pub name: String,
    pub agent_id: Option<AgentId>,
}

/// Why a grant is revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeWhy {
    /// The file declares it with other `ttl_seconds` or `max_depth`: a new grant replaces it.
    Replaced,
    /// `--prune`: the file does not declare it.
    Pruned,
}

/// One change, as applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    /// `POST /v1/agents` with `body` (the passport document, `status` draft or active).
    CreateAgent { name: String, body: Value },
    /// `PATCH /v1/agents/{id}` with `patch` (a JSON merge patch), `If-Match: "<if_match>"`.
    UpdateAgent {
        name: String,
        agent_id: AgentId,
        if_match: i64,
        patch: Map<String, Value>,
        diff: Vec<FieldDiff>,
    },
    /// `PUT /v1/agents/{id}/status`, `If-Match: "<if_match>"`.
    SetStatus {
        name: String,
        agent_id: AgentId,
        from: Status,
        to: Status,
        if_match: i64,
        reason: String,
        /// `--prune` revokes it (the file no longer names it).
        pruned: bool,
    },
    /// `POST /v1/webhooks`, then `PATCH … { "enabled": false }` when the file says so.
    CreateWebhook {
        url: String,
        events: Vec<String>,
        description: String,
        enabled: bool,
    },
    /// `PATCH /v1/webhooks/{id}` with `patch`.
    UpdateWebhook {
        webhook_id: String,
        url: String,
        patch: Map<String, Value>,
        diff: Vec<FieldDiff>,
    },
    /// `DELETE /v1/webhooks/{id}` (`--prune`).
    DeleteWebhook { webhook_id: String, url: String },
    /// `POST /v1/delegations`.
    CreateDelegation {
        delegator: Party,
        delegatee: Party,
        scopes: Vec<String>,
        ttl_seconds: i64,
        max_depth: i64,
    },
    /// `DELETE /v1/delegations/{id}`.
    RevokeDelegation {
        delegation_id: String,
        delegator: Party,
        delegatee: Party,
        scopes: Vec<String>,
        why: RevokeWhy,
    },
}

impl Change {
    /// `+` create, `~` change, `-` revoke or delete.
    pub fn sign(&self) -> char {
        match self {
            Change::CreateAgent { .. }
            | Change::CreateWebhook { .. }
            | Change::CreateDelegation { .. } => '+',
            Change::UpdateAgent { .. } | Change::UpdateWebhook { .. } => '~',
            Change::SetStatus { to, .. } if *to != Status::Revoked => '~',
            Change::SetStatus { .. }
            | Change::DeleteWebhook { .. }
            | Change::RevokeDelegation { .. } => '-',
        }
    }
}

/// Something the registry holds that the file does not name, left as it is (without
/// `--prune`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Unmanaged {
    Agent {
        name: String,
        agent_id: AgentId,
        status: Status,
    },
    Delegation {
        delegation_id: String,
        delegator: Party,
        delegatee: Party,
        scopes: Vec<String>,
    },
    Webhook {
        webhook_id: String,
        url: String,
    },
}

/// What `vouch apply` would do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub org_id: Option<OrgId>,
    pub changes: Vec<Change>,
    /// Left as they are: not in the file, and no `--prune`.
    pub unmanaged: Vec<Unmanaged>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// How many changes create, change, and revoke or delete something.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |sign| self.changes.iter().filter(|c| c.sign() == sign).count();
        (count('+'), count('~'), count('-'))
    }
}

/// Why no plan can be made: the file asks for something the registry cannot do from where it
/// stands (an agent's `owner` is fixed; a revoked agent stays revoked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// Where in the file (`agents[1].status`).
    pub path: String,
    /// The API's own code for it (`invalid_transition`, `immutable_field`).
    pub code: &'static str,
    pub message: String,
}

/// The changes that make `current` what `desired` says; with `prune`, what the file does not
/// name is revoked or deleted too. Every conflict is reported, not only the first.
pub fn plan(
    desired: &Desired,
    current: &Current,
    now: Timestamp,
    prune: bool,
) -> Result<Plan, Vec<Conflict>> {
    let mut changes = Vec::new();
    let mut conflicts = Vec::new();
    for agent in &desired.agents {
        let existing = current.agents.iter().find(|p| p.name == agent.name);
        match plan_agent(agent, existing, desired.org_id.as_ref()) {
            Ok(mut planned) => changes.append(&mut planned),
            Err(conflict) => conflicts.push(conflict),
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }

    let mut unmanaged = Vec::new();
    let mut removals = Vec::new();

    // Webhooks, matched by URL (the newest subscription of a URL is the file's).
    let mut claimed_hooks: Vec<&str> = Vec::new();
    for hook in &desired.webhooks {
        let existing = current.webhooks.iter().find(|w| {
            same_url(&w.url, &hook.url) && !claimed_hooks.contains(&w.webhook_id.as_str())
        });
        match existing {
            None => changes.push(Change::CreateWebhook {
                url: hook.url.clone(),
                events: hook.events.clone(),
                description: hook.description.clone(),
                enabled: hook.enabled,
            }),
            Some(w) => {
                claimed_hooks.push(&w.webhook_id);
                let mut patch = Map::new();
                let mut diff = Vec::new();
                if sorted_set(&w.events) != sorted_set(&hook.events) {
                    patch.insert("events".into(), strings(&hook.events));
                    diff.push(FieldDiff {
                        path: "events".into(),
                        old: Some(strings(&w.events)),
                        new: Some(strings(&hook.events)),
                    });
                }
                if w.description != hook.description {
                    patch.insert(
                        "description".into(),
                        Value::String(hook.description.clone()),
                    );
                    diff.push(FieldDiff {
                        path: "description".into(),
                        old: Some(Value::String(w.description.clone())),
                        new: Some(Value::String(hook.description.clone())),
                    });
                }
                let enabled = w.status == "enabled";
                if enabled != hook.enabled {
                    patch.insert("enabled".into(), Value::Bool(hook.enabled));
                    diff.push(FieldDiff {
                        path: "enabled".into(),
                        old: Some(Value::Bool(enabled)),
                        new: Some(Value::Bool(hook.enabled)),
                    });
                }
                if !patch.is_empty() {
                    changes.push(Change::UpdateWebhook {
                        webhook_id: w.webhook_id.clone(),
                        url: w.url.clone(),
                        patch,
                        diff,
                    });
                }
            }
        }
    }
    let mut other_hooks: Vec<&Webhook> = current
        .webhooks
        .iter()
        .filter(|w| !claimed_hooks.contains(&w.webhook_id.as_str()))
        .collect();
    other_hooks.sort_by(|a, b| (&a.url, &a.webhook_id).cmp(&(&b.url, &b.webhook_id)));
    for w in other_hooks {
        if prune {
            removals.push(Change::DeleteWebhook {
                webhook_id: w.webhook_id.clone(),
                url: w.url.clone(),
            });
        } else {
            unmanaged.push(Unmanaged::Webhook {
                webhook_id: w.webhook_id.clone(),
                url: w.url.clone(),
            });
        }
    }

    // Delegations: live grants, matched by (delegator, delegatee, scope set).
    let name_of = |id: &AgentId| {
        current
            .agents
            .iter()
            .find(|p| &p.agent_id == id)
            .map(|p| p.name.clone())
    };
    let party_of = |id: &AgentId| Party {
        name: name_of(id).unwrap_or_else(|| id.as_str().to_owned()),
        agent_id: Some(id.clone()),
    };
    let party_named = |name: &str| Party {
        name: name.to_owned(),
        agent_id: current
            .agents
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.agent_id.clone()),
    };
    let live: Vec<&Delegation> = current
        .delegations
        .iter()
        .filter(|g| g.status == "active" && g.revoked_at.is_none() && g.expires_at > now)
        .collect();
    let same_key = |g: &Delegation, want: &DesiredDelegation| {
        name_of(&g.delegator).as_deref() == Some(want.delegator.as_str())
            && name_of(&g.delegatee).as_deref() == Some(want.delegatee.as_str())
            && sorted_set(&g.scopes) == want.scope_set()
    };
    let mut claimed_grants: Vec<&str> = Vec::new();
    for want in &desired.delegations {
        let mut keyed: Vec<&&Delegation> = live.iter().filter(|g| same_key(g, want)).collect();
        // Newest first, whatever order the list came in.
        keyed.sort_by(|a, b| b.delegation_id.cmp(&a.delegation_id));
        let kept = keyed.iter().find(|g| {
            g.max_depth == want.max_depth
                && g.expires_at.unix_millis() - g.created_at.unix_millis()
                    == want.ttl_seconds * 1_000
        });
        if let Some(kept) = kept {
            claimed_grants.push(&kept.delegation_id);
            continue;
        }
        changes.push(Change::CreateDelegation {
            delegator: party_named(&want.delegator),
            delegatee: party_named(&want.delegatee),
            scopes: want.scopes.clone(),
            ttl_seconds: want.ttl_seconds,
            max_depth: want.max_depth,
        });
        for old in keyed {
            claimed_grants.push(&old.delegation_id);
            changes.push(Change::RevokeDelegation {
                delegation_id: old.delegation_id.clone(),
                delegator: party_of(&old.delegator),
                delegatee: party_of(&old.delegatee),
                scopes: old.scopes.clone(),
                why: RevokeWhy::Replaced,
            });
        }
    }
    let mut other_grants: Vec<&&Delegation> = live
        .iter()
        .filter(|g| !claimed_grants.contains(&g.delegation_id.as_str()))
        .collect();
    other_grants.sort_by(|a, b| a.delegation_id.cmp(&b.delegation_id));
    let mut grant_removals = Vec::new();
    for g in other_grants {
        if prune {
            grant_removals.push(Change::RevokeDelegation {
                delegation_id: g.delegation_id.clone(),
                delegator: party_of(&g.delegator),
                delegatee: party_of(&g.delegatee),
                scopes: g.scopes.clone(),
                why: RevokeWhy::Pruned,
            });
        } else {
            unmanaged.push(Unmanaged::Delegation {
                delegation_id: g.delegation_id.clone(),
                delegator: party_of(&g.delegator),
                delegatee: party_of(&g.delegatee),
                scopes: g.scopes.clone(),
            });
        }
    }

    // Agents the file does not name (revoked ones are history, kept as they are).
    let mut other_agents: Vec<&Passport> = current
        .agents
        .iter()
        .filter(|p| p.status != Status::Revoked)
        .filter(|p| !desired.agents.iter().any(|a| a.name == p.name))
        .collect();
    other_agents.sort_by(|a, b| (&a.name, &a.agent_id).cmp(&(&b.name, &b.agent_id)));
    for p in other_agents {
        if prune {
            removals.push(Change::SetStatus {
                name: p.name.clone(),
                agent_id: p.agent_id.clone(),
                from: p.status,
                to: Status::Revoked,
                if_match: p.version,
                reason: PRUNE_REASON.to_owned(),
                pruned: true,
            });
        } else {
            unmanaged.push(Unmanaged::Agent {
                name: p.name.clone(),
                agent_id: p.agent_id.clone(),
                status: p.status,
            });
        }
    }
    // Grants go first: an agent's revocation would take its grants with it anyway.
    changes.extend(grant_removals);
    changes.extend(removals);
    Ok(Plan {
        org_id: desired.org_id.clone(),
        changes,
        unmanaged,
    })
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

fn same_url(stored: &str, declared: &str) -> bool {
    normalize_url(stored).is_ok_and(|s| s == declared) || stored == declared
}

/// The changes of one agent the file declares.
fn plan_agent(
    agent: &DesiredAgent,
    existing: Option<&Passport>,
    org_id: Option<&OrgId>,
) -> Result<Vec<Change>, Conflict> {
    let Some(current) = existing else {
        if !matches!(agent.status, Status::Draft | Status::Active) {
            return Err(Conflict {
                path: format!("{}.status", agent.at),
                code: "invalid_transition",
                message: format!(
                    "agent `{}` does not exist yet, and a new agent starts as draft or active, not {}",
                    agent.name, agent.status
                ),
            });
        }
        return Ok(vec![Change::CreateAgent {
            name: agent.name.clone(),
            body: super::file::registration(agent, org_id),
        }]);
    };
    if current.status == Status::Revoked {
        if agent.status == Status::Revoked {
            // Revocation is terminal and the record frozen: there is nothing left to compare.
            return Ok(Vec::new());
        }
        return Err(Conflict {
            path: format!("{}.status", agent.at),
            code: "invalid_transition",
            message: format!(
                "agent `{}` ({}) is revoked, which is terminal; say `status: revoked` or remove it from the file (its name stays taken)",
                agent.name, current.agent_id
            ),
        });
    }
    if current.owner != agent.owner {
        return Err(Conflict {
            path: format!("{}.owner", agent.at),
            code: "immutable_field",
            message: format!(
                "the owner of agent `{}` ({}) is fixed at registration: it is {{ display_name: {:?}, contact: {:?} }}",
                agent.name, current.agent_id, current.owner.display_name, current.owner.contact
            ),
        });
    }
    if current.status != agent.status && !lifecycle::allowed(current.status, agent.status) {
        return Err(Conflict {
            path: format!("{}.status", agent.at),
            code: "invalid_transition",
            message: format!(
                "agent `{}` ({}) is {}; it cannot become {} (draft → active ⇄ suspended, any → revoked)",
                agent.name, current.agent_id, current.status, agent.status
            ),
        });
    }
    let mut changes = Vec::new();
    let mut version = current.version;
    // A revocation makes field changes moot: the record is frozen right after.
    if agent.status != Status::Revoked {
        let (patch, diff) = fields_patch(&current.fields, &agent.fields);
        if !patch.is_empty() {
            changes.push(Change::UpdateAgent {
                name: agent.name.clone(),
                agent_id: current.agent_id.clone(),
                if_match: version,
                patch,
                diff,
            });
            version += 1;
        }
    }
    if current.status != agent.status {
        changes.push(Change::SetStatus {
            name: agent.name.clone(),
            agent_id: current.agent_id.clone(),
            from: current.status,
            to: agent.status,
            if_match: version,
            reason: REASON.to_owned(),
            pruned: false,
        });
    }
    Ok(changes)
}

/// The merge patch (RFC 7396) that turns `current` into `desired`, and what it changes.
pub fn fields_patch(
    current: &MutableFields,
    desired: &MutableFields,
) -> (Map<String, Value>, Vec<FieldDiff>) {
    let old = serde_json::to_value(current).unwrap_or(Value::Null);
    let new = serde_json::to_value(desired).unwrap_or(Value::Null);
    let mut patch = Map::new();
    let mut diff = Vec::new();
    for name in MutableFields::NAMES {
        let before = old.get(name).cloned().unwrap_or(Value::Null);
        let after = new.get(name).cloned().unwrap_or(Value::Null);
        if before != after {
            patch.insert(name.to_owned(), merge_diff(&before, &after));
            diff_values(name, Some(&before), Some(&after), &mut diff);
        }
    }
    (patch, diff)
}

/// The smallest merge patch from `old` to `new`: objects key by key (a removed key is
/// `null`), anything else replaced whole.
pub fn merge_diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(before) if before == value => {}
                    Some(before) => {
                        patch.insert(key.clone(), merge_diff(before, value));
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys() {
                if !new.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// Field-level differences: into objects key by key, anything else whole.
fn diff_values(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldDiff>) {
    if let (Some(Value::Object(old)), Some(Value::Object(new))) = (old, new) {
        let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let (before, after) = (old.get(key), new.get(key));
            if before != after {
                diff_values(&format!("{path}.{key}"), before, after, out);
            }
        }
        return;
    }
    out.push(FieldDiff {
        path: path.to_owned(),
        old: old.cloned(),
        new: new.cloned(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::file::{parse, Format};
    use serde_json::json;
    use vouch_core::passport::NewAgent;

    const ORG: &str = "org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71";
    const NOW: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

    fn desired(text: &str) -> Desired {
        parse(text, Format::Yaml).unwrap()
    }

    fn id(n: u8) -> AgentId {
        AgentId::parse(&format!("ap_{:032x}", n)).unwrap()
    }

    /// A registered passport like the origin's: the file's agent `name`, at `version`.
    fn passport(text: &str, n: u8, status: Status, version: i64) -> Passport {
        let document: Value = yaml_serde::from_str(text).unwrap();
        let mut new = NewAgent::from_json(document).unwrap();
        new.status = None;
        let mut p = Passport::register(
            new,
            id(n),
            OrgId::parse(ORG).unwrap(),
            Timestamp::from_unix_millis(1_700_000_000_000),
        )
        .unwrap();
        p.status = status;
        p.version = version;
        p
    }

    const BOT: &str = "name: Support Bot
owner: { display_name: Support, contact: sec@acme.example }
role: Tier-2 Support
capabilities:
  - { id: payments.refund, params: { max_amount: 100 } }
  - { id: tickets.read }
limits: { refund_usd_max_per_tx: 100, allow_pii: false }
regions: [US-NY, US-CA]
metadata: { environment: production }
";
    const WORKER: &str = "name: Refund Worker
owner: { display_name: Support, contact: sec@acme.example }
capabilities: [{ id: payments.refund }]
";

    fn file_with(agents: &[(&str, &str)], tail: &str) -> String {
        let mut text = format!("org_id: {ORG}\nagents:\n");
        for (agent, status) in agents {
            for (i, line) in agent.lines().enumerate() {
                let lead = if i == 0 { "  - " } else { "    " };
                text.push_str(&format!("{lead}{line}\n"));
            }
            text.push_str(&format!("    status: {status}\n"));
        }
        text.push_str(tail);
        text
    }

    fn grant(
        n: u8,
        from: u8,
        to: u8,
        scopes: &[&str],
        ttl: i64,
        depth: i64,
        status: &str,
    ) -> Delegation {
        let created = NOW.unix_millis() - 60_000;
        Delegation {
            delegation_id: format!("dlg_{:032x}", n),
            org_id: OrgId::parse(ORG).unwrap(),
            delegator: id(from),
            delegatee: id(to),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            max_depth: depth,
            created_at: Timestamp::from_unix_millis(created),
            expires_at: Timestamp::from_unix_millis(created + ttl * 1_000),
            revoked_at: (status == "revoked").then_some(NOW),
            status: status.to_owned(),
        }
    }

    fn hook(n: u8, url: &str, events: &[&str], enabled: bool) -> Webhook {
        Webhook {
            webhook_id: format!("wh_{:032x}", n),
            org_id: OrgId::parse(ORG).unwrap(),
            url: url.to_owned(),
            description: String::new(),
            events: events.iter().map(|s| s.to_string()).collect(),
            status: if enabled { "enabled" } else { "disabled" }.to_owned(),
            disabled_reason: None,
            created_at: NOW,
            updated_at: NOW,
        }
    }

    #[test]
    fn an_empty_org_gets_everything_created_in_order() {
        let text = file_with(
            &[(BOT, "active"), (WORKER, "active")],
            "delegations:\n  - { delegator: Support Bot, delegatee: Refund Worker, scopes: [payments.refund] }\nwebhooks:\n  - url: https://hooks.acme.example/v\n",
        );
        let plan = plan(&desired(&text), &Current::default(), NOW, false).unwrap();
        let actions: Vec<String> = plan
            .changes
            .iter()
            .map(|c| {
                serde_json::to_value(c).unwrap()["action"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            actions,
            [
                "create_agent",
                "create_agent",
                "create_webhook",
                "create_delegation"
            ]
        );
        let Change::CreateAgent { body, .. } = &plan.changes[0] else {
            panic!("{:?}", plan.changes[0]);
        };
        assert_eq!(body["org_id"], json!(ORG));
        assert_eq!(body["status"], json!("active"));
        let Change::CreateDelegation {
            delegator,
            delegatee,
            ..
        } = &plan.changes[3]
        else {
            panic!("{:?}", plan.changes[3]);
        };
        assert_eq!(
            (delegator.agent_id.as_ref(), delegatee.agent_id.as_ref()),
            (None, None)
        );
        assert_eq!(plan.counts(), (4, 0, 0));
        assert!(plan.unmanaged.is_empty());
    }

    #[test]
    fn the_same_state_plans_nothing() {
        let text = file_with(
            &[(BOT, "active"), (WORKER, "active")],
            "delegations:\n  - { delegator: Support Bot, delegatee: Refund Worker, scopes: [payments.refund], ttl_seconds: 600, max_depth: 2 }\nwebhooks:\n  - { url: 'https://Hooks.acme.example', events: [agent.revoked, agent.suspended] }\n",
        );
        let current = Current {
            agents: vec![
                passport(BOT, 1, Status::Active, 4),
                passport(WORKER, 2, Status::Active, 2),
            ],
            delegations: vec![grant(1, 1, 2, &["payments.refund"], 600, 2, "active")],
            webhooks: vec![hook(
                1,
                "https://hooks.acme.example/",
                &["agent.suspended", "agent.revoked"],
                true,
            )],
        };
        let plan = plan(&desired(&text), &current, NOW, true).unwrap();
        assert!(plan.is_empty(), "{:#?}", plan.changes);
        assert!(plan.unmanaged.is_empty());
    }

    #[test]
    fn one_edited_field_is_exactly_one_update_under_if_match() {
        let edited = BOT.replace("refund_usd_max_per_tx: 100", "refund_usd_max_per_tx: 250");
        let text = file_with(&[(&edited, "active")], "");
        let current = Current {
            agents: vec![passport(BOT, 1, Status::Active, 7)],
            ..Current::default()
        };
        let plan = plan(&desired(&text), &current, NOW, false).unwrap();
        assert_eq!(
            plan.changes,
            [Change::UpdateAgent {
                name: "Support Bot".into(),
                agent_id: id(1),
                if_match: 7,
                patch: json!({ "limits": { "refund_usd_max_per_tx": 250 } })
                    .as_object()
                    .unwrap()
                    .clone(),
                diff: vec![FieldDiff {
                    path: "limits.refund_usd_max_per_tx".into(),
                    old: Some(json!(100)),
                    new: Some(json!(250)),
                }],
            }]
        );
    }

    #[test]
    fn removed_fields_reset_and_removed_keys_are_nulls() {
        // No role, no metadata, one region, a limit gone: each back to the API's default.
        let edited = "name: Support Bot
owner: { display_name: Support, contact: sec@acme.example }
capabilities:
  - { id: payments.refund, params: { max_amount: 100 } }
  - { id: tickets.read }
limits: { refund_usd_max_per_tx: 100 }
regions: [US-CA]
tier: privileged
";
        let text = file_with(&[(edited, "active")], "");
        let current = Current {
            agents: vec![passport(BOT, 1, Status::Active, 3)],
            ..Current::default()
        };
        let plan = plan(&desired(&text), &current, NOW, false).unwrap();
        let Change::UpdateAgent { patch, diff, .. } = &plan.changes[0] else {
            panic!("{:?}", plan.changes);
        };
        assert_eq!(
            Value::Object(patch.clone()),
            json!({
                "role": null,
                "limits": { "allow_pii": null },
                "regions": ["US-CA"],
                "tier": "privileged",
                "metadata": { "environment": null },
            })
        );
        let paths: Vec<&str> = diff.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "role",
                "limits.allow_pii",
                "regions",
                "tier",
                "metadata.environment"
            ]
        );
        assert_eq!(diff[1].new, None);
        // The patch, applied by the core as the origin does, gives the file's fields.
        let mut p = passport(BOT, 1, Status::Active, 3);
        let out =
            vouch_core::patch::apply_merge_patch(&p, &Value::Object(patch.clone()), NOW).unwrap();
        p.fields = desired(&text).agents[0].fields.clone();
        assert_eq!(out.passport.fields, p.fields);
    }

    #[test]
    fn status_moves_follow_the_lifecycle_and_chain_versions() {
        let edited = BOT.replace("role: Tier-2 Support", "role: Tier-3");
        let current = Current {
            agents: vec![passport(BOT, 1, Status::Active, 5)],
            ..Current::default()
        };
        let text = file_with(&[(&edited, "suspended")], "");
        let plan = plan(&desired(&text), &current, NOW, false).unwrap();
        assert_eq!(plan.changes.len(), 2, "{:#?}", plan.changes);
        assert!(matches!(
            plan.changes[0],
            Change::UpdateAgent { if_match: 5, .. }
        ));
        assert!(matches!(
            plan.changes[1],
            Change::SetStatus {
                if_match: 6,
                from: Status::Active,
                to: Status::Suspended,
                pruned: false,
                ..
            }
        ));
        // Revoking skips the field changes: the record freezes right after.
        let text = file_with(&[(&edited, "revoked")], "");
        let plan = super::plan(&desired(&text), &current, NOW, false).unwrap();
        assert!(matches!(
            plan.changes[..],
            [Change::SetStatus {
                if_match: 5,
                to: Status::Revoked,
                ..
            }]
        ));
        assert_eq!(plan.changes[0].sign(), '-');
        // Active → draft is no move of the lifecycle.
        let text = file_with(&[(BOT, "draft")], "");
        let conflicts = super::plan(&desired(&text), &current, NOW, false).unwrap_err();
        assert_eq!(conflicts[0].path, "agents[0].status");
        assert_eq!(conflicts[0].code, "invalid_transition");
    }

    #[test]
    fn every_lifecycle_pair_is_planned_or_refused() {
        for from in Status::ALL {
            for to in Status::ALL {
                let current = Current {
                    agents: vec![passport(BOT, 1, from, 2)],
                    ..Current::default()
                };
                let text = file_with(&[(BOT, to.as_str())], "");
                let planned = plan(&desired(&text), &current, NOW, false);
                match planned {
                    Ok(plan)
                        if from == to || (from == Status::Revoked && to == Status::Revoked) =>
                    {
                        assert!(plan.is_empty(), "{from} → {to}: {:?}", plan.changes)
                    }
                    Ok(plan) => {
                        assert!(lifecycle::allowed(from, to), "{from} → {to}");
                        assert!(
                            matches!(&plan.changes[..], [Change::SetStatus { from: f, to: t, if_match: 2, .. }] if *f == from && *t == to),
                            "{from} → {to}: {:?}",
                            plan.changes
                        );
                    }
                    Err(conflicts) => {
                        assert!(!lifecycle::allowed(from, to), "{from} → {to}");
                        assert_eq!(conflicts[0].code, "invalid_transition");
                    }
                }
            }
        }
    }

    #[test]
    fn new_agents_start_as_draft_or_active() {
        for (status, ok) in [
            ("draft", true),
            ("active", true),
            ("suspended", false),
            ("revoked", false),
        ] {
            let text = file_with(&[(BOT, status)], "");
            assert_eq!(
                plan(&desired(&text), &Current::default(), NOW, false).is_ok(),
                ok,
                "{status}"
            );
        }
    }

    #[test]
    fn the_owner_is_fixed_and_every_conflict_is_reported() {
        let moved = BOT.replace("display_name: Support", "display_name: Billing");
        let text = file_with(&[(&moved, "active"), (WORKER, "active")], "");
        let current = Current {
            agents: vec![
                passport(BOT, 1, Status::Active, 1),
                passport(WORKER, 2, Status::Revoked, 3),
            ],
            ..Current::default()
        };
        let conflicts = plan(&desired(&text), &current, NOW, false).unwrap_err();
        let found: Vec<(&str, &str)> = conflicts
            .iter()
            .map(|c| (c.path.as_str(), c.code))
            .collect();
        assert_eq!(
            found,
            [
                ("agents[0].owner", "immutable_field"),
                ("agents[1].status", "invalid_transition")
            ]
        );
    }

    #[test]
    fn a_revoked_agent_declared_revoked_is_left_alone() {
        let edited = BOT.replace("role: Tier-2 Support", "role: other");
        let text = file_with(&[(&edited, "revoked")], "");
        let current = Current {
            agents: vec![passport(BOT, 1, Status::Revoked, 9)],
            ..Current::default()
        };
        assert!(plan(&desired(&text), &current, NOW, true)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn prune_revokes_what_the_file_no_longer_names() {
        let text = file_with(&[(WORKER, "active")], "");
        let current = Current {
            agents: vec![
                passport(BOT, 1, Status::Suspended, 4),
                passport(WORKER, 2, Status::Active, 1),
                passport(
                    &BOT.replace("Support Bot", "Old Bot"),
                    3,
                    Status::Revoked,
                    2,
                ),
                passport(&BOT.replace("Support Bot", "A Bot"), 4, Status::Draft, 1),
            ],
            delegations: vec![
                grant(1, 1, 2, &["payments.refund"], 3600, 1, "active"),
                grant(2, 1, 2, &["payments.refund"], 3600, 1, "revoked"),
                grant(3, 1, 2, &["payments.refund"], 3600, 1, "expired"),
            ],
            webhooks: vec![hook(1, "https://hooks.acme.example/", &["*"], true)],
        };
        let kept = plan(&desired(&text), &current, NOW, false).unwrap();
        assert!(kept.is_empty());
        let kinds: Vec<Value> = kept
            .unmanaged
            .iter()
            .map(|u| serde_json::to_value(u).unwrap())
            .collect();
        assert_eq!(kinds.len(), 4, "{kinds:#?}");
        assert_eq!(kinds[0]["kind"], "webhook");
        assert_eq!(kinds[1]["delegation_id"], json!(format!("dlg_{:032x}", 1)));
        assert_eq!(kinds[1]["delegator"]["name"], "Support Bot");
        // Sorted by name; the revoked agent is history and not listed.
        assert_eq!(
            (kinds[2]["name"].clone(), kinds[3]["name"].clone()),
            (json!("A Bot"), json!("Support Bot"))
        );

        let pruned = plan(&desired(&text), &current, NOW, true).unwrap();
        assert!(pruned.unmanaged.is_empty());
        let summary: Vec<(char, String)> = pruned
            .changes
            .iter()
            .map(|c| {
                let v = serde_json::to_value(c).unwrap();
                (c.sign(), v["action"].as_str().unwrap().to_owned())
            })
            .collect();
        assert_eq!(
            summary,
            [
                ('-', "revoke_delegation".to_owned()),
                ('-', "delete_webhook".to_owned()),
                ('-', "set_status".to_owned()),
                ('-', "set_status".to_owned()),
            ]
        );
        assert!(matches!(
            &pruned.changes[2],
            Change::SetStatus { name, to: Status::Revoked, if_match: 1, pruned: true, .. } if name == "A Bot"
        ));
        assert!(matches!(
            &pruned.changes[3],
            Change::SetStatus {
                from: Status::Suspended,
                if_match: 4,
                ..
            }
        ));
        assert_eq!(pruned.counts(), (0, 0, 4));
    }

    #[test]
    fn grants_are_kept_replaced_or_renewed() {
        let text = |ttl: i64, depth: i64| {
            file_with(
                &[(BOT, "active"), (WORKER, "active")],
                &format!("delegations:\n  - {{ delegator: Support Bot, delegatee: Refund Worker, scopes: [tickets.read, payments.refund], ttl_seconds: {ttl}, max_depth: {depth} }}\n"),
            )
        };
        let agents = vec![
            passport(BOT, 1, Status::Active, 1),
            passport(WORKER, 2, Status::Active, 1),
        ];
        let live = grant(
            5,
            1,
            2,
            &["payments.refund", "tickets.read"],
            3600,
            1,
            "active",
        );
        let current = Current {
            agents: agents.clone(),
            delegations: vec![live.clone()],
            ..Current::default()
        };
        // Same parties, same scope set (any order), same ttl and depth: nothing to do.
        assert!(plan(&desired(&text(3600, 1)), &current, NOW, true)
            .unwrap()
            .is_empty());
        // Another depth: a new grant, then the old one revoked as replaced.
        let replaced = plan(&desired(&text(3600, 2)), &current, NOW, false).unwrap();
        assert!(
            matches!(
                &replaced.changes[..],
                [
                    Change::CreateDelegation {
                        max_depth: 2,
                        delegator: Party {
                            agent_id: Some(_),
                            ..
                        },
                        ..
                    },
                    Change::RevokeDelegation {
                        why: RevokeWhy::Replaced,
                        ..
                    }
                ]
            ),
            "{:#?}",
            replaced.changes
        );
        // Another ttl likewise.
        assert_eq!(
            plan(&desired(&text(600, 1)), &current, NOW, false)
                .unwrap()
                .changes
                .len(),
            2
        );
        // An expired (or revoked) grant is history: the file's grant is created again.
        let expired = Current {
            agents,
            delegations: vec![
                grant(
                    5,
                    1,
                    2,
                    &["payments.refund", "tickets.read"],
                    3600,
                    1,
                    "expired",
                ),
                Delegation {
                    expires_at: NOW,
                    ..live
                },
            ],
            ..Current::default()
        };
        let renewed = plan(&desired(&text(3600, 1)), &expired, NOW, true).unwrap();
        assert!(
            matches!(&renewed.changes[..], [Change::CreateDelegation { .. }]),
            "{:#?}",
            renewed.changes
        );
    }

    #[test]
    fn a_grant_with_other_scopes_is_another_grant() {
        let text = file_with(
            &[(BOT, "active"), (WORKER, "active")],
            "delegations:\n  - { delegator: Support Bot, delegatee: Refund Worker, scopes: [tickets.read] }\n",
        );
        let current = Current {
            agents: vec![
                passport(BOT, 1, Status::Active, 1),
                passport(WORKER, 2, Status::Active, 1),
            ],
            delegations: vec![grant(5, 1, 2, &["payments.refund"], 3600, 1, "active")],
            ..Current::default()
        };
        let plan = plan(&desired(&text), &current, NOW, false).unwrap();
        assert!(matches!(
            &plan.changes[..],
            [Change::CreateDelegation { .. }]
        ));
        assert!(matches!(
            &plan.unmanaged[..],
            [Unmanaged::Delegation { .. }]
        ));
    }

    #[test]
    fn webhooks_are_matched_by_url_and_updated_field_by_field() {
        let text = file_with(
            &[],
            "webhooks:\n  - { url: 'https://hooks.acme.example/a', events: [agent.suspended], description: pager, enabled: true }\n  - { url: 'https://hooks.acme.example/new', enabled: false }\n",
        );
        let mut a = hook(1, "https://hooks.acme.example/a", &["*"], false);
        a.disabled_reason = Some("retries_exhausted".into());
        let current = Current {
            webhooks: vec![a, hook(2, "https://hooks.acme.example/a", &["*"], true)],
            ..Current::default()
        };
        let plan = plan(&desired(&text), &current, NOW, false).unwrap();
        let Change::UpdateWebhook {
            webhook_id,
            patch,
            diff,
            ..
        } = &plan.changes[0]
        else {
            panic!("{:?}", plan.changes);
        };
        assert_eq!(webhook_id, &format!("wh_{:032x}", 1));
        assert_eq!(
            Value::Object(patch.clone()),
            json!({ "events": ["agent.suspended"], "description": "pager", "enabled": true })
        );
        assert_eq!(diff.len(), 3);
        assert!(matches!(
            &plan.changes[1],
            Change::CreateWebhook { enabled: false, events, .. } if events == &["*"]
        ));
        // The second subscription of the same URL is not the file's.
        assert!(
            matches!(&plan.unmanaged[..], [Unmanaged::Webhook { webhook_id, .. }] if webhook_id.ends_with("02"))
        );
    }

    #[test]
    fn merge_diffs_go_into_objects_only() {
        assert_eq!(
            merge_diff(
                &json!({"a": 1, "b": {"c": 1, "d": 2}}),
                &json!({"b": {"c": 1, "d": 3}, "e": [1]})
            ),
            json!({"a": null, "b": {"d": 3}, "e": [1]})
        );
        assert_eq!(merge_diff(&json!([1, 2]), &json!([2])), json!([2]));
        assert_eq!(merge_diff(&json!({"a": 1}), &json!(null)), json!(null));
        assert_eq!(
            merge_diff(&json!(null), &json!({"kty": "OKP"})),
            json!({"kty": "OKP"})
        );
        // Applying the diff as RFC 7396 says gives the new value.
        let (old, new) = (
            json!({"x": {"y": 1, "z": [1]}, "w": 2}),
            json!({"x": {"z": [2]}, "v": {"u": 1}}),
        );
        let mut merged = old.clone();
        json_merge(&mut merged, &merge_diff(&old, &new));
        assert_eq!(merged, new);
    }

    /// RFC 7396 §2, written out for the test (the CLI itself never applies patches).
    fn json_merge(target: &mut Value, patch: &Value) {
        let Value::Object(patch) = patch else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = json!({});
        }
        let Value::Object(map) = target else { return };
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                json_merge(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }

    #[test]
    fn plans_read_back_from_json() {
        let text = file_with(
            &[(BOT, "active")],
            "webhooks: [{ url: 'https://x.example' }]\n",
        );
        let current = Current {
            agents: vec![passport(
                &BOT.replace("Support Bot", "Gone"),
                3,
                Status::Active,
                2,
            )],
            ..Current::default()
        };
        let planned = plan(&desired(&text), &current, NOW, true).unwrap();
        let back: Plan = serde_json::from_value(serde_json::to_value(&planned).unwrap()).unwrap();
        assert_eq!(back, planned);
    }
}
