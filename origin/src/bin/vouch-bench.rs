//! `vouch-bench`: a load generator for the origin over real HTTP (DESIGN §4).
//!
//! It creates one org, then for every concurrency level runs, each for `--duration-secs`:
//! registrations (`POST /v1/agents`, unique names) and reads (`GET /v1/agents/{id}` of a random
//! agent from a pre-registered pool). Every loop stops at its deadline or at `--max-requests`,
//! whichever comes first. One markdown table row is printed per (label, operation, concurrency).
//!
//! This is a benchmark, not a test: it reports numbers and fails only when it cannot run at all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rand::Rng;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use url::Url;

#[derive(Debug, Parser)]
#[command(
    name = "vouch-bench",
    about = "Load generator for the Vouch origin: registrations and passport reads"
)]
struct Args {
    /// Base URL of a running origin, e.g. `http://127.0.0.1:8080` (loopback only).
    #[arg(long)]
    url: Url,
    /// Platform admin bearer token.
    #[arg(long, env = "VOUCH_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    /// Concurrency levels (workers, each with its own keep-alive connection), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// How long each (operation, concurrency) run lasts.
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    /// Hard cap on the requests of one (operation, concurrency) run.
    #[arg(long, default_value_t = 1_000_000)]
    max_requests: u64,
    /// How many agents the read runs choose from.
    #[arg(long, default_value_t = 200)]
    read_pool: usize,
    /// Label of the rows, e.g. `sqlite` or `postgres`.
    #[arg(long, default_value = "origin")]
    label: String,
    /// Leave out the table header (to append rows to another run's table).
    #[arg(long)]
    no_header: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Register,
    Read,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Register => "register (POST /v1/agents)",
            Operation::Read => "read (GET /v1/agents/{id})",
        }
    }
}

