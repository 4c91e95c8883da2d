//! Processes the cross-part tests and benchmarks run beside the local edge: the origin as its
//! own process (`vouch-origin serve`, which a test may SIGKILL), and a PostgreSQL server of their
//! own (which a test may restart without disturbing anything else).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::stack::{LocalEdge, ADMIN, EDGE_SECRET, ISSUER, KV_TOKEN};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The `vouch-origin` binary `cargo test --workspace` built beside this test, refused when a
/// source file of the origin or the core is newer (it would be testing stale code).
pub fn origin_binary() -> PathBuf {
    workspace_binary(
        "vouch-origin",
        &["origin/src", "origin/migrations", "shared/src"],
    )
}

/// The `vouch` CLI `cargo test --workspace` built beside this test, refused when stale.
pub fn cli_binary() -> PathBuf {
    workspace_binary(
        "vouch",
        &["origin/cli/src", "origin/client/src", "shared/src"],
    )
}

/// The binary `name` of the workspace's target directory, refused when a file under one of
/// `sources` is newer.
fn workspace_binary(name: &str, sources: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let binary = profile.join(name);
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run the tests with `cargo test --workspace` (scripts/test.sh does)",
                binary.display()
            )
        });
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in sources {
        if let Some(newer) = newer_than(&repo.join(dir), built) {
            panic!(
                "{} is older than {}: run `cargo build --workspace` (or scripts/test.sh)",
                binary.display(),
                newer.display()
            );
        }
    }
    binary
}

/// A file under `dir` modified after `than`, if any.
fn newer_than(dir: &Path, than: std::time::SystemTime) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()) {
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

/// A PostgreSQL cluster in a temporary directory on its own port (initdb + pg_ctl from the
/// machine's PostgreSQL), so that restarting it disturbs nothing else.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    /// `runuser -u postgres --` when the tests run as root (PostgreSQL refuses root).
    as_postgres: bool,
}

impl PrivatePostgres {
    /// `None` (skip) when the machine has no PostgreSQL binaries, unless Postgres is required.
    pub fn start() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(|v| v.ok())
                    .map(|v| v.path().join("bin"))
                    .filter(|b| b.join("pg_ctl").exists())
                    .max()
            });
        let Some(bin) = bin else {
            assert!(
                std::env::var("VOUCH_REQUIRE_POSTGRES").ok().as_deref() != Some("1"),
                "VOUCH_REQUIRE_POSTGRES=1 but no PostgreSQL server binaries under /usr/lib/postgresql"
            );
            eprintln!("skipped: no PostgreSQL server binaries (initdb, pg_ctl)");
            return None;
        };
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = PrivatePostgres {
            dir,
            port: free_port(),
            bin,
            as_postgres: root,
        };
        if root {
            pg.run(
                "chown",
                &["-R", "postgres", &pg.dir.path().display().to_string()],
                false,
            );
        }
        let data = pg.data();
        pg.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
            true,
        );
        pg.pg_ctl(&["start", "-w", "-t", "60"]);
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, program: &str, args: &[&str], postgres_tool: bool) {
        let program = if postgres_tool {
            self.bin.join(program).display().to_string()
        } else {
            program.to_owned()
        };
        let mut command = if self.as_postgres && postgres_tool {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", &program]);
            c
        } else {
            std::process::Command::new(&program)
        };
        let out = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl(&self, action: &[&str]) {
        let data = self.data();
        let log = self.dir.path().join("server.log").display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let mut args = vec![
            "-D",
            data.as_str(),
            "-l",
            log.as_str(),
            "-o",
            options.as_str(),
        ];
        args.extend_from_slice(action);
        self.run("pg_ctl", &args, true);
    }

    /// Restarts the server the hard way: every connection and transaction in flight is cut
    /// (`-m immediate`, as after a crash; it recovers from its WAL on start).
    pub fn restart_immediately(&self) {
        self.pg_ctl(&["restart", "-m", "immediate", "-w", "-t", "60"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let bin = self.bin.join("pg_ctl").display().to_string();
        let mut command = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", &bin]);
            c
        } else {
            std::process::Command::new(&bin)
        };
        let _ = command
            .args(["-D", &data, "stop", "-m", "immediate"])
            .output();
    }
}

/// The origin as its own process, on the local edge's KV and journal, webhooks to loopback
/// allowed; it logs to `log`. Killed when dropped.
pub struct OriginProcess {
    child: Child,
}

impl OriginProcess {
    /// Starts it on `port` over `database_url` (with `env` on top) and waits until it is ready.
    pub async fn start(
        port: u16,
        database_url: &str,
        edge: &LocalEdge,
        data_dir: &Path,
        env: &[(&str, &str)],
    ) -> OriginProcess {
        let log_path = data_dir.join("origin.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("origin log");
        let child = Command::new(origin_binary())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", database_url)
            .env("VOUCH_ADMIN_TOKEN", ADMIN)
            .env(
                "VOUCH_MASTER_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            )
            .env("VOUCH_ISSUER", ISSUER)
            .env("VOUCH_EDGE_URL", &edge.edge)
            .env("VOUCH_EDGE_SECRET", EDGE_SECRET)
            .env("VOUCH_KV_API_BASE", &edge.kv_api)
            .env("VOUCH_KV_ACCOUNT_ID", "local")
            .env("VOUCH_KV_NAMESPACE_ID", "vouch-local")
            .env("VOUCH_KV_API_TOKEN", KV_TOKEN)
            .env("VOUCH_WEBHOOK_ALLOW_PRIVATE", "true")
            // The tests and benchmarks drive more than one client's worth of load.
            .env("VOUCH_RATE_TOKEN_PER_CREDENTIAL", "0")
            .env("VOUCH_RATE_TOKEN_PER_ADDRESS", "0")
            .env("VOUCH_RATE_ADMIN_PER_CREDENTIAL", "0")
            .env("VOUCH_RATE_ADMIN_PER_ADDRESS", "0")
            .env("VOUCH_DATA_DIR", data_dir)
            .env_remove("VOUCH_LISTEN")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start vouch-origin");
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client
                .get(format!("{url}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return OriginProcess { child };
            }
            assert!(
                Instant::now() < deadline,
                "the origin did not get ready:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its process id (the soak benchmark samples its memory).
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL: no shutdown, nothing flushed, leases left behind.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill the origin");
    }
}
