#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end tests of the `vouch` admin CLI against a real `vouch-origin serve` over a temporary
//! SQLite database: the seed flow of the README, then the error paths and their exit codes.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tempfile::TempDir;
use vouch_core::{Passport, Status};

#[path = "../../tests/support/receiver.rs"]
mod receiver;

const ADMIN_TOKEN: &str = "vk_admin_cli_test_platform_token_0123456789";

/// The origin under test; killed when dropped, even when an assertion fails.
struct Server {
    child: Child,
    url: String,
    dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        Server::start_in(tempfile::tempdir().unwrap(), &[])
    }

    /// An origin on the database in `dir` (created or reused), with `env` added.
    fn start_in(dir: TempDir, env: &[(&str, &str)]) -> Server {
        let db = dir.path().join("vouch.db");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("origin.log"))
            .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(origin_binary())
            .args(["serve", "--listen", &addr])
            .env("DATABASE_URL", format!("sqlite://{}", db.display()))
            .env("VOUCH_ADMIN_TOKEN", ADMIN_TOKEN)
            .env_remove("VOUCH_LISTEN")
            .env_remove("VOUCH_KV_API_TOKEN")
            .env_remove("VOUCH_EDGE_URL")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start vouch-origin");
        let mut server = Server {
            child,
            url: format!("http://{addr}"),
            dir,
        };
        server.wait_healthy();
        server
    }

    /// Kills the origin at once (SIGKILL: no shutdown, no cleanup), keeping its database.
    fn kill(mut self) -> TempDir {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("origin.log")).unwrap_or_default()
    }

    fn wait_healthy(&mut self) {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("vouch-origin exited early ({status}):\n{}", self.log());
            }
            let healthy = http
                .get(format!("{}/healthz", self.url))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "vouch-origin did not answer /healthz within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `vouch --url <server> [--token <token>] <args…>`.
    fn vouch(&self, token: Option<&str>, args: &[&str]) -> Run {
        let mut full = vec!["--url", self.url.as_str()];
        if let Some(token) = token {
            full.extend(["--token", token]);
        }
        full.extend(args);
        vouch(&full, None, &[])
    }
}

/// The `vouch-origin` binary beside this test (`cargo test --workspace` builds it; the CLI crate
/// cannot name another package's binary), refused when a source file of the origin or the core
/// is newer than it: the CLI would be tested against stale code.
fn origin_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile.join("vouch-origin");
    let rebuild =
        "run `cargo build -p vouch-origin --bin vouch-origin` (or `cargo test --workspace`)";
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {rebuild}", binary.display()));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for dir in ["origin/src", "origin/migrations", "shared/src"] {
        if let Some(newer) = newer_than(&repo.join(dir), built) {
            panic!(
                "{} is older than {}: {rebuild}",
                binary.display(),
                newer.display()
            );
        }
    }
    binary
}

/// A file under `dir` modified after `than`, if any.
fn newer_than(dir: &Path, than: SystemTime) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        let meta = entry.metadata().ok()?;
        if meta.is_dir() {
            if let Some(found) = newer_than(&path, than) {
                return Some(found);
            }
        } else if meta.modified().ok()? > than {
            return Some(path);
        }
    }
    None
}