/// What the workers share during one run.
struct Run {
    client: Client,
    base: Url,
    token: String,
    org_id: String,
    /// Distinguishes this run's agent names from every other run's.
    prefix: String,
    pool: Arc<Vec<String>>,
    deadline: Instant,
    max_requests: u64,
    issued: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// One worker's latencies (microseconds) of successful requests.
struct WorkerResult {
    latencies_us: Vec<u64>,
}

/// The figures of one (operation, concurrency) run.
struct Summary {
    operation: Operation,
    concurrency: usize,
    ok: u64,
    errors: u64,
    elapsed: Duration,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn agent_body(org_id: &str, name: &str) -> Value {
    json!({
        "org_id": org_id,
        "name": name,
        "owner": { "display_name": "Bench Owner", "contact": "bench@example.com" },
        "capabilities": [{ "id": "payments.refund" }],
        "regions": ["US-CA"],
        "status": "active",
    })
}

fn endpoint(base: &Url, path: &str) -> Result<Url> {
    base.join(path)
        .with_context(|| format!("cannot join {path} to {base}"))
}

/// `POST /v1/agents`; the new agent's id.
async fn register(
    client: &Client,
    base: &Url,
    token: &str,
    org_id: &str,
    name: &str,
) -> Result<String> {
    let response = client
        .post(endpoint(base, "/v1/agents")?)
        .bearer_auth(token)
        .json(&agent_body(org_id, name))
        .send()
        .await?;
    let status = response.status();
    if status != StatusCode::CREATED {
        let text = response.text().await.unwrap_or_default();
        bail!("POST /v1/agents answered {status}: {text}");
    }
    let body: Value = response.json().await?;
    body.pointer("/agent/agent_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .context("POST /v1/agents: no agent.agent_id in the answer")
}

/// `GET /v1/agents/{id}`, reading the whole body.
async fn read(client: &Client, base: &Url, token: &str, agent_id: &str) -> Result<()> {
    let response = client
        .get(endpoint(base, &format!("/v1/agents/{agent_id}"))?)
        .bearer_auth(token)
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    if status != StatusCode::OK {
        bail!(
            "GET /v1/agents/{agent_id} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

async fn worker(run: Arc<Run>, operation: Operation, index: usize) -> WorkerResult {
    let mut latencies_us = Vec::new();
    let mut sequence = 0u64;
    loop {
        if Instant::now() >= run.deadline
            || run.issued.fetch_add(1, Ordering::Relaxed) >= run.max_requests
        {
            break;
        }
        let started = Instant::now();
        let outcome = match operation {
            Operation::Register => {
                sequence += 1;
                let name = format!("{}-w{index}-{sequence}", run.prefix);
                register(&run.client, &run.base, &run.token, &run.org_id, &name)
                    .await
                    .map(drop)
            }
            Operation::Read => {
                let pick = rand::thread_rng().gen_range(0..run.pool.len());
                match run.pool.get(pick) {
                    Some(agent_id) => read(&run.client, &run.base, &run.token, agent_id).await,
                    None => Err(anyhow::anyhow!("empty read pool")),
                }
            }
        };
        let took = started.elapsed();
        match outcome {
            Ok(()) => latencies_us.push(u64::try_from(took.as_micros()).unwrap_or(u64::MAX)),
            Err(e) => {
                run.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = run.first_error.lock().await;
                if first.is_none() {
                    *first = Some(format!("{e:#}"));
                }
            }
        }
    }
    WorkerResult { latencies_us }
}

/// The `q`-quantile (nearest rank) of sorted latencies, in milliseconds.
fn quantile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_us.len()) - 1;
    sorted_us.get(index).copied().unwrap_or_default() as f64 / 1000.0
}

async fn measure(
    args: &Args,
    client: &Client,
    org_id: &str,
    pool: &Arc<Vec<String>>,
    operation: Operation,
    concurrency: usize,
    prefix: String,
) -> Result<Summary> {
    let started = Instant::now();
    let run = Arc::new(Run {
        client: client.clone(),
        base: args.url.clone(),
        token: args.token.clone(),
        org_id: org_id.to_owned(),
        prefix,
        pool: pool.clone(),
        deadline: started + Duration::from_secs(args.duration_secs),
        max_requests: args.max_requests,
        issued: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let handles: Vec<_> = (0..concurrency)
        .map(|index| tokio::spawn(worker(run.clone(), operation, index)))
        .collect();
    let mut latencies_us = Vec::new();
    for handle in handles {
        let result = handle.await.context("a worker task failed")?;
        latencies_us.extend(result.latencies_us);
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    if let Some(message) = run.first_error.lock().await.take() {
        eprintln!(
            "  {} errors at concurrency {concurrency}; the first: {message}",
            run.errors.load(Ordering::Relaxed)
        );
    }
    Ok(Summary {
        operation,
        concurrency,
        ok: latencies_us.len() as u64,
        errors: run.errors.load(Ordering::Relaxed),
        elapsed,
        p50_ms: quantile_ms(&latencies_us, 0.50),
        p99_ms: quantile_ms(&latencies_us, 0.99),
        max_ms: latencies_us.last().copied().unwrap_or_default() as f64 / 1000.0,
    })
}

/// Registers the agents the read runs choose from, 8 at a time.
async fn fill_pool(
    args: &Args,
    client: &Client,
    org_id: &str,
    prefix: &str,
) -> Result<Vec<String>> {
    let mut pool = Vec::with_capacity(args.read_pool);
    let mut next = 0usize;
    while next < args.read_pool {
        let batch: Vec<_> = (next..args.read_pool.min(next + 8))
            .map(|i| {
                let client = client.clone();
                let base = args.url.clone();
                let token = args.token.clone();
                let org_id = org_id.to_owned();
                let name = format!("{prefix}-pool-{i}");
                tokio::spawn(async move { register(&client, &base, &token, &org_id, &name).await })
            })
            .collect();
        next += batch.len();
        for handle in batch {
            pool.push(handle.await.context("a pool task failed")??);
        }
    }
    Ok(pool)
}

fn row(label: &str, s: &Summary) -> String {
    let secs = s.elapsed.as_secs_f64();
    let rate = if secs > 0.0 { s.ok as f64 / secs } else { 0.0 };
    format!(
        "| {label} | {} | {} | {} | {} | {rate:.0} | {:.2} | {:.2} | {:.2} |",
        s.operation.name(),
        s.concurrency,
        s.ok,
        s.errors,
        s.p50_ms,
        s.p99_ms,
        s.max_ms,
    )
}

/// A slug-safe piece of the label.
fn slug_part(label: &str) -> String {
    let part: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(20)
        .collect();
    part.trim_matches('-').to_owned()
}

fn check_loopback(url: &Url) -> Result<()> {
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if !loopback {
        bail!("--url must point at a loopback address (127.0.0.1, ::1 or localhost), not {url}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    check_loopback(&args.url)?;
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs one or more levels, each at least 1");
    }
    if args.read_pool == 0 {
        bail!("--read-pool must be at least 1");
    }
    let max_workers = args.concurrency.iter().copied().max().unwrap_or(1);
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(max_workers + 8)
        .tcp_nodelay(true)
        .build()?;

    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let label = slug_part(&args.label);
    let slug = format!("bench-{label}-{stamp}-{}", std::process::id());
    let response = client
        .post(endpoint(&args.url, "/v1/orgs")?)
        .bearer_auth(&args.token)
        .json(&json!({ "name": format!("Bench {}", args.label), "slug": slug }))
        .send()
        .await
        .context("POST /v1/orgs: is the origin running?")?;
    let status = response.status();
    if status != StatusCode::CREATED {
        let text = response.text().await.unwrap_or_default();
        bail!("POST /v1/orgs answered {status}: {text}");
    }
    let org: Value = response.json().await?;
    let org_id = org
        .get("org_id")
        .and_then(Value::as_str)
        .context("POST /v1/orgs: no org_id in the answer")?
        .to_owned();

    eprintln!(
        "[{}] org {org_id}; registering a read pool of {} agents",
        args.label, args.read_pool
    );
    let pool = Arc::new(fill_pool(&args, &client, &org_id, &slug).await?);

    if !args.no_header {
        println!("| label | operation | concurrency | requests ok | errors | requests/s | p50 ms | p99 ms | max ms |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    }
    for &concurrency in &args.concurrency {
        for operation in [Operation::Register, Operation::Read] {
            eprintln!(
                "[{}] {} at concurrency {concurrency} for {} s",
                args.label,
                operation.name(),
                args.duration_secs
            );
            let prefix = format!("{slug}-c{concurrency}");
            let summary = measure(
                &args,
                &client,
                &org_id,
                &pool,
                operation,
                concurrency,
                prefix,
            )
            .await?;
            println!("{}", row(&args.label, &summary));
        }
    }
    Ok(())
}
