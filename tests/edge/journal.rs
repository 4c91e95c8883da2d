//! The status journal (SPEC §10) and committed daily caps (SPEC §11), end to end: the origin,
//! the built worker and its Durable Objects in workerd, KV behind the REST-shaped endpoint.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::stack::{Partner, Stack, EDGE_SECRET, JOURNAL_BOUND, JOURNAL_SETTLE};

/// Room for the test machine on top of a bound (scheduling, a 2-core box running other tests).
const SLACK: Duration = Duration::from_secs(3);

fn etag_is_overlay(etag: &Option<String>) -> bool {
    etag.as_deref().is_some_and(|e| e.contains("-k"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_refuses_a_suspension_kv_never_saw() {
    // A bound far above the refresh interval (250 ms): a refusal well before the bound shows
    // the background refresh at work, not the refresh forced at the bound.
    let bound = Duration::from_secs(8);
    let Some(stack) = Stack::start_with(&[("VOUCH_JOURNAL_BOUND_MS", "8000")]).await else {
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
        .verify_until(&agent, bound, |s, _| s == StatusCode::FORBIDDEN)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        stored.elapsed() < bound / 2,
        "refused after {:?}: not by the background refresh",
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
        .decide(json!({ "agent_id": agent, "capability": "payments.refund",
                               "context": { "amount": 10, "currency": "USD", "region": "US-CA" } }))
        .await;
    assert_eq!(decision["allow"], false, "{decision}");
    assert_eq!(decision["passport_version"], suspended_version);
    assert_eq!(decision["reasons"][0]["code"], "oap.passport_suspended");

    // KV recovers: the edge converges on the KV record of the same version, and the journal
    // drops the entry once KV has held it for the settle time.
    stack.kv_release().await;
    // KV's publisher may be deep in its backoff (up to a minute) after the hold.
    let deadline = Instant::now() + Duration::from_secs(70);
    while stack.kv_get(&key).await.expect("in KV")["version"] != suspended_version {
        assert!(Instant::now() < deadline, "KV never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once the edge reads KV's record of the same version, the journal no longer changes it.
    let (status, etag, body) = stack
        .verify_until(&agent, Duration::from_secs(5), |_, _| false)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["version"], suspended_version);
    assert!(!etag_is_overlay(&etag), "{etag:?}");
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
    assert_eq!(stack.verify(&agent).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_journal_is_caught_up_and_never_answered_from_empty() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.active_agent("Reset Survivor").await;
    stack.kv_hold().await;
    let (code, changed) = stack.set_status_propagated(&agent, "suspended").await;
    assert_eq!(code, StatusCode::OK, "{changed}");
    let (status, _, _) = stack
        .verify_until(&agent, JOURNAL_BOUND + SLACK, |s, _| {
            s == StatusCode::FORBIDDEN
        })
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The journal loses everything (a new object: new epoch, unseeded). KV still says active.
    stack.journal_reset().await;
    let started = Instant::now();
    let mut refused_again = false;
    while started.elapsed() < JOURNAL_SETTLE + JOURNAL_BOUND + SLACK * 3 {
        let (status, _, body) = stack.verify(&agent).await;
        // Never the stale 200: the old copy, a 503 while unseeded, then the caught-up journal.
        assert_ne!(status, StatusCode::OK, "{body}");
        let journal = stack.journal_entries().await;
        if status == StatusCode::FORBIDDEN && journal["seeded"] == true {
            let held = journal["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .any(|e| e["change"]["agent_id"] == agent.as_str());
            if held {
                refused_again = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused_again, "the origin never caught the new journal up");
    // The isolate answers from the new journal (its old copy is gone past the bound).
    tokio::time::sleep(JOURNAL_BOUND).await;
    let (status, _, body) = stack.verify(&agent).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["version"], changed["version"]);
    stack.kv_release().await;
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
    // KV's publisher may be deep in its backoff (up to a minute) after the hold.
    let deadline = Instant::now() + Duration::from_secs(70);
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
async fn a_journal_that_does_not_answer_fails_closed_in_time() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.active_agent("Hanging Journal").await;
    // Pulls get no answer for a long while: the edge must not hang with them.
    let outage = Duration::from_secs(12);
    stack
        .journal_outage_of(outage.as_millis() as u64, true)
        .await;
    let started = Instant::now();
    let mut refused = false;
    while started.elapsed() < outage - Duration::from_secs(2) {
        let asked = Instant::now();
        let (status, _, body) = stack.verify(&agent).await;
        // A refresh gives up after 3 s: no answer takes much longer, whatever the journal does.
        assert!(
            asked.elapsed() < Duration::from_secs(3) + SLACK,
            "hung {:?}",
            asked.elapsed()
        );
        // The agent is active: 200 while the copy is inside the bound, then 503.
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status} {body}"
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "never answered 503 while the journal hung");
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
    // An append that does not name the journal's epoch is refused with it.
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let epoch = stack.journal_entries().await["epoch"].clone();
    assert_eq!(body["epoch"], epoch);
    let (status, _, body) = stack
        .send(
            stack
                .client
                .post(&url)
                .header("authorization", format!("bearer {EDGE_SECRET}"))
                .json(&json!({ "epoch": epoch, "changes": [] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["head"].is_i64(), "{body}");
    assert_eq!(body["seeded"], true);
}

/// One answer to a commit: HTTP status, the `idempotent-replayed` header, the body as sent.
struct Committed {
    status: StatusCode,
    replayed: String,
    text: String,
    body: Value,
}

/// The partner a test commits through and a token of `agent` issued for it.
async fn committer(stack: &Stack, agent: &str) -> (Partner, String) {
    let partner = stack.partner("Committing Shop").await;
    let token = stack.agent_token_for(agent, Some(&partner.id)).await;
    (partner, token)
}

/// Commits `amount` USD of `capability` under `key` with the agent's `token`, as `partner`.
async fn commit_as(
    stack: &Stack,
    partner: &Partner,
    token: &str,
    capability: &str,
    key: &str,
    amount: u32,
) -> Committed {
    let resp = stack
        .client
        .post(format!("{}/verify", stack.edge))
        .bearer_auth(&partner.key)
        .json(&json!({
            "token": token,
            "capability": capability,
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
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).expect("json");
    Committed {
        status,
        replayed,
        text,
        body,
    }
}

async fn commit(
    stack: &Stack,
    partner: &Partner,
    token: &str,
    key: &str,
    amount: u32,
) -> Committed {
    commit_as(stack, partner, token, "payments.refund", key, amount).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_never_pass_the_daily_cap() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let stack = &stack;
    // The seed passport: refunds of at most 100 USD each, 1,000 USD a day.
    let agent = stack.active_agent("Cap Holder").await;
    let (partner, token) = committer(stack, &agent).await;
    let (partner, token) = (&partner, token.as_str());
    // The token's first use waits for the JWKS and discovery in KV.
    let deadline = Instant::now() + Duration::from_secs(10);
    while commit(stack, partner, token, "warm-up", 0).await.body["allow"] != true {
        assert!(Instant::now() < deadline, "the token is never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let amounts: Vec<u32> = (0..50).map(|i| 40 + (i * 7) % 61).collect();
    let answers = futures::future::join_all(
        amounts
            .iter()
            .enumerate()
            .map(|(i, amount)| async move {
                commit(stack, partner, token, &format!("refund-{i}"), *amount).await
            })
            .collect::<Vec<_>>(),
    )
    .await;
    let mut allowed_sum = 0;
    let mut denied = 0;
    for (answer, amount) in answers.iter().zip(&amounts) {
        let body = &answer.body;
        assert_eq!(answer.status, StatusCode::OK, "{body}");
        assert_eq!(answer.replayed, "false");
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
    // Whatever the order they were applied in: once denials start, only amounts that fit what
    // is left pass, so what is left is smaller than the smallest denied amount.
    let smallest_denied = answers
        .iter()
        .zip(&amounts)
        .filter(|(a, _)| a.body["allow"] == false)
        .map(|(_, a)| *a)
        .min()
        .unwrap_or(0);
    assert!(
        1_000 - allowed_sum < smallest_denied,
        "left {}",
        1_000 - allowed_sum
    );

    // Replays answer the first decision, byte for byte, and count nothing — also with a
    // refreshed token (the same agent: the same request).
    let fresh_token = stack.agent_token_for(&agent, Some(&partner.id)).await;
    for (i, first) in answers.iter().enumerate().take(5) {
        let again = commit(
            stack,
            partner,
            &fresh_token,
            &format!("refund-{i}"),
            amounts[i],
        )
        .await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.replayed, "true");
        assert_eq!(again.text, first.text);
    }
    // The same key for another request is refused; a commit needs a key, and a token.
    let reused = commit(stack, partner, token, "refund-0", amounts[0] + 1).await;
    assert_eq!(reused.status, StatusCode::CONFLICT, "{}", reused.body);
    assert_eq!(reused.body["error"], "idempotency_key_reused");
    for (request, field) in [
        (
            json!({ "token": token, "capability": "payments.refund", "commit": true }),
            "idempotency_key",
        ),
        (
            json!({ "agent_id": agent, "capability": "payments.refund", "commit": true, "idempotency_key": "x" }),
            "token",
        ),
    ] {
        let (status, _, body) = stack.decide(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["field"], field);
    }

    // What is left is still spendable, exactly.
    let left = 1_000 - allowed_sum;
    if left > 0 {
        let rest = commit(stack, partner, token, "the-rest", left).await;
        assert_eq!(rest.body["allow"], true, "{}", rest.body);
    }
    let over = commit(stack, partner, token, "one-more", 1).await;
    assert_eq!(over.body["allow"], false, "{}", over.body);
    let message = over.body["reasons"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("1000.00 USD already spent"), "{message}");
    // A plain decision is not a commit: it records nothing, and it reads what was spent, so it
    // never allows what a commit would refuse (SPEC §11).
    let (_, _, body) = stack
        .decide(json!({ "agent_id": agent, "capability": "payments.refund",
                               "context": { "amount": 5, "currency": "USD", "region": "US-CA" } }))
        .await;
    assert_eq!(body["allow"], false, "{body}");
    assert_eq!(
        body["reasons"][0]["limit"], "limits.refund_usd_daily_cap",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_commit_never_revives_a_suspended_agent() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.active_agent("Replayer").await;
    let (partner, token) = committer(&stack, &agent).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let first = commit(&stack, &partner, &token, "order-7", 80).await;
        if first.body["allow"] == true {
            break first;
        }
        assert!(Instant::now() < deadline, "{}", first.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (code, _) = stack.set_status_propagated(&agent, "suspended").await;
    assert_eq!(code, StatusCode::OK);
    let deadline = Instant::now() + JOURNAL_BOUND + SLACK;
    let refused = loop {
        let again = commit(&stack, &partner, &token, "order-7", 80).await;
        if again.body["allow"] == false {
            break again;
        }
        assert_eq!(again.replayed, "true");
        assert!(Instant::now() < deadline, "the replay kept allowing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused.status, StatusCode::OK);
    assert_eq!(refused.replayed, "false");
    assert_ne!(refused.body["decision_id"], first.body["decision_id"]);
    // Reactivated, the same key replays the first decision again: it was recorded once.
    let (code, _) = stack.set_status_propagated(&agent, "active").await;
    assert_eq!(code, StatusCode::OK);
    let deadline = Instant::now() + JOURNAL_BOUND + SLACK;
    loop {
        let again = commit(&stack, &partner, &token, "order-7", 80).await;
        if again.replayed == "true" {
            assert_eq!(again.text, first.text);
            break;
        }
        assert!(Instant::now() < deadline, "{}", again.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_capabilities_share_the_flat_cap_they_both_fall_under() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let org = stack
        .admin(
            reqwest::Method::POST,
            "/v1/orgs",
            Some(json!({ "name": "Shared Cap", "slug": "sharedcap" })),
        )
        .await;
    let created = stack
        .admin(
            reqwest::Method::POST,
            "/v1/agents",
            Some(json!({
                "org_id": org["org_id"],
                "name": "Two Refunders",
                "owner": { "display_name": "Acme", "contact": "security@acme.com" },
                "capabilities": [{ "id": "payments.refund" }, { "id": "support.refund" }],
                "limits": { "refund_usd_max_per_tx": 1000, "refund_usd_daily_cap": 1000 },
                "regions": ["US-CA"],
                "assurance_level": "L2"
            })),
        )
        .await;
    let agent = created["agent"]["agent_id"]
        .as_str()
        .expect("id")
        .to_owned();
    stack.set_status(&agent, "active").await;
    let (partner, token) = committer(&stack, &agent).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let first = commit_as(&stack, &partner, &token, "payments.refund", "a", 600).await;
        if first.body["allow"] == true {
            break first;
        }
        assert!(Instant::now() < deadline, "{}", first.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(first.body["allow"], true);
    let second = commit_as(&stack, &partner, &token, "support.refund", "b", 500).await;
    assert_eq!(second.body["allow"], false, "{}", second.body);
    assert_eq!(
        second.body["reasons"][0]["limit"],
        "limits.refund_usd_daily_cap"
    );
    let fits = commit_as(&stack, &partner, &token, "support.refund", "c", 400).await;
    assert_eq!(fits.body["allow"], true, "{}", fits.body);
}
