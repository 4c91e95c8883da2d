//! The status journal (SPEC §10) and committed daily caps (SPEC §11), end to end: the origin,
//! the built worker and its Durable Objects in workerd, KV behind the REST-shaped endpoint.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::stack::{Stack, EDGE_SECRET, JOURNAL_BOUND, JOURNAL_SETTLE};

/// Room for the test machine on top of a bound (scheduling, a 2-core box running other tests).
const SLACK: Duration = Duration::from_secs(3);

fn etag_is_overlay(etag: &Option<String>) -> bool {
    etag.as_deref().is_some_and(|e| e.contains("-k"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_refuses_a_suspension_kv_never_saw() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.active_agent("Journal Only").await;
    let key = format!("passport:{agent}");
    let active_version = stack.kv_get(&key).await.expect("in KV")["version"].clone();

    // KV takes no write from now on: only the journal can tell the edge.
    stack.kv_hold().await;
    let (code, changed) = stack.set_status_propagated(&agent, "suspended").await;
    assert_eq!(code, StatusCode::OK, "{changed}");
    assert!(changed["propagated_at"].is_string(), "{changed}");
    let suspended_version = changed["version"].clone();
    let stored = Instant::now();

    let (status, etag, body) = stack
        .verify_until(&agent, JOURNAL_BOUND + SLACK, |s, _| {
            s == StatusCode::FORBIDDEN
        })
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        stored.elapsed() <= JOURNAL_BOUND + SLACK,
        "refused after {:?}",
        stored.elapsed()
    );
    assert_eq!(body["error"], "agent_suspended");
    assert_eq!(body["reason"], "test: suspended");
    assert_eq!(body["version"], suspended_version);
    assert!(etag_is_overlay(&etag), "{etag:?}");
    // KV still says active: the refusal came from the journal alone.
    assert_eq!(
        stack.kv_get(&key).await.expect("in KV")["version"],
        active_version
    );
    assert_eq!(stack.kv_get(&key).await.expect("in KV")["status"], "active");

    // Decisions read the same version, and say so.
    let (_, _, decision) = stack
        .send(
            stack
                .client
                .post(format!("{}/verify", stack.edge))
                .json(&json!({ "agent_id": agent, "capability": "payments.refund",
                               "context": { "amount": 10, "currency": "USD", "region": "US-CA" } })),
        )
        .await;
    assert_eq!(decision["allow"], false, "{decision}");
    assert_eq!(decision["passport_version"], suspended_version);
    assert_eq!(decision["reasons"][0]["code"], "oap.passport_suspended");

    // KV recovers: the edge converges on the KV record of the same version, and the journal
    // drops the entry once KV has held it for the settle time.
    stack.kv_release().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.kv_get(&key).await.expect("in KV")["version"] != suspended_version {
        assert!(Instant::now() < deadline, "KV never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, etag, body) = stack
        .verify_until(&agent, Duration::from_secs(5), |_, _| true)
        .await;
    let (status, etag, body) = if etag_is_overlay(&etag) {
        stack
            .verify_until(&agent, Duration::from_secs(5), |_, b| b.is_object())
            .await
    } else {
        (status, etag, body)
    };
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["version"], suspended_version);
    let deadline = Instant::now() + JOURNAL_SETTLE + Duration::from_secs(15);
    loop {
        let journal = stack.journal_entries().await;
        let held = journal["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["change"]["agent_id"] == agent.as_str());
        if !held {
            assert!(journal["floor"].as_i64().unwrap_or(0) > 0, "{journal}");
            break;
        }
        assert!(Instant::now() < deadline, "never compacted: {journal}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, etag2, _) = stack.verify(&agent).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!etag_is_overlay(&etag2), "{etag2:?} (was {etag:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_pulls_spare_the_journal_and_keep_the_bound() {
    let Some(stack) = Stack::start_with(&[
        ("VOUCH_JOURNAL_BOUND_MS", "10000"),
        ("VOUCH_JOURNAL_SHARE_SECONDS", "1"),
    ])
    .await
    else {
        return;
    };
    let agent = stack.active_agent("Shared Pulls").await;
    // Steady traffic for 3 s: the isolate wants a pull every 250 ms (12 in all); shared through
    // the Cache API for 1 s, the object serves about one per second.
    let before = stack.journal_pulls().await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(stack.verify(&agent).await.0, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let served = stack.journal_pulls().await - before;
    assert!(served <= 7, "{served} pulls in 3 s: not shared");
    // Sharing never stretches the bound: a suspension KV never sees is refused within the
    // refresh interval plus the sharing time.
    stack.kv_hold().await;
    let (code, changed) = stack.set_status_propagated(&agent, "suspended").await;
    assert_eq!(code, StatusCode::OK, "{changed}");
    let stored = Instant::now();
    let (status, _, body) = stack
        .verify_until(&agent, Duration::from_millis(1_250) + SLACK, |s, _| {
            s == StatusCode::FORBIDDEN
        })
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(stored.elapsed() <= Duration::from_millis(1_250) + SLACK);
    stack.kv_release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_journal_fails_closed_and_both_recover() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.active_agent("Fail Closed").await;

    // Neither KV nor the journal's pulls work for a while; a suspension is committed meanwhile.
    let outage = JOURNAL_BOUND * 3;
    stack.kv_hold().await;
    stack.journal_outage(outage.as_millis() as u64).await;
    let started = Instant::now();
    let (code, changed) = stack.set_status_propagated(&agent, "suspended").await;
    // Appends still land (only the isolates' pulls fail), so the change is propagated.
    assert_eq!(code, StatusCode::OK, "{changed}");

    // Past the bound the edge refuses to answer from what it has: 503, never an allow.
    let (status, _, body) = stack
        .verify_until(&agent, JOURNAL_BOUND + SLACK, |s, _| {
            s == StatusCode::SERVICE_UNAVAILABLE
        })
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "status_unavailable");
    let resp = stack
        .client
        .post(format!("{}/verify", stack.edge))
        .json(&json!({ "agent_id": agent, "capability": "payments.refund" }))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // Every answer until the outage ends is a 503 or the refusal: never the stale 200.
    while started.elapsed() < outage {
        let (status, _, body) = stack.verify(&agent).await;
        assert_ne!(status, StatusCode::OK, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Both recover: the journal first (the edge refuses by it), then KV (the edge converges).
    let (status, _, body) = stack
        .verify_until(&agent, Duration::from_secs(10), |s, _| {
            s == StatusCode::FORBIDDEN
        })
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "agent_suspended");
    stack.kv_release().await;
    let key = format!("passport:{agent}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.kv_get(&key).await.expect("in KV")["status"] != "suspended" {
        assert!(Instant::now() < deadline, "KV never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.set_status(&agent, "active").await;
    let (status, _, body) = stack
        .verify_until(&agent, Duration::from_secs(10), |s, _| s == StatusCode::OK)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_routes_need_the_edge_secret() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let url = format!("{}/internal/journal", stack.edge);
    let append = json!({ "changes": [] });
    for auth in [None, Some("wrong"), Some("")] {
        let mut req = stack.client.post(&url).json(&append);
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        let (status, _, body) = stack.send(req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}: {body}");
        assert_eq!(body["error"], "unauthorized");
    }
    let (status, _, _) = stack
        .send(
            stack
                .client
                .get(format!("{url}?since=0"))
                .bearer_auth("nope"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = stack
        .send(
            stack
                .client
                .post(&url)
                .bearer_auth(EDGE_SECRET)
                .json(&json!({ "changes": [{ "kind": "agent" }] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, body) = stack
        .send(
            stack
                .client
                .post(&url)
                .bearer_auth(EDGE_SECRET)
                .json(&append),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["head"].is_i64(), "{body}");
}

/// One commit of `amount` USD under `key`: `(HTTP status, replayed header, body)`.
async fn commit(stack: &Stack, agent: &str, key: &str, amount: u32) -> (StatusCode, String, Value) {
    let resp = stack
        .client
        .post(format!("{}/verify", stack.edge))
        .json(&json!({
            "agent_id": agent,
            "capability": "payments.refund",
            "context": { "amount": amount, "currency": "USD", "region": "US-CA" },
            "commit": true,
            "idempotency_key": key,
        }))
        .send()
        .await
        .expect("commit");
    let status = resp.status();
    let replayed = resp
        .headers()
        .get("idempotent-replayed")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, replayed, resp.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_never_pass_the_daily_cap() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let stack = &stack;
    // The seed passport: refunds of at most 100 USD each, 1,000 USD a day.
    let agent = stack.active_agent("Cap Holder").await;

    let amounts: Vec<u32> = (0..50).map(|i| 40 + (i * 7) % 61).collect();
    let answers = futures::future::join_all(
        amounts
            .iter()
            .enumerate()
            .map(|(i, amount)| {
                let agent = agent.clone();
                async move { commit(stack, &agent, &format!("refund-{i}"), *amount).await }
            })
            .collect::<Vec<_>>(),
    )
    .await;
    let mut allowed_sum = 0;
    let mut denied = 0;
    for ((status, replayed, body), amount) in answers.iter().zip(&amounts) {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(replayed, "false");
        if body["allow"] == true {
            allowed_sum += amount;
        } else {
            denied += 1;
            assert_eq!(body["reasons"][0]["code"], "oap.limit_exceeded", "{body}");
            assert_eq!(body["reasons"][0]["limit"], "limits.refund_usd_daily_cap");
        }
    }
    assert!(allowed_sum <= 1_000, "allowed {allowed_sum} USD");
    assert!(
        denied > 0,
        "the amounts add up past the cap, so some must be denied"
    );
    // Greedy in arrival order: once denials start, only amounts that fit what is left pass,
    // so what is left is smaller than the smallest denied amount.
    let smallest_denied = answers
        .iter()
        .zip(&amounts)
        .filter(|((_, _, b), _)| b["allow"] == false)
        .map(|(_, a)| *a)
        .min()
        .unwrap_or(0);
    assert!(
        1_000 - allowed_sum < smallest_denied,
        "left {}",
        1_000 - allowed_sum
    );

    // Replays answer the first decision, byte for byte, and count nothing.
    for (i, (_, _, first)) in answers.iter().enumerate().take(5) {
        let (status, replayed, again) =
            commit(stack, &agent, &format!("refund-{i}"), amounts[i]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(replayed, "true");
        assert_eq!(&again, first);
    }
    // The same key for another request is refused; a commit needs a key.
    let (status, _, body) = commit(stack, &agent, "refund-0", amounts[0] + 1).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "idempotency_key_reused");
    let (status, _, body) =
        stack
            .send(stack.client.post(format!("{}/verify", stack.edge)).json(
                &json!({ "agent_id": agent, "capability": "payments.refund", "commit": true }),
            ))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "idempotency_key");

    // What is left is still spendable, exactly.
    let left = 1_000 - allowed_sum;
    if left > 0 {
        let (_, _, body) = commit(stack, &agent, "the-rest", left).await;
        assert_eq!(body["allow"], true, "{body}");
    }
    let (_, _, body) = commit(stack, &agent, "one-more", 1).await;
    assert_eq!(body["allow"], false, "{body}");
    let message = body["reasons"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("1000.00 USD already spent"), "{message}");
    // A plain decision is not a commit: it neither records nor replays.
    let (_, _, body) = stack
        .send(
            stack
                .client
                .post(format!("{}/verify", stack.edge))
                .json(&json!({ "agent_id": agent, "capability": "payments.refund",
                               "context": { "amount": 5, "currency": "USD", "region": "US-CA" } })),
        )
        .await;
    assert_eq!(body["allow"], true, "{body}");
}
