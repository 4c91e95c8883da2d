//! A2A agent cards (SPEC §15) from the built worker in real workerd: the A2A project's own
//! Python SDK (`a2a-sdk`) finds, parses and verifies the card, an independent JWS library
//! (`jwcrypto`, with `rfc8785` for the canonical form) verifies its signature against the key
//! published at `/.well-known/oap/jwks.json` (tests/edge/a2a_card.py); the card follows the live
//! status (a suspension refuses it through the journal alone, a revocation is `410`, a stale
//! journal `503`), with strong ETags and `304`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::{header, StatusCode};
use serde_json::{json, Value};
use vouch_core::signing::PublicKeys;

use crate::stack::{python, repo, Stack};
use crate::PATIENCE;

struct Card {
    status: StatusCode,
    headers: header::HeaderMap,
    body: String,
}

impl Card {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn card(stack: &Stack, path: &str, etag: Option<&str>) -> Card {
    let mut req = stack.client.get(format!("{}{path}", stack.edge));
    if let Some(etag) = etag {
        req = req.header(header::IF_NONE_MATCH, etag);
    }
    let resp = req.send().await.unwrap();
    Card {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

/// Polls the agent's card until `done` holds (at most `within`); returns the last answer.
async fn card_until(
    stack: &Stack,
    agent: &str,
    within: Duration,
    done: impl Fn(&Card) -> bool,
) -> Card {
    let started = Instant::now();
    loop {
        let answer = card(stack, &format!("/agents/{agent}/agent-card.json"), None).await;
        if done(&answer) || started.elapsed() > within {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An active agent whose KV view (not the journal's status over the draft) the edge serves.
async fn settled_agent(stack: &Stack, name: &str) -> String {
    let agent = stack.active_agent(name).await;
    let (status, _, body) = stack
        .verify_until(&agent, PATIENCE, |s, b| {
            s == StatusCode::OK && b["version"] == 2
        })
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = card_until(stack, &agent, PATIENCE, |c| c.json()["version"] == "2").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    agent
}

/// What the A2A SDK and jwcrypto make of the agent's card.
async fn independent(python: &PathBuf, stack: &Stack, agent: &str) -> Value {
    let output = tokio::process::Command::new(python)
        .arg(repo().join("tests/edge/a2a_card.py"))
        .args([&stack.edge, agent])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .expect("run tests/edge/a2a_card.py");
    assert!(output.status.success(), "tests/edge/a2a_card.py failed");
    serde_json::from_slice(&output.stdout).expect("a2a_card.py prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_a2a_sdk_parses_the_card_and_its_signature_verifies_independently() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let Some(python) = python() else {
        return;
    };
    let agent = settled_agent(&stack, "Card Bot").await;
    let edge = stack.edge.clone();

    let served = card(&stack, &format!("/agents/{agent}/agent-card.json"), None).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    assert_eq!(served.header("content-type"), "application/json");
    assert_eq!(served.header("cache-control"), "public, max-age=1");
    let etag = served.header("etag").to_owned();
    assert!(etag.starts_with("\"card-"), "{etag}");
    let body = served.json();
    assert_eq!(body["name"], "Card Bot");
    assert_eq!(body["version"], "2");
    assert_eq!(
        body["provider"],
        json!({ "organization": "Acme Support Team", "url": "mailto:security@acme.com" })
    );
    assert_eq!(
        body["supportedInterfaces"],
        json!([{ "url": format!("{edge}/agents/{agent}"),
                 "protocolBinding": format!("{edge}/a2a/bindings/vouch-registry/v1"),
                 "protocolVersion": "1.0" }])
    );
    let params = &body["capabilities"]["extensions"][0]["params"];
    assert_eq!(params["verify_url"], format!("{edge}/verify"));
    assert_eq!(params["agent_id"], agent.as_str());
    assert_eq!(params["status"], "active");
    assert_eq!(params["passport_version"], 2);

    // The discovery path under the agent's record URL serves the same card.
    let well_known = card(
        &stack,
        &format!("/agents/{agent}/.well-known/agent-card.json"),
        None,
    )
    .await;
    assert_eq!(well_known.status, StatusCode::OK);
    assert_eq!(well_known.json(), body);
    assert_eq!(well_known.header("etag"), etag);

    // Strong ETag: the same card again, and a bodyless 304 for a client that has it.
    let again = card(
        &stack,
        &format!("/agents/{agent}/agent-card.json"),
        Some(&etag),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), etag);

    // The published decision keys verify it (our own verifier; the independent ones follow).
    let (_, _, jwks) = stack
        .send(
            stack
                .client
                .get(format!("{edge}/.well-known/oap/jwks.json")),
        )
        .await;
    let keys = PublicKeys::from_jwks(&jwks).unwrap();
    let kid = vouch_core::a2a::verify_card(&body, &keys).expect("the card verifies");
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str());

    let report = independent(&python, &stack, &agent).await;
    assert_eq!(report["jku"], format!("{edge}/.well-known/oap/jwks.json"));
    // jwcrypto over rfc8785's canonical form, with the key `jku` and `kid` name.
    assert_eq!(report["jwcrypto"]["ok"], true, "{report}");
    assert_eq!(report["jwcrypto"]["kid"], kid.as_str());
    assert_eq!(report["jwcrypto"]["header"]["alg"], "EdDSA");
    assert_eq!(report["jwcrypto"]["header"]["typ"], "JOSE");
    assert_eq!(report["jwcrypto_tampered"]["ok"], false, "{report}");
    // The A2A SDK found the card from the record URL, parsed it, and its own verifier agrees.
    assert_eq!(report["sdk"]["signature"]["ok"], true, "{report}");
    assert_eq!(report["sdk"]["tampered"]["ok"], false, "{report}");
    let parsed = &report["sdk"]["card"];
    assert_eq!(parsed["name"], "Card Bot");
    assert_eq!(parsed["provider"]["organization"], "Acme Support Team");
    assert_eq!(
        parsed["supportedInterfaces"][0]["protocolVersion"], "1.0",
        "{parsed}"
    );
    let skills: Vec<&str> = parsed["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(skills, ["payments.refund", "data.export"]);
    assert!(parsed["skills"][0]["description"]
        .as_str()
        .unwrap()
        .contains("at most 100.00 USD per transaction"));
    assert_eq!(
        parsed["capabilities"]["extensions"][0]["params"]["agent_id"],
        agent.as_str()
    );
    assert_eq!(parsed["signatures"][0], body["signatures"][0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_card_follows_the_live_status() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let missing = "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70";
    let unknown = card(&stack, &format!("/agents/{missing}/agent-card.json"), None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["error"], "agent_not_found");
    let bad = card(&stack, "/agents/not-an-id/agent-card.json", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["field"], "agent_id");

    // A draft has no card.
    let draft = stack.seed_agent("Draft Card").await;
    let answer = card_until(&stack, &draft, PATIENCE, |c| {
        c.status != StatusCode::NOT_FOUND
    })
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert_eq!(answer.json()["error"], "agent_not_active");

    let agent = settled_agent(&stack, "Status Card").await;
    let first = card(&stack, &format!("/agents/{agent}/agent-card.json"), None).await;
    let etag = first.header("etag").to_owned();

    // Suspended through the journal alone (KV takes no writes meanwhile): refused with the
    // `/verify` refusal, never cached, within the bound.
    stack.kv_hold().await;
    let (code, body) = stack.set_status_propagated(&agent, "suspended").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let refused = card_until(&stack, &agent, PATIENCE, |c| c.status != StatusCode::OK).await;
    stack.kv_release().await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let refusal = refused.json();
    assert_eq!(refusal["error"], "agent_suspended");
    assert_eq!(refusal["reason"], "test: suspended");
    assert_eq!(refusal["contact"], "security@acme.com");
    assert_eq!(refused.header("cache-control"), "no-store");
    assert_eq!(refused.header("etag"), "");
    // A client's old ETag gets the refusal, not a 304.
    let stale = card(
        &stack,
        &format!("/agents/{agent}/agent-card.json"),
        Some(&etag),
    )
    .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);

    // Reactivated: a card again, a new version and so a new ETag.
    stack.set_status(&agent, "active").await;
    let back = card_until(&stack, &agent, PATIENCE, |c| c.json()["version"] == "4").await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    assert_ne!(back.header("etag"), etag);

    // While the isolate cannot refresh the journal past the bound, no card: 503, not cached.
    stack.journal_outage(8_000).await;
    let blind = card_until(&stack, &agent, PATIENCE, |c| c.status != StatusCode::OK).await;
    assert_eq!(
        blind.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        blind.body
    );
    assert_eq!(blind.json()["error"], "status_unavailable");
    assert_eq!(blind.header("cache-control"), "no-store");
    let healed = card_until(&stack, &agent, Duration::from_secs(30), |c| {
        c.status == StatusCode::OK
    })
    .await;
    assert_eq!(healed.status, StatusCode::OK, "{}", healed.body);

    // Revoked: gone for good.
    let (code, body) = stack.set_status_propagated(&agent, "revoked").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let gone = card_until(&stack, &agent, PATIENCE, |c| c.status != StatusCode::OK).await;
    assert_eq!(gone.status, StatusCode::GONE, "{}", gone.body);
    assert_eq!(gone.json()["error"], "agent_revoked");
    assert!(gone.json()["revoked_at"].is_string());
}