/// A port nobody listens on (right now).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The outcome of one `vouch` run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    args: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(
            self.code,
            0,
            "`vouch {}` failed:\n{}",
            self.args,
            self.describe()
        );
        self
    }

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

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`vouch {}` printed no JSON ({e}):\n{}",
                self.args,
                self.describe()
            )
        })
    }

    fn describe(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the real `vouch` binary with a clean environment (no VOUCH_URL / VOUCH_TOKEN leaking
/// in from the caller), `env` added, and `stdin` fed in.
fn vouch(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vouch"));
    command
        .args(args)
        .env_remove("VOUCH_URL")
        .env_remove("VOUCH_TOKEN")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start vouch");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).unwrap();
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        args: args.join(" "),
    }
}

/// The first `ap_` + 32 hex id in `text`.
fn agent_id_in(text: &str) -> String {
    text.match_indices("ap_")
        .map(|(i, _)| &text[i..])
        .find_map(|rest| {
            let id: String = rest.chars().take(35).collect();
            (id.len() == 35 && id[3..].chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
        })
        .unwrap_or_else(|| panic!("no agent id in:\n{text}"))
}

fn str_of<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value:#}"))
}

#[test]
fn seed_flow_and_error_paths() {
    let server = Server::start();
    let admin = Some(ADMIN_TOKEN);

    // orgs create (platform admin) → org id.
    let org = server
        .vouch(
            admin,
            &[
                "orgs",
                "create",
                "--name",
                "Acme Corp",
                "--slug",
                "acme",
                "--json",
            ],
        )
        .ok()
        .json();
    let org_id = str_of(&org, "/org_id").to_owned();
    assert!(org_id.starts_with("org_"), "{org}");
    assert_eq!(str_of(&org, "/slug"), "acme");

    let shown = server.vouch(admin, &["orgs", "show", &org_id]).ok();
    assert!(shown.stdout.contains(&org_id) && shown.stdout.contains("Acme Corp"));

    // tokens create (owner): the secret, shown once.
    let created = server
        .vouch(
            admin,
            &[
                "tokens", "create", "--org", &org_id, "--role", "owner", "--name", "seed",
            ],
        )
        .ok();
    assert!(created.stdout.contains("shown once"), "{}", created.stdout);
    let owner_token = created
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("vk_admin_"))
        .unwrap_or_else(|| panic!("no token in:\n{}", created.stdout))
        .to_owned();
    let owner = Some(owner_token.as_str());

    // agents register with the org token (from VOUCH_TOKEN this time).
    let registered = vouch(
        &[
            "--url",
            &server.url,
            "agents",
            "register",
            "--name",
            "Acme Support Bot",
            "--owner-name",
            "Acme Support Team",
            "--owner-contact",
            "security@acme.com",
            "--role",
            "Tier-2 Support",
            "--capability",
            "payments.refund",
            "--capability",
            "data.export",
            "--region",
            "US-NY",
            "--region",
            "US-CA",
            "--assurance-level",
            "L2",
        ],
        None,
        &[("VOUCH_TOKEN", owner_token.as_str())],
    )
    .ok();
    assert!(
        registered.stdout.contains("shown once"),
        "{}",
        registered.stdout
    );
    assert!(
        registered.stdout.contains("vk_agent_"),
        "{}",
        registered.stdout
    );
    assert!(registered.stdout.contains("draft"), "{}", registered.stdout);
    let agent_id = agent_id_in(&registered.stdout);

    // activate, then suspend with a reason.
    let activated = server.vouch(owner, &["agents", "activate", &agent_id]).ok();
    assert!(
        activated.stdout.contains("draft → active"),
        "{}",
        activated.stdout
    );
    let suspended = server
        .vouch(
            owner,
            &[
                "agents",
                "suspend",
                &agent_id,
                "--reason",
                "fraud investigation",
            ],
        )
        .ok();
    assert!(
        suspended.stdout.contains("active → suspended"),
        "{}",
        suspended.stdout
    );

    // show --json: the passport, suspended, with the reason.
    let shown = server
        .vouch(owner, &["agents", "show", &agent_id, "--json"])
        .ok()
        .json();
    let passport: Passport = serde_json::from_value(shown.clone()).unwrap();
    assert_eq!(passport.status, Status::Suspended);
    assert_eq!(
        passport.status_reason.as_deref(),
        Some("fraud investigation")
    );
    assert!(passport.has_capability("payments.refund") && passport.has_capability("data.export"));
    let regions: Vec<&str> = passport.fields.regions.iter().map(|r| r.as_str()).collect();
    assert_eq!(regions, ["US-NY", "US-CA"]);
    assert_eq!(passport.version, 3);

    let human = server.vouch(owner, &["agents", "show", &agent_id]).ok();
    for needle in [
        "suspended",
        "payments.refund",
        "Acme Support Team <security@acme.com>",
    ] {
        assert!(human.stdout.contains(needle), "{needle}:\n{}", human.stdout);
    }

    // agents list: a table, and filters.
    let listed = server.vouch(owner, &["agents", "list"]).ok();
    for needle in [
        agent_id.as_str(),
        "Acme Support Bot",
        "suspended",
        "AGENT ID",
    ] {
        assert!(
            listed.stdout.contains(needle),
            "{needle}:\n{}",
            listed.stdout
        );
    }
    let filtered = server
        .vouch(
            owner,
            &[
                "agents",
                "list",
                "--status",
                "suspended",
                "--capability",
                "data.export",
                "--json",
            ],
        )
        .ok()
        .json();
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1, "{filtered}");
    let none = server
        .vouch(owner, &["agents", "list", "--status", "active", "--json"])
        .ok()
        .json();
    assert_eq!(none["data"].as_array().unwrap().len(), 0, "{none}");

    // A second agent from a passport on stdin, to page through.
    let second = vouch(
        &[
            "--url",
            &server.url,
            "--token",
            &owner_token,
            "--json",
            "agents",
            "register",
            "--file",
            "-",
            "--status",
            "active",
        ],
        Some(r#"{ "name": "Acme Billing Bot", "owner": { "display_name": "Billing", "contact": "billing@acme.com" },
                 "capabilities": [ { "id": "payments.refund", "params": { "max_amount": 100, "currency": "USD" } } ],
                 "limits": { "refund_usd_max_per_tx": 100 }, "regions": ["US"] }"#),
        &[],
    )
    .ok()
    .json();
    assert_eq!(str_of(&second, "/agent/status"), "active");
    assert!(str_of(&second, "/api_key").starts_with("vk_agent_"));
    let paged = server
        .vouch(owner, &["agents", "list", "--limit", "1"])
        .ok();
    assert!(paged.stdout.contains("--cursor"), "{}", paged.stdout);

    // update with a merge patch and If-Match: a stale version is refused, the current one applies.
    let patch = server.dir.path().join("patch.json");
    std::fs::write(
        &patch,
        r#"{ "description": "Handles refunds", "tier": "privileged" }"#,
    )
    .unwrap();
    let patch = patch.to_str().unwrap();
    let stale = server
        .vouch(
            owner,
            &[
                "agents",
                "update",
                &agent_id,
                "--file",
                patch,
                "--if-match",
                "1",
            ],
        )
        .code(1);
    assert!(
        stale.stderr.contains("version_mismatch"),
        "{}",
        stale.stderr
    );
    let updated = server
        .vouch(
            owner,
            &[
                "agents",
                "update",
                &agent_id,
                "--file",
                patch,
                "--if-match",
                "3",
                "--json",
            ],
        )
        .ok()
        .json();
    assert_eq!(str_of(&updated, "/description"), "Handles refunds");
    assert_eq!(updated["version"], 4);

    // events and audit.
    let events = server.vouch(owner, &["agents", "events", &agent_id]).ok();
    assert!(
        events.stdout.contains("passport.status_changed"),
        "{}",
        events.stdout
    );
    let verified = server.vouch(owner, &["audit", "verify"]).ok();
    assert!(verified.stdout.contains("intact"), "{}", verified.stdout);
    let report = server
        .vouch(admin, &["audit", "verify", "--org", &org_id, "--json"])
        .ok()
        .json();
    assert_eq!(report["ok"], true, "{report}");
    let audit = server
        .vouch(admin, &["audit", "list", "--org", &org_id])
        .ok();
    assert!(
        audit.stdout.contains("passport.created"),
        "{}",
        audit.stdout
    );

    // rotate-key: a new key, shown once.
    let rotated = server
        .vouch(owner, &["agents", "rotate-key", &agent_id])
        .ok();
    assert!(rotated.stdout.contains("shown once") && rotated.stdout.contains("vk_agent_"));

    // The org's brake, both ways.
    let frozen = server
        .vouch(owner, &["orgs", "freeze", &org_id, "--reason", "drill"])
        .ok();
    assert!(frozen.stdout.contains("is frozen"), "{}", frozen.stdout);
    let unfrozen = server.vouch(owner, &["orgs", "unfreeze", &org_id]).ok();
    assert!(
        unfrozen.stdout.contains("is unfrozen"),
        "{}",
        unfrozen.stdout
    );

    // revoke-tokens: the cut-off is said and recorded on the passport.
    let revoked = server
        .vouch(
            owner,
            &["agents", "revoke-tokens", &agent_id, "--reason", "leak"],
        )
        .ok();
    assert!(
        revoked.stdout.contains("no longer work") && revoked.stdout.contains("tokens_not_before"),
        "{}",
        revoked.stdout
    );

    // A wrong token: exit 1 with the API's message and code.
    let wrong = server
        .vouch(
            Some("vk_admin_not_a_real_token_000000000000000000"),
            &["orgs", "show", &org_id],
        )
        .code(1);
    assert!(
        wrong
            .stderr
            .contains("error: missing or invalid credentials (unauthorized)"),
        "{}",
        wrong.stderr
    );

    // No token at all: a usage error that says how to pass one.
    let missing = server.vouch(None, &["agents", "list"]).code(2);
    assert!(
        missing.stderr.contains("--token") && missing.stderr.contains("VOUCH_TOKEN"),
        "{}",
        missing.stderr
    );

    // A field error names the field.
    let bad_slug = server
        .vouch(
            admin,
            &["orgs", "create", "--name", "X", "--slug", "Not A Slug"],
        )
        .code(1);
    assert!(
        bad_slug.stderr.contains("field slug"),
        "{}",
        bad_slug.stderr
    );

    // An invalid transition: a revoked agent cannot be activated.
    server
        .vouch(
            owner,
            &["agents", "revoke", &agent_id, "--reason", "retired"],
        )
        .ok();
    let invalid = server
        .vouch(owner, &["agents", "activate", &agent_id])
        .code(1);
    assert!(
        invalid.stderr.contains("invalid_transition"),
        "{}",
        invalid.stderr
    );
    let invalid_json = server
        .vouch(owner, &["agents", "activate", &agent_id, "--json"])
        .code(1)
        .json();
    assert_eq!(invalid_json["error"], "invalid_transition");

    // The chain still verifies after all of that.
    server.vouch(owner, &["audit", "verify"]).ok();
    drop(server);
}

