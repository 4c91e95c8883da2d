//! The fault matrix: each test runs the real system — the origin as its own process
//! (`vouch-origin serve`, killed with SIGKILL), the local edge in workerd with its KV and Durable
//! Objects kept on disk (restarted), a webhook receiver, SQLite or a PostgreSQL server of the
//! test's own (restarted) — injects one fault, and then checks that nothing was lost: every
//! change is in KV and in the status journal, every webhook arrived at least once under one
//! `webhook-id`, no commit counted twice, and the audit log verifies.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

#[path = "../../origin/tests/support/receiver.rs"]
mod receiver;

use crate::process::{free_port, OriginProcess, PrivatePostgres};
use crate::stack::{LocalEdge, ADMIN, EDGE_SECRET};
use receiver::{Answer, Receiver};

/// The KV publisher backs off up to a minute after failures (and a restarted origin keeps the
/// schedule, which is in the database): convergence may take that long.
const CONVERGE: Duration = Duration::from_secs(75);

/// Where the origin keeps its data.
enum Database {
    Sqlite(PathBuf),
    /// A PostgreSQL server of the test's own, which it may restart.
    Postgres(PrivatePostgres),
}

impl Database {
    fn url(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("sqlite://{}", path.display()),
            Database::Postgres(pg) => pg.url(),
        }
    }
}

/// The system under faults.
struct Faulty {
    origin_url: String,
    origin_port: u16,
    origin: Option<OriginProcess>,
    db: Database,
    edge: LocalEdge,
    edge_env: Vec<(String, String)>,
    receiver: Receiver,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Faulty {
    async fn start(postgres: bool) -> Option<Faulty> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = if postgres {
            Database::Postgres(PrivatePostgres::start()?)
        } else {
            Database::Sqlite(dir.path().join("vouch.db"))
        };
        let edge_env = vec![
            ("VOUCH_EDGE_PORT".to_owned(), free_port().to_string()),
            ("VOUCH_KV_API_PORT".to_owned(), free_port().to_string()),
            (
                "VOUCH_EDGE_PERSIST".to_owned(),
                dir.path().join("edge").display().to_string(),
            ),
        ];
        let edge = LocalEdge::start(&pairs(&edge_env)).await?;
        let origin_port = free_port();
        let mut faulty = Faulty {
            origin_url: format!("http://127.0.0.1:{origin_port}"),
            origin_port,
            origin: None,
            db,
            edge,
            edge_env,
            receiver: Receiver::start().await,
            client: reqwest::Client::new(),
            dir,
        };
        faulty.start_origin().await;
        // The edge answers 503 until the origin has seeded its journal.
        faulty.wait_seeded().await;
        Some(faulty)
    }

    async fn start_origin(&mut self) {
        let origin = OriginProcess::start(
            self.origin_port,
            &self.db.url(),
            &self.edge,
            self.dir.path(),
            &[
                ("VOUCH_WEBHOOK_TIMEOUT_MS", "3000"),
                ("VOUCH_WEBHOOK_RETRY_BASE_MS", "200"),
            ],
        )
        .await;
        self.origin = Some(origin);
    }

