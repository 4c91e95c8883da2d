#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `vouch apply` (registry as code, SPEC §20) end to end: the real `vouch` binary against a
//! real `vouch-origin serve`, on SQLite always and on PostgreSQL when VOUCH_TEST_POSTGRES_URL is
//! set. The registry file is the documented example (docs/examples/agents.yaml) pointed at the
//! test's org.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

mod support;

use support::origin::{free_port, Backend, Origin, ADMIN_TOKEN};

/// One test per case and backend: `sqlite::case` and `postgres::case`.
macro_rules! on_both_databases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $case() {
                    super::$case(super::Backend::Sqlite);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $case() {
                    super::$case(super::Backend::Postgres);
                }
            )*
        }
    };
}

on_both_databases!(registry_as_code, secrets_tokens_and_refusals);

/// The outcome of one `vouch` run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    args: String,
}

impl Run {
    #[track_caller]
    fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            code,
            "`vouch {}` should exit {code}:\n{}",
            self.args,
            self.describe()
        );
        self
    }

    #[track_caller]
    fn ok(self) -> Run {
        self.code(0)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("no JSON ({e}):\n{}", self.describe()))
    }

    /// The plan's change lines (`+ …`, `~ …`, `- …` at the start of a line).
    fn changes(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("+ ") || l.starts_with("~ ") || l.starts_with("- "))
            .collect()
    }

    fn describe(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `vouch --url <origin> --token <token> <args…>` in a clean environment.
fn vouch(origin: &Origin, token: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["--url", &origin.url, "--token", token])
        .args(args)
        .env_remove("VOUCH_URL")
        .env_remove("VOUCH_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: args.join(" "),
    }
}

/// The admin API called directly (the state `vouch apply` leaves, and concurrent edits).
struct Api {
    base: String,
    http: reqwest::blocking::Client,
}

