//! Propagation benchmark (SPEC §10, DESIGN §4): from the moment `PUT /v1/agents/{id}/status`
//! returns to the first `GET /verify` at the local edge that refuses the agent, over many
//! suspensions (and, separately, until a reactivated agent is served again); then the same
//! with every KV write failing, so that only the status journal carries the changes.
//! A benchmark, not a test: run it with scripts/bench-propagation.sh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The bench uses part of the test harness.
#[allow(dead_code)]
#[path = "../edge/stack.rs"]
mod stack;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
        ms.len(),
        percentile(&ms, 0.50),
        percentile(&ms, 0.95),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or_default()
    );
}

/// Polls the edge until `done`; the time since `since`, in ms.
async fn until(
    stack: &stack::Stack,
    agent: &str,
    since: Instant,
    done: impl Fn(StatusCode) -> bool,
) -> f64 {
    loop {
        let (status, _, _) = stack.verify(agent).await;
        if done(status) {
            return since.elapsed().as_secs_f64() * 1000.0;
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "no propagation within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let changes: usize = std::env::var("VOUCH_BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let Some(stack) = stack::Stack::start().await else {
        panic!("the local edge is needed: run scripts/bench-propagation.sh");
    };
    let agent = stack.seed_agent("Propagation Bot").await;
    stack.set_status(&agent, "active").await;
    until(&stack, &agent, Instant::now(), |s| s == StatusCode::OK).await;

    let (refuse, serve) = rounds(&stack, &agent, changes).await;
    // The same with KV taking no writes: only the status journal can carry the changes.
    stack.kv_hold().await;
    let (refuse_journal, serve_journal) = rounds(&stack, &agent, changes).await;
    stack.kv_release().await;
    println!("| change → edge answer (ms) | changes | p50 | p95 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    summary("suspend → edge refuses (403), KV + journal", refuse);
    summary("reactivate → edge serves (200), KV + journal", serve);
    summary("suspend → edge refuses (403), journal only", refuse_journal);
    summary(
        "reactivate → edge serves (200), journal only",
        serve_journal,
    );
}

/// `changes` suspensions and reactivations: the times to refuse and to serve again, in ms.
async fn rounds(stack: &stack::Stack, agent: &str, changes: usize) -> (Vec<f64>, Vec<f64>) {
    let mut refuse = Vec::with_capacity(changes);
    let mut serve = Vec::with_capacity(changes);
    for _ in 0..changes {
        for (status, answer, times) in [
            ("suspended", StatusCode::FORBIDDEN, &mut refuse),
            ("active", StatusCode::OK, &mut serve),
        ] {
            let resp = stack
                .client
                .put(format!("{}/v1/agents/{agent}/status", stack.origin))
                .bearer_auth(stack::ADMIN)
                .json(&json!({ "status": status }))
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success());
            let returned = Instant::now();
            times.push(until(stack, agent, returned, |s| s == answer).await);
        }
    }
    (refuse, serve)
}
