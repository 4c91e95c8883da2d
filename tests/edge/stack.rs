//! The whole system on loopback: the origin (SQLite) with its KV publisher and audit sealer, and
//! the local edge
//! (scripts/edge/serve.mjs: the built worker in workerd, KV, and the KV REST-shaped endpoint).
//!
//! Needs `VOUCH_NODE` (Node 22) and a built `edge-worker/build/`, which `scripts/test.sh`
//! provides. Without them the tests say so and skip, unless `VOUCH_REQUIRE_EDGE=1` (set by
//! scripts/test.sh), where that is a failure.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use vouch_origin::journal::{JournalClient, JournalPublisher};
use vouch_origin::kv::{KvClient, KvTarget, Publisher};
use vouch_origin::{app, store};

pub const ADMIN: &str = "vk_admin_edge-test-platform-token-0123456789";
/// The `iss` of the tokens the test origin issues (the edge learns it from discovery in KV).
pub const ISSUER: &str = "http://origin.test";
pub const KV_TOKEN: &str = "kv-test-token";
/// The edge secret of `POST /internal/journal`, shared by the local edge and the test origin.
pub const EDGE_SECRET: &str = "edge-test-secret-0123456789abcdef";
/// How old an isolate's copy of the journal may get before `/verify` fails closed (the
/// worker's `VOUCH_JOURNAL_BOUND_MS` in these tests; deployed it is 10 s).
pub const JOURNAL_BOUND: Duration = Duration::from_millis(2_000);
/// How long a signing key is published before the test origin signs with it.
pub const KEY_PUBLISH_AHEAD: Duration = Duration::from_secs(1);
/// How long KV must hold a change before the test origin lets the journal drop it.
pub const JOURNAL_SETTLE: Duration = Duration::from_secs(2);

/// A partner: its id and its key (shown once by the origin).
#[derive(Clone, Debug)]
pub struct Partner {
    pub id: String,
    pub key: String,
}

pub struct Stack {
    pub origin: String,
    pub edge: String,
    /// The KV REST-shaped endpoint's base (`…/client/v4`).
    pub kv_api: String,
    /// Its test controls (`/__control/…`).
    pub kv_control: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn store::Store>,
    local_edge: LocalEdge,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// The local edge (scripts/edge/serve.mjs): the built worker in workerd, its KV and Durable
/// Objects, and the KV REST-shaped endpoint. Stopped (SIGTERM, then SIGKILL) when dropped.
pub struct LocalEdge {
    pub edge: String,
    /// The KV REST-shaped endpoint's base (`…/client/v4`).
    pub kv_api: String,
    /// Its test controls (`/__control/…`).
    pub kv_control: String,
    node: Option<Child>,
    drain: Option<tokio::task::JoinHandle<()>>,
}

impl LocalEdge {
    /// Starts the local edge with the test settings and `edge_env` on top (ports, persistence,
    /// worker variables); `None` to skip when it cannot run here.
    pub async fn start(edge_env: &[(&str, &str)]) -> Option<LocalEdge> {
        let node = edge_prerequisites()?;
        let mut child = Command::new(node)
            .arg(repo().join("scripts/edge/serve.mjs"))
            .env("VOUCH_EDGE_PORT", "0")
            .env("VOUCH_KV_API_PORT", "0")
            .env("VOUCH_KV_API_TOKEN", KV_TOKEN)
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("VOUCH_EDGE_SECRET", EDGE_SECRET)
            .env("VOUCH_EDGE_TEST_CONTROLS", "1")
            // One decision key for every test edge, so a restarted edge signs as before.
            .env("VOUCH_DECISION_KEY", test_decision_key())
            // Benchmarks measure with the deployed default (`VOUCH_JOURNAL_REFRESH_MS` set).
            .env(
                "VOUCH_JOURNAL_REFRESH_MS",
                std::env::var("VOUCH_JOURNAL_REFRESH_MS").unwrap_or_else(|_| "250".into()),
            )
            .env(
                "VOUCH_JOURNAL_BOUND_MS",
                JOURNAL_BOUND.as_millis().to_string(),
            )
            .envs(edge_env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the local edge");
        let stdout = child.stdout.take().expect("edge stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the local edge did not start within 60 s")
            .expect("read the edge's first line")
            .expect("the local edge exited before it was ready");
        let ready: Value = serde_json::from_str(&ready).expect("the edge's ready line is JSON");
        let edge = ready["edge"].as_str().expect("edge url").to_owned();
        let kv_api = ready["kv_api_base"].as_str().expect("kv api").to_owned();
        let kv_control = kv_api.trim_end_matches("/client/v4").to_owned();
        // Keep reading the edge's stdout so it never blocks on a full pipe.
        let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(LocalEdge {
            edge,
            kv_api,
            kv_control,
            node: Some(child),
            drain: Some(drain),
        })
    }

    /// The process id of its Node process (workerd runs as its child; the soak benchmark
    /// samples its memory).
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.node.as_ref().and_then(Child::id)
    }

