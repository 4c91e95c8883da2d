//! `vouch apply`: registry as code (SPEC §20, docs/registry-as-code.md). Reads the file,
//! reads the org's agents, grants and webhooks, plans the difference ([`plan`]), prints it,
//! and applies it change by change, each under the precondition the plan recorded.
//!
//! Secrets of what it creates (agent API keys, webhook signing secrets) go to `--secrets-out`
//! (a 0600 file, one JSON object per line, flushed before the next change) or, without it,
//! to standard output once; never into the registry file or a saved plan.

pub mod file;
pub mod plan;
pub mod show;

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use vouch_client::{AgentFilter, DelegationFilter, Role};
use vouch_core::{AgentId, OrgId, Timestamp};

use crate::args::ApplyArgs;
use crate::client::{Call, Client};
use crate::commands::Output;
use crate::error::{CliError, Result};
use plan::{Change, Current, Plan};

/// What a saved plan (`--plan --out FILE`) says it is.
const PLAN_FORMAT: &str = "vouch-apply-plan";
const PLAN_VERSION: u32 = 1;

/// A plan saved for a later `vouch apply --from-plan FILE`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedPlan {
    format: String,
    version: u32,
    /// The registry file it was made from.
    source: String,
    created_at: Timestamp,
    plan: Plan,
}

pub fn run(client: &Client, out: &Output, args: &ApplyArgs) -> Result<()> {
    let (plan, source) = match &args.from_plan {
        Some(path) => read_saved(path)?,
        None => {
            let path = args.file.as_deref().ok_or_else(|| {
                CliError::Usage("name the registry file: vouch apply -f agents.yaml".into())
            })?;
            let desired = read_file(path)?;
            let plan = plan_from_registry(client, &desired, args.prune)?;
            (plan, describe(path))
        }
    };
    let planning = args.plan || args.detect_changes;
    if planning {
        if let Some(path) = &args.out {
            save_plan(path, &plan, &source)?;
        }
        if out.is_json() {
            out.json(&plan_json(&plan));
        } else {
            out.text(&show::plan(&plan, &source));
            if let Some(path) = &args.out {
                if !plan.is_empty() {
                    out.text(&format!(
                        "Saved the plan to {path}; `vouch apply --from-plan {path}` applies exactly it."
                    ));
                }
            }
        }
        if args.detect_changes && !plan.is_empty() {
            let (create, change, remove) = plan.counts();
            return Err(CliError::ChangesPending(format!(
                "the registry differs from {source}: {create} to create, {change} to change, {remove} to revoke or delete"
            )));
        }
        return Ok(());
    }
    if !out.is_json() {
        out.text(&show::plan(&plan, &source));
    }
    if plan.is_empty() {
        if out.is_json() {
            out.json(&json!({ "plan": plan_json(&plan), "applied": [] }));
        }
        return Ok(());
    }
    let mut secrets = Secrets::open(args.secrets_out.as_deref(), out)?;
    let mut applied = Vec::new();
    let result = execute(client, out, &plan, &mut secrets, &mut applied);
    if out.is_json() {
        let mut report = json!({ "plan": plan_json(&plan), "applied": applied });
        if secrets.file.is_none() {
            report["secrets"] = Value::Array(secrets.shown.clone());
        }
        if let Err(err) = &result {
            report["error"] = json!({ "message": err.to_string() });
        }
        out.json(&report);
    }
    match result {
        Ok(()) => {
            if !out.is_json() {
                out.text(&format!("\nApplied {} changes.", applied.len()));
            }
            Ok(())
        }
        Err(err) => {
            if !out.is_json() {
                out.text(&format!(
                    "\nStopped after {} of {} changes; nothing after the failed one was sent.",
                    applied.len(),
                    plan.changes.len()
                ));
            }
            // The report above holds the error; do not print a second JSON body.
            Err(match err {
                CliError::Api {
                    code,
                    message,
                    field,
                    ..
                } => CliError::Api {
                    code,
                    message,
                    field,
                    body: None,
                },
                other => other,
            })
        }
    }
}

