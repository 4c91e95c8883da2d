//! Signed decisions and receipts in real workerd (SPEC §12): every decision — allows and
//! denials, native, batch and OAP — is signed with the edge's decision key; an independent
//! verifier (Node's crypto with the `canonicalize` package, scripts/edge/verify-signed.mjs)
//! checks the signatures and the passport digests; committed decisions reach the origin as
//! receipts, which `vouch receipts verify` checks offline and refuses once tampered with.

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt as _;
use vouch_core::signing::{DecisionKey, PublicKeys};

use crate::process::cli_binary;
use crate::stack::{repo, test_decision_key, Stack};
use crate::PATIENCE;

/// The edge's published decision keys.
async fn decision_jwks(stack: &Stack) -> Value {
    let (status, _, jwks) = stack
        .send(
            stack
                .client
                .get(format!("{}/.well-known/oap/jwks.json", stack.edge)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{jwks}");
    jwks
}

/// What the independent verifier says of `decisions` and `views`.
async fn independent(jwks: &Value, decisions: &[Value], views: &[Value]) -> Value {
    let node = std::env::var_os("VOUCH_NODE").expect("VOUCH_NODE (scripts/test.sh sets it)");
    let mut child = tokio::process::Command::new(node)
        .arg(repo().join("scripts/edge/verify-signed.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the independent verifier");
    let input = json!({ "jwks": jwks, "decisions": decisions, "views": views });
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.to_string().as_bytes())
        .await
        .expect("write");
    drop(stdin);
    let output = child.wait_with_output().await.expect("verifier output");
    assert!(output.status.success(), "the independent verifier failed");
    serde_json::from_slice(&output.stdout).expect("verifier JSON")
}

fn refund(amount: u32) -> Value {
    json!({ "amount": amount, "currency": "USD", "region": "US-CA" })
}

/// `vouch receipts verify FILE --edge …`: its exit code and standard output.
async fn cli_verify(stack: &Stack, file: &std::path::Path) -> (i32, String) {
    let output = tokio::process::Command::new(cli_binary())
        .args(["receipts", "verify"])
        .arg(file)
        .args(["--edge", &stack.edge])
        .env("VOUCH_URL", &stack.origin)
        .output()
        .await
        .expect("run vouch");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_is_signed_and_verifies_independently() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.active_agent("Signed Bot").await;
    // Until KV holds the active view, the edge decides on the journal's status laid over the
    // draft (its ETag says `-k1`): wait for the KV view itself, whose digest the test computes.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, etag, _) = stack.verify(&agent).await;
        if status == StatusCode::OK && etag.as_deref().is_some_and(|e| !e.contains("-k")) {
            break;
        }
        assert!(Instant::now() < deadline, "KV never held the active view");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = stack.agent_token(&agent).await;
    let jwks = decision_jwks(&stack).await;
    let keys = PublicKeys::from_jwks(&jwks).expect("a JWK Set of decision keys");
    let kid = jwks["keys"][0]["kid"].as_str().expect("kid").to_owned();
    let test_key = DecisionKey::from_jwk(&test_decision_key()).unwrap();
    assert_eq!(test_key.kid(), kid);
    assert!(kid.starts_with("oap:registry:"), "{kid}");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    assert!(jwks["keys"][0].get("d").is_none(), "never the private half");

    let mut decisions = Vec::new();
    // An allow, a denial, an unknown agent and a token decision.
    for request in [
        json!({ "agent_id": agent, "capability": "payments.refund", "context": refund(50) }),
        json!({ "agent_id": agent, "capability": "payments.refund", "context": refund(500) }),
        json!({ "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70", "capability": "payments.refund" }),
        json!({ "token": token, "capability": "payments.refund", "context": refund(10) }),
    ] {
        let (status, _, decision) = stack.decide(request).await;
        assert_eq!(status, StatusCode::OK, "{decision}");
        decisions.push(decision);
    }
    assert_eq!(decisions[0]["allow"], true, "{}", decisions[0]);
    assert_eq!(decisions[1]["allow"], false, "{}", decisions[1]);
    assert!(
        decisions[2]["passport_digest"].is_null(),
        "{}",
        decisions[2]
    );
    // A batch: each entry signed on its own.
    let (status, _, batch) = stack
        .send(stack.client.post(format!("{}/verify/batch", stack.edge)).json(&json!({
            "requests": [
                { "agent_id": agent, "capability": "payments.refund", "context": refund(1) },
                { "agent_id": agent, "capability": "data.export", "context": { "rows": 10 } },
            ]
        })))
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    decisions.extend(
        batch["decisions"]
            .as_array()
            .expect("decisions")
            .iter()
            .cloned(),
    );
    // The OAP route: its decision object, signed the same way.
    let (status, _, oap) = stack
        .send(
            stack
                .client
                .post(format!("{}/api/verify/policy/finance.payment.refund.v1", stack.edge))
                .json(&json!({ "context": { "agent_id": agent, "amount": 5000, "currency": "USD",
                                            "region": "US-CA", "order_id": "o1", "customer_id": "c1",
                                            "reason_code": "customer_request" } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{oap}");
    decisions.push(oap);

    // The passport digest is the SHA-256 of the JCS form of the view decided on (the KV view
    // here: the agent has not changed since it was published).
    let view = stack
        .kv_get(&format!("passport:{agent}"))
        .await
        .expect("the passport view in KV");
    let checked = independent(&jwks, &decisions, std::slice::from_ref(&view)).await;
    for (decision, verdict) in decisions
        .iter()
        .zip(checked["decisions"].as_array().unwrap())
    {
        assert_eq!(verdict["ok"], true, "{verdict} for {decision}");
        assert_eq!(keys.verify(decision), Ok(()), "{decision}");
        // The edge signs with workerd's WebCrypto; the core's Ed25519 makes the same signature.
        let mut unsigned = decision.clone();
        unsigned.as_object_mut().unwrap().remove("signature");
        assert_eq!(&test_key.signed(unsigned).unwrap(), decision);
        assert_eq!(decision["kid"], kid.as_str());
        assert!(decision["signature"]
            .as_str()
            .unwrap()
            .starts_with("ed25519:"));
    }
    for i in [0, 1, 3, 4, 5, 6] {
        let decision = &decisions[i];
        assert_eq!(
            decision["passport_digest"], checked["digests"][0],
            "{i}: {decision}"
        );
    }

    // A change to any member breaks it for the independent verifier too.
    let mut tampered = decisions[1].clone();
    tampered["allow"] = json!(true);
    let checked = independent(&jwks, &[tampered], &[]).await;
    assert_eq!(checked["decisions"][0]["ok"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_decisions_become_receipts_that_verify_offline() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.active_agent("Receipt Bot").await;
    // Commits are a partner's, with a token issued for it (SPEC §14).
    let partner = stack.partner("Receipt Shop").await;
    let token = stack.agent_token_for(&agent, Some(&partner.id)).await;
    let commit = |key: &str, amount: u32| {
        stack.send(
            stack
                .client
                .post(format!("{}/verify", stack.edge))
                .bearer_auth(&partner.key)
                .json(
                    &json!({ "token": token, "capability": "payments.refund", "commit": true,
                               "idempotency_key": key, "context": refund(amount) }),
                ),
        )
    };
    let mut answered = Vec::new();
    for (i, amount) in [30, 40].into_iter().enumerate() {
        let (status, _, decision) = commit(&format!("receipt-{i}"), amount).await;
        assert_eq!(status, StatusCode::OK, "{decision}");
        assert_eq!(decision["allow"], true, "{decision}");
        assert_eq!(
            decision["partner_id"],
            partner.id.as_str(),
            "signed with it: {decision}"
        );
        answered.push(decision);
    }
    // A replay answers the very bytes first answered, signature included.
    let (_, _, replay) = commit("receipt-0", 30).await;
    assert_eq!(replay, answered[0]);

    // Both reach the origin within seconds, newest first, as answered.
    let path = format!("/v1/agents/{agent}/receipts");
    let deadline = Instant::now() + PATIENCE;
    let page = loop {
        let page = stack.admin(reqwest::Method::GET, &path, None).await;
        if page["data"].as_array().is_some_and(|d| d.len() == 2) {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "the receipts never reached the origin: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(page["data"][0], answered[1]);
    assert_eq!(page["data"][1], answered[0]);
    // The independent verifier checks the receipts as the origin serves them.
    let jwks = decision_jwks(&stack).await;
    let checked = independent(&jwks, page["data"].as_array().unwrap(), &[]).await;
    assert!(
        checked["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["ok"] == true),
        "{checked}"
    );
    // Paging: one per page, the cursor leads to the older one.
    let first = stack
        .admin(reqwest::Method::GET, &format!("{path}?limit=1"), None)
        .await;
    assert_eq!(first["data"][0], answered[1]);
    let cursor = first["next_cursor"].as_str().expect("a next cursor");
    let second = stack
        .admin(
            reqwest::Method::GET,
            &format!("{path}?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(second["data"][0], answered[0]);
    assert!(second["next_cursor"].is_null());

    // Offline: the CLI checks the page against the edge's published keys; a tampered copy
    // fails with exit code 4.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("receipts.json");
    std::fs::write(&file, page.to_string()).expect("write");
    let (code, out) = cli_verify(&stack, &file).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("authentic"), "{out}");
    let mut tampered = answered[0].clone();
    tampered["allow"] = json!(false);
    std::fs::write(&file, tampered.to_string()).expect("write");
    let (code, out) = cli_verify(&stack, &file).await;
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("NOT AUTHENTIC"), "{out}");
}
