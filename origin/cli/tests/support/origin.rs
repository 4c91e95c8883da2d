//! A real `vouch-origin serve` for the CLI's end-to-end tests: on a fresh SQLite file, or on a
//! fresh database of the PostgreSQL server `VOUCH_TEST_POSTGRES_URL` names (dropped after). The
//! process is killed when the [`Origin`] is dropped, even when an assertion fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tempfile::TempDir;

pub const ADMIN_TOKEN: &str = "vk_admin_cli_test_platform_token_0123456789";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Origin {
    child: Child,
    pub url: String,
    pub dir: TempDir,
    /// `(server URL, database name)` of a Postgres database to drop.
    postgres: Option<(String, String)>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((server, name)) = self.postgres.take() {
            let _ = runtime().block_on(async move {
                let pool = admin_pool(&server).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&pool)
                    .await?;
                pool.close().await;
                Ok::<(), sqlx::Error>(())
            });
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn admin_pool(url: &str) -> Result<sqlx::PgPool, sqlx::Error> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
}

/// `VOUCH_TEST_POSTGRES_URL`, or `None` to skip the Postgres half — unless
/// `VOUCH_REQUIRE_POSTGRES=1`, when a missing URL fails the test instead.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("VOUCH_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() && std::env::var("VOUCH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!("VOUCH_REQUIRE_POSTGRES=1 but VOUCH_TEST_POSTGRES_URL is not set");
    }
    url
}

impl Origin {
    /// An origin on `backend` with `env` added; `None` when Postgres is asked for and not
    /// configured (the test then skips).
    pub fn start(backend: Backend, env: &[(&str, &str)]) -> Option<Origin> {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, postgres) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("vouch.db").display()),
                None,
            ),
            Backend::Postgres => {
                let server = postgres_url()?;
                let nanos = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos();
                let name = format!("vouch_cli_test_{}_{nanos}", std::process::id());
                runtime().block_on(async {
                    let pool = admin_pool(&server).await.unwrap_or_else(|e| {
                        panic!("PostgreSQL at VOUCH_TEST_POSTGRES_URL is unreachable: {e}")
                    });
                    sqlx::query(&format!("CREATE DATABASE {name}"))
                        .execute(&pool)
                        .await
                        .unwrap();
                    pool.close().await;
                });
                let mut url = url::Url::parse(&server).unwrap();
                url.set_path(&name);
                (url.to_string(), Some((server, name)))
            }
        };
        let log = std::fs::File::create(dir.path().join("origin.log")).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(origin_binary())
            .args(["serve", "--listen", &addr])
            .env("DATABASE_URL", &database_url)
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
        let mut origin = Origin {
            child,
            url: format!("http://{addr}"),
            dir,
            postgres,
        };
        origin.wait_healthy();
        Some(origin)
    }

    pub fn log(&self) -> String {
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
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