#[test]
fn an_unreachable_origin_exits_3_and_names_the_url() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let run = vouch(
        &["--url", &url, "--token", ADMIN_TOKEN, "agents", "list"],
        None,
        &[],
    )
    .code(3);
    assert!(run.stderr.contains(&url), "{}", run.stderr);
    assert!(run.stderr.contains("cannot reach"), "{}", run.stderr);
}

#[test]
fn usage_errors_exit_2() {
    vouch(&["agents", "register", "--name", "only a name"], None, &[]).code(2);
    let bad_file = vouch(
        &[
            "--token",
            ADMIN_TOKEN,
            "agents",
            "update",
            "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70",
            "--file",
            "-",
        ],
        Some("{ not json"),
        &[],
    )
    .code(2);
    assert!(
        bad_file.stderr.contains("not valid JSON"),
        "{}",
        bad_file.stderr
    );
    let missing = vouch(
        &[
            "--token",
            ADMIN_TOKEN,
            "agents",
            "register",
            "--file",
            "/nonexistent/passport.json",
        ],
        None,
        &[],
    )
    .code(2);
    assert!(
        missing.stderr.contains("/nonexistent/passport.json"),
        "{}",
        missing.stderr
    );
}

/// Edits the audit event at `seq` of `chain` behind the origin's back (with Python's `sqlite3`:
/// the CLI crate links no database driver, and CPython is on every machine of this project).
fn tamper(server: &Server, chain: &str, seq: i64) {
    let db = server.dir.path().join("vouch.db");
    let script = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
n = db.execute("UPDATE audit_events SET data = '{\"tampered\":true}' WHERE chain_id = ? AND seq = ?",
               (sys.argv[2], int(sys.argv[3]))).rowcount
db.commit()
print(n)
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &db.display().to_string(),
            chain,
            &seq.to_string(),
        ])
        .output()
        .expect("python3 edits the database");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}

