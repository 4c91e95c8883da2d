//! Soak benchmark: minutes of mixed load against the release origin (its own process, SQLite)
//! and the release worker in workerd — `GET /verify`, decisions that commit to the daily caps,
//! registrations, status flips (each timed until the edge shows it), token exchanges — with
//! the resident memory of the origin and of workerd sampled every 10 s. It passes when nothing
//! failed, memory is flat (the last minute within 10 % of the second) and propagation held.
//! A benchmark, not a test: run it with scripts/soak.sh (VOUCH_SOAK_SECONDS, default 600).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../edge/stack.rs"]
mod stack;

#[allow(dead_code)]
#[path = "../edge/process.rs"]
mod process;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use stack::{seed_passport, LocalEdge, ADMIN};

/// What every worker counts.
#[derive(Default)]
struct Counters {
    verify: AtomicU64,
    commits: AtomicU64,
    registrations: AtomicU64,
    flips: AtomicU64,
    exchanges: AtomicU64,
    errors: AtomicU64,
}

struct Shared {
    origin: String,
    edge: String,
    client: reqwest::Client,
    counters: Counters,
    stop: AtomicBool,
    /// `(seconds since start, propagation ms)` of every flip.
    propagation: Mutex<Vec<(f64, f64)>>,
    /// The first errors, for the report.
    first_errors: Mutex<Vec<String>>,
    started: Instant,
}

impl Shared {
    fn error(&self, what: String) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < 20 {
            first.push(what);
        }
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.origin))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("origin");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.expect("json")
    }

    async fn token(&self, agent: &str, key: &str) -> String {
        self.token_for(agent, key, None).await
    }

    /// A token of `agent` for `audience` (a partner that commits with it), when given.
    async fn token_for(&self, agent: &str, key: &str, audience: Option<&str>) -> String {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", agent),
            ("client_secret", key),
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
        let body: Value = resp.json().await.expect("json");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }
}

/// An active seed agent of `org` and its API key.
async fn agent(shared: &Shared, org: &str, name: &str) -> (String, String) {
    let mut passport = seed_passport(org, name);
    passport["status"] = json!("active");
    let body = shared
        .admin(reqwest::Method::POST, "/v1/agents", Some(passport))
        .await;
    (
        body["agent"]["agent_id"].as_str().unwrap().to_owned(),
        body["api_key"].as_str().unwrap().to_owned(),
    )
}

