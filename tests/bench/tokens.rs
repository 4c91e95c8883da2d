//! Token decision cost at the edge (DESIGN §4): `POST /verify` with a delegated token (a one-hop
//! chain), first verification versus a token the isolate already verified, next to the same
//! decision by `agent_id`, all against the release worker in workerd. A benchmark, not a test:
//! run it with scripts/bench-tokens.sh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The bench uses part of the test harness.
#[allow(dead_code)]
#[path = "../edge/stack.rs"]
mod stack;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CONCURRENCY: usize = 8;

/// Sends `bodies[i]` (each once when `distinct`, else `bodies[0]` over and over) for `duration`
/// with CONCURRENCY workers; returns (requests/s, p50 ms, p99 ms, allowed share).
async fn load(
    stack: &stack::Stack,
    bodies: Arc<Vec<Value>>,
    distinct: bool,
    duration: Duration,
) -> (f64, f64, f64, f64) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let client = stack.client.clone();
        let url = format!("{}/verify", stack.edge);
        let bodies = bodies.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut allowed = 0usize;
            while started.elapsed() < duration {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let body = if distinct {
                    match bodies.get(i) {
                        Some(b) => b,
                        None => break,
                    }
                } else {
                    &bodies[0]
                };
                let t = Instant::now();
                let d: Value = client
                    .post(&url)
                    .json(body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                if d["allow"] == true {
                    allowed += 1;
                }
            }
            (latencies, allowed)
        }));
    }
    let mut all = Vec::new();
    let mut allowed = 0;
    for w in workers {
        let (l, a) = w.await.unwrap();
        all.extend(l);
        allowed += a;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| all[((all.len() as f64 - 1.0) * q).round() as usize];
    (
        all.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        allowed as f64 / all.len() as f64,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tokens: usize = std::env::var("VOUCH_BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let seconds: u64 = std::env::var("VOUCH_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let stack = stack::Stack::start()
        .await
        .expect("the local edge is needed: run scripts/bench-tokens.sh");
    // A delegation joins two agents of one org.
    let org = stack.org("Bench Delegation").await;
    let a = stack.register(&org, "Bench Delegator").await;
    let b = stack.register(&org, "Bench Delegatee").await;
    stack.set_status(&a, "active").await;
    stack.set_status(&b, "active").await;
    stack
        .admin(
            reqwest::Method::POST,
            "/v1/delegations",
            Some(json!({ "delegator": a, "delegatee": b, "scopes": ["payments.refund"], "ttl_seconds": 3600, "max_depth": 1 })),
        )
        .await;
    let (key_a, key_b) = (stack.api_key(&a).await, stack.api_key(&b).await);
    let form_token = |agent: &str, key: &str| {
        stack
            .client
            .post(format!("{}/oauth/token", stack.origin))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", agent),
                ("client_secret", key),
            ])
    };
    let token_b: Value = form_token(&b, &key_b)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_b = token_b["access_token"].as_str().unwrap().to_owned();
    let context = json!({ "amount": 50, "currency": "USD", "region": "US-CA" });
    eprintln!("minting {tokens} delegated tokens…");
    let mut bodies = Vec::with_capacity(tokens);
    for _ in 0..tokens {
        let subject: Value = form_token(&a, &key_a)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let exchanged: Value = stack
            .client
            .post(format!("{}/oauth/token", stack.origin))
            .form(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", subject["access_token"].as_str().unwrap()),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                ("actor_token", token_b.as_str()),
                ("actor_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        bodies.push(json!({ "token": exchanged["access_token"], "capability": "payments.refund", "context": context }));
    }
    // Wait until the edge sees everything (keys, grant, passports).
    let probe = bodies.pop().unwrap();
    for _ in 0..500 {
        let d: Value = stack
            .client
            .post(format!("{}/verify", stack.edge))
            .json(&probe)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if d["allow"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let by_agent = Arc::new(vec![
        json!({ "agent_id": a, "capability": "payments.refund", "context": context }),
    ]);
    let duration = Duration::from_secs(seconds);
    let agent_run = load(&stack, by_agent, false, duration).await;
    let cached_run = load(&stack, Arc::new(vec![probe]), false, duration).await;
    let fresh_run = load(&stack, Arc::new(bodies), true, duration).await;
    println!("| POST /verify ({CONCURRENCY} connections, {seconds} s) | requests/s | p50 (ms) | p99 (ms) | allowed |");
    println!("|---|---|---|---|---|");
    for (name, r) in [
        ("by agent_id (no token)", agent_run),
        (
            "one-hop delegated token, already verified in the isolate",
            cached_run,
        ),
        (
            "one-hop delegated token, first verification (every token new)",
            fresh_run,
        ),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.0} % |",
            r.0,
            r.1,
            r.2,
            r.3 * 100.0
        );
    }
    let per = |r: (f64, f64, f64, f64)| 1_000_000.0 / r.0;
    println!();
    println!(
        "Per request at saturation: cached token +{:.0} µs over agent_id; first verification +{:.0} µs over cached.",
        per(cached_run) - per(agent_run),
        per(fresh_run) - per(cached_run)
    );
}