#[test]
fn a_broken_audit_chain_exits_4_and_says_where() {
    let server = Server::start();
    let admin = Some(ADMIN_TOKEN);
    let org = server
        .vouch(
            admin,
            &[
                "orgs",
                "create",
                "--name",
                "Tamper Inc",
                "--slug",
                "tamper",
                "--json",
            ],
        )
        .ok()
        .json();
    let org_id = str_of(&org, "/org_id").to_owned();
    server
        .vouch(
            admin,
            &[
                "agents",
                "register",
                "--org",
                &org_id,
                "--name",
                "Victim",
                "--owner-name",
                "Ops",
                "--owner-contact",
                "ops@tamper.example",
            ],
        )
        .ok();
    server
        .vouch(admin, &["audit", "verify", "--org", &org_id])
        .ok();

    tamper(&server, &org_id, 1);

    let broken = server
        .vouch(admin, &["audit", "verify", "--org", &org_id])
        .code(4);
    assert!(broken.stdout.contains("BROKEN"), "{}", broken.stdout);
    assert!(
        broken.stderr.contains("broken at seq 1") && broken.stderr.contains("hash"),
        "{}",
        broken.stderr
    );
    let report = server
        .vouch(admin, &["audit", "verify", "--org", &org_id, "--json"])
        .code(4)
        .json();
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_break"]["seq"], 1, "{report}");
}

