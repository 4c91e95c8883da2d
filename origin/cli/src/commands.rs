//! One function per subcommand: build the call, send it, print the answer.

use std::io::{self, Read, Write};

use serde_json::{json, Map, Value};
use vouch_client::Method;
use vouch_core::Status;

use crate::args::{
    AgentsCommand, AuditCommand, Cli, Command, DelegationsCommand, EventsCommand, KeysCommand,
    ListArgs, OrgsCommand, PageArgs, RegisterArgs, StatusArgs, TokensCommand, WebhooksCommand,
};
use crate::client::{Call, Client, MERGE_PATCH};
use crate::error::{CliError, Result};
use crate::render;

/// Where a command's output goes: human tables, or the raw JSON body with `--json`.
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    /// Whether `--json` asked for the raw JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `text` on standard output (a closed pipe is not an error worth reporting).
    pub fn text(&self, text: &str) {
        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "{}", text.trim_end_matches('\n'));
    }

    /// Prints `value` as pretty JSON on standard output.
    pub fn json(&self, value: &Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
        self.text(&text);
    }

    /// The raw body with `--json`, else what `human` makes of it.
    pub fn show(&self, body: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            self.json(body);
        } else {
            self.text(&human(body));
        }
    }
}

pub fn run(cli: &Cli, out: &Output) -> Result<()> {
    let client = Client::new(&cli.url, cli.token.clone())?;
    match &cli.command {
        Command::Orgs(cmd) => orgs(&client, out, cmd),
        Command::Tokens(cmd) => tokens(&client, out, cmd),
        Command::Agents(cmd) => agents(&client, out, cmd),
        Command::Audit(cmd) => audit(&client, out, cmd),
        Command::Receipts(cmd) => crate::receipts::run(&client, out, cmd),
        Command::DecisionKey => crate::receipts::new_key(out),
        Command::Delegations(cmd) => delegations(&client, out, cmd),
        Command::Webhooks(cmd) => webhooks(&client, out, cmd),
        Command::Partners(cmd) => crate::partners::run(&client, out, cmd),
        Command::Events(EventsCommand::Tail {
            types,
            last_event_id,
            count,
        }) => tail(&client, out, types, last_event_id.clone(), *count),
        Command::Keys(KeysCommand::Rotate) => {
            let rotated = client.send(Call::post(&["v1", "keys", "rotate"]))?;
            out.show(&rotated, |r| {
                format!(
                    "Key {} signs from {}; the previous key stays in the JWKS until its tokens expire, \
                     and key {} stands by.",
                    str_field(r, "kid"),
                    str_field(r, "signs_from"),
                    str_field(r, "standby_kid")
                )
            });
            Ok(())
        }
        Command::Keys(KeysCommand::List) => {
            let list = client.send(Call::get(&["v1", "keys"]))?;
            out.show(&list, |list| {
                let items = list["data"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                render::columns(
                    items,
                    &[
                        ("KID", "kid"),
                        ("STATE", "state"),
                        ("SIGNS FROM", "signs_from"),
                        ("PUBLISHED UNTIL", "publish_until"),
                        ("WITHDRAWN", "withdrawn_at"),
                    ],
                )
            });
            Ok(())
        }
        Command::Keys(KeysCommand::Withdraw { kid, reason }) => {
            let body = match reason {
                Some(reason) => json!({ "reason": reason }),
                None => json!({}),
            };
            let done = client.send(Call::post(&["v1", "keys", kid, "withdraw"]).json(body))?;
            out.show(&done, |d| {
                format!(
                    "Key {} is withdrawn: its tokens are refused everywhere within seconds. Key {} signs.",
                    str_field(d, "kid"),
                    str_field(d, "signing_kid")
                )
            });
            Ok(())
        }
        Command::Apply(args) => crate::apply::run(&client, out, args),
        Command::Token(args) => {
            let mut form = vec![
                ("grant_type", "client_credentials"),
                ("client_id", args.agent.as_str()),
                ("client_secret", args.api_key.as_str()),
            ];
            if let Some(scope) = &args.scope {
                form.push(("scope", scope));
            }
            if let Some(audience) = &args.audience {
                form.push(("audience", audience));
            }
            let issued = client.token_request(&form)?;
            // The bare token by default, so `$(vouch token …)` is usable in a script.
            out.show(&issued, |t| str_field(t, "access_token"));
            Ok(())
        }
    }
}

const ORG_FIELDS: [&str; 6] = [
    "org_id",
    "name",
    "slug",
    "created_at",
    "frozen_at",
    "frozen_reason",
];

fn orgs(client: &Client, out: &Output, cmd: &OrgsCommand) -> Result<()> {
    match cmd {
        OrgsCommand::Create { name, slug } => {
            let org = client
                .send(Call::post(&["v1", "orgs"]).json(json!({ "name": name, "slug": slug })))?;
            out.show(&org, |org| {
                format!(
                    "Created organization {}.\n{}",
                    str_field(org, "org_id"),
                    render::object(org, &ORG_FIELDS)
                )
            });
        }
        OrgsCommand::Show { org_id } => {
            let org = client.send(Call::get(&["v1", "orgs", org_id]))?;
            out.show(&org, |org| render::object(org, &ORG_FIELDS));
        }
        OrgsCommand::Freeze { org_id, reason } => {
            let body = match reason {
                Some(reason) => json!({ "reason": reason }),
                None => json!({}),
            };
            let done = client.send(Call::post(&["v1", "orgs", org_id, "freeze"]).json(body))?;
            out.show(&done, |d| {
                format!(
                    "Org {} is frozen: {} agents suspended, {} grants revoked.",
                    str_field(d, "org_id"),
                    d["agents"].as_array().map_or(0, Vec::len),
                    str_field(d, "grants_revoked")
                )
            });
        }
        OrgsCommand::Unfreeze { org_id } => {
            let done = client.send(Call::post(&["v1", "orgs", org_id, "unfreeze"]))?;
            out.show(&done, |d| {
                format!(
                    "Org {} is unfrozen: {} agents active again (their grants stay revoked).",
                    str_field(d, "org_id"),
                    d["agents"].as_array().map_or(0, Vec::len)
                )
            });
        }
    }
    Ok(())
}

const DELEGATION_FIELDS: [&str; 10] = [
    "delegation_id",
    "status",
    "delegator",
    "delegatee",
    "scopes",
    "max_depth",
    "org_id",
    "created_at",
    "expires_at",
    "revoked_at",
];

fn delegations(client: &Client, out: &Output, cmd: &DelegationsCommand) -> Result<()> {
    let grant = match cmd {
        DelegationsCommand::Create {
            delegator,
            delegatee,
            scopes,
            ttl_seconds,
            max_depth,
        } => client.send(Call::post(&["v1", "delegations"]).json(json!({
            "delegator": delegator,
            "delegatee": delegatee,
            "scopes": scopes,
            "ttl_seconds": ttl_seconds,
            "max_depth": max_depth,
        })))?,
        DelegationsCommand::Show { delegation_id } => {
            client.send(Call::get(&["v1", "delegations", delegation_id]))?
        }
        DelegationsCommand::Revoke { delegation_id } => client.send(Call::new(
            Method::DELETE,
            &["v1", "delegations", delegation_id],
        ))?,
    };
    out.show(&grant, |g| render::object(g, &DELEGATION_FIELDS));
    Ok(())
}

const WEBHOOK_FIELDS: [&str; 11] = [
    "webhook_id",
    "org_id",
    "url",
    "events",
    "status",
    "disabled_reason",
    "description",
    "last_success_at",
    "previous_secret_expires_at",
    "created_at",
    "updated_at",
];

fn webhooks(client: &Client, out: &Output, cmd: &WebhooksCommand) -> Result<()> {
    let path = |id: &str| vec!["v1".to_owned(), "webhooks".to_owned(), id.to_owned()];
    let toggle = |id: &str, enabled: bool| {
        Call::new(Method::PATCH, &path(id)).json(json!({ "enabled": enabled }))
    };
    let hook = match cmd {
        WebhooksCommand::Create {
            endpoint,
            events,
            description,
            org,
        } => {
            let mut body = json!({ "url": endpoint, "events": events });
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(org) = org {
                body["org_id"] = json!(org);
            }
            let created = client.send(Call::post(&["v1", "webhooks"]).json(body))?;
            out.show(&created, |created| {
                let (public, secret) = split_secret(created, "secret");
                format!(
                    "Created webhook {}.\n{}\n\n{}",
                    str_field(created, "webhook_id"),
                    render::object(&public, &WEBHOOK_FIELDS),
                    render::secret("Signing secret", &secret)
                )
            });
            return Ok(());
        }
        WebhooksCommand::List { page } => {
            let list = client.send(paged(Call::get(&["v1", "webhooks"]), page))?;
            out.show(&list, |list| {
                let table = |items: &[Value]| {
                    render::columns(
                        items,
                        &[
                            ("WEBHOOK ID", "webhook_id"),
                            ("URL", "url"),
                            ("EVENTS", "events"),
                            ("STATUS", "status"),
                            ("LAST SUCCESS", "last_success_at"),
                        ],
                    )
                };
                list_text(list, "No webhooks.", table, "vouch webhooks list", page)
            });
            return Ok(());
        }
        WebhooksCommand::Deliveries { webhook_id, page } => {
            let mut segments = path(webhook_id);
            segments.push("deliveries".into());
            let list = client.send(paged(Call::get(&segments), page))?;
            out.show(&list, |list| {
                let base = format!("vouch webhooks deliveries {}", shell_word(webhook_id));
                list_text(list, "No deliveries.", render::deliveries, &base, page)
            });
            return Ok(());
        }
        WebhooksCommand::Redeliver {
            webhook_id,
            event_id,
        } => {
            let mut segments = path(webhook_id);
            segments.extend(["deliveries".into(), event_id.clone(), "redeliver".into()]);
            let delivery = client.send(Call::post(&segments))?;
            out.show(&delivery, |d| {
                format!(
                    "Event {} will be sent to webhook {} again now.",
                    str_field(d, "event_id"),
                    str_field(d, "webhook_id")
                )
            });
            return Ok(());
        }
        WebhooksCommand::RotateSecret {
            webhook_id,
            grace_period_seconds,
        } => {
            let mut segments = path(webhook_id);
            segments.extend(["secret".into(), "rotate".into()]);
            let mut body = json!({});
            if let Some(grace) = grace_period_seconds {
                body["grace_period_seconds"] = json!(grace);
            }
            let rotated = client.send(Call::post(&segments).json(body))?;
            out.show(&rotated, |rotated| {
                let (public, secret) = split_secret(rotated, "secret");
                format!(
                    "Rotated the signing secret of webhook {}.\n{}\n\n{}",
                    str_field(rotated, "webhook_id"),
                    render::object(&public, &["webhook_id", "previous_secret_expires_at"]),
                    render::secret("New signing secret", &secret)
                )
            });
            return Ok(());
        }
        WebhooksCommand::Delete { webhook_id } => {
            client.send(Call::new(Method::DELETE, &path(webhook_id)))?;
            let gone = json!({ "webhook_id": webhook_id, "deleted": true });
            out.show(&gone, |_| format!("Deleted webhook {webhook_id}."));
            return Ok(());
        }
        WebhooksCommand::Show { webhook_id } => client.send(Call::get(&path(webhook_id)))?,
        WebhooksCommand::Enable { webhook_id } => client.send(toggle(webhook_id, true))?,
        WebhooksCommand::Disable { webhook_id } => client.send(toggle(webhook_id, false))?,
    };
    out.show(&hook, |h| render::object(h, &WEBHOOK_FIELDS));
    Ok(())
}

/// `vouch events tail`: prints each event of the stream as it comes (one JSON envelope per
/// line with `--json`), reconnecting after the last one seen when the stream drops.
fn tail(
    client: &Client,
    out: &Output,
    types: &[String],
    mut last: Option<String>,
    count: Option<u64>,
) -> Result<()> {
    let mut printed = 0;
    let mut connected = false;
    // The wait before asking again while the credential holds too many streams (`429`).
    let mut backoff = std::time::Duration::from_secs(1);
    loop {
        if count.is_some_and(|n| printed >= n) {
            return Ok(());
        }
        let call = Call::get(&["v1", "events", "stream"])
            .query("types", (!types.is_empty()).then(|| types.join(",")));
        let response = match client.open_stream(call, last.as_deref()) {
            Ok(response) => response,
            // Once streaming worked, a restart of the origin is waited out.
            Err(CliError::Unreachable { .. }) if connected => {
                std::thread::sleep(std::time::Duration::from_secs(1));
                continue;
            }
            // Another stream of this credential may close soon (or its slot is freed once
            // the origin notices a dropped connection): ask again, waiting longer each time.
            Err(CliError::Api { code, .. }) if code == "too_many_streams" => {
                eprintln!(
                    "too many streams open for this credential; retrying in {}s",
                    backoff.as_secs()
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
                continue;
            }
            Err(e) => return Err(e),
        };
        connected = true;
        backoff = std::time::Duration::from_secs(1);
        // A stream silent for 45 s (no keep-alive) ends the loop: it reopens.
        for event in response {
            if event.event == "stream.opened" {
                // Where the stream starts: resume from there if it drops before any event.
                last = event.id.or(last);
                continue;
            }
            if event.data.is_empty() {
                continue;
            }
            let envelope: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            if out.json {
                out.text(&envelope.to_string());
            } else {
                out.text(&event_line(&envelope));
            }
            last = event.id.or(last);
            printed += 1;
            if count.is_some_and(|n| printed >= n) {
                return Ok(());
            }
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// One event as a line: time, type (and typed name), what it is about, event id.
fn event_line(envelope: &Value) -> String {
    let data = &envelope["data"];
    let about = [
        &data["agent_id"],
        &data["passport"]["agent_id"],
        &data["delegation_id"],
        &data["kid"],
        &data["webhook_id"],
        &data["webhook"]["webhook_id"],
    ]
    .into_iter()
    .find_map(Value::as_str)
    .unwrap_or("-");
    let typed = data["typed_event"]
        .as_str()
        .map(|t| format!(" ({t})"))
        .unwrap_or_default();
    format!(
        "{}  {}{typed}  {about}  {}",
        str_field(envelope, "created_at"),
        str_field(envelope, "type"),
        str_field(envelope, "id"),
    )
}

fn tokens(client: &Client, out: &Output, cmd: &TokensCommand) -> Result<()> {
    let (org, role, name) = match cmd {
        TokensCommand::Create { org, role, name } => (org, role, name),
        TokensCommand::Revoke { org, token_id } => {
            let revoked = client.send(Call::new(
                Method::DELETE,
                &["v1", "orgs", org, "tokens", token_id],
            ))?;
            out.show(&revoked, |r| {
                format!(
                    "Token {} is revoked; it stopped working at once.",
                    str_field(r, "token_id")
                )
            });
            return Ok(());
        }
    };
    let created = client.send(
        Call::post(&["v1", "orgs", org, "tokens"])
            .json(json!({ "role": role.as_str(), "name": name })),
    )?;
    out.show(&created, |created| {
        let (public, secret) = split_secret(created, "token");
        format!(
            "Created {} token {}.\n{}\n\n{}",
            str_field(created, "role"),
            str_field(created, "token_id"),
            render::object(
                &public,
                &["token_id", "org_id", "role", "name", "created_at"]
            ),
            render::secret("Admin token", &secret)
        )
    });
    Ok(())
}

fn agents(client: &Client, out: &Output, cmd: &AgentsCommand) -> Result<()> {
    match cmd {
        AgentsCommand::Register(args) => register(client, out, args),
        AgentsCommand::List(args) => list_agents(client, out, args),
        AgentsCommand::Show { agent_id } => {
            let passport = client.send(Call::get(&["v1", "agents", agent_id]))?;
            out.show(&passport, render::passport);
            Ok(())
        }
        AgentsCommand::Update {
            agent_id,
            file,
            if_match,
        } => {
            let patch = read_json(file)?;
            let etag = if_match.as_deref().map(etag_of).transpose()?;
            let passport = client.send(
                Call::new(Method::PATCH, &["v1", "agents", agent_id])
                    .body_as(MERGE_PATCH, patch)
                    .if_match(etag),
            )?;
            out.show(&passport, |p| {
                format!(
                    "Updated agent {} (now version {}).\n{}",
                    str_field(p, "agent_id"),
                    str_field(p, "version"),
                    render::passport(p)
                )
            });
            Ok(())
        }
        AgentsCommand::Activate(args) => set_status(client, out, args, Status::Active),
        AgentsCommand::Suspend(args) => set_status(client, out, args, Status::Suspended),
        AgentsCommand::Revoke(args) => set_status(client, out, args, Status::Revoked),
        AgentsCommand::RevokeTokens { agent_id, reason } => {
            let body = match reason {
                Some(reason) => json!({ "reason": reason }),
                None => json!({}),
            };
            let revoked = client
                .send(Call::post(&["v1", "agents", agent_id, "tokens", "revoke"]).json(body))?;
            out.show(&revoked, |revoked| {
                format!(
                    "Tokens of agent {} issued before {} no longer work.\n{}",
                    str_field(revoked, "agent_id"),
                    str_field(revoked, "tokens_not_before"),
                    render::object(revoked, &["agent_id", "tokens_not_before", "version"])
                )
            });
            Ok(())
        }
        AgentsCommand::RotateKey { agent_id } => {
            let rotated = client.send(Call::post(&["v1", "agents", agent_id, "keys"]))?;
            out.show(&rotated, |rotated| {
                let (public, secret) = split_secret(rotated, "api_key");
                format!(
                    "Rotated the API key of agent {}; the previous key no longer works.\n{}\n\n{}",
                    str_field(rotated, "agent_id"),
                    render::object(&public, &["agent_id", "rotated_at"]),
                    render::secret("New API key", &secret)
                )
            });
            Ok(())
        }
        AgentsCommand::Import { oap, org } => {
            let document = read_json(oap)?;
            let registered = client.send(
                Call::post(&["v1", "agents", "import", "oap"])
                    .query("org_id", org.as_ref())
                    .json(document),
            )?;
            out.show(&registered, |registered| {
                let agent = registered.get("agent").cloned().unwrap_or(Value::Null);
                let key = str_field(registered, "api_key");
                format!(
                    "Imported OAP passport {} as agent {} ({}).\n{}\n\n{}",
                    str_field(&agent, "oap_passport_id"),
                    str_field(&agent, "agent_id"),
                    str_field(&agent, "status"),
                    render::passport(&agent),
                    render::secret("API key", &key)
                )
            });
            Ok(())
        }
        AgentsCommand::Export { agent_id, .. } => {
            let document = client.send(Call::get(&["v1", "agents", agent_id, "oap"]))?;
            // The document itself, as JSON, whatever the output format: it is meant for files.
            out.show(&document, |d| {
                serde_json::to_string_pretty(d).unwrap_or_default()
            });
            Ok(())
        }
        AgentsCommand::Events { agent_id, page } => {
            let list = client.send(paged(
                Call::get(&["v1", "agents", agent_id, "events"]),
                page,
            ))?;
            out.show(&list, |list| {
                let base = format!("vouch agents events {}", shell_word(agent_id));
                list_text(list, "No events.", render::events, &base, page)
            });
            Ok(())
        }
    }
}

fn register(client: &Client, out: &Output, args: &RegisterArgs) -> Result<()> {
    let body = registration(args)?;
    let registered = client.send(Call::post(&["v1", "agents"]).json(body))?;
    out.show(&registered, |registered| {
        let agent = registered.get("agent").cloned().unwrap_or(Value::Null);
        let key = str_field(registered, "api_key");
        format!(
            "Registered agent {} ({}).\n{}\n\n{}",
            str_field(&agent, "agent_id"),
            str_field(&agent, "status"),
            render::passport(&agent),
            render::secret("API key", &key)
        )
    });
    Ok(())
}

/// The registration body: the file (with `--org` / `--status` overriding it), or the flags.
fn registration(args: &RegisterArgs) -> Result<Value> {
    let mut body = match &args.file {
        Some(path) => match read_json(path)? {
            Value::Object(map) => map,
            _ => {
                return Err(CliError::Usage(format!(
                    "{} must hold a JSON object (a passport)",
                    describe_path(path)
                )))
            }
        },
        None => from_flags(args),
    };
    if let Some(org) = &args.org {
        body.insert("org_id".into(), json!(org));
    }
    if let Some(status) = args.status {
        body.insert("status".into(), json!(status.as_str()));
    }
    Ok(Value::Object(body))
}

fn from_flags(args: &RegisterArgs) -> Map<String, Value> {
    let mut body = Map::new();
    let mut put = |key: &str, value: Option<&String>| {
        if let Some(value) = value {
            body.insert(key.to_owned(), json!(value));
        }
    };
    put("name", args.name.as_ref());
    put("role", args.role.as_ref());
    put("description", args.description.as_ref());
    put("assurance_level", args.assurance_level.as_ref());
    put("tier", args.tier.as_ref());
    if args.owner_name.is_some() || args.owner_contact.is_some() {
        body.insert(
            "owner".into(),
            json!({
                "display_name": args.owner_name.clone().unwrap_or_default(),
                "contact": args.owner_contact.clone().unwrap_or_default(),
            }),
        );
    }
    if !args.capabilities.is_empty() {
        let caps: Vec<Value> = args
            .capabilities
            .iter()
            .map(|id| json!({ "id": id }))
            .collect();
        body.insert("capabilities".into(), Value::Array(caps));
    }
    if !args.regions.is_empty() {
        body.insert("regions".into(), json!(args.regions));
    }
    body
}

fn list_agents(client: &Client, out: &Output, args: &ListArgs) -> Result<()> {
    let call = Call::get(&["v1", "agents"])
        .query("status", args.status.map(Status::as_str))
        .query("capability", args.capability.as_ref())
        .query("region", args.region.as_ref())
        .query("q", args.q.as_ref())
        .query("org_id", args.org.as_ref());
    let list = client.send(paged(call, &args.page))?;
    out.show(&list, |list| {
        let mut base = "vouch agents list".to_owned();
        let filters = [
            ("--status", args.status.map(|s| s.as_str().to_owned())),
            ("--capability", args.capability.clone()),
            ("--region", args.region.clone()),
            ("--q", args.q.clone()),
            ("--org", args.org.clone()),
        ];
        for (flag, value) in filters {
            if let Some(value) = value {
                base.push_str(&format!(" {flag} {}", shell_word(&value)));
            }
        }
        list_text(list, "No agents match.", render::agents, &base, &args.page)
    });
    Ok(())
}

fn set_status(client: &Client, out: &Output, args: &StatusArgs, status: Status) -> Result<()> {
    let mut body = json!({ "status": status.as_str() });
    if let Some(reason) = &args.reason {
        body["reason"] = json!(reason);
    }
    let changed = client
        .send(Call::new(Method::PUT, &["v1", "agents", &args.agent_id, "status"]).json(body))?;
    out.show(&changed, |changed| {
        format!(
            "Agent {}: {} → {} (version {}).\n{}",
            str_field(changed, "agent_id"),
            str_field(changed, "previous_status"),
            str_field(changed, "new_status"),
            str_field(changed, "version"),
            render::object(
                changed,
                &[
                    "agent_id",
                    "previous_status",
                    "new_status",
                    "changed_at",
                    "version"
                ]
            )
        )
    });
    Ok(())
}

fn audit(client: &Client, out: &Output, cmd: &AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Verify {
            org,
            checkpoint,
            edge,
            key,
        } => crate::audit::verify(
            client,
            out,
            org.as_ref(),
            &crate::audit::Published {
                checkpoint: checkpoint.as_deref(),
                edge: edge.as_deref(),
                key: key.as_deref(),
            },
        ),
        AuditCommand::List { org, page } => {
            let list = client.send(paged(
                Call::get(&["v1", "audit"]).query("org_id", org.as_ref()),
                page,
            ))?;
            out.show(&list, |list| {
                let mut base = "vouch audit list".to_owned();
                if let Some(org) = org {
                    base.push_str(&format!(" --org {}", shell_word(org)));
                }
                list_text(list, "No events.", render::events, &base, page)
            });
            Ok(())
        }
    }
}

pub(crate) fn paged(call: Call, page: &PageArgs) -> Call {
    call.query("limit", page.limit)
        .query("cursor", page.cursor.as_ref())
}

/// A list page as a table (or `empty`), with a hint for the next page.
pub(crate) fn list_text(
    list: &Value,
    empty: &str,
    table: fn(&[Value]) -> String,
    command: &str,
    page: &PageArgs,
) -> String {
    let items = list
        .get("data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut text = if items.is_empty() {
        empty.to_owned()
    } else {
        table(items)
    };
    if let Some(cursor) = list.get("next_cursor").and_then(Value::as_str) {
        let limit = page
            .limit
            .map(|l| format!(" --limit {l}"))
            .unwrap_or_default();
        text.push_str(&format!(
            "\nMore results (next cursor {cursor}); next page:\n  {command}{limit} --cursor {}",
            shell_word(cursor)
        ));
    }
    text
}

/// A copy of `object` without its secret `key`, and that secret.
pub(crate) fn split_secret(object: &Value, key: &str) -> (Value, String) {
    let mut public = object.clone();
    let secret = public
        .as_object_mut()
        .and_then(|map| map.remove(key))
        .map(|v| render::cell(&v))
        .unwrap_or_else(|| "(missing from the answer)".to_owned());
    (public, secret)
}

/// A field of an object as display text.
pub(crate) fn str_field(object: &Value, key: &str) -> String {
    object
        .get(key)
        .map(render::cell)
        .unwrap_or_else(|| "-".to_owned())
}

/// `"7"` from `7`, `"7"` or `*` for any version.
fn etag_of(raw: &str) -> Result<String> {
    let bare = raw.trim().trim_start_matches("W/").trim_matches('"');
    if bare == "*" {
        return Ok("*".to_owned());
    }
    if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CliError::Usage(format!(
            "--if-match takes the agent's version number (e.g. 7), not `{raw}`"
        )));
    }
    Ok(format!("\"{bare}\""))
}

fn describe_path(path: &str) -> String {
    if path == "-" {
        "standard input".to_owned()
    } else {
        path.to_owned()
    }
}

/// JSON from a file, or from standard input for `-`.
fn read_json(path: &str) -> Result<Value> {
    let text = if path == "-" {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read {path}: {e}")))?
    };
    serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{} is not valid JSON: {e}", describe_path(path))))
}

/// `value` as one shell word (quoted when it needs to be).
pub(crate) fn shell_word(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.,:/=@+".contains(&b));
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_a_version() {
        assert_eq!(etag_of("7").unwrap(), "\"7\"");
        assert_eq!(etag_of("\"12\"").unwrap(), "\"12\"");
        assert_eq!(etag_of("*").unwrap(), "*");
        assert!(etag_of("seven").is_err());
        assert!(etag_of("").is_err());
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("US-CA"), "US-CA");
        assert_eq!(shell_word("Acme bot"), "'Acme bot'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn flags_make_a_passport() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "vouch",
            "agents",
            "register",
            "--org",
            "org_1",
            "--name",
            "Bot",
            "--owner-name",
            "Team",
            "--owner-contact",
            "a@b.c",
            "--capability",
            "payments.refund",
            "--capability",
            "data.export",
            "--region",
            "US-NY",
            "--region",
            "US-CA",
            "--status",
            "active",
        ])
        .unwrap();
        let Command::Agents(AgentsCommand::Register(args)) = cli.command else {
            panic!("not a registration");
        };
        let body = registration(&args).unwrap();
        assert_eq!(
            body,
            json!({
                "org_id": "org_1",
                "name": "Bot",
                "owner": { "display_name": "Team", "contact": "a@b.c" },
                "capabilities": [{ "id": "payments.refund" }, { "id": "data.export" }],
                "regions": ["US-NY", "US-CA"],
                "status": "active",
            })
        );
    }
}
