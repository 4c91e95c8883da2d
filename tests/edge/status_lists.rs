//! Token status lists (SPEC §16) end to end: the origin signs each list and publishes it through
//! the outbox and KV, the built worker in real workerd serves it at `GET /status/{list_id}`, and
//! an independent offline verifier (tests/edge/status_list.py: PyJWT, zlib and bit reads, no Vouch
//! code) refuses an agent's access token once the agent is suspended.

use std::time::{Duration, Instant};

use reqwest::{header, StatusCode};
use serde_json::Value;
use vouch_core::status_list::{self, EncodedList, StatusList};

use crate::stack::{python, repo, Stack};

/// How long a status change may take to reach the edge's list here: the rebuild (≤ 1 s after
/// the previous one), the KV publisher, the edge's per-isolate cache. Generous on a busy machine.
const LIST_PATIENCE: Duration = Duration::from_secs(30);

/// The claims of an access token (`typ` `JWT`) or a list token (`statuslist+jwt`), unverified:
/// the Python verifier checks the signatures.
fn claims_of(token: &str) -> Value {
    let parsed =
        vouch_core::jws::parse_typed(token, status_list::MAX_TOKEN_LEN, vouch_core::jws::TYP)
            .or_else(|_| {
                vouch_core::jws::parse_typed(token, status_list::MAX_TOKEN_LEN, status_list::TYP)
            })
            .expect("a JWT");
    serde_json::from_slice(&parsed.payload().expect("a payload")).expect("JSON claims")
}

struct Served {
    status: StatusCode,
    headers: header::HeaderMap,
    body: String,
}

async fn get(stack: &Stack, url: &str, etag: Option<&str>) -> Served {
    let mut req = stack.client.get(url);
    if let Some(etag) = etag {
        req = req.header(header::IF_NONE_MATCH, etag);
    }
    let resp = req.send().await.expect("request");
    Served {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await.expect("body"),
    }
}

/// The entry `idx` of the list at `uri` as the edge serves it now (decoded without verifying:
/// the Python verifier does that), once it is `wanted`.
async fn entry_until(stack: &Stack, uri: &str, idx: u64, wanted: u8) -> Served {
    let started = Instant::now();
    loop {
        let served = get(stack, uri, None).await;
        if served.status == StatusCode::OK {
            let claims = claims_of(&served.body);
            let encoded: EncodedList =
                serde_json::from_value(claims["status_list"].clone()).expect("status_list");
            let list = StatusList::decode(&encoded, 1 << 20).expect("a list");
            if list.get(idx).ok() == Some(wanted) {
                return served;
            }
        }
        assert!(
            started.elapsed() < LIST_PATIENCE,
            "entry {idx} of {uri} never became {wanted}: {} {}",
            served.status,
            served.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn offline_check(
    stack: &Stack,
    python: &std::path::Path,
    token: &str,
    others: &[u64],
) -> Value {
    let output = tokio::process::Command::new(python)
        .arg(repo().join("tests/edge/status_list.py"))
        .arg(&stack.edge)
        .arg(token)
        .args(others.iter().map(ToString::to_string))
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .expect("run tests/edge/status_list.py");
    assert!(output.status.success(), "tests/edge/status_list.py failed");
    serde_json::from_slice(&output.stdout).expect("status_list.py prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_verifier_refuses_a_suspended_agent_from_the_edges_status_list() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let Some(python) = python() else {
        return;
    };
    let agent = stack.active_agent("Listed Bot").await;
    let other = stack.active_agent("Other Listed Bot").await;
    let token = stack.agent_token(&agent).await;
    let reference = &claims_of(&token)["status"]["status_list"];
    let uri = reference["uri"].as_str().expect("a status uri").to_owned();
    let idx = reference["idx"].as_u64().expect("an index");
    assert_eq!(
        uri,
        format!("{}/status/0", stack.edge),
        "served by this edge"
    );
    let other_idx = claims_of(&stack.agent_token(&other).await)["status"]["status_list"]["idx"]
        .as_u64()
        .expect("an index");
    assert_ne!(idx, other_idx);

    // Active: the independent verifier accepts the token, and says so of the other agent too.
    let served = entry_until(&stack, &uri, idx, 0).await;
    assert_eq!(
        served.headers[header::CONTENT_TYPE],
        status_list::MEDIA_TYPE
    );
    assert_eq!(served.headers[header::CACHE_CONTROL], "public, max-age=1");
    let etag = served.headers[header::ETAG].to_str().unwrap().to_owned();
    assert!(etag.starts_with("\"status-0-"), "{etag}");
    let seen = offline_check(&stack, &python, &token, &[other_idx]).await;
    assert_eq!(seen["status"], 0, "{seen}");
    assert_eq!(seen["refused"], false, "{seen}");
    assert_eq!(seen["sub"], agent.as_str());
    assert_eq!(seen["list_typ"], "statuslist+jwt");
    assert_eq!(seen["list_sub"], uri.as_str());
    assert_eq!(seen["content_type"], status_list::MEDIA_TYPE);
    assert_eq!(seen["bits"], 2);
    assert_eq!(seen["entries"], 65_536);
    assert_eq!(seen["ttl"], 10);
    assert_eq!(seen["exp_minus_iat"], 300);
    assert_eq!(seen["others"][0], 0);

    // Revalidation: the list as held is a 304 without a body (asked again if the origin's
    // periodic rebuild replaced it in between).
    let mut held = etag;
    let started = Instant::now();
    loop {
        let again = get(&stack, &uri, Some(&held)).await;
        if again.status == StatusCode::NOT_MODIFIED {
            assert!(again.body.is_empty());
            assert_eq!(again.headers[header::ETAG], held.as_str());
            break;
        }
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert_ne!(
            again.headers[header::ETAG],
            held.as_str(),
            "a 200 for a current tag"
        );
        assert!(started.elapsed() < LIST_PATIENCE, "never a 304");
        held = again.headers[header::ETAG].to_str().unwrap().to_owned();
    }

    // Suspended: once the list at the edge says so, the offline verifier refuses the same token
    // (still valid by its signature and `exp`), and the other agent is untouched.
    stack.set_status(&agent, "suspended").await;
    entry_until(&stack, &uri, idx, 2).await;
    let seen = offline_check(&stack, &python, &token, &[other_idx]).await;
    assert_eq!(seen["status"], 2, "suspended: {seen}");
    assert_eq!(seen["refused"], true, "{seen}");
    assert_eq!(seen["others"][0], 0, "{seen}");

    // Revoked: 1. Reactivation cannot follow a revocation, so the list stays there.
    stack.set_status(&other, "revoked").await;
    entry_until(&stack, &uri, other_idx, 1).await;
    let seen = offline_check(&stack, &python, &token, &[other_idx]).await;
    assert_eq!(seen["others"][0], 1, "{seen}");

    // Errors are JSON: an unknown list, a malformed id.
    let missing = get(&stack, &format!("{}/status/7", stack.edge), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_str(&missing.body).unwrap();
    assert_eq!(body["error"], "status_list_not_found");
    let bad = get(&stack, &format!("{}/status/01", stack.edge), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_str(&bad.body).unwrap();
    assert_eq!(body["error"], "invalid_request");
}