/// A memory figure of a process in KiB from `/proc/{pid}/status` (`VmRSS`, `RssAnon`…), if it runs.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Bytes of the files under `dir`: what the local KV and Durable Objects keep on disk.
fn stored_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => stored_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// The `workerd` processes started by the Node process `parent`.
fn workerd_pids(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid …`
            let Some((comm, rest)) = stat.split_once(") ") else {
                return false;
            };
            let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
            comm.ends_with("(workerd") && ppid == Some(parent)
        })
        .collect()
}

async fn verifier(shared: Arc<Shared>, agents: Arc<Vec<String>>, flippers: Arc<Vec<String>>) {
    let mut i = 0usize;
    while shared.running() {
        i += 1;
        let agent = if i % 5 == 0 {
            &flippers[i % flippers.len()]
        } else {
            &agents[i % agents.len()]
        };
        match shared
            .client
            .get(format!("{}/verify?agent_id={agent}", shared.edge))
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::OK || r.status() == StatusCode::FORBIDDEN => {
                let _ = r.bytes().await;
                shared.counters.verify.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => shared.error(format!("GET /verify: {}", r.status())),
            Err(e) => shared.error(format!("GET /verify: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
}

/// Commits through the partner `partner` (its id and key): a commit needs one (SPEC §14).
async fn committer(
    shared: Arc<Shared>,
    agents: Arc<Vec<(String, String)>>,
    n: usize,
    partner: Arc<(String, String)>,
) {
    let (partner_id, partner_key) = (&partner.0, &partner.1);
    let mut tokens: Vec<(String, Instant)> = Vec::new();
    for (agent, key) in agents.iter() {
        tokens.push((
            shared.token_for(agent, key, Some(partner_id)).await,
            Instant::now(),
        ));
    }
    let mut i = 0usize;
    while shared.running() {
        i += 1;
        let slot = i % agents.len();
        if tokens[slot].1.elapsed() > Duration::from_secs(200) {
            let (agent, key) = &agents[slot];
            tokens[slot] = (
                shared.token_for(agent, key, Some(partner_id)).await,
                Instant::now(),
            );
        }
        let body = json!({ "token": tokens[slot].0, "capability": "payments.refund", "commit": true,
                           "idempotency_key": format!("soak-{n}-{i}"),
                           "context": { "amount": 0.01, "currency": "USD", "region": "US-CA" } });
        match shared
            .client
            .post(format!("{}/verify", shared.edge))
            .bearer_auth(partner_key)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::OK => {
                let _ = r.bytes().await;
                shared.counters.commits.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => shared.error(format!("POST /verify commit: {}", r.status())),
            Err(e) => shared.error(format!("POST /verify commit: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The partner the committers commit through, once the edge knows its key: `(id, key)`.
async fn soak_partner(shared: &Shared) -> Arc<(String, String)> {
    let created: Value = shared
        .client
        .post(format!("{}/v1/partners", shared.origin))
        .bearer_auth(ADMIN)
        .json(&json!({ "name": "Soak Shop", "contact": "ops@soak.example" }))
        .send()
        .await
        .expect("partner")
        .json()
        .await
        .expect("partner json");
    let id = created["partner_id"]
        .as_str()
        .expect("partner id")
        .to_owned();
    let key = created["key"].as_str().expect("partner key").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let known = shared
            .client
            .get(format!(
                "{}/verify?agent_id=ap_00000000000000000000000000000000",
                shared.edge
            ))
            .bearer_auth(&key)
            .send()
            .await
            .is_ok_and(|r| r.status() != StatusCode::UNAUTHORIZED);
        if known {
            return Arc::new((id, key));
        }
        assert!(
            Instant::now() < deadline,
            "the edge never learned the partner key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn registrar(shared: Arc<Shared>, org: String) {
    let mut i = 0u64;
    while shared.running() {
        i += 1;
        match shared
            .client
            .post(format!("{}/v1/agents", shared.origin))
            .bearer_auth(ADMIN)
            .json(&seed_passport(&org, &format!("soak registration {i}")))
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::CREATED => {
                let _ = r.bytes().await;
                shared
                    .counters
                    .registrations
                    .fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => shared.error(format!("POST /v1/agents: {}", r.status())),
            Err(e) => shared.error(format!("POST /v1/agents: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn flipper(shared: Arc<Shared>, flippers: Arc<Vec<String>>) {
    let mut i = 0usize;
    // Each flipper alternates between suspended and active, starting active.
    let mut suspended = vec![false; flippers.len()];
    while shared.running() {
        let slot = i % flippers.len();
        i += 1;
        let agent = &flippers[slot];
        let suspend = !suspended[slot];
        suspended[slot] = suspend;
        let (target, expect) = if suspend {
            ("suspended", StatusCode::FORBIDDEN)
        } else {
            ("active", StatusCode::OK)
        };
        let resp = shared
            .client
            .put(format!("{}/v1/agents/{agent}/status", shared.origin))
            .bearer_auth(ADMIN)
            .json(&json!({ "status": target, "reason": "soak flip" }))
            .send()
            .await;
        match resp {
            Ok(r) if r.status() == StatusCode::OK => {
                let _ = r.bytes().await;
            }
            Ok(r) => {
                shared.error(format!("PUT status {target}: {}", r.status()));
                continue;
            }
            Err(e) => {
                shared.error(format!("PUT status {target}: {e}"));
                continue;
            }
        }
        let changed = Instant::now();
        loop {
            let seen = shared
                .client
                .get(format!("{}/verify?agent_id={agent}", shared.edge))
                .send()
                .await
                .map(|r| r.status());
            if seen.as_ref().ok() == Some(&expect) {
                break;
            }
            if changed.elapsed() > Duration::from_secs(15) {
                shared.error(format!("{agent} never showed {target} at the edge"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let at = shared.started.elapsed().as_secs_f64();
        let ms = changed.elapsed().as_secs_f64() * 1000.0;
        shared.propagation.lock().unwrap().push((at, ms));
        shared.counters.flips.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn exchanger(shared: Arc<Shared>, a: (String, String), b: (String, String)) {
    let mut fetched = Instant::now();
    let mut subject = shared.token(&a.0, &a.1).await;
    let mut actor = shared.token(&b.0, &b.1).await;
    let jwt = "urn:ietf:params:oauth:token-type:jwt";
    while shared.running() {
        if fetched.elapsed() > Duration::from_secs(200) {
            subject = shared.token(&a.0, &a.1).await;
            actor = shared.token(&b.0, &b.1).await;
            fetched = Instant::now();
        }
        match shared
            .client
            .post(format!("{}/oauth/token", shared.origin))
            .form(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", subject.as_str()),
                ("subject_token_type", jwt),
                ("actor_token", actor.as_str()),
                ("actor_token_type", jwt),
            ])
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::OK => {
                let _ = r.bytes().await;
                shared.counters.exchanges.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => shared.error(format!("token exchange: {}", r.status())),
            Err(e) => shared.error(format!("token exchange: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: u64 = std::env::var("VOUCH_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let out_dir = std::path::PathBuf::from(
        std::env::var("VOUCH_SOAK_OUT").unwrap_or_else(|_| "target/soak".into()),
    );
    std::fs::create_dir_all(&out_dir).expect("output dir");
    let dir = tempfile::tempdir().expect("temp dir");
    // The deployed journal settings: refresh every 500 ms, fail closed past 10 s. KV and the
    // Durable Objects keep their data on disk, as deployed (in memory they would grow with it).
    let persist = dir.path().join("edge").display().to_string();
    let edge = LocalEdge::start(&[
        ("VOUCH_JOURNAL_REFRESH_MS", "500"),
        ("VOUCH_JOURNAL_BOUND_MS", "10000"),
        ("VOUCH_EDGE_PERSIST", persist.as_str()),
        // One client address drives it all: the per-address limit would refuse most of it.
        ("VOUCH_EDGE_RATE_LIMIT", "0"),
    ])
    .await
    .expect("the local edge runs here (scripts/soak.sh sets it up)");
    let port = process::free_port();
    let database = format!("sqlite://{}", dir.path().join("vouch.db").display());
    let origin = process::OriginProcess::start(port, &database, &edge, dir.path(), &[]).await;
    let origin_pid = origin.pid().expect("origin pid");
    let node_pid = edge.pid().expect("edge pid");
    let shared = Arc::new(Shared {
        origin: format!("http://127.0.0.1:{port}"),
        edge: edge.edge.clone(),
        client: reqwest::Client::new(),
        counters: Counters::default(),
        stop: AtomicBool::new(false),
        propagation: Mutex::new(Vec::new()),
        first_errors: Mutex::new(Vec::new()),
        started: Instant::now(),
    });
    // Wait for the journal to be seeded.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seeded = shared
            .client
            .get(format!("{}/internal/journal?since=0", shared.edge))
            .bearer_auth(stack::EDGE_SECRET)
            .send()
            .await
            .ok();
        let seeded = match seeded {
            Some(r) => r
                .json::<Value>()
                .await
                .ok()
                .is_some_and(|v| v["seeded"] == true),
            None => false,
        };
        if seeded {
            break;
        }
        assert!(Instant::now() < deadline, "the journal was never seeded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let org = shared
        .admin(
            reqwest::Method::POST,
            "/v1/orgs",
            Some(json!({ "name": "Soak", "slug": "soak" })),
        )
        .await["org_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut pool = Vec::new();
    for i in 0..20 {
        pool.push(agent(&shared, &org, &format!("soak pool {i}")).await);
    }
    let mut flippers = Vec::new();
    for i in 0..6 {
        flippers.push(agent(&shared, &org, &format!("soak flipper {i}")).await.0);
    }
    let delegator = agent(&shared, &org, "soak delegator").await;
    let delegatee = agent(&shared, &org, "soak delegatee").await;
    shared
        .admin(
            reqwest::Method::POST,
            "/v1/delegations",
            Some(json!({ "delegator": delegator.0, "delegatee": delegatee.0,
                         "scopes": ["payments.refund"], "ttl_seconds": 86400, "max_depth": 1 })),
        )
        .await;
    // Load starts once the edge serves every agent set up.
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in pool.iter().map(|(id, _)| id).chain(flippers.iter()) {
        loop {
            let served = shared
                .client
                .get(format!("{}/verify?agent_id={id}", shared.edge))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK);
            if served {
                break;
            }
            assert!(Instant::now() < deadline, "{id} never reached the edge");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let ids = Arc::new(pool.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>());
    let flippers = Arc::new(flippers);
    let pool = Arc::new(pool);
    // VOUCH_SOAK_LOAD picks the kinds of load (all by default), to find what a trend follows.
    let load = std::env::var("VOUCH_SOAK_LOAD")
        .unwrap_or_else(|_| "verify,commits,registrations,flips,exchanges".into());
    let wants = |kind: &str| load.split(',').any(|k| k.trim() == kind);
    let mut workers = Vec::new();
    if wants("verify") {
        for _ in 0..2 {
            workers.push(tokio::spawn(verifier(
                shared.clone(),
                ids.clone(),
                flippers.clone(),
            )));
        }
    }
    if wants("commits") {
        let partner = soak_partner(&shared).await;
        for n in 0..2 {
            workers.push(tokio::spawn(committer(
                shared.clone(),
                pool.clone(),
                n,
                partner.clone(),
            )));
        }
    }
    if wants("registrations") {
        workers.push(tokio::spawn(registrar(shared.clone(), org.clone())));
    }
    if wants("flips") {
        workers.push(tokio::spawn(flipper(shared.clone(), flippers.clone())));
    }
    if wants("exchanges") {
        workers.push(tokio::spawn(exchanger(
            shared.clone(),
            delegator,
            delegatee,
        )));
    }

    // Sample memory every 10 s.
    let mut csv = std::fs::File::create(out_dir.join("soak.csv")).expect("csv");
    writeln!(
        csv,
        "seconds,origin_rss_kib,workerd_rss_kib,workerd_anon_kib,wasm_memory_kib,stored_kib,verify,commits,registrations,flips,exchanges,errors,propagation_p99_ms"
    )
    .unwrap();
    let mut samples: Vec<(f64, u64, u64, u64)> = Vec::new();
    let started = Instant::now();
    let mut last_flip = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t = started.elapsed().as_secs_f64();
        let origin_rss = status_kib(origin_pid, "VmRSS").unwrap_or(0);
        let workerd = workerd_pids(node_pid);
        let workerd_rss: u64 = workerd.iter().filter_map(|p| status_kib(*p, "VmRSS")).sum();
        // Of which anonymous (heaps): the rest is file pages mapped in (SQLite's storage files).
        let workerd_anon: u64 = workerd
            .iter()
            .filter_map(|p| status_kib(*p, "RssAnon"))
            .sum();
        let stored_kib = stored_bytes(std::path::Path::new(&persist)) / 1024;
        // The worker's own part of it: its wasm linear memory (which never shrinks).
        let wasm_kib = match shared
            .client
            .get(format!("{}/internal/test/memory", shared.edge))
            .bearer_auth(stack::EDGE_SECRET)
            .send()
            .await
        {
            Ok(r) => {
                r.json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["wasm_memory_bytes"].as_u64())
                    .unwrap_or(0)
                    / 1024
            }
            Err(_) => 0,
        };
        let c = &shared.counters;
        let window: Vec<f64> = {
            let all = shared.propagation.lock().unwrap();
            let window = all[last_flip..].iter().map(|(_, ms)| *ms).collect();
            last_flip = all.len();
            window
        };
        let mut sorted = window;
        sorted.sort_by(f64::total_cmp);
        writeln!(
            csv,
            "{t:.0},{origin_rss},{workerd_rss},{workerd_anon},{wasm_kib},{stored_kib},{},{},{},{},{},{},{:.0}",
            c.verify.load(Ordering::Relaxed),
            c.commits.load(Ordering::Relaxed),
            c.registrations.load(Ordering::Relaxed),
            c.flips.load(Ordering::Relaxed),
            c.exchanges.load(Ordering::Relaxed),
            c.errors.load(Ordering::Relaxed),
            percentile(&sorted, 0.99)
        )
        .unwrap();
        csv.flush().unwrap();
        eprintln!(
            "{t:>4.0} s  origin {:>6} KiB  workerd {:>7} KiB (anon {:>7}, wasm {:>6})  stored {:>7} KiB  errors {}",
            origin_rss,
            workerd_rss,
            workerd_anon,
            wasm_kib,
            stored_kib,
            c.errors.load(Ordering::Relaxed)
        );
        samples.push((t, origin_rss, workerd_rss, wasm_kib));
    }
    shared.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }

    // The verdict.
    let elapsed = started.elapsed().as_secs_f64();
    let c = &shared.counters;
    let minute = |from: f64, to: f64, pick: fn(&(f64, u64, u64, u64)) -> u64| -> f64 {
        mean(
            &samples
                .iter()
                .filter(|s| s.0 > from && s.0 <= to)
                .map(|s| pick(s) as f64)
                .collect::<Vec<_>>(),
        )
    };
    let (second_from, last_from) = (60.0, elapsed - 60.0);
    let origin_second = minute(second_from, second_from + 60.0, |s| s.1);
    let origin_last = minute(last_from, elapsed + 1.0, |s| s.1);
    let workerd_second = minute(second_from, second_from + 60.0, |s| s.2);
    let workerd_last = minute(last_from, elapsed + 1.0, |s| s.2);
    let wasm_second = minute(second_from, second_from + 60.0, |s| s.3);
    let wasm_last = minute(last_from, elapsed + 1.0, |s| s.3);
    let mut propagation: Vec<f64> = shared
        .propagation
        .lock()
        .unwrap()
        .iter()
        .map(|(_, ms)| *ms)
        .collect();
    propagation.sort_by(f64::total_cmp);
    let per_minute: Vec<f64> = (0..(elapsed / 60.0).ceil() as usize)
        .map(|m| {
            let mut window: Vec<f64> = shared
                .propagation
                .lock()
                .unwrap()
                .iter()
                .filter(|(t, _)| *t >= m as f64 * 60.0 && *t < (m + 1) as f64 * 60.0)
                .map(|(_, ms)| *ms)
                .collect();
            window.sort_by(f64::total_cmp);
            percentile(&window, 0.99)
        })
        .collect();
    let errors = c.errors.load(Ordering::Relaxed);
    let rate = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / elapsed;
    println!("| what | figure |\n|---|---|");
    println!("| duration | {elapsed:.0} s |");
    println!(
        "| load | GET /verify {:.0}/s, commits {:.0}/s, registrations {:.1}/s, status flips {:.1}/s, token exchanges {:.1}/s |",
        rate(&c.verify),
        rate(&c.commits),
        rate(&c.registrations),
        rate(&c.flips),
        rate(&c.exchanges)
    );
    println!("| errors | {errors} |");
    println!(
        "| origin RSS, 2nd minute → last minute | {:.1} → {:.1} MiB ({:+.1} %) |",
        origin_second / 1024.0,
        origin_last / 1024.0,
        (origin_last / origin_second - 1.0) * 100.0
    );
    println!(
        "| workerd RSS, 2nd minute → last minute | {:.1} → {:.1} MiB ({:+.1} %) |",
        workerd_second / 1024.0,
        workerd_last / 1024.0,
        (workerd_last / workerd_second - 1.0) * 100.0
    );
    println!(
        "| the worker's wasm memory, 2nd minute → last minute | {:.1} → {:.1} MiB ({:+.1} %) |",
        wasm_second / 1024.0,
        wasm_last / 1024.0,
        (wasm_last / wasm_second - 1.0) * 100.0
    );
    println!(
        "| propagation (flip returned → edge shows it), {} flips | p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms |",
        propagation.len(),
        percentile(&propagation, 0.5),
        percentile(&propagation, 0.95),
        percentile(&propagation, 0.99),
        propagation.last().copied().unwrap_or_default()
    );
    println!(
        "| propagation p99 per minute | {} ms |",
        per_minute
            .iter()
            .map(|p| format!("{p:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for error in shared.first_errors.lock().unwrap().iter() {
        eprintln!("error: {error}");
    }
    let flat = |second: f64, last: f64| last <= second * 1.10;
    let held = per_minute.iter().all(|p| *p <= 1_000.0);
    let verdict = errors == 0
        && flat(origin_second, origin_last)
        && flat(workerd_second, workerd_last)
        && held;
    println!(
        "\nverdict: {} (0 errors: {}, origin flat: {}, workerd flat: {}, propagation p99 ≤ 1 s every minute: {})",
        if verdict { "PASS" } else { "FAIL" },
        errors == 0,
        flat(origin_second, origin_last),
        flat(workerd_second, workerd_last),
        held
    );
    drop(origin);
    drop(edge);
    if !verdict {
        std::process::exit(1);
    }
}
