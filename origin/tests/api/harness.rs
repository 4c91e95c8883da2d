//! A real origin on a real database, reached over real HTTP on loopback.
//!
//! SQLite: a fresh file in a temp dir. Postgres: a fresh database on the server that
//! `VOUCH_TEST_POSTGRES_URL` names, dropped (`WITH (FORCE)`) when the app goes away.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use vouch_origin::{app, store};

pub const ADMIN: &str = "vk_admin_platform-test-token-0123456789abcdef";

pub enum Backend {
    Sqlite,
    Postgres,
}

enum Database {
    Sqlite {
        url: String,
        _dir: tempfile::TempDir,
    },
    Postgres {
        url: String,
        admin_url: String,
        name: String,
    },
}

/// A second origin over a test app's database.
pub struct Served {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a test app starts, beyond its backend.
#[derive(Default)]
pub struct Options {
    /// Those webhook settings, and the webhook sender running.
    pub webhooks: Option<vouch_origin::webhooks::WebhookSettings>,
    /// A first start without `VOUCH_ADMIN_TOKEN` (else it is [`ADMIN`]).
    pub unconfigured: bool,
    /// Changes to the state before the server starts (limits, say).
    #[allow(clippy::type_complexity)]
    pub configure: Option<Box<dyn FnOnce(&mut app::AppState) + Send>>,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    db: Database,
    pub store: std::sync::Arc<dyn store::Store>,
    pub keys: std::sync::Arc<vouch_origin::keys::Keys>,
    pub audit: std::sync::Arc<vouch_origin::audit::AuditLog>,
    server: tokio::task::JoinHandle<()>,
    sender: Option<tokio::task::JoinHandle<()>>,
}

/// A response: status, headers and JSON body (`Value::Null` when empty).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Asserts a JSON error with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.body["error"].as_str()),
            (status, Some(code)),
            "body: {}",
            self.body
        );
        assert!(self.body["message"].is_string(), "body: {}", self.body);
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        &self.body
    }
}

/// `VOUCH_TEST_POSTGRES_URL`, or `None` to skip the Postgres half — unless
/// `VOUCH_REQUIRE_POSTGRES=1` (CI sets it), when a missing URL fails the test: the Postgres half
/// must never skip silently.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("VOUCH_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() && std::env::var("VOUCH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!("VOUCH_REQUIRE_POSTGRES=1 but VOUCH_TEST_POSTGRES_URL is not set");
    }
    url
}

impl TestApp {
    /// With `webhooks`: those settings, and the webhook sender running.
    pub async fn start_with(
        backend: Backend,
        webhooks: Option<vouch_origin::webhooks::WebhookSettings>,
    ) -> Option<TestApp> {
        let options = Options {
            webhooks,
            ..Options::default()
        };
        TestApp::start_booted(backend, options)
            .await
            .map(|(app, _)| app)
    }

    /// A fresh database on the same backend as this app, started with `options`, and what that
    /// first start did about the platform token.
    pub async fn sibling(&self, options: Options) -> (TestApp, app::PlatformToken) {
        let backend = if self.is_postgres() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        TestApp::start_booted(backend, options)
            .await
            .expect("the backend of a running app")
    }