#[test]
fn token_and_key_rotation() {
    let server = Server::start();
    let admin = Some(ADMIN_TOKEN);
    let org = server
        .vouch(
            admin,
            &[
                "orgs",
                "create",
                "--name",
                "Token Inc",
                "--slug",
                "tokeninc",
                "--json",
            ],
        )
        .ok()
        .json();
    let org_id = str_of(&org, "/org_id").to_owned();
    let registered = server
        .vouch(
            admin,
            &[
                "agents",
                "register",
                "--org",
                &org_id,
                "--name",
                "Token Bot",
                "--owner-name",
                "Ops",
                "--owner-contact",
                "ops@token.example",
                "--capability",
                "payments.refund",
                "--capability",
                "data.export",
                "--status",
                "active",
                "--json",
            ],
        )
        .ok()
        .json();
    let agent = str_of(&registered, "/agent/agent_id").to_owned();
    let key = str_of(&registered, "/api_key").to_owned();

    // The bare token, ready for `$(vouch token …)`: three base64url segments.
    let token = server
        .vouch(
            None,
            &[
                "token",
                "--agent",
                &agent,
                "--api-key",
                &key,
                "--scope",
                "data.export",
            ],
        )
        .ok();
    let jwt = token.stdout.trim();
    assert_eq!(jwt.split('.').count(), 3, "{jwt}");
    let full = server
        .vouch(
            None,
            &["token", "--agent", &agent, "--api-key", &key, "--json"],
        )
        .ok()
        .json();
    assert_eq!(full["scope"], "payments.refund data.export");
    assert_eq!(full["token_type"], "Bearer");

    let wrong = server
        .vouch(
            None,
            &["token", "--agent", &agent, "--api-key", "vk_agent_nope"],
        )
        .code(1);
    assert!(wrong.stderr.contains("invalid_client"), "{}", wrong.stderr);

    // An org token, revoked: it stops working.
    let made = server
        .vouch(
            admin,
            &[
                "tokens", "create", "--org", &org_id, "--role", "viewer", "--name", "dash",
                "--json",
            ],
        )
        .ok()
        .json();
    let (tok, secret) = (
        str_of(&made, "/token_id").to_owned(),
        str_of(&made, "/token").to_owned(),
    );
    server.vouch(Some(&secret), &["agents", "list"]).ok();
    let revoked = server
        .vouch(admin, &["tokens", "revoke", "--org", &org_id, &tok])
        .ok();
    assert!(revoked.stdout.contains("revoked"), "{}", revoked.stdout);
    let refused = server.vouch(Some(&secret), &["agents", "list"]).code(1);
    assert!(
        refused.stderr.contains("unauthorized"),
        "{}",
        refused.stderr
    );

    let rotated = server
        .vouch(admin, &["keys", "rotate", "--json"])
        .ok()
        .json();
    let scheduled = str_of(&rotated, "/kid");
    assert!(!scheduled.is_empty());
    // The standby was published only at start, so the rotation is scheduled.
    let listed = server.vouch(admin, &["keys", "list"]).ok();
    assert!(
        listed.stdout.contains("scheduled") && listed.stdout.contains("signing"),
        "{}",
        listed.stdout
    );
    let withdrawn = server
        .vouch(
            admin,
            &["keys", "withdraw", scheduled, "--reason", "test leak"],
        )
        .ok();
    assert!(
        withdrawn.stdout.contains("is withdrawn"),
        "{}",
        withdrawn.stdout
    );
    let human = server.vouch(admin, &["keys", "rotate"]).ok();
    assert!(
        human.stdout.contains("signs from") && human.stdout.contains("stands by"),
        "{}",
        human.stdout
    );
}