fn describe(path: &str) -> String {
    if path == "-" {
        "standard input".to_owned()
    } else {
        path.to_owned()
    }
}

fn read_text(path: &str) -> Result<String> {
    if path == "-" {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?;
        Ok(text)
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read {path}: {e}")))
    }
}

fn read_file(path: &str) -> Result<file::Desired> {
    let text = read_text(path)?;
    let format = file::Format::detect(path, &text);
    file::parse(&text, format).map_err(|e| CliError::Usage(format!("{}: {e}", describe(path))))
}

fn read_saved(path: &str) -> Result<(Plan, String)> {
    let text = read_text(path)?;
    let saved: SavedPlan = serde_json::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "{} is not a plan saved by `vouch apply --plan --out` ({e})",
            describe(path)
        ))
    })?;
    if saved.format != PLAN_FORMAT || saved.version != PLAN_VERSION {
        return Err(CliError::Usage(format!(
            "{} is a plan of another format ({} version {}); this vouch reads {PLAN_FORMAT} version {PLAN_VERSION}",
            describe(path),
            saved.format,
            saved.version
        )));
    }
    Ok((
        saved.plan,
        format!("{} (saved from {})", describe(path), saved.source),
    ))
}

fn save_plan(path: &str, plan: &Plan, source: &str) -> Result<()> {
    let saved = SavedPlan {
        format: PLAN_FORMAT.to_owned(),
        version: PLAN_VERSION,
        source: source.to_owned(),
        created_at: now(),
        plan: plan.clone(),
    };
    let text = serde_json::to_string_pretty(&saved)
        .map_err(|e| CliError::Usage(format!("cannot write the plan: {e}")))?;
    let mut file = private_file(path, false)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|e| CliError::Usage(format!("cannot write {path}: {e}")))
}

fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_millis(millis)
}

/// A file only its owner may read (0600): appended to with `append`, else emptied. An existing
/// file that others may read is refused before it is touched.
fn private_file(path: &str, append: bool) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true);
    if append {
        options.append(true);
    } else {
        // Emptied only once its mode is known to be right (below).
        options.write(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options
            .open(path)
            .map_err(|e| CliError::Usage(format!("cannot open {path}: {e}")))?;
        let mode = file
            .metadata()
            .map(|m| m.permissions().mode())
            .map_err(|e| CliError::Usage(format!("cannot read {path}: {e}")))?;
        if mode & 0o077 != 0 {
            return Err(CliError::Usage(format!(
                "{path} may be read by others (mode {:o}); `chmod 600 {path}` or name a new file",
                mode & 0o777
            )));
        }
        emptied(file, path, append)
    }
    #[cfg(not(unix))]
    {
        let file = options
            .open(path)
            .map_err(|e| CliError::Usage(format!("cannot open {path}: {e}")))?;
        emptied(file, path, append)
    }
}

fn emptied(file: std::fs::File, path: &str, append: bool) -> Result<std::fs::File> {
    if !append {
        file.set_len(0)
            .map_err(|e| CliError::Usage(format!("cannot write {path}: {e}")))?;
    }
    Ok(file)
}