    async fn start_booted(
        backend: Backend,
        options: Options,
    ) -> Option<(TestApp, app::PlatformToken)> {
        let db = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("vouch.db").display());
                Database::Sqlite { url, _dir: dir }
            }
            Backend::Postgres => {
                let admin_url = postgres_url()?;
                let name = format!("vouch_test_{}", uuid::Uuid::now_v7().simple());
                let admin = sqlx::postgres::PgPoolOptions::new()
                    .acquire_timeout(std::time::Duration::from_secs(5))
                    .connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at VOUCH_TEST_POSTGRES_URL is unreachable: {e}")
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let mut url = url::Url::parse(&admin_url).unwrap();
                url.set_path(&name);
                Database::Postgres {
                    url: url.to_string(),
                    admin_url,
                    name,
                }
            }
        };
        let store = store::connect(db.url()).await.unwrap();
        let admin_token = (!options.unconfigured).then_some(ADMIN);
        let (mut state, platform) = app::bootstrap(store.clone(), boot(admin_token))
            .await
            .unwrap();
        if let Some(configure) = options.configure {
            configure(&mut state);
        }
        let webhooks = options.webhooks;
        let keys = state.keys.clone();
        let audit = state.audit.clone();
        let sender = webhooks.map(|settings| {
            state.webhooks = settings.clone();
            let sender =
                vouch_origin::webhooks::Dispatcher::new(store.clone(), keys.clone(), settings)
                    .unwrap();
            tokio::spawn(sender.run(state.stopping.subscribe()))
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await;
        });
        let app = TestApp {
            base,
            client: reqwest::Client::new(),
            db,
            store,
            keys,
            audit,
            server,
            sender,
        };
        Some((app, platform))
    }

    /// Sends `body` (JSON, or nothing) with `token` as the bearer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    /// Postgres: the test database stops taking connections and loses the ones it had, so the
    /// origin's next query fails with the server's own error text. Returns the database's name.
    pub async fn refuse_connections(&self) -> String {
        let Database::Postgres {
            admin_url, name, ..
        } = &self.db
        else {
            panic!("only a Postgres database can refuse connections");
        };
        let admin = sqlx::PgPool::connect(admin_url).await.unwrap();
        for statement in [
            format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ),
        ] {
            sqlx::query(&statement).execute(&admin).await.unwrap();
        }
        admin.close().await;
        name.clone()
    }

    /// A second origin over this app's database, started as the first was (with `ADMIN`) and
    /// then changed by `configure` (limits, say); it stops when dropped.
    pub async fn serve_again(&self, configure: impl FnOnce(&mut app::AppState)) -> Served {
        let (mut state, _) = app::bootstrap(self.store.clone(), boot(Some(ADMIN)))
            .await
            .unwrap();
        configure(&mut state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await;
        });
        Served { base, task }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        let req = self
            .client
            .patch(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string());
        self.send(req).await
    }

    /// A new org; returns its id.
    pub async fn org(&self, slug: &str) -> String {
        let reply = self
            .post("/v1/orgs", ADMIN, json!({ "name": slug, "slug": slug }))
            .await;
        reply.assert_status(201)["org_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A new token of `role` in `org`; returns the secret.
    pub async fn token(&self, org: &str, role: &str) -> String {
        let reply = self
            .post(
                &format!("/v1/orgs/{org}/tokens"),
                ADMIN,
                json!({ "role": role, "name": role }),
            )
            .await;
        reply.assert_status(201)["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Registers an agent named `name` in `org`; returns `(agent_id, api_key)`.
    pub async fn agent(&self, org: &str, name: &str) -> (String, String) {
        let reply = self.post("/v1/agents", ADMIN, passport(org, name)).await;
        let body = reply.assert_status(201);
        (
            body["agent"]["agent_id"].as_str().unwrap().to_owned(),
            body["api_key"].as_str().unwrap().to_owned(),
        )
    }

    /// The seed passport registered in `org` with `status` (`active`, `draft`, …):
    /// `(agent_id, api_key)`.
    pub async fn registered(&self, org: &str, name: &str, status: &str) -> (String, String) {
        let mut p = passport(org, name);
        p["status"] = serde_json::json!(status);
        let body = self
            .post("/v1/agents", ADMIN, p)
            .await
            .assert_status(201)
            .clone();
        (
            body["agent"]["agent_id"].as_str().unwrap().to_owned(),
            body["api_key"].as_str().unwrap().to_owned(),
        )
    }

    /// An access token of `agent` for its API key `key` (client credentials).
    pub async fn access_token(&self, agent: &str, key: &str) -> String {
        let reply = self
            .send(
                self.client
                    .post(format!("{}/oauth/token", self.base))
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", agent),
                        ("client_secret", key),
                    ]),
            )
            .await;
        reply.assert_status(200)["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn set_status(&self, agent: &str, status: &str) -> Reply {
        self.put(
            &format!("/v1/agents/{agent}/status"),
            ADMIN,
            json!({ "status": status }),
        )
        .await
    }

    /// Makes the standby signing key look published for longer than the publish-ahead time, so
    /// that a rotation makes it sign at once.
    pub async fn age_standby_key(&self) {
        self.sql(&format!(
            "UPDATE signing_keys SET created_at = created_at - {} WHERE signs_from IS NULL",
            PUBLISH_AHEAD.as_millis() + 1_000
        ))
        .await;
    }

    /// Runs SQL straight on the database, behind the origin's back.
    pub async fn sql(&self, statement: &str) {
        match &self.db {
            Database::Sqlite { url, .. } => {
                let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                sqlx::raw_sql(statement).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Database::Postgres { url, .. } => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::raw_sql(statement).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    /// A sealer of `chain` killed in the middle of a batch: a session of its own takes the
    /// chain, numbers its pending events, and dies before it commits (Postgres: the session is
    /// terminated; SQLite: the connection closes inside the transaction). Returns how many events
    /// it had numbered.
    pub async fn die_mid_seal(&self, chain: &str) -> u64 {
        use sqlx::Connection;
        let number = format!(
            "UPDATE audit_events SET seq = 1000000 + pending_id, leaf_hash = 'dying' \
             WHERE chain_id = '{chain}' AND seq IS NULL"
        );
        match &self.db {
            Database::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let numbered = sqlx::raw_sql(&number).execute(&mut conn).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                drop(conn);
                numbered.rows_affected()
            }
            Database::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
                let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                sqlx::query("SELECT chain_id FROM audit_chains WHERE chain_id = $1 FOR UPDATE")
                    .bind(chain)
                    .fetch_optional(&mut conn)
                    .await
                    .unwrap();
                let numbered = sqlx::raw_sql(&number).execute(&mut conn).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let killer = sqlx::PgPool::connect(url).await.unwrap();
                let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                    .bind(pid)
                    .fetch_one(&killer)
                    .await
                    .unwrap();
                assert!(killed, "the dying sealer's session was terminated");
                killer.close().await;
                drop(conn);
                numbered.rows_affected()
            }
        }
    }

    /// `SELECT COUNT(*) …` straight from the database.
    pub async fn count(&self, query: &str) -> i64 {
        match &self.db {
            Database::Sqlite { url, .. } => {
                let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                let n: i64 = sqlx::query_scalar(query).fetch_one(&pool).await.unwrap();
                pool.close().await;
                n
            }
            Database::Postgres { url, .. } => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                let n: i64 = sqlx::query_scalar(query).fetch_one(&pool).await.unwrap();
                pool.close().await;
                n
            }
        }
    }

    /// The outbox as the origin's own reader returns it.
    pub async fn outbox(&self) -> Vec<store::OutboxRow> {
        self.store.outbox_after(0, 1000).await.unwrap()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Database::Postgres { .. })
    }
}

impl Database {
    fn url(&self) -> &str {
        match self {
            Database::Sqlite { url, .. } | Database::Postgres { url, .. } => url,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(sender) = &self.sender {
            sender.abort();
        }
        if let Database::Postgres {
            admin_url, name, ..
        } = &self.db
        {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // A runtime of its own: Drop may run inside (or outside) the test's runtime.
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&admin)
                        .await
                        .unwrap();
                    admin.close().await;
                });
            })
            .join();
            if dropped.is_err() && !std::thread::panicking() {
                panic!("could not drop the test database");
            }
        }
    }
}

/// The origin's start-up settings for tests: a fixed master key and issuer.
pub fn boot(admin_token: Option<&str>) -> app::Boot {
    app::Boot {
        admin_token: admin_token.map(str::to_owned),
        master_key: vouch_origin::keys::MasterKey::from_base64(
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .unwrap(),
        tokens: vouch_origin::keys::TokenSettings {
            issuer: ISSUER.to_owned(),
            jwks_uri: format!("{ISSUER}/.well-known/jwks.json"),
            // Tests that rotate at once backdate the standby key (`TestApp::age_standby_key`).
            publish_ahead: PUBLISH_AHEAD,
            status_lists: vouch_origin::status_lists::StatusListSettings::new(EDGE),
        },
    }
}

pub const ISSUER: &str = "http://origin.test";
/// Where these tests' status lists say they are served.
pub const EDGE: &str = "http://edge.test";
/// How long a key is published before it signs, in these tests.
pub const PUBLISH_AHEAD: std::time::Duration = std::time::Duration::from_secs(60);

/// The seed passport of SPEC §3, registered into `org` under `name`.
pub fn passport(org: &str, name: &str) -> Value {
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
        "metadata": { "environment": "production" }
    })
}