/// Deliveries survive `kill -9` mid-attempt (the same `webhook-id` arrives after the restart),
/// and `vouch webhooks` / `vouch events tail` drive it all through the real binaries.
#[test]
fn webhooks_survive_a_kill_and_the_cli_manages_them() {
    use receiver::{Answer, Receiver};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(Receiver::start());
    // The first attempt hangs: the origin is killed while it waits for the answer.
    receiver.plan([Answer::Hang(Duration::from_secs(60))]);
    let env = [
        ("VOUCH_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("VOUCH_WEBHOOK_TIMEOUT_MS", "3000"),
        ("VOUCH_WEBHOOK_RETRY_BASE_MS", "100"),
    ];
    let server = Server::start_in(tempfile::tempdir().unwrap(), &env);
    let admin = Some(ADMIN_TOKEN);
    let org = server
        .vouch(
            admin,
            &[
                "--json", "orgs", "create", "--name", "Hooks", "--slug", "hooks",
            ],
        )
        .ok()
        .json()["org_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let made = server
        .vouch(
            admin,
            &[
                "webhooks",
                "create",
                &receiver.url,
                "--event",
                "passport.created",
                "--org",
                &org,
            ],
        )
        .ok();
    assert!(made.stdout.contains("shown once"), "{}", made.stdout);
    let secret = made
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("whsec_"))
        .unwrap()
        .to_owned();
    receiver.set_secrets(&[&secret]);
    let listed = server
        .vouch(admin, &["--json", "webhooks", "list"])
        .ok()
        .json();
    let hook = str_of(&listed, "/data/0/webhook_id").to_owned();
    assert_eq!(str_of(&listed, "/data/0/url"), receiver.url);
    assert!(
        !listed.to_string().contains("whsec_"),
        "the secret is shown once"
    );
    let table = server.vouch(admin, &["webhooks", "list"]).ok();
    assert!(
        table.stdout.contains(&hook) && table.stdout.contains("enabled"),
        "{}",
        table.stdout
    );
    server
        .vouch(
            admin,
            &[
                "agents",
                "register",
                "--org",
                &org,
                "--name",
                "Delivered twice",
                "--owner-name",
                "Ops",
                "--owner-contact",
                "ops@example.com",
            ],
        )
        .ok();

    let first = rt.block_on(receiver.wait_for(1, Duration::from_secs(30)));
    let dir = server.kill();
    let server = Server::start_in(dir, &env);
    let both = rt.block_on(receiver.wait_for(2, Duration::from_secs(60)));
    assert_eq!(
        both[1].webhook_id, first[0].webhook_id,
        "the same webhook-id after the restart"
    );
    assert_eq!(both[1].body, first[0].body);
    assert!(both.iter().all(|d| d.verified == [true]));
    assert_eq!(both[0].event_type(), "passport.created");

    // The log shows the delivery settled (the attempt cut by the kill left no record).
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = loop {
        let log = server
            .vouch(admin, &["--json", "webhooks", "deliveries", &hook])
            .ok()
            .json();
        if str_of(&log, "/data/0/status") == "succeeded" {
            break log;
        }
        assert!(Instant::now() < deadline, "never settled: {log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(str_of(&log, "/data/0/event_id"), first[0].webhook_id);
    assert_eq!(
        log.pointer("/data/0/attempts/0/status_code"),
        Some(&Value::from(200))
    );
    let table = server.vouch(admin, &["webhooks", "deliveries", &hook]).ok();
    assert!(
        table.stdout.contains("succeeded") && table.stdout.contains("HTTP 200"),
        "{}",
        table.stdout
    );

    // `events tail` replays from the start, filtered, then stops at --count.
    let tailed = server
        .vouch(
            admin,
            &[
                "--json",
                "events",
                "tail",
                "--type",
                "passport.created",
                "--last-event-id",
                "0",
                "--count",
                "1",
            ],
        )
        .ok();
    let envelope: Value = serde_json::from_str(tailed.stdout.trim()).unwrap();
    assert_eq!(envelope["id"].as_str(), Some(first[0].webhook_id.as_str()));
    let human = server
        .vouch(
            admin,
            &["events", "tail", "--last-event-id", "0", "--count", "2"],
        )
        .ok();
    assert_eq!(human.stdout.lines().count(), 2, "{}", human.stdout);

    // Delete; then it is gone, and asking about it is an API error (exit 1).
    server.vouch(admin, &["webhooks", "delete", &hook]).ok();
    let listed = server
        .vouch(admin, &["--json", "webhooks", "list"])
        .ok()
        .json();
    assert_eq!(listed["data"], serde_json::json!([]));
    let missing = server
        .vouch(admin, &["webhooks", "deliveries", &hook])
        .code(1);
    assert!(
        missing.stderr.contains("webhook_not_found"),
        "{}",
        missing.stderr
    );
    let refused = server
        .vouch(
            admin,
            &["webhooks", "create", "ftp://example.com/", "--org", &org],
        )
        .code(1);
    assert!(
        refused.stderr.contains("invalid_webhook_url"),
        "{}",
        refused.stderr
    );
}

/// `vouch events tail` waits for a stream slot when the credential holds five already (`429
/// too_many_streams`), instead of failing.
#[test]
fn events_tail_waits_for_a_stream_slot() {
    let server = Server::start();
    let admin = Some(ADMIN_TOKEN);
    server
        .vouch(
            admin,
            &["orgs", "create", "--name", "Tailed", "--slug", "tailed"],
        )
        .ok();
    let http = reqwest::blocking::Client::new();
    let mut held: Vec<_> = (0..5)
        .map(|_| {
            let stream = http
                .get(format!("{}/v1/events/stream", server.url))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .unwrap();
            assert_eq!(stream.status(), 200);
            stream
        })
        .collect();
    std::thread::scope(|scope| {
        let tail = scope.spawn(|| {
            server.vouch(
                admin,
                &[
                    "--json",
                    "events",
                    "tail",
                    "--type",
                    "org.created",
                    "--last-event-id",
                    "0",
                    "--count",
                    "1",
                ],
            )
        });
        // Refused at least once, then a slot comes free.
        std::thread::sleep(Duration::from_millis(1_500));
        held.pop();
        let tailed = tail.join().unwrap().ok();
        assert!(
            tailed.stderr.contains("too many streams"),
            "{}",
            tailed.stderr
        );
        let envelope: Value = serde_json::from_str(tailed.stdout.trim()).unwrap();
        assert_eq!(envelope["type"], "org.created");
    });
    drop(held);
}

/// `vouch agents import --oap FILE` and `vouch agents export --oap ID` (SPEC §13): OAP's own
/// conformance passport in, the same document's passport_id, limits and capabilities out.
#[test]
fn oap_import_and_export() {
    let server = Server::start();
    let admin = Some(ADMIN_TOKEN);
    let org = server
        .vouch(
            admin,
            &[
                "orgs", "create", "--name", "OAP Co", "--slug", "oapco", "--json",
            ],
        )
        .ok()
        .json();
    let org_id = str_of(&org, "/org_id").to_owned();
    let template = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vendor/aport-spec/conformance/cases/payments.refunds.v1/passports/template.json"
    );
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(template).unwrap()).unwrap();
    doc["metadata"]["contact"] = json!("support@oap.example");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), doc.to_string()).unwrap();
    let path = file.path().to_str().unwrap();

    let imported = server
        .vouch(
            admin,
            &["agents", "import", "--oap", path, "--org", &org_id],
        )
        .ok();
    assert!(
        imported.stdout.contains("shown once"),
        "{}",
        imported.stdout
    );
    assert!(imported
        .stdout
        .contains("550e8400-e29b-41d4-a716-446655440000"));
    let agent = agent_id_in(&imported.stdout);

    let exported = server
        .vouch(admin, &["agents", "export", "--oap", &agent])
        .ok()
        .json();
    assert_eq!(exported["passport_id"], doc["passport_id"]);
    assert_eq!(exported["limits"], doc["limits"]);
    assert_eq!(exported["capabilities"], doc["capabilities"]);
    assert_eq!(exported["spec_version"], "oap/1.0");

    // Again, under another name: one agent per passport_id (the API's error, non-zero exit).
    doc["metadata"]["name"] = json!("Another name");
    let second = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(second.path(), doc.to_string()).unwrap();
    let second = second.path().to_str().unwrap();
    let again = server.vouch(
        admin,
        &["agents", "import", "--oap", second, "--org", &org_id],
    );
    assert_ne!(again.code, 0);
    assert!(
        again.stderr.contains("oap_passport_exists"),
        "{}",
        again.stderr
    );
    // `export` without `--oap` is a usage error.
    assert_eq!(server.vouch(admin, &["agents", "export", &agent]).code, 2);
}