/// Reads what the org holds and plans the difference.
fn plan_from_registry(client: &Client, desired: &file::Desired, prune: bool) -> Result<Plan> {
    client.require_token()?;
    let api = client.inner();
    let me = client.block_on(api.whoami())?;
    // The org every read is narrowed to: the file's, or the org token's own.
    let org: Option<OrgId> =
        match (&me.role, &desired.org_id, &me.org_id) {
            (Role::Platform, None, _) => return Err(CliError::Usage(
                "the platform admin token acts on every org: set `org_id:` at the top of the file \
                 (or use an org token)"
                    .into(),
            )),
            (Role::Platform, Some(org), _) => Some(org.clone()),
            (_, Some(named), Some(own)) if named != own => {
                return Err(CliError::Usage(format!(
                    "the file's org_id is {named}, but the token belongs to {own}"
                )))
            }
            (_, _, own) => own.clone(),
        };
    if let Some(org) = &org {
        // 404 org_not_found before anything is planned.
        client.block_on(api.get_org(org))?;
    }
    let agents = client.block_on(api.all_agents(&AgentFilter {
        org_id: org.clone().filter(|_| me.role == Role::Platform),
        ..AgentFilter::default()
    }))?;
    let delegations = client.block_on(api.all_delegations(&DelegationFilter {
        status: Some("active".into()),
        org_id: org.clone().filter(|_| me.role == Role::Platform),
        ..DelegationFilter::default()
    }))?;
    let webhooks = client
        .block_on(api.all_webhooks())?
        .into_iter()
        .filter(|w| org.as_ref().is_none_or(|o| &w.org_id == o))
        .collect();
    let current = Current {
        agents: agents
            .into_iter()
            .filter(|a| org.as_ref().is_none_or(|o| &a.org_id == o))
            .collect(),
        delegations,
        webhooks,
    };
    plan::plan(desired, &current, now(), prune).map_err(|conflicts| {
        let lines: Vec<String> = conflicts
            .iter()
            .map(|c| format!("  {}: {} ({})", c.path, c.message, c.code))
            .collect();
        CliError::Api {
            code: conflicts
                .first()
                .map_or("invalid_transition", |c| c.code)
                .to_owned(),
            message: format!(
                "the file asks for what the registry cannot do from where it stands; nothing was changed:\n{}\n",
                lines.join("\n")
            ),
            field: conflicts.first().map(|c| c.path.clone()),
            body: None,
        }
    })
}

fn plan_json(plan: &Plan) -> Value {
    let (create, change, remove) = plan.counts();
    json!({
        "org_id": plan.org_id,
        "changes": plan.changes,
        "unmanaged": plan.unmanaged,
        "summary": { "create": create, "change": change, "remove": remove },
    })
}

/// Where the secrets of new agents and webhooks go.
struct Secrets<'a> {
    file: Option<(String, std::fs::File)>,
    out: &'a Output,
    /// What was shown on standard output (for the `--json` report).
    shown: Vec<Value>,
}

