//! End to end: origin → outbox → KV publisher → KV REST-shaped endpoint → workerd KV → the
//! built worker's answers. Every test brings up its own stack on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod stack;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use stack::Stack;

/// Far beyond the local propagation target (p95 ≤ 1 s); a test that needs it has failed.
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_reaches_the_edge() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.seed_agent("Lifecycle Bot").await;

    // A draft is known to the edge but not active.
    let (status, _, body) = stack
        .verify_until(&agent, PATIENCE, |s, _| s != StatusCode::NOT_FOUND)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("agent_not_active")),
        "{body}"
    );

    stack.set_status(&agent, "active").await;
    let (status, etag, body) = stack
        .verify_until(&agent, PATIENCE, |s, _| s == StatusCode::OK)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "active");
    assert_eq!(body["name"], "Lifecycle Bot");
    assert_eq!(body["owner_display"], "Acme Support Team");
    assert_eq!(body["regions"], json!(["US-NY", "US-CA"]));
    assert_eq!(body["version"], 2);
    let etag = etag.expect("a strong ETag");
    assert!(!etag.starts_with("W/"));

    // The same version answers with the same ETag, and If-None-Match gets a bodyless 304.
    let (_, again, _) = stack.verify(&agent).await;
    assert_eq!(again.as_deref(), Some(etag.as_str()));
    let resp = stack
        .client
        .get(format!("{}/verify?agent_id={agent}", stack.edge))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert!(resp
        .headers()
        .get("cache-control")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("public, max-age="));
    assert!(resp.bytes().await.unwrap().is_empty());

    stack.set_status(&agent, "suspended").await;
    let (status, _, body) = stack
        .verify_until(&agent, PATIENCE, |s, _| s != StatusCode::OK)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "agent_suspended");
    assert_eq!(body["reason"], "test: suspended");
    assert_eq!(body["contact"], "security@acme.com");
    assert!(body["suspended_at"].as_str().unwrap().ends_with('Z'));

    stack.set_status(&agent, "active").await;
    let (status, reactivated, body) = stack
        .verify_until(&agent, PATIENCE, |s, _| s == StatusCode::OK)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(
        reactivated.as_deref(),
        Some(etag.as_str()),
        "a new version has a new ETag"
    );
    assert_eq!(body["version"], 4);

    stack.set_status(&agent, "revoked").await;
    let (status, _, body) = stack
        .verify_until(&agent, PATIENCE, |s, _| s != StatusCode::OK)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("agent_revoked"))
    );
    assert!(body["revoked_at"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_at_the_edge() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.seed_agent("Decision Bot").await;
    stack.set_status(&agent, "active").await;
    stack
        .verify_until(&agent, PATIENCE, |s, _| s == StatusCode::OK)
        .await;

    let decide = |capability: &str, context: Value| {
        stack.send(
            stack
                .client
                .post(format!("{}/verify", stack.edge))
                .json(&json!({ "agent_id": agent, "capability": capability, "context": context })),
        )
    };
    // The public seed vectors, end to end.
    let vectors: Value =
        serde_json::from_str(include_str!("../../shared/tests/vectors/policy-seed.json")).unwrap();
    for case in vectors["cases"].as_array().unwrap() {
        let (status, _, d) = decide(
            case["capability"].as_str().unwrap(),
            case["context"].clone(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{d}");
        assert_eq!(d["allow"], case["allow"], "{}: {d}", case["name"]);
        for reason in case["reasons"].as_array().unwrap() {
            assert!(
                d["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| &r["code"] == reason),
                "{}: {d}",
                case["name"]
            );
        }
        assert!(d["decision_id"].as_str().unwrap().starts_with("dec_"));
        assert_eq!(d["agent_id"], agent.as_str());
        assert_eq!(d["passport_version"], 2);
        assert_eq!(d["chain"], json!([agent]));
        assert_eq!(d["assurance_level"], "L2");
    }
    // "May it refund $250 in US-CA?" No, and every failed check is listed.
    let (_, _, d) = decide(
        "payments.refund",
        json!({ "amount": 250, "currency": "USD", "region": "FR" }),
    )
    .await;
    assert_eq!(d["allow"], false);
    let codes: Vec<&str> = d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"oap.limit_exceeded") && codes.contains(&"oap.region_blocked"),
        "{codes:?}"
    );
    let (_, _, d) = decide("payments.transfer", json!({})).await;
    assert_eq!(d["reasons"][0]["code"], "oap.unknown_capability");

    // A batch answers in order.
    let (status, _, batch) = stack
        .send(stack.client.post(format!("{}/verify/batch", stack.edge)).json(&json!({ "requests": [
            { "agent_id": agent, "capability": "data.export", "context": { "rows": 10, "region": "US-NY" } },
            { "agent_id": agent, "capability": "data.export", "context": { "rows": 10, "pii": true, "region": "US-NY" } },
            { "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70", "capability": "data.export" }
        ] })))
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    let allows: Vec<&Value> = batch["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["allow"])
        .collect();
    assert_eq!(allows, [&json!(true), &json!(false), &json!(false)]);
    assert_eq!(
        batch["decisions"][2]["reasons"][0]["code"],
        "agent_not_found"
    );

    // A suspended agent is denied with the OAP code.
    stack.set_status(&agent, "suspended").await;
    stack
        .verify_until(&agent, PATIENCE, |s, _| s != StatusCode::OK)
        .await;
    let (_, _, d) = decide(
        "payments.refund",
        json!({ "amount": 5, "currency": "USD", "region": "US-CA" }),
    )
    .await;
    assert_eq!(d["allow"], false);
    assert_eq!(d["reasons"][0]["code"], "oap.passport_suspended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let edge = &stack.edge;
    let c = &stack.client;
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (c.get(format!("{edge}/verify?agent_id=ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70")), 404, "agent_not_found"),
        (c.get(format!("{edge}/verify?agent_id=nope")), 400, "invalid_request"),
        (c.get(format!("{edge}/verify")), 400, "invalid_request"),
        (c.get(format!("{edge}/agents/ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70/did.json")), 404, "agent_not_found"),
        (c.get(format!("{edge}/agents/nope/did.json")), 400, "invalid_request"),
        (c.delete(format!("{edge}/verify")), 405, "method_not_allowed"),
        (c.get(format!("{edge}/nowhere")), 404, "not_found"),
        (c.post(format!("{edge}/verify")).body("{}"), 415, "unsupported_media_type"),
        (c.post(format!("{edge}/verify")).header("content-type", "application/json").body("{oops"), 400, "invalid_request"),
        (c.post(format!("{edge}/verify")).json(&json!({ "token": "eyJ", "capability": "a" })), 400, "invalid_request"),
        (c.post(format!("{edge}/verify")).json(&json!({ "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70", "capability": "a", "extra": 1 })), 400, "invalid_request"),
        (c.post(format!("{edge}/verify")).json(&json!({ "capability": "a", "pad": "x".repeat(20_000) })), 413, "payload_too_large"),
        (c.post(format!("{edge}/verify/batch")).json(&json!({ "requests": [] })), 400, "invalid_request"),
        (c.get(format!("{edge}/.well-known/jwks.json")), 404, "not_found"),
    ];
    for (req, status, code) in cases {
        let (got, _, body) = stack.send(req).await;
        assert_eq!(
            (got.as_u16(), body["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        assert!(body["message"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_and_did_from_kv() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let jwks = json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": "k1", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "alg": "ES256", "use": "sig" }] });
    stack
        .kv_put("jwks", &json!({ "version": 1, "document": jwks }))
        .await;
    stack
        .kv_put(
            "discovery",
            &json!({ "version": 1, "document": { "issuer": "http://origin.test" } }),
        )
        .await;
    let (status, etag, body) = stack
        .send(
            stack
                .client
                .get(format!("{}/.well-known/jwks.json", stack.edge)),
        )
        .await;
    assert_eq!((status, &body), (StatusCode::OK, &jwks));
    let etag = etag.unwrap();
    let resp = stack
        .client
        .get(format!("{}/.well-known/jwks.json", stack.edge))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    let (status, _, body) = stack
        .send(
            stack
                .client
                .get(format!("{}/.well-known/openid-configuration", stack.edge)),
        )
        .await;
    assert_eq!(
        (status, body["issuer"].as_str()),
        (StatusCode::OK, Some("http://origin.test"))
    );

    let agent = stack.seed_agent("DID Bot").await;
    let url = format!("{}/agents/{agent}/did.json", stack.edge);
    let mut doc = Value::Null;
    for _ in 0..500 {
        let (status, _, body) = stack.send(stack.client.get(&url)).await;
        if status == StatusCode::OK {
            doc = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        doc["id"]
            .as_str()
            .unwrap()
            .starts_with("did:web:127.0.0.1%3A"),
        "{doc}"
    );
    assert!(doc["id"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":agents:{agent}")));
    assert_eq!(
        doc["verificationMethod"][0]["publicKeyJwk"]["crv"],
        "Ed25519"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_faults_lose_nothing() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    // The KV API fails for a while: 500s, then 429s with retry-after, then slow answers.
    stack.kv_fault(json!({ "status": 500, "count": 3 })).await;
    stack
        .kv_fault(json!({ "status": 429, "count": 2, "retry_after": 1 }))
        .await;
    stack.kv_fault(json!({ "delay_ms": 300, "count": 2 })).await;
    let mut agents = Vec::new();
    for i in 0..5 {
        let agent = stack.seed_agent(&format!("Faulty {i}")).await;
        stack.set_status(&agent, "active").await;
        agents.push(agent);
    }
    // Each agent ends suspended (version 3) at the edge, however the writes were retried.
    for agent in &agents {
        stack.set_status(agent, "suspended").await;
    }
    for agent in &agents {
        let (status, _, body) = stack
            .verify_until(agent, Duration::from_secs(30), |_, b| b["version"] == 3)
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("agent_suspended")),
            "{agent}: {body}"
        );
    }
    let stats = stack.kv_stats().await;
    assert!(
        stats["refused"].as_i64().unwrap() >= 5,
        "the faults were hit: {stats}"
    );
    let (behind, _) = stack.store.kv_backlog().await.unwrap();
    assert_eq!(behind, 0, "nothing left unpublished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_never_go_backwards_at_the_edge() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.seed_agent("Flapping Bot").await;
    stack.set_status(&agent, "active").await;
    // Slow writes while the agent flaps: the edge must only ever see versions grow.
    stack
        .kv_fault(json!({ "delay_ms": 150, "count": 10 }))
        .await;
    let flapper = {
        let origin = stack.origin.clone();
        let client = stack.client.clone();
        let agent = agent.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                let status = if i % 2 == 0 { "suspended" } else { "active" };
                let resp = client
                    .put(format!("{origin}/v1/agents/{agent}/status"))
                    .bearer_auth(stack::ADMIN)
                    .json(&json!({ "status": status }))
                    .send()
                    .await
                    .unwrap();
                assert!(resp.status().is_success());
            }
        })
    };
    let mut last = 0;
    let mut seen_final = false;
    for _ in 0..2_000 {
        let (_, _, body) = stack.verify(&agent).await;
        let version = body["version"].as_i64().unwrap_or(0);
        assert!(
            version >= last,
            "the edge went from version {last} back to {version}"
        );
        last = version;
        if version == 22 {
            seen_final = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    flapper.await.unwrap();
    assert!(
        seen_final
            || stack
                .verify_until(&agent, PATIENCE, |_, b| b["version"] == 22)
                .await
                .2["version"]
                == 22
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_rebuilds_kv_and_replicas_share_the_work() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let mut agents = Vec::new();
    for i in 0..6 {
        let agent = stack.seed_agent(&format!("Resync {i}")).await;
        stack.set_status(&agent, "active").await;
        agents.push(agent);
    }
    for agent in &agents {
        stack
            .verify_until(agent, PATIENCE, |s, _| s == StatusCode::OK)
            .await;
    }
    // Lose every passport from KV behind the origin's back.
    for agent in &agents {
        let resp = stack
            .client
            .delete(format!(
                "{}/accounts/local/storage/kv/namespaces/vouch-local/values/passport:{agent}",
                stack.kv_api
            ))
            .bearer_auth("kv-test-token")
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }
    for agent in &agents {
        let (status, _, _) = stack
            .verify_until(agent, PATIENCE, |s, _| s == StatusCode::NOT_FOUND)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // `vouch-origin kv resync` is this: mark every key, publish until nothing is behind. Two
    // extra publishers (as two more origin replicas would) drain alongside the running one.
    let marked = stack
        .store
        .mark_all_kv_dirty(vouch_origin::routes::now())
        .await
        .unwrap();
    assert_eq!(marked, 6);
    let replica = || {
        vouch_origin::kv::Publisher::new(
            stack.store.clone(),
            vouch_origin::kv::KvClient::new(&stack.kv_target()).unwrap(),
        )
    };
    let (a, b) = (replica(), replica());
    let (ra, rb) = tokio::join!(a.drain(), b.drain());
    ra.unwrap();
    rb.unwrap();
    for agent in &agents {
        let (status, _, body) = stack
            .verify_until(agent, PATIENCE, |s, _| s == StatusCode::OK)
            .await;
        assert_eq!(
            (status, body["version"].as_i64()),
            (StatusCode::OK, Some(2)),
            "{agent}"
        );
    }
    let (behind, _) = stack.store.kv_backlog().await.unwrap();
    assert_eq!(behind, 0);
}
