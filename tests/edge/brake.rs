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
    let wait = cut.unix_millis() - vouch_origin::clock::now().unix_millis();
    if wait >= 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64 + 5)).await;
    }
    let fresh = stack.agent_token(&agent).await;
    let (_, _, decision) = stack.decide(refund(&fresh)).await;
    assert_eq!(decision["allow"], true, "{decision}");
    stack.kv_release().await;
}

fn kid_of(token: &str) -> String {
    vouch_core::jws::parse(token, vouch_core::token::DEFAULT_MAX_LEN)
        .expect("a compact JWS")
        .header
        .kid
}

/// A rotation makes the standby key sign, which every edge has known since it was published:
/// tokens it signs are allowed at once, even while KV takes no writes (so the edge's JWKS is
/// the one from before the rotation). Then a withdrawal of that key reaches the edge through
/// the journal alone: its tokens are refused within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_never_refuses_good_tokens_and_withdrawal_refuses_within_the_bound() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.active_agent("Key Watcher").await;
    let old = stack.agent_token(&agent).await;
    // The standby was published at start; give it its publish-ahead time.
    tokio::time::sleep(crate::stack::KEY_PUBLISH_AHEAD).await;
    let edge_jwks = stack.kv_get("jwks").await.expect("jwks in KV");
    assert_eq!(
        edge_jwks["document"]["keys"]
            .as_array()
            .expect("keys")
            .len(),
        2,
        "signing + standby: {edge_jwks}"
    );

    stack.kv_hold().await;
    let rotated = stack
        .admin(reqwest::Method::POST, "/v1/keys/rotate", Some(json!({})))
        .await;
    let new_kid = rotated["kid"].as_str().expect("kid").to_owned();
    let fresh = stack.agent_token(&agent).await;
    assert_eq!(kid_of(&fresh), new_kid);
    assert_ne!(kid_of(&old), new_kid);
    // KV still has the old JWKS, which already lists the standby: both tokens are good.
    assert_eq!(stack.kv_get("jwks").await.expect("jwks"), edge_jwks);
    for token in [&old, &fresh] {
        let (_, _, decision) = stack.decide(refund(token)).await;
        assert_eq!(decision["allow"], true, "{decision}");
    }

    // Withdraw the key that signs now: the journal alone tells the edge.
    let started = Instant::now();
    let withdrawn = stack
        .admin(
            reqwest::Method::POST,
            &format!("/v1/keys/{new_kid}/withdraw"),
            Some(json!({ "reason": "leaked" })),
        )
        .await;
    assert_eq!(withdrawn["kid"], new_kid.as_str());
    let refused = decide_until(&stack, &refund(&fresh), JOURNAL_BOUND + SLACK, |d| {
        d["allow"] == false
    })
    .await;
    assert_eq!(refused["allow"], false, "{refused}");
    assert_eq!(first_code(&refused), "token_invalid", "{refused}");
    assert!(
        refused["reasons"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("withdrawn"),
        "{refused}"
    );
    assert!(started.elapsed() < JOURNAL_BOUND + SLACK + SLACK);
    // The token of the previous key (retired, still published) is untouched, and that key signs
    // again: the new standby is not in KV yet, and an edge must know whoever signs.
    let (_, _, decision) = stack.decide(refund(&old)).await;
    assert_eq!(decision["allow"], true, "{decision}");
    assert_eq!(
        withdrawn["signing_kid"],
        kid_of(&old).as_str(),
        "{withdrawn}"
    );
    let after = stack.agent_token(&agent).await;
    assert_eq!(kid_of(&after), kid_of(&old));
    let (_, _, decision) = stack.decide(refund(&after)).await;
    assert_eq!(decision["allow"], true, "{decision}");
    stack.kv_release().await;
}

/// Freezing a whole org: one journal entry refuses every agent of it at once, with KV held
/// back; the unfreeze brings them back through their own entries, while the grants the freeze
/// revoked stay dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_org_is_refused_at_once_and_comes_back_without_its_grants() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let org = stack.org("Frozen Co").await;
    let a = stack.register(&org, "Frozen Delegator").await;
    let b = stack.register(&org, "Frozen Delegatee").await;
    stack.set_status(&a, "active").await;
    stack.set_status(&b, "active").await;
    stack
        .admin(
            reqwest::Method::POST,
            "/v1/delegations",
            Some(
                json!({ "delegator": a, "delegatee": b, "scopes": ["payments.refund"],
                         "ttl_seconds": 3600, "max_depth": 1 }),
            ),
        )
        .await;
    let exchanged = stack
        .send(
            stack
                .client
                .post(format!("{}/oauth/token", stack.origin))
                .form(&[
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    ("subject_token", stack.agent_token(&a).await.as_str()),
                    ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                    ("actor_token", stack.agent_token(&b).await.as_str()),
                    ("actor_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                ]),
        )
        .await;
    assert_eq!(exchanged.0, StatusCode::OK, "{}", exchanged.2);
    let delegated = exchanged.2["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let allowed = decide_until(&stack, &refund(&delegated), Duration::from_secs(10), |d| {
        d["allow"] == true
    })
    .await;
    assert_eq!(allowed["allow"], true, "{allowed}");
    let (_, active_etag, _) = stack.verify(&a).await;

    stack.kv_hold().await;
    let (code, _, frozen) = stack
        .send(
            stack
                .client
                .post(format!(
                    "{}/v1/orgs/{org}/freeze?wait=propagated",
                    stack.origin
                ))
                .bearer_auth(ADMIN)
                .json(&json!({ "reason": "incident 42" })),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{frozen}");
    assert!(frozen["propagated_at"].is_string(), "{frozen}");
    let (status, etag, body) = stack
        .verify_until(&a, JOURNAL_BOUND + SLACK, |s, _| s == StatusCode::FORBIDDEN)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "agent_suspended");
    assert_eq!(body["reason"], "incident 42");
    assert_ne!(etag, active_etag);
    assert_eq!(stack.verify(&b).await.0, StatusCode::FORBIDDEN);
    let refused = stack.decide(refund(&delegated)).await.2;
    assert_eq!(refused["allow"], false, "{refused}");
    // KV never heard of it.
    assert_eq!(
        stack.kv_get(&format!("passport:{a}")).await.expect("in KV")["status"],
        "active"
    );

    let (code, _, unfrozen) = stack
        .send(
            stack
                .client
                .post(format!(
                    "{}/v1/orgs/{org}/unfreeze?wait=propagated",
                    stack.origin
                ))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{unfrozen}");
    let (status, _, body) = stack
        .verify_until(&a, JOURNAL_BOUND + SLACK, |s, _| s == StatusCode::OK)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let still = stack.decide(refund(&delegated)).await.2;
    assert_eq!(still["allow"], false, "the grant stays revoked: {still}");
    assert!(
        still["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|r| r["code"] == "delegation_revoked"),
        "{still}"
    );
    stack.kv_release().await;
}