    fn origin_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("origin.log")).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, nothing flushed, leases left behind.
    async fn kill_origin(&mut self) {
        if let Some(origin) = self.origin.take() {
            origin.kill().await;
        }
    }

    /// Stops workerd and starts it again on the same ports and the same stored KV and objects.
    async fn restart_edge(&mut self) {
        self.edge.stop();
        // workerd may hold its ports a moment after Node exits.
        let deadline = Instant::now() + Duration::from_secs(15);
        for (name, port) in &self.edge_env {
            if !name.ends_with("_PORT") {
                continue;
            }
            while std::net::TcpListener::bind(format!("127.0.0.1:{port}")).is_err() {
                assert!(Instant::now() < deadline, "{name} {port} stays taken");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        self.edge = LocalEdge::start(&pairs(&self.edge_env))
            .await
            .expect("the edge starts again");
    }

    async fn wait_seeded(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.journal().await["seeded"] != true {
            assert!(Instant::now() < deadline, "the journal was never seeded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn journal(&self) -> Value {
        self.get_json(
            self.client
                .get(format!("{}/internal/journal?since=0", self.edge.edge))
                .bearer_auth(EDGE_SECRET),
        )
        .await
        .unwrap_or(Value::Null)
    }

    async fn get_json(&self, req: reqwest::RequestBuilder) -> Option<Value> {
        let resp = req.send().await.ok()?;
        resp.status().is_success().then_some(())?;
        resp.json().await.ok()
    }

    /// `(status, body)` of an admin call to the origin.
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.origin_url))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("the origin answers");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn admin_ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.admin(method, path, body).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// An org with a webhook subscription to everything, pointed at the receiver.
    async fn org(&self, slug: &str) -> String {
        let org = self
            .admin_ok(
                reqwest::Method::POST,
                "/v1/orgs",
                Some(json!({ "name": slug, "slug": slug })),
            )
            .await;
        let org_id = org["org_id"].as_str().expect("org id").to_owned();
        let hook = self
            .admin_ok(
                reqwest::Method::POST,
                "/v1/webhooks",
                Some(json!({ "org_id": org_id, "url": self.receiver.url, "events": ["*"] })),
            )
            .await;
        self.receiver
            .set_secrets(&[hook["secret"].as_str().expect("secret")]);
        org_id
    }

    /// A seed passport in `org`, active; returns its id.
    async fn agent(&self, org: &str, name: &str) -> String {
        let body = self
            .admin_ok(
                reqwest::Method::POST,
                "/v1/agents",
                Some(crate::stack::seed_passport(org, name)),
            )
            .await;
        let id = body["agent"]["agent_id"].as_str().expect("id").to_owned();
        self.status(&id, "active").await;
        id
    }

    async fn status(&self, agent: &str, status: &str) -> Value {
        self.admin_ok(
            reqwest::Method::PUT,
            &format!("/v1/agents/{agent}/status"),
            Some(json!({ "status": status, "reason": format!("fault test: {status}") })),
        )
        .await
    }

    async fn kv_fault(&self, fault: Value) {
        let resp = self
            .client
            .post(format!("{}/__control/faults", self.edge.kv_control))
            .json(&fault)
            .send()
            .await
            .expect("queue a fault");
        assert!(resp.status().is_success());
    }

    async fn kv_value(&self, key: &str) -> Option<Value> {
        self.get_json(
            self.client
                .get(format!("{}/__control/kv/{key}", self.edge.kv_control)),
        )
        .await
    }

    async fn journal_outage(&self, for_ms: u64, appends: bool) {
        let resp = self
            .client
            .post(format!("{}/internal/test/journal-outage", self.edge.edge))
            .bearer_auth(EDGE_SECRET)
            .json(&json!({ "for_ms": for_ms, "appends": appends }))
            .send()
            .await
            .expect("journal outage");
        assert!(resp.status().is_success(), "{}", resp.status());
    }

    /// Everything the org's agents went through reached KV and the journal, every webhook of
    /// the org arrived at least once under its event id, and the org's audit log verifies.
    async fn assert_nothing_lost(&self, org: &str, agents: &[String]) {
        let deadline = Instant::now() + CONVERGE;
        for agent in agents {
            let passport = self
                .admin_ok(reqwest::Method::GET, &format!("/v1/agents/{agent}"), None)
                .await;
            let version = passport["version"].clone();
            loop {
                let kv = self.kv_value(&format!("passport:{agent}")).await;
                if kv.as_ref().map(|v| &v["version"]) == Some(&version) {
                    assert_eq!(kv.expect("kv")["status"], passport["status"]);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "KV never got {agent} at version {version}: {kv:?}\n{}",
                    self.origin_log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // The journal holds the agent's newest status change (nothing settles this soon).
            let status_version = self.last_status_version(agent).await;
            if status_version > 0 {
                loop {
                    let journal = self.journal().await;
                    let held = journal["entries"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|e| {
                            e["change"]["agent_id"] == agent.as_str()
                                && e["change"]["version"].as_i64() >= Some(status_version)
                        });
                    if held {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "the journal never got {agent} at version {status_version}: {journal}\n{}",
                        self.origin_log()
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        // Every event the org's subscription wants arrived, at least once, under its id.
        let events = self.org_events(org).await;
        loop {
            let received: BTreeSet<String> = self
                .receiver
                .received()
                .iter()
                .map(|d| d.webhook_id.clone())
                .collect();
            let missing: Vec<&String> = events.iter().filter(|e| !received.contains(*e)).collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "webhooks never delivered: {missing:?}\n{}",
                self.origin_log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            self.receiver
                .received()
                .iter()
                .all(|d| d.verified == [true]),
            "every delivery verifies with the subscription's secret"
        );
        let report = self
            .admin_ok(
                reqwest::Method::GET,
                &format!("/v1/audit/verify?org_id={org}"),
                None,
            )
            .await;
        assert_eq!(report["ok"], true, "the audit log verifies: {report}");
    }

    /// The version of the agent's newest status change (from its audit events).
    async fn last_status_version(&self, agent: &str) -> i64 {
        let events = self
            .admin_ok(
                reqwest::Method::GET,
                &format!("/v1/agents/{agent}/events"),
                None,
            )
            .await;
        events["data"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["action"] == "passport.status_changed")
            .filter_map(|e| e["data"]["version"].as_i64())
            .max()
            .unwrap_or(0)
    }

    /// The ids of the org's events a `*` subscription receives (webhook-id = event id).
    async fn org_events(&self, org: &str) -> Vec<String> {
        let delivered = [
            "passport.created",
            "passport.updated",
            "passport.status_changed",
            "delegation.created",
            "delegation.revoked",
        ];
        let log = self
            .admin_ok(
                reqwest::Method::GET,
                &format!("/v1/audit?org_id={org}&limit=500"),
                None,
            )
            .await;
        log["data"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| delivered.contains(&e["action"].as_str().unwrap_or_default()))
            .map(|e| e["event_id"].as_str().expect("id").to_owned())
            .collect()
    }
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_kv_api_failing_and_timing_out_loses_nothing() {
    let Some(system) = Faulty::start(false).await else {
        return;
    };
    let org = system.org("kvfaults").await;
    // 500s, 429s with retry-after, and one write that outlasts the client's 15 s timeout.
    system.kv_fault(json!({ "status": 500, "count": 2 })).await;
    system
        .kv_fault(json!({ "status": 429, "count": 2, "retry_after": 1 }))
        .await;
    system
        .kv_fault(json!({ "delay_ms": 16_000, "count": 1 }))
        .await;
    let mut agents = Vec::new();
    for i in 0..3 {
        agents.push(system.agent(&org, &format!("kv fault {i}")).await);
    }
    system.status(&agents[0], "suspended").await;
    system.assert_nothing_lost(&org, &agents).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_origin_killed_mid_kv_publish_loses_nothing() {
    let Some(mut system) = Faulty::start(false).await else {
        return;
    };
    let org = system.org("killkv").await;
    let a = system.agent(&org, "kill during kv").await;
    // The next KV write hangs; the origin dies while it waits.
    system
        .kv_fault(json!({ "delay_ms": 8_000, "count": 1 }))
        .await;
    system.status(&a, "suspended").await;
    let b = system.agent(&org, "made during the hang").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    system.kill_origin().await;
    system.start_origin().await;
    system.assert_nothing_lost(&org, &[a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_origin_killed_mid_journal_append_loses_nothing() {
    let Some(mut system) = Faulty::start(false).await else {
        return;
    };
    let org = system.org("killjournal").await;
    let a = system.agent(&org, "kill during append").await;
    // Appends hang for 4 s (and store nothing); the origin dies while one waits.
    system.journal_outage(4_000, true).await;
    system.status(&a, "suspended").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    system.kill_origin().await;
    system.start_origin().await;
    system.assert_nothing_lost(&org, &[a]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_origin_killed_mid_webhook_delivery_redelivers_the_same_id() {
    let Some(mut system) = Faulty::start(false).await else {
        return;
    };
    let org = system.org("killhook").await;
    // The first delivery hangs; the origin dies while it waits for the answer.
    system
        .receiver
        .plan([Answer::Hang(Duration::from_secs(20))]);
    let a = system.agent(&org, "kill during delivery").await;
    let first = system.receiver.wait_for(1, Duration::from_secs(20)).await;
    let hanging = first[0].webhook_id.clone();
    system.kill_origin().await;
    system.start_origin().await;
    system.assert_nothing_lost(&org, &[a]).await;
    // The dead origin's lease on the delivery runs out, then it is sent again under its id.
    let deadline = Instant::now() + CONVERGE;
    while system
        .receiver
        .received()
        .iter()
        .filter(|d| d.webhook_id == hanging)
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the interrupted delivery {hanging} was never sent again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A commit to the daily caps ledger by the partner whose key is `partner` and its replay:
/// `(allow, replayed)`.
async fn commit(
    system: &Faulty,
    partner: &str,
    token: &str,
    key: &str,
    amount: u32,
) -> (bool, bool) {
    let (body, replayed) = commit_answer(system, partner, token, key, amount).await;
    (body["allow"] == true, replayed)
}

/// A commit's signed decision, and whether it was a replay; until the partner's key reaches the
/// edge it is unknown there, and the answer is a denial (warm-up loops wait it out).
async fn commit_answer(
    system: &Faulty,
    partner: &str,
    token: &str,
    key: &str,
    amount: u32,
) -> (Value, bool) {
    let resp = system
        .client
        .post(format!("{}/verify", system.edge.edge))
        .bearer_auth(partner)
        .json(
            &json!({ "token": token, "capability": "payments.refund", "commit": true,
                       "idempotency_key": key,
                       "context": { "amount": amount, "currency": "USD", "region": "US-CA" } }),
        )
        .send()
        .await
        .expect("commit");
    if resp.status() == StatusCode::UNAUTHORIZED {
        return (
            json!({ "allow": false, "partner_unknown_yet": true }),
            false,
        );
    }
    assert_eq!(resp.status(), StatusCode::OK);
    let replayed = resp
        .headers()
        .get("idempotent-replayed")
        .and_then(|v| v.to_str().ok())
        == Some("true");
    let body: Value = resp.json().await.expect("decision");
    (body, replayed)
}

/// A partner that commits: `(key, partner_id)`.
async fn partner_of(system: &Faulty, name: &str) -> (String, String) {
    let partner = system
        .admin_ok(
            reqwest::Method::POST,
            "/v1/partners",
            Some(json!({ "name": name, "contact": "ops@shop.example" })),
        )
        .await;
    let id = partner["partner_id"]
        .as_str()
        .expect("partner id")
        .to_owned();
    (partner["key"].as_str().expect("partner key").to_owned(), id)
}

/// An access token of `agent` for the partner `audience` (a fresh API key exchanged at the
/// origin).
async fn token_of(system: &Faulty, agent: &str, audience: &str) -> String {
    let key = system
        .admin_ok(
            reqwest::Method::POST,
            &format!("/v1/agents/{agent}/keys"),
            None,
        )
        .await["api_key"]
        .as_str()
        .expect("key")
        .to_owned();
    system
        .client
        .post(format!("{}/oauth/token", system.origin_url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", agent),
            ("client_secret", key.as_str()),
            ("audience", audience),
        ])
        .send()
        .await
        .expect("token")
        .json::<Value>()
        .await
        .expect("json")["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_edge_restarted_keeps_the_journal_and_counts_no_commit_twice() {
    let Some(mut system) = Faulty::start(false).await else {
        return;
    };
    let org = system.org("edgerestart").await;
    let payer = system.agent(&org, "payer").await;
    let other = system.agent(&org, "suspended while the edge is down").await;
    let (partner, partner_id) = partner_of(&system, "Restart Shop").await;
    let token = token_of(&system, &payer, &partner_id).await;
    // The seed passport's daily cap is 1,000 USD, 100 per refund: ten commits fill it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (allow, _) = commit(&system, &partner, &token, "refund-0", 100).await;
        if allow {
            break;
        }
        assert!(Instant::now() < deadline, "the payer was never allowed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 1..6 {
        assert_eq!(
            commit(&system, &partner, &token, &format!("refund-{i}"), 100).await,
            (true, false)
        );
    }

    // workerd goes away and comes back; a suspension is made while it is down.
    system.edge.stop();
    system.status(&other, "suspended").await;
    system.restart_edge().await;

    // The ledger survived: the same keys replay, and only the remainder can be spent.
    for i in 0..6 {
        assert_eq!(
            commit(&system, &partner, &token, &format!("refund-{i}"), 100).await,
            (true, true),
            "refund-{i} replays"
        );
    }
    for i in 6..10 {
        assert_eq!(
            commit(&system, &partner, &token, &format!("refund-{i}"), 100).await,
            (true, false)
        );
    }
    let (allow, replayed) = commit(&system, &partner, &token, "refund-10", 100).await;
    assert!(!allow && !replayed, "the cap holds exactly ten");
    // The suspension made while the edge was down reaches it.
    let deadline = Instant::now() + CONVERGE;
    loop {
        let resp = system
            .client
            .get(format!("{}/verify?agent_id={other}", system.edge.edge))
            .send()
            .await
            .expect("verify");
        if resp.status() == StatusCode::FORBIDDEN {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the suspension never reached the edge"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    system.assert_nothing_lost(&org, &[payer, other]).await;
}

/// Receipts wait at the edge (in its Durable Objects, on disk) until the origin has them:
/// committed while no origin collects them, kept through an edge restart, all collected once
/// an origin is back, each exactly as answered (SPEC §12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_receipts_wait_at_the_edge_through_a_restart() {
    let Some(mut system) = Faulty::start(false).await else {
        return;
    };
    let org = system.org("receipts").await;
    let payer = system.agent(&org, "payer").await;
    let (partner, partner_id) = partner_of(&system, "Receipt Shop").await;
    let token = token_of(&system, &payer, &partner_id).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answered = vec![loop {
        let (decision, _) = commit_answer(&system, &partner, &token, "receipt-0", 10).await;
        if decision["allow"] == true {
            break decision;
        }
        assert!(Instant::now() < deadline, "the payer was never allowed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }];
    // No origin collects while these are committed; then the edge restarts.
    system.kill_origin().await;
    for i in 1..4 {
        let (decision, replayed) =
            commit_answer(&system, &partner, &token, &format!("receipt-{i}"), 10).await;
        assert!(decision["allow"] == true && !replayed, "{decision}");
        answered.push(decision);
    }
    system.restart_edge().await;
    system.start_origin().await;

    let deadline = Instant::now() + CONVERGE;
    let page = loop {
        let page = system
            .admin_ok(
                reqwest::Method::GET,
                &format!("/v1/agents/{payer}/receipts"),
                None,
            )
            .await;
        if page["data"]
            .as_array()
            .is_some_and(|d| d.len() >= answered.len())
        {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "the receipts never all reached the origin: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let by_id = |mut decisions: Vec<Value>| {
        decisions.sort_by_key(|d| d["decision_id"].as_str().unwrap_or_default().to_owned());
        decisions
    };
    assert_eq!(
        by_id(page["data"].as_array().unwrap().clone()),
        by_id(answered),
        "every receipt, once, as answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_postgres_restarted_mid_transaction_loses_no_acknowledged_change() {
    let Some(system) = Faulty::start(true).await else {
        return;
    };
    let Database::Postgres(pg) = &system.db else {
        unreachable!("started on Postgres");
    };
    let org = system.org("pgrestart").await;
    // Writers register agents and flip them while the server is restarted under them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let client = system.client.clone();
        let origin = system.origin_url.clone();
        let org = org.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut failures = 0u32;
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let mut passport = crate::stack::seed_passport(&org, &format!("writer {w} #{i}"));
                passport["status"] = json!("active");
                let resp = client
                    .post(format!("{origin}/v1/agents"))
                    .bearer_auth(ADMIN)
                    .json(&passport)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == StatusCode::CREATED => {
                        let body: Value = r.json().await.expect("json");
                        let id = body["agent"]["agent_id"].as_str().expect("id").to_owned();
                        let flipped = client
                            .put(format!("{origin}/v1/agents/{id}/status"))
                            .bearer_auth(ADMIN)
                            .json(&json!({ "status": "suspended", "reason": "flip" }))
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success());
                        acknowledged.push((id, flipped));
                    }
                    Ok(r) => {
                        // Refused while the database is away: a JSON error, never a hang.
                        assert!(r.status().is_server_error(), "{}", r.status());
                        let body: Value = r.json().await.expect("a JSON error");
                        assert!(body["error"].is_string(), "{body}");
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(_) => failures += 1,
                }
            }
            (acknowledged, failures)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    pg.restart_immediately();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut agents = Vec::new();
    let mut failures = 0;
    for writer in writers {
        let (acknowledged, failed) = writer.await.expect("writer");
        failures += failed;
        for (id, flipped) in acknowledged {
            // Every acknowledged change is there, in the state it was acknowledged in.
            let passport = system
                .admin_ok(reqwest::Method::GET, &format!("/v1/agents/{id}"), None)
                .await;
            if flipped {
                assert_eq!(passport["status"], "suspended", "{id}");
            }
            agents.push(id);
        }
    }
    assert!(!agents.is_empty(), "some writes went through");
    eprintln!(
        "{} registrations acknowledged, {failures} refused while PostgreSQL restarted",
        agents.len()
    );
    // The origin itself recovered without a restart, and nothing acknowledged was lost.
    let later = system.agent(&org, "after the restart").await;
    agents.push(later);
    system.assert_nothing_lost(&org, &agents).await;
}