impl Api {
    fn new(origin: &Origin) -> Api {
        Api {
            base: origin.url.clone(),
            http: reqwest::blocking::Client::new(),
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let res = req.send().unwrap();
        let status = res.status().as_u16();
        let text = res.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    #[track_caller]
    fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    #[track_caller]
    fn post(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.call(reqwest::Method::POST, path, Some(body));
        assert_eq!(status, 201, "POST {path}: {body}");
        body
    }

    fn org(&self, slug: &str) -> String {
        self.post("/v1/orgs", json!({ "name": slug, "slug": slug }))["org_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn token(&self, org: &str, role: &str) -> String {
        self.post(
            &format!("/v1/orgs/{org}/tokens"),
            json!({ "role": role, "name": role }),
        )["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The org's agents by name.
    fn agents(&self, org: &str) -> Vec<Value> {
        self.get(&format!("/v1/agents?org_id={org}&limit=500"))["data"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn agent(&self, org: &str, name: &str) -> Value {
        self.agents(org)
            .into_iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no agent {name:?} in {org}"))
    }

    fn grants(&self, org: &str, status: &str) -> Vec<Value> {
        self.get(&format!("/v1/delegations?org_id={org}&status={status}"))["data"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn webhooks(&self, org: &str) -> Vec<Value> {
        self.get("/v1/webhooks?limit=500")["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["org_id"] == org)
            .cloned()
            .collect()
    }
}

fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/agents.yaml");
    std::fs::read_to_string(path).unwrap()
}

/// The example file, in `org`, its webhook pointed at a local address.
fn example_in(org: &str, hook: &str) -> String {
    example()
        .replace("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71", org)
        .replace("https://hooks.acme.example/vouch", hook)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn registry_as_code(backend: Backend) {
    let Some(origin) = Origin::start(backend, &[("VOUCH_WEBHOOK_ALLOW_PRIVATE", "true")]) else {
        eprintln!("skipped: set VOUCH_TEST_POSTGRES_URL to run the Postgres half");
        return;
    };
    let api = Api::new(&origin);
    let org = api.org("registry-as-code");
    let hook = format!("http://127.0.0.1:{}/vouch", free_port());
    let dir = tempfile::tempdir().unwrap();
    let text = example_in(&org, &hook);
    let file = write(dir.path(), "agents.yaml", &text);

    // An empty org: everything is created, in the file's order; each secret shown once.
    let first = vouch(&origin, ADMIN_TOKEN, &["apply", "-f", s(&file)]).ok();
    assert_eq!(
        first.changes(),
        [
            "+ create agent \"Acme Support Bot\" (active)",
            "+ create agent \"Acme Refund Worker\" (active)",
            "+ create agent \"Acme Triage Bot (staging)\" (draft)",
            &format!(
                "+ create webhook {hook} (events agent.suspended, agent.revoked, passport.updated)"
            ),
            "+ create delegation \"Acme Support Bot\" (new) → \"Acme Refund Worker\" (new) [payments.refund] (ttl 86400 s, max depth 1)",
        ],
        "{}",
        first.describe()
    );
    assert!(first
        .stdout
        .contains("Plan: 5 to create, 0 to change, 0 to revoke or delete."));
    assert!(
        first.stdout.contains("Applied 5 changes."),
        "{}",
        first.stdout
    );
    assert_eq!(
        first.stdout.matches("vk_agent_").count(),
        3,
        "{}",
        first.stdout
    );
    assert_eq!(
        first.stdout.matches("whsec_").count(),
        1,
        "{}",
        first.stdout
    );
    // The file is never written to: no secret goes into it.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);

    let agents = api.agents(&org);
    assert_eq!(agents.len(), 3);
    let bot = api.agent(&org, "Acme Support Bot");
    let bot_id = bot["agent_id"].as_str().unwrap().to_owned();
    assert_eq!(
        (bot["status"].clone(), bot["version"].clone()),
        (json!("active"), json!(1))
    );
    assert_eq!(bot["limits"]["refund_usd_max_per_tx"], 100);
    assert_eq!(bot["regions"], json!(["US-NY", "US-CA"]));
    assert_eq!(
        api.agent(&org, "Acme Triage Bot (staging)")["status"],
        "draft"
    );
    let grants = api.grants(&org, "active");
    assert_eq!(grants.len(), 1, "{grants:#?}");
    assert_eq!(grants[0]["delegator"], bot_id.as_str());
    assert_eq!(grants[0]["scopes"], json!(["payments.refund"]));
    let hooks = api.webhooks(&org);
    assert_eq!(hooks.len(), 1);
    assert_eq!(
        hooks[0]["events"],
        json!(["agent.suspended", "agent.revoked", "passport.updated"])
    );
    assert_eq!(hooks[0]["description"], "Security on-call pager");

    // Again: nothing to do, exit 0, nothing sent (every version as it was).
    let again = vouch(&origin, ADMIN_TOKEN, &["apply", "-f", s(&file)]).ok();
    assert!(
        again.stdout.contains("No changes: the registry matches"),
        "{}",
        again.stdout
    );
    assert!(again.changes().is_empty() && !again.stdout.contains("vk_agent_"));
    vouch(
        &origin,
        ADMIN_TOKEN,
        &["apply", "-f", s(&file), "--detect-changes"],
    )
    .ok();
    let versions = |api: &Api| -> Vec<Value> {
        api.agents(&org)
            .iter()
            .map(|a| a["version"].clone())
            .collect()
    };
    assert_eq!(versions(&api), [json!(1), json!(1), json!(1)]);

    // One field edited: the plan shows exactly that difference and changes nothing.
    let edited = text.replacen(
        "refund_usd_max_per_tx: 100",
        "refund_usd_max_per_tx: 250",
        1,
    );
    std::fs::write(&file, &edited).unwrap();
    let plan = vouch(&origin, ADMIN_TOKEN, &["apply", "-f", s(&file), "--plan"]).ok();
    assert_eq!(
        plan.changes(),
        [format!(
            "~ update agent \"Acme Support Bot\" ({bot_id}, version 1)"
        )],
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("\n    ~ limits.refund_usd_max_per_tx: 100 → 250\n"),
        "{}",
        plan.stdout
    );
    assert!(plan
        .stdout
        .contains("Plan: 0 to create, 1 to change, 0 to revoke or delete."));
    let detected = vouch(
        &origin,
        ADMIN_TOKEN,
        &["apply", "-f", s(&file), "--detect-changes"],
    )
    .code(5);
    assert!(
        detected.stderr.contains("changes: the registry differs"),
        "{}",
        detected.stderr
    );
    let as_json = vouch(
        &origin,
        ADMIN_TOKEN,
        &["--json", "apply", "-f", s(&file), "--plan"],
    )
    .ok()
    .json();
    assert_eq!(
        as_json["changes"],
        json!([{
            "action": "update_agent",
            "name": "Acme Support Bot",
            "agent_id": bot_id,
            "if_match": 1,
            "patch": { "limits": { "refund_usd_max_per_tx": 250 } },
            "diff": [{ "path": "limits.refund_usd_max_per_tx", "old": 100, "new": 250 }],
        }])
    );
    assert_eq!(
        as_json["summary"],
        json!({ "create": 0, "change": 1, "remove": 0 })
    );
    let unchanged = api.agent(&org, "Acme Support Bot");
    assert_eq!(
        (
            unchanged["version"].clone(),
            unchanged["limits"]["refund_usd_max_per_tx"].clone()
        ),
        (json!(1), json!(100))
    );

    // A concurrent edit between the plan and the apply: the saved plan's If-Match refuses it
    // (412), the report says so, and the other edit is not overwritten.
    let saved = dir.path().join("plan.json");
    vouch(
        &origin,
        ADMIN_TOKEN,
        &["apply", "-f", s(&file), "--plan", "--out", s(&saved)],
    )
    .ok();
    assert_eq!(mode(&saved), 0o600);
    let (status, _) = api.call(
        reqwest::Method::PATCH,
        &format!("/v1/agents/{bot_id}"),
        Some(json!({ "role": "Tier-3 Support" })),
    );
    assert_eq!(status, 200);
    let refused = vouch(&origin, ADMIN_TOKEN, &["apply", "--from-plan", s(&saved)]).code(1);
    assert!(
        refused.stderr.contains("changed after the plan was made"),
        "{}",
        refused.describe()
    );
    assert!(
        refused.stderr.contains("version_mismatch"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stdout.contains("Stopped after 0 of 1 changes"),
        "{}",
        refused.stdout
    );
    let kept = api.agent(&org, "Acme Support Bot");
    assert_eq!(kept["role"], "Tier-3 Support");
    assert_eq!(kept["limits"]["refund_usd_max_per_tx"], 100);
    assert_eq!(kept["version"], 2);

    // A fresh plan sees the edit too; applying it makes only the differences, under If-Match.
    let applied = vouch(&origin, ADMIN_TOKEN, &["apply", "-f", s(&file)]).ok();
    assert_eq!(
        applied.changes(),
        [format!(
            "~ update agent \"Acme Support Bot\" ({bot_id}, version 2)"
        )]
    );
    assert!(
        applied
            .stdout
            .contains("    ~ role: \"Tier-3 Support\" → \"Tier-2 Support\""),
        "{}",
        applied.stdout
    );
    let updated = api.agent(&org, "Acme Support Bot");
    assert_eq!(
        (updated["version"].clone(), updated["role"].clone()),
        (json!(3), json!("Tier-2 Support"))
    );
    assert_eq!(updated["limits"]["refund_usd_max_per_tx"], 250);
    assert_eq!(
        updated["limits"]["refund_usd_daily_cap"], 1000,
        "the other limits stay"
    );
    let events = api.get(&format!("/v1/agents/{bot_id}/events"));
    let updates: Vec<&Value> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "passport.updated")
        .collect();
    assert_eq!(
        updates.len(),
        2,
        "the concurrent edit and the apply: {events:#}"
    );
    vouch(
        &origin,
        ADMIN_TOKEN,
        &["apply", "-f", s(&file), "--detect-changes"],
    )
    .ok();

    // A status in the file is applied under If-Match as well. A grant needs both parties
    // active, so a file that suspends the delegator and keeps its grant is refused whole.
    let suspended = edited.replacen("status: active", "status: suspended", 1);
    std::fs::write(&file, &suspended).unwrap();
    let needs_active = vouch(&origin, ADMIN_TOKEN, &["apply", "-f", s(&file)]).code(2);
    assert!(
        needs_active.stderr.contains(
            "delegations[0].delegator: agent `Acme Support Bot` is suspended in the file"
        ),
        "{}",
        needs_active.stderr
    );
    let (cut, rest) = suspended.split_once("delegations:").unwrap();
    let without_grant = format!("{cut}webhooks:{}", rest.split_once("webhooks:").unwrap().1);
    std::fs::write(&file, &without_grant).unwrap();
    let moved = vouch(&origin, ADMIN_TOKEN, &["apply", "-f", s(&file)]).ok();
    assert_eq!(
        moved.changes(),
        [format!(
            "~ suspend agent \"Acme Support Bot\" ({bot_id}, active → suspended)"
        )],
        "{}",
        moved.describe()
    );
    assert_eq!(api.agent(&org, "Acme Support Bot")["status"], "suspended");
    assert!(
        api.grants(&org, "active").is_empty(),
        "the grant died with its delegator"
    );
    // Back to the file that keeps it active: activated, and its grant granted again.
    std::fs::write(&file, &edited).unwrap();
    let back = vouch(&origin, ADMIN_TOKEN, &["apply", "-f", s(&file)]).ok();
    assert_eq!(
        back.changes(),
        [
            format!("~ activate agent \"Acme Support Bot\" ({bot_id}, suspended → active)"),
            "+ create delegation \"Acme Support Bot\" (".to_owned()
                + &bot_id
                + ") → \"Acme Refund Worker\" ("
                + grants[0]["delegatee"].as_str().unwrap()
                + ") [payments.refund] (ttl 86400 s, max depth 1)",
        ],
        "{}",
        back.describe()
    );
    assert_eq!(api.grants(&org, "active").len(), 1);

    // The file no longer names the staging bot, the grant or the webhook (and is JSON now).
    let mut document: Value = yaml_serde::from_str(&edited).unwrap();
    document["agents"].as_array_mut().unwrap().pop();
    document.as_object_mut().unwrap().remove("delegations");
    document.as_object_mut().unwrap().remove("webhooks");
    let smaller = write(dir.path(), "agents.json", &document.to_string());
    let kept = vouch(&origin, ADMIN_TOKEN, &["apply", "-f", s(&smaller)]).ok();
    assert!(kept.stdout.contains("No changes"), "{}", kept.stdout);
    assert!(kept
        .stdout
        .contains("left as they are (--prune revokes or deletes them)"));
    for needle in [
        "agent \"Acme Triage Bot (staging)\"",
        "delegation dlg_",
        &format!("webhook {hook}"),
    ] {
        assert!(kept.stdout.contains(needle), "{needle}:\n{}", kept.stdout);
    }
    assert_eq!(
        api.agent(&org, "Acme Triage Bot (staging)")["status"],
        "draft"
    );
    assert_eq!(api.webhooks(&org).len(), 1);
    assert_eq!(api.grants(&org, "active").len(), 1);

    let pruning = vouch(
        &origin,
        ADMIN_TOKEN,
        &["apply", "-f", s(&smaller), "--prune", "--plan"],
    )
    .ok();
    let lines = pruning.changes();
    assert_eq!(lines.len(), 3, "{}", pruning.stdout);
    assert!(
        lines[0].starts_with("- revoke delegation dlg_") && lines[0].ends_with(": not in the file")
    );
    assert!(lines[1].starts_with(&format!("- delete webhook {hook} (wh_")));
    assert!(lines[2].starts_with("- revoke agent \"Acme Triage Bot (staging)\" (ap_"));
    assert!(lines[2].ends_with("draft → revoked): not in the file"));
    assert_eq!(api.webhooks(&org).len(), 1, "--plan changes nothing");

    vouch(
        &origin,
        ADMIN_TOKEN,
        &["apply", "-f", s(&smaller), "--prune"],
    )
    .ok();
    let staging = api.agent(&org, "Acme Triage Bot (staging)");
    assert_eq!(staging["status"], "revoked");
    assert!(
        staging["status_reason"]
            .as_str()
            .unwrap()
            .contains("--prune"),
        "{staging}"
    );
    assert!(api.webhooks(&org).is_empty());
    assert!(api.grants(&org, "active").is_empty());
    assert_eq!(api.grants(&org, "revoked").len(), 2);
    let done = vouch(
        &origin,
        ADMIN_TOKEN,
        &["apply", "-f", s(&smaller), "--prune"],
    )
    .ok();
    assert!(
        done.stdout.contains("No changes") && !done.stdout.contains("left as they are"),
        "{}",
        done.stdout
    );
    vouch(
        &origin,
        ADMIN_TOKEN,
        &["apply", "-f", s(&smaller), "--prune", "--detect-changes"],
    )
    .ok();

    // A revoked agent stays revoked: a file that wants it back is refused whole, naming it.
    let revived = vouch(&origin, ADMIN_TOKEN, &["apply", "-f", s(&file)]).code(1);
    assert!(
        revived.stderr.contains("agents[2].status"),
        "{}",
        revived.stderr
    );
    assert!(
        revived.stderr.contains("invalid_transition"),
        "{}",
        revived.stderr
    );
}

fn secrets_tokens_and_refusals(backend: Backend) {
    let Some(origin) = Origin::start(backend, &[("VOUCH_WEBHOOK_ALLOW_PRIVATE", "true")]) else {
        eprintln!("skipped: set VOUCH_TEST_POSTGRES_URL to run the Postgres half");
        return;
    };
    let api = Api::new(&origin);
    let org = api.org("apply-secrets");
    let owner = api.token(&org, "owner");
    let dir = tempfile::tempdir().unwrap();
    let hook = format!("http://127.0.0.1:{}/hook", free_port());
    let agent = |name: &str| {
        format!(
            "  - name: {name}\n    owner: {{ display_name: Ops, contact: ops@acme.example }}\n    status: active\n    capabilities: [{{ id: tickets.read }}]\n"
        )
    };
    // No org_id: the org token's org.
    let text = format!(
        "agents:\n{}webhooks:\n  - url: {hook}\n",
        agent("Worker One")
    );
    let file = write(dir.path(), "agents.yaml", &text);

    // The platform token acts on every org: it needs the file to name one.
    let refused = vouch(&origin, ADMIN_TOKEN, &["apply", "-f", s(&file)]).code(2);
    assert!(refused.stderr.contains("org_id"), "{}", refused.stderr);
    // An org token cannot apply a file of another org.
    let other = api.org("apply-other");
    let named = write(
        dir.path(),
        "other.yaml",
        &format!("org_id: {other}\n{text}"),
    );
    vouch(&origin, &owner, &["apply", "-f", s(&named)]).code(2);

    // Secrets go to the file, 0600, one JSON object per line; not to standard output.
    let secrets = dir.path().join("secrets.jsonl");
    let run = vouch(
        &origin,
        &owner,
        &["apply", "-f", s(&file), "--secrets-out", s(&secrets)],
    )
    .ok();
    assert!(
        !run.stdout.contains("vk_agent_") && !run.stdout.contains("whsec_"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("written to {}", s(&secrets))),
        "{}",
        run.stdout
    );
    assert_eq!(mode(&secrets), 0o600);
    let lines: Vec<Value> = std::fs::read_to_string(&secrets)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0]["kind"], "agent_api_key");
    assert_eq!(lines[0]["name"], "Worker One");
    let agent_id = lines[0]["agent_id"].as_str().unwrap().to_owned();
    let key = lines[0]["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("vk_agent_"));
    assert_eq!(lines[1]["kind"], "webhook_secret");
    assert!(lines[1]["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(lines[1]["url"], hook.as_str());
    // The key is the agent's: it gets a token.
    let token = vouch(
        &origin,
        &owner,
        &["token", "--agent", &agent_id, "--api-key", &key],
    )
    .ok();
    assert_eq!(
        token.stdout.trim().split('.').count(),
        3,
        "{}",
        token.stdout
    );
    // Nothing new, nothing written.
    vouch(
        &origin,
        &owner,
        &["apply", "-f", s(&file), "--secrets-out", s(&secrets)],
    )
    .ok();
    assert_eq!(
        std::fs::read_to_string(&secrets).unwrap().lines().count(),
        2
    );

    // A secrets file others may read is refused before anything is created.
    let loose = write(dir.path(), "loose.jsonl", "");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let two = format!(
        "agents:\n{}{}webhooks:\n  - url: {hook}\n",
        agent("Worker One"),
        agent("Worker Two")
    );
    std::fs::write(&file, &two).unwrap();
    let loose_run = vouch(
        &origin,
        &owner,
        &["apply", "-f", s(&file), "--secrets-out", s(&loose)],
    )
    .code(2);
    assert!(
        loose_run.stderr.contains("chmod 600"),
        "{}",
        loose_run.stderr
    );
    assert_eq!(api.agents(&org).len(), 1, "nothing was created");

    // --json: one report, the new key in it once.
    let report = vouch(&origin, &owner, &["--json", "apply", "-f", s(&file)])
        .ok()
        .json();
    assert_eq!(report["applied"].as_array().unwrap().len(), 1, "{report:#}");
    assert_eq!(report["applied"][0]["action"], "create_agent");
    assert!(report["applied"][0]["agent_id"]
        .as_str()
        .unwrap()
        .starts_with("ap_"));
    assert_eq!(report["secrets"][0]["name"], "Worker Two");
    assert!(report["secrets"][0]["api_key"]
        .as_str()
        .unwrap()
        .starts_with("vk_agent_"));

    // A viewer may plan but not apply: the API's 403, exit 1.
    let viewer = api.token(&org, "viewer");
    let three = two.replace("webhooks:", &format!("{}webhooks:", agent("Worker Three")));
    std::fs::write(&file, &three).unwrap();
    vouch(&origin, &viewer, &["apply", "-f", s(&file), "--plan"]).ok();
    let forbidden = vouch(&origin, &viewer, &["apply", "-f", s(&file)]).code(1);
    assert!(
        forbidden.stderr.contains("forbidden"),
        "{}",
        forbidden.stderr
    );

    // A file the registry cannot follow (an active agent back to draft) changes nothing.
    let drafted = two.replacen("status: active", "status: draft", 1);
    std::fs::write(&file, &drafted).unwrap();
    let conflict = vouch(&origin, &owner, &["apply", "-f", s(&file)]).code(1);
    assert!(
        conflict.stderr.contains("agents[0].status"),
        "{}",
        conflict.stderr
    );
    assert!(
        conflict.stderr.contains("active; it cannot become draft"),
        "{}",
        conflict.stderr
    );
    assert_eq!(api.agent(&org, "Worker One")["version"], 1);

    // A plan is not saved over a file others may read; that file is left as it was.
    let shared = write(dir.path(), "shared-plan.json", "keep me");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::write(&file, &two).unwrap();
    vouch(
        &origin,
        &owner,
        &["apply", "-f", s(&file), "--plan", "--out", s(&shared)],
    )
    .code(2);
    assert_eq!(std::fs::read_to_string(&shared).unwrap(), "keep me");

    // A bad file is a usage error naming the path; so is a missing one.
    let bad = write(
        dir.path(),
        "bad.yaml",
        "agents:\n  - name: x\n    owner: { display_name: a, contact: b }\n    colour: red\n",
    );
    let usage = vouch(&origin, &owner, &["apply", "-f", s(&bad)]).code(2);
    assert!(
        usage
            .stderr
            .contains("agents[0].colour: unknown field `colour`"),
        "{}",
        usage.stderr
    );
    vouch(
        &origin,
        &owner,
        &["apply", "-f", "/nonexistent/agents.yaml"],
    )
    .code(2);
    vouch(&origin, &owner, &["apply"]).code(2);
}
