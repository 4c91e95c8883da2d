//! The edge's bounds on unauthenticated callers: what one `/verify/batch` may make it read
//! (distinct KV keys, [`vouch_core::decision::BATCH_MAX_KV_READS`]), and the per-address rate
//! limit of the public routes (the Workers Rate Limiting binding, SPEC §14).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use vouch_core::decision::BATCH_MAX_KV_READS;
use vouch_core::ids::DelegationId;
use vouch_core::jwk::{kid, signing_key_from_bytes, JwkSet};
use vouch_core::token::{Actor, Claims};
use vouch_core::{AgentId, OrgId};

use crate::stack::Stack;
use crate::PATIENCE;

const ISS: &str = "https://issuer.limits-e2e.test";

/// Publishes a signing key and discovery of our own to the stack's KV (after the origin's, so
/// ours are the ones read) and waits until the edge serves them; returns a token minter.
async fn own_issuer(stack: &Stack) -> impl Fn(&Claims) -> String {
    let key = signing_key_from_bytes(&[9; 32]).unwrap();
    let key_id = kid(key.verifying_key());
    let jwks = JwkSet::from_keys([key.verifying_key()]).to_json();
    let discovery = json!({ "issuer": ISS, "jwks_uri": format!("{ISS}/.well-known/jwks.json") });
    let get = |path: &'static str| stack.send(stack.client.get(format!("{}{path}", stack.edge)));
    for _ in 0..100 {
        if get("/.well-known/jwks.json").await.0 == StatusCode::OK
            && get("/.well-known/openid-configuration").await.0 == StatusCode::OK
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let version = 1_000_000;
    stack
        .kv_put("jwks", &json!({ "version": version, "document": jwks }))
        .await;
    stack
        .kv_put(
            "discovery",
            &json!({ "version": version, "document": discovery }),
        )
        .await;
    let started = std::time::Instant::now();
    while get("/.well-known/openid-configuration").await.2["issuer"] != ISS
        || get("/.well-known/jwks.json").await.2 != jwks
    {
        assert!(started.elapsed() < PATIENCE, "the edge never read our keys");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    move |claims: &Claims| claims.sign(&key, &key_id)
}

/// A token of a five-actor chain over six agents of its own (`n` picks them) and five grants:
/// eleven KV keys. The grants need not exist for the keys to be read.
fn long_chain(n: u32) -> Claims {
    let agent = |i: u32| AgentId::parse(&format!("ap_0192f2a4c3b87d9e8f1a{n:06x}{i:06x}")).unwrap();
    let grant =
        |i: u32| DelegationId::parse(&format!("dlg_0192f2a4c3b87d9e8f1a{n:06x}{i:06x}")).unwrap();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut act = None;
    for i in 1..=5 {
        act = Some(Actor::nest(agent(i), act));
    }
    Claims {
        iss: ISS.to_owned(),
        sub: agent(0),
        aud: Vec::new(),
        iat: now_s - 5,
        nbf: now_s - 5,
        exp: now_s + 300,
        jti: format!("jti-{n}"),
        org: OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6e70").unwrap(),
        scope: "payments.refund".to_owned(),
        ver: 1,
        act,
        dlg: (1..=5).map(grant).collect(),
        status: None,
    }
}

fn batch_of(tokens: &[String]) -> Value {
    let requests: Vec<Value> = tokens
        .iter()
        .map(|t| json!({ "token": t, "capability": "payments.refund" }))
        .collect();
    json!({ "requests": requests })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_may_read_only_so_many_kv_keys() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let stack = &stack;
    let sign = own_issuer(stack).await;
    let post = |body: Value| {
        stack.send(
            stack
                .client
                .post(format!("{}/verify/batch", stack.edge))
                .json(&body),
        )
    };
    // Eleven keys per token, plus the two signing documents: 18 tokens need exactly the bound.
    let fits = (BATCH_MAX_KV_READS - 2) / 11;
    assert_eq!(
        fits * 11 + 2,
        BATCH_MAX_KV_READS,
        "the arithmetic of this test"
    );
    let tokens: Vec<String> = (0..=fits as u32).map(|n| sign(&long_chain(n))).collect();
    let (status, _, body) = post(batch_of(&tokens[..fits])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["decisions"].as_array().unwrap().len(), fits);
    // One more distinct chain is past it: the whole batch is refused, naming `requests`.
    let (status, _, body) = post(batch_of(&tokens)).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a batch past the bound was answered"
    );
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["field"], "requests");
    // The same chain a hundred times is eleven keys, however many requests name it.
    let same = vec![tokens[0].clone(); 100];
    let (status, _, body) = post(batch_of(&same)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A hundred agent ids are a hundred keys: an honest full batch still fits.
    let ids: Vec<Value> = (0..100u32)
        .map(|n| json!({ "agent_id": format!("ap_0192f2a4c3b87d9e8f1a2b3c{n:08x}"), "capability": "payments.refund" }))
        .collect();
    let (status, _, body) = post(json!({ "requests": ids })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_routes_are_rate_limited_per_address() {
    // Five requests per ten seconds per address, for this test.
    let Some(stack) = Stack::start_with(&[
        ("VOUCH_EDGE_RATE_LIMIT", "5"),
        ("VOUCH_EDGE_RATE_PERIOD", "10"),
    ])
    .await
    else {
        return;
    };
    let stack = &stack;
    let agent = stack.seed_agent("Limited Bot").await;
    stack.set_status(&agent, "active").await;
    let from = |address: &'static str| {
        stack
            .client
            .get(format!("{}/verify?agent_id={agent}", stack.edge))
            .header("cf-connecting-ip", address)
    };
    for _ in 0..5 {
        let (status, _, body) = stack.send(from("198.51.100.7")).await;
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    }
    let resp = from("198.51.100.7").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        resp.headers()["retry-after"].to_str().unwrap(),
        "10",
        "the limit's period"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("address"),
        "{body}"
    );
    // A POST (its body read, so the connection survives) is refused the same way.
    let (status, _, body) = stack
        .send(
            stack
                .client
                .post(format!("{}/verify", stack.edge))
                .header("cf-connecting-ip", "198.51.100.7")
                .json(&json!({ "agent_id": agent, "capability": "payments.refund" })),
        )
        .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::TOO_MANY_REQUESTS, &json!("rate_limited"))
    );
    // Another address is unaffected; one IPv6 /64 is one address.
    let (status, _, body) = stack.send(from("198.51.100.8")).await;
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    for _ in 0..5 {
        assert_ne!(
            stack.send(from("2001:db8:5:6::1")).await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    assert_eq!(
        stack.send(from("2001:db8:5:6:ffff::2")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The origin's internal routes are not counted: a status change still reaches the edge
    // (asked from a new address each time, each far under its limit).
    stack.set_status(&agent, "suspended").await;
    let started = std::time::Instant::now();
    for i in 0u32.. {
        let address = format!("203.0.113.{}", i % 250);
        let (status, _, body) = stack
            .send(
                stack
                    .client
                    .get(format!("{}/verify?agent_id={agent}", stack.edge))
                    .header("cf-connecting-ip", address),
            )
            .await;
        if status == StatusCode::FORBIDDEN {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "never refused: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
