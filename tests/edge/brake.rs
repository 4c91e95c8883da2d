//! The emergency brake at the edge: revoked tokens, frozen orgs and withdrawn signing keys are
//! refused within the bound through the status journal alone, while KV takes no writes.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::stack::{Stack, ADMIN, JOURNAL_BOUND};

/// Room for the test machine on top of a bound.
const SLACK: Duration = Duration::from_secs(3);

fn refund(token: &str) -> Value {
    json!({ "token": token, "capability": "payments.refund",
            "context": { "amount": 10, "currency": "USD", "region": "US-CA" } })
}

/// Decides `request` until `done` holds or `within` passes; the last decision.
async fn decide_until(
    stack: &Stack,
    request: &Value,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, _, decision) = stack.decide(request.clone()).await;
        assert_eq!(status, StatusCode::OK, "{decision}");
        if done(&decision) || Instant::now() >= deadline {
            return decision;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn first_code(decision: &Value) -> &str {
    decision["reasons"][0]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_die_within_the_bound_not_at_expiry() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.active_agent("Leaky Agent").await;
    let token = stack.agent_token(&agent).await;
    let allowed = decide_until(&stack, &refund(&token), Duration::from_secs(10), |d| {
        d["allow"] == true
    })
    .await;
    assert_eq!(allowed["allow"], true, "{allowed}");

    // Only the journal may tell the edge.
    stack.kv_hold().await;
    let resp = stack
        .client
        .post(format!(
            "{}/v1/agents/{agent}/tokens/revoke?wait=propagated",
            stack.origin
        ))
        .bearer_auth(ADMIN)
        .json(&json!({ "reason": "leaked" }))
        .send()
        .await
        .expect("revoke");
    assert_eq!(resp.status(), StatusCode::OK);
    let revoked: Value = resp.json().await.expect("json");
    assert!(revoked["propagated_at"].is_string(), "{revoked}");
    let stored = Instant::now();
    let refused = decide_until(&stack, &refund(&token), JOURNAL_BOUND + SLACK, |d| {
        d["allow"] == false
    })
    .await;
    assert_eq!(refused["allow"], false, "{refused}");
    assert_eq!(first_code(&refused), "token_revoked", "{refused}");
    assert!(
        stored.elapsed() < JOURNAL_BOUND + SLACK,
        "{:?}",
        stored.elapsed()
    );
    // The agent itself is still active: asked by id, it is allowed, and so is a token
    // issued after the cut-off.
    let by_id = stack
        .decide(json!({ "agent_id": agent, "capability": "payments.refund",
                        "context": { "amount": 10, "currency": "USD", "region": "US-CA" } }))
        .await
        .2;
    assert_eq!(by_id["allow"], true, "{by_id}");
    let cut = vouch_core::Timestamp::parse_rfc3339(
        revoked["tokens_not_before"].as_str().expect("cut-off"),
    )
    .expect("a time");
    let wait = cut.unix_millis() - vouch_origin::routes::now().unix_millis();
    if wait >= 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64 + 5)).await;
    }
    let fresh = stack.agent_token(&agent).await;
    let (_, _, decision) = stack.decide(refund(&fresh)).await;
    assert_eq!(decision["allow"], true, "{decision}");
    stack.kv_release().await;
}