impl<'a> Secrets<'a> {
    /// Opens `--secrets-out` before anything is created: a secret must never be made with
    /// nowhere to put it.
    fn open(path: Option<&str>, out: &'a Output) -> Result<Secrets<'a>> {
        let file = match path {
            Some(path) => Some((path.to_owned(), private_file(path, true)?)),
            None => None,
        };
        Ok(Secrets {
            file,
            out,
            shown: Vec::new(),
        })
    }

    fn keep(&mut self, record: Value, label: &str) -> Result<()> {
        match &mut self.file {
            Some((path, file)) => {
                let line = format!("{record}\n");
                file.write_all(line.as_bytes())
                    .and_then(|()| file.sync_data())
                    .map_err(|e| {
                        CliError::Usage(format!(
                            "cannot write the secret to {path} ({e}); it was: {record}"
                        ))
                    })?;
                if !self.out.is_json() {
                    self.out.text(&format!("    {label}: written to {path}"));
                }
            }
            None => {
                if !self.out.is_json() {
                    let secret = record
                        .get("api_key")
                        .or_else(|| record.get("secret"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    self.out
                        .text(&format!("    {label} (shown once, store it now): {secret}"));
                }
                self.shown.push(record);
            }
        }
        Ok(())
    }
}

fn etag(version: i64) -> Option<String> {
    Some(format!("\"{version}\""))
}

/// Applies the plan in order; stops at the first failure.
fn execute(
    client: &Client,
    out: &Output,
    plan: &Plan,
    secrets: &mut Secrets<'_>,
    applied: &mut Vec<Value>,
) -> Result<()> {
    let api = client.inner();
    let mut created: Vec<(String, AgentId)> = Vec::new();
    let done = |line: String| {
        if !out.is_json() {
            out.text(&format!("done: {line}"));
        }
    };
    for change in &plan.changes {
        let line = show::change_line(change);
        let mut record = serde_json::to_value(change).unwrap_or(Value::Null);
        match change {
            Change::CreateAgent { name, body } => {
                let registered = client.block_on(api.register_agent(body))?;
                let agent_id = registered.agent.agent_id.clone();
                done(format!("{line}: {agent_id}"));
                record["agent_id"] = json!(agent_id);
                secrets.keep(
                    json!({
                        "kind": "agent_api_key",
                        "name": name,
                        "agent_id": agent_id,
                        "api_key": registered.api_key,
                    }),
                    &format!("API key of {name:?}"),
                )?;
                created.push((name.clone(), agent_id));
            }
            Change::UpdateAgent {
                name,
                agent_id,
                if_match,
                patch,
                ..
            } => {
                let updated = client
                    .block_on(api.update_agent(agent_id, patch, etag(*if_match)))
                    .map_err(|e| conflict(e, name, agent_id, *if_match))?;
                done(format!("{line}: now version {}", updated.version));
                record["version"] = json!(updated.version);
            }
            Change::SetStatus {
                name,
                agent_id,
                to,
                if_match,
                reason,
                ..
            } => {
                let changed = client
                    .block_on(api.set_status(agent_id, *to, Some(reason), etag(*if_match)))
                    .map_err(|e| conflict(e, name, agent_id, *if_match))?;
                done(format!("{line}: now version {}", changed.version));
                record["version"] = json!(changed.version);
            }
            Change::CreateWebhook {
                url,
                events,
                description,
                enabled,
            } => {
                let mut body = json!({ "url": url, "events": events, "description": description });
                if let Some(org) = &plan.org_id {
                    body["org_id"] = json!(org);
                }
                let created_hook = client.send(Call::post(&["v1", "webhooks"]).json(body))?;
                let webhook_id = created_hook
                    .get("webhook_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if !enabled {
                    client
                        .block_on(api.update_webhook(&webhook_id, &json!({ "enabled": false })))?;
                }
                done(format!("{line}: {webhook_id}"));
                record["webhook_id"] = json!(webhook_id);
                secrets.keep(
                    json!({
                        "kind": "webhook_secret",
                        "url": url,
                        "webhook_id": webhook_id,
                        "secret": created_hook.get("secret").cloned().unwrap_or(Value::Null),
                    }),
                    &format!("Signing secret of {url}"),
                )?;
            }
            Change::UpdateWebhook {
                webhook_id, patch, ..
            } => {
                client.block_on(api.update_webhook(webhook_id, &Value::Object(patch.clone())))?;
                done(line);
            }
            Change::DeleteWebhook { webhook_id, .. } => {
                client.block_on(api.delete_webhook(webhook_id))?;
                done(line);
            }
            Change::CreateDelegation {
                delegator,
                delegatee,
                scopes,
                ttl_seconds,
                max_depth,
            } => {
                let resolve = |party: &plan::Party| {
                    party
                        .agent_id
                        .clone()
                        .or_else(|| {
                            created
                                .iter()
                                .find(|(name, _)| *name == party.name)
                                .map(|(_, id)| id.clone())
                        })
                        .ok_or_else(|| {
                            CliError::Usage(format!(
                                "agent {:?} of a grant was neither found nor created",
                                party.name
                            ))
                        })
                };
                let (from, to) = (resolve(delegator)?, resolve(delegatee)?);
                let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                let grant = client.block_on(api.create_delegation(
                    &from,
                    &to,
                    &scopes,
                    *ttl_seconds,
                    *max_depth,
                ))?;
                done(format!("{line}: {}", grant.delegation_id));
                record["delegation_id"] = json!(grant.delegation_id);
            }
            Change::RevokeDelegation { delegation_id, .. } => {
                client.block_on(api.revoke_delegation(delegation_id))?;
                done(line);
            }
        }
        applied.push(record);
    }
    Ok(())
}

/// A `412` under the plan's `If-Match`: someone changed the agent after the plan was made.
fn conflict(err: vouch_client::Error, name: &str, agent_id: &AgentId, version: i64) -> CliError {
    match err {
        vouch_client::Error::Api { status: 412, code, .. } => CliError::Api {
            code,
            message: format!(
                "agent {name:?} ({agent_id}) changed after the plan was made (it read version {version}); \
                 nothing was overwritten. Run `vouch apply` again to plan from the registry as it is now"
            ),
            field: None,
            body: None,
        },
        other => other.into(),
    }
}