    /// Stops it: SIGTERM lets Miniflare stop its workerd child; SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Some(drain) = self.drain.take() {
            drain.abort();
        }
        let Some(mut child) = self.node.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = child.start_kill();
    }
}

impl Drop for LocalEdge {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The pinned Python test tools (scripts/lib/python-env.sh); required when the edge is.
pub fn python() -> Option<PathBuf> {
    let required = std::env::var("VOUCH_REQUIRE_EDGE").is_ok_and(|v| v == "1");
    match std::env::var_os("VOUCH_PYTHON").map(PathBuf::from) {
        Some(python) if python.exists() => Some(python),
        _ if required => panic!(
            "VOUCH_REQUIRE_EDGE=1 but VOUCH_PYTHON ({:?}) is not the test tools' python: \
             run scripts/test.sh (it calls ensure_python_env)",
            std::env::var_os("VOUCH_PYTHON")
        ),
        _ => {
            eprintln!("skipped: VOUCH_PYTHON is not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// The decision key of the test edges (SPEC §12): a fixed seed, as a private JWK.
pub fn test_decision_key() -> String {
    vouch_core::signing::DecisionKey::from_seed(&[0x5e; 32])
        .private_jwk()
        .to_string()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `Some(node)` when the edge can run here; `None` to skip (only when not required).
fn edge_prerequisites() -> Option<PathBuf> {
    let required = std::env::var("VOUCH_REQUIRE_EDGE").is_ok_and(|v| v == "1");
    let node = std::env::var_os("VOUCH_NODE").map(PathBuf::from);
    let built = repo().join("edge-worker/build/index.js").exists();
    match node {
        Some(node) if built && node.exists() => Some(node),
        _ if required => panic!(
            "VOUCH_REQUIRE_EDGE=1 but the local edge cannot run: VOUCH_NODE={:?}, edge-worker/build built: {built}",
            std::env::var_os("VOUCH_NODE")
        ),
        _ => {
            eprintln!("skipped: run scripts/test.sh (it builds the worker and sets VOUCH_NODE)");
            None
        }
    }
}

impl Stack {
    pub async fn start() -> Option<Stack> {
        Stack::start_with(&[]).await
    }

    /// A stack whose local edge gets these extra environment variables (the worker's settings).
    pub async fn start_with(edge_env: &[(&str, &str)]) -> Option<Stack> {
        let local_edge = LocalEdge::start(edge_env).await?;
        let edge = local_edge.edge.clone();
        let kv_api = local_edge.kv_api.clone();
        let kv_control = local_edge.kv_control.clone();
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("vouch.db").display());
        let store = store::connect(&url).await.expect("open SQLite");
        let boot = app::Boot {
            admin_token: Some(ADMIN.to_owned()),
            master_key: vouch_origin::keys::MasterKey::from_base64(
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            )
            .expect("master key"),
            tokens: vouch_origin::keys::TokenSettings {
                issuer: ISSUER.to_owned(),
                jwks_uri: format!("{ISSUER}/.well-known/jwks.json"),
                publish_ahead: KEY_PUBLISH_AHEAD,
                // Served by this edge, as `VOUCH_EDGE_URL` makes it.
                status_lists: vouch_origin::status_lists::StatusListSettings::new(edge.clone()),
            },
        };
        let (mut state, _) = app::bootstrap(store.clone(), boot)
            .await
            .expect("bootstrap");
        state.journal = true;
        state.kv = true;
        state.edge_url = Some(edge.clone());
        let journal = JournalPublisher::new(
            store.clone(),
            JournalClient::new(&edge, EDGE_SECRET).expect("journal client"),
        )
        .with_settle(JOURNAL_SETTLE);
        let journaling = tokio::spawn(journal.run());
        let collector =
            vouch_origin::receipts::ReceiptCollector::new(store.clone(), &edge, EDGE_SECRET)
                .expect("receipt collector");
        let collecting = tokio::spawn(collector.run());
        let target = kv_target(&kv_api);
        let publisher = Publisher::new(store.clone(), KvClient::new(&target).expect("kv client"));
        let publishing = tokio::spawn(publisher.run());
        let sealer = vouch_origin::audit::Sealer::new(store.clone(), state.audit.clone());
        let sealing = tokio::spawn(sealer.run(state.stopping.subscribe()));
        let lists =
            vouch_origin::status_lists::StatusListBuilder::new(store.clone(), state.keys.clone());
        let listing = tokio::spawn(lists.run(state.stopping.subscribe()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        let serving = tokio::spawn(async move {
            let _ = app::serve(listener, state).await;
        });
        let stack = Stack {
            origin,
            edge,
            kv_api,
            kv_control,
            client: reqwest::Client::new(),
            store,
            local_edge,
            tasks: vec![
                publishing, journaling, collecting, sealing, listing, serving,
            ],
            _dir: dir,
        };
        // The edge answers 503 until the origin has seeded its journal: wait for that.
        let deadline = Instant::now() + Duration::from_secs(30);
        while stack.journal_entries().await["seeded"] != true {
            assert!(
                Instant::now() < deadline,
                "the origin did not seed the journal"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(stack)
    }

    /// Where the stack's KV REST-shaped endpoint is, as a publisher's target.
    pub fn kv_target(&self) -> KvTarget {
        kv_target(&self.kv_api)
    }

    /// `(status, etag, body)` of a request.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Option<String>, Value) {
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, etag, body)
    }

    /// `POST /verify` at the edge with this request: `(status, etag, body)`.
    pub async fn decide(&self, request: Value) -> (StatusCode, Option<String>, Value) {
        self.send(
            self.client
                .post(format!("{}/verify", self.edge))
                .json(&request),
        )
        .await
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.origin))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let (status, _, body) = self.send(req).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// A new org and an agent registered in it with the seed passport; returns the agent id.
    pub async fn seed_agent(&self, name: &str) -> String {
        let org = self.org(name).await;
        self.register(&org, name).await
    }

    /// A new org named `name`; returns its id.
    pub async fn org(&self, name: &str) -> String {
        let slug: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_lowercase();
        let org = self
            .admin(
                reqwest::Method::POST,
                "/v1/orgs",
                Some(json!({ "name": name, "slug": format!("o{slug}") })),
            )
            .await;
        org["org_id"].as_str().expect("org id").to_owned()
    }

    /// An agent registered in `org` with the seed passport (a draft); returns its id.
    pub async fn register(&self, org: &str, name: &str) -> String {
        let body = self
            .admin(
                reqwest::Method::POST,
                "/v1/agents",
                Some(seed_passport(org, name)),
            )
            .await;
        body["agent"]["agent_id"]
            .as_str()
            .expect("agent id")
            .to_owned()
    }

    /// A seeded agent, activated, once the edge allows it.
    pub async fn active_agent(&self, name: &str) -> String {
        let agent = self.seed_agent(name).await;
        self.set_status(&agent, "active").await;
        let (status, _, body) = self
            .verify_until(&agent, Duration::from_secs(10), |s, _| s == StatusCode::OK)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        agent
    }

    /// A fresh API key for `agent` (rotating it: the test needs the secret, which is shown once).
    pub async fn api_key(&self, agent: &str) -> String {
        let body = self
            .admin(
                reqwest::Method::POST,
                &format!("/v1/agents/{agent}/keys"),
                None,
            )
            .await;
        body["api_key"].as_str().expect("api key").to_owned()
    }

    pub async fn set_status(&self, agent: &str, status: &str) -> Value {
        self.admin(
            reqwest::Method::PUT,
            &format!("/v1/agents/{agent}/status"),
            Some(json!({ "status": status, "reason": format!("test: {status}") })),
        )
        .await
    }

    pub async fn verify(&self, agent: &str) -> (StatusCode, Option<String>, Value) {
        self.send(
            self.client
                .get(format!("{}/verify?agent_id={agent}", self.edge)),
        )
        .await
    }

    /// Polls `GET /verify` until `done` holds (at most `within`); returns the last answer.
    pub async fn verify_until(
        &self,
        agent: &str,
        within: Duration,
        done: impl Fn(StatusCode, &Value) -> bool,
    ) -> (StatusCode, Option<String>, Value) {
        let started = Instant::now();
        loop {
            let answer = self.verify(agent).await;
            if done(answer.0, &answer.2) || started.elapsed() > within {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `PUT /v1/agents/{agent}/status?wait=propagated`: `(HTTP status, body)`.
    pub async fn set_status_propagated(&self, agent: &str, status: &str) -> (StatusCode, Value) {
        let (code, _, body) = self
            .send(
                self.client
                    .put(format!(
                        "{}/v1/agents/{agent}/status?wait=propagated",
                        self.origin
                    ))
                    .bearer_auth(ADMIN)
                    .json(&json!({ "status": status, "reason": format!("test: {status}") })),
            )
            .await;
        (code, body)
    }

    /// Makes every KV write fail (HTTP 500) until [`Stack::kv_release`].
    pub async fn kv_hold(&self) {
        self.kv_fault(json!({ "status": 500, "count": 1_000_000 }))
            .await;
    }

    /// Drops every queued KV fault.
    pub async fn kv_release(&self) {
        let resp = self
            .client
            .delete(format!("{}/__control/faults", self.kv_control))
            .send()
            .await
            .expect("clear faults");
        assert!(resp.status().is_success());
    }

    /// The value KV holds under `key` (read past any queued fault), if any.
    pub async fn kv_get(&self, key: &str) -> Option<Value> {
        let resp = self
            .client
            .get(format!("{}/__control/kv/{key}", self.kv_control))
            .send()
            .await
            .expect("kv get");
        if resp.status() == StatusCode::NOT_FOUND {
            return None;
        }
        Some(resp.json().await.expect("kv value is JSON"))
    }

    /// Makes the status journal refuse isolates' pulls for `ms` (the worker's test control).
    pub async fn journal_outage(&self, ms: u64) {
        self.journal_outage_of(ms, false).await;
    }

    /// The same, with pulls that hang (no answer) until the outage ends when `hang`.
    pub async fn journal_outage_of(&self, ms: u64, hang: bool) {
        let resp = self
            .client
            .post(format!("{}/internal/test/journal-outage", self.edge))
            .bearer_auth(EDGE_SECRET)
            .json(&json!({ "for_ms": ms, "hang": hang }))
            .send()
            .await
            .expect("journal outage");
        assert!(resp.status().is_success(), "{}", resp.status());
    }

    /// Empties the status journal as if it were new (a new epoch, unseeded).
    pub async fn journal_reset(&self) {
        let resp = self
            .client
            .post(format!("{}/internal/test/journal-reset", self.edge))
            .bearer_auth(EDGE_SECRET)
            .json(&json!({}))
            .send()
            .await
            .expect("journal reset");
        assert!(resp.status().is_success(), "{}", resp.status());
    }

    /// Makes the isolate that answers forget its copy of the journal, as a fresh one has none.
    pub async fn isolate_cold(&self) {
        let resp = self
            .client
            .post(format!("{}/internal/test/isolate-cold", self.edge))
            .bearer_auth(EDGE_SECRET)
            .json(&json!({}))
            .send()
            .await
            .expect("cold isolate");
        assert!(resp.status().is_success(), "{}", resp.status());
    }

    /// `POST /internal/journal` as the origin would send it: `(status, body)`.
    pub async fn journal_append(&self, append: &Value) -> (StatusCode, Value) {
        let (status, _, body) = self
            .send(
                self.client
                    .post(format!("{}/internal/journal", self.edge))
                    .bearer_auth(EDGE_SECRET)
                    .json(append),
            )
            .await;
        (status, body)
    }

    /// A new partner (SPEC §14), once the edge knows its key.
    pub async fn partner(&self, name: &str) -> Partner {
        let created = self
            .admin(
                reqwest::Method::POST,
                "/v1/partners",
                Some(json!({ "name": name, "contact": "security@partner.example" })),
            )
            .await;
        let partner = Partner {
            id: created["partner_id"]
                .as_str()
                .expect("partner id")
                .to_owned(),
            key: created["key"].as_str().expect("partner key").to_owned(),
        };
        self.partner_known(&partner.key, true).await;
        partner
    }

    /// Waits until the edge accepts `key` (`known`) or refuses it (`401`), up to the patience of
    /// these tests; panics past it.
    pub async fn partner_known(&self, key: &str, known: bool) -> Duration {
        let started = Instant::now();
        loop {
            let (status, _, body) = self
                .send(
                    self.client
                        .get(format!(
                            "{}/verify?agent_id=ap_00000000000000000000000000000000",
                            self.edge
                        ))
                        .bearer_auth(key),
                )
                .await;
            if (status != StatusCode::UNAUTHORIZED) == known {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the edge never {} the partner key: {status} {body}",
                if known { "accepted" } else { "refused" }
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A fresh token of `agent` (client credentials with a new API key).
    pub async fn agent_token(&self, agent: &str) -> String {
        self.agent_token_for(agent, None).await
    }

    /// The same, asking for `audience` (`aud`) when given.
    pub async fn agent_token_for(&self, agent: &str, audience: Option<&str>) -> String {
        let key = self.api_key(agent).await;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", agent),
            ("client_secret", key.as_str()),
        ];
        if let Some(audience) = audience {
            form.push(("audience", audience));
        }
        let resp = self
            .client
            .post(format!("{}/oauth/token", self.origin))
            .form(&form)
            .send()
            .await
            .expect("token");
        let body: Value = resp.json().await.expect("token json");
        body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    /// How many pulls the journal object has served (this reading included).
    pub async fn journal_pulls(&self) -> u64 {
        let resp = self
            .client
            .get(format!("{}/internal/journal?since=0", self.edge))
            .bearer_auth(EDGE_SECRET)
            .send()
            .await
            .expect("journal");
        resp.headers()
            .get("x-vouch-journal-pulls")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("the pulls header")
    }

    /// `GET /internal/journal?since=0`: what the journal holds.
    pub async fn journal_entries(&self) -> Value {
        let (status, _, body) = self
            .send(
                self.client
                    .get(format!("{}/internal/journal?since=0", self.edge))
                    .bearer_auth(EDGE_SECRET),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Queues a fault on the KV REST-shaped endpoint.
    pub async fn kv_fault(&self, fault: Value) {
        let resp = self
            .client
            .post(format!("{}/__control/faults", self.kv_control))
            .json(&fault)
            .send()
            .await
            .expect("queue a fault");
        assert!(resp.status().is_success());
    }

    pub async fn kv_stats(&self) -> Value {
        self.client
            .get(format!("{}/__control/stats", self.kv_control))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json")
    }

    /// Writes a raw value into KV through the REST-shaped endpoint.
    pub async fn kv_put(&self, key: &str, value: &Value) {
        let resp = self
            .client
            .put(format!(
                "{}/accounts/local/storage/kv/namespaces/vouch-local/values/{key}",
                self.kv_api
            ))
            .bearer_auth(KV_TOKEN)
            .body(value.to_string())
            .send()
            .await
            .expect("kv put");
        assert!(
            resp.status().is_success(),
            "kv put {key}: {}",
            resp.status()
        );
    }
}

/// The registration body of the seed passport (SPEC §3) in `org`, named `name` (a draft).
pub fn seed_passport(org: &str, name: &str) -> Value {
    json!({
        "org_id": org,
        "name": name,
        "owner": { "display_name": "Acme Support Team", "contact": "security@acme.com" },
        "role": "Tier-2 Support",
        "capabilities": [
            { "id": "payments.refund", "params": { "max_amount": 100, "currency": "USD" } },
            { "id": "data.export", "params": { "max_rows": 1000 } }
        ],
        "limits": { "refund_usd_max_per_tx": 100, "refund_usd_daily_cap": 1000, "max_export_rows": 1000, "allow_pii": false },
        "regions": ["US-NY", "US-CA"],
        "assurance_level": "L2",
        "public_jwk": { "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }
    })
}

fn kv_target(kv_api: &str) -> KvTarget {
    KvTarget {
        api_base: kv_api.to_owned(),
        account_id: "local".to_owned(),
        namespace_id: "vouch-local".to_owned(),
        api_token: KV_TOKEN.to_owned(),
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.local_edge.stop();
    }
}