#[test]
fn partners_from_the_command_line() {
    let server = Server::start();
    let admin = Some(ADMIN_TOKEN);
    let created = server
        .vouch(
            admin,
            &[
                "partners",
                "create",
                "--name",
                "Acme Payments",
                "--contact",
                "security@acme-payments.example",
            ],
        )
        .ok();
    assert!(created.stdout.contains("shown once"), "{}", created.stdout);
    assert!(created.stdout.contains("vk_partner_"), "{}", created.stdout);
    let partner = created
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("pt_") && w.len() >= 35)
        .map(|w| w.trim_end_matches(['.', ';', '`']).to_owned())
        .unwrap_or_else(|| panic!("no partner id in:\n{}", created.stdout));
    let list = server.vouch(admin, &["partners", "list"]).ok();
    assert!(list.stdout.contains(&partner), "{}", list.stdout);
    assert!(!list.stdout.contains("vk_partner_"), "{}", list.stdout);
    let shown = server
        .vouch(admin, &["partners", "show", &partner, "--json"])
        .ok()
        .json();
    assert_eq!(shown["status"], "active");
    assert!(shown.get("key").is_none());
    let rotated = server
        .vouch(admin, &["partners", "rotate", &partner, "--json"])
        .ok()
        .json();
    assert!(str_of(&rotated, "/key").starts_with("vk_partner_"));
    let revoked = server.vouch(admin, &["partners", "revoke", &partner]).ok();
    assert!(revoked.stdout.contains("revoked"), "{}", revoked.stdout);
    // A revoked partner gets no new key: the API's error, a non-zero exit.
    let again = server.vouch(admin, &["partners", "rotate", &partner]);
    assert_eq!(again.code, 1, "{}", again.describe());
    assert!(again.stderr.contains("partner_revoked"), "{}", again.stderr);
    // An org token is refused, whatever it names.
    let org = server
        .vouch(
            admin,
            &[
                "orgs", "create", "--name", "P Co", "--slug", "pco", "--json",
            ],
        )
        .ok()
        .json();
    let owner = server
        .vouch(
            admin,
            &[
                "tokens",
                "create",
                "--org",
                str_of(&org, "/org_id"),
                "--role",
                "owner",
                "--name",
                "o",
                "--json",
            ],
        )
        .ok()
        .json();
    let refused = server.vouch(Some(str_of(&owner, "/token")), &["partners", "list"]);
    assert_eq!(refused.code, 1, "{}", refused.describe());
    assert!(refused.stderr.contains("forbidden"), "{}", refused.stderr);
}
