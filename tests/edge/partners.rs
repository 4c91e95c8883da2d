//! Partners at the edge (SPEC §14), end to end in workerd: a partner is known by its bearer key
//! (a bad or revoked one is `401`, never anonymous; a revoked one within the bound, through the
//! status journal), decisions name it, a commit needs a partner and a token issued for it (so a
//! token handed to one partner cannot exhaust, squat or double-count through another), its
//! idempotency keys are its own, a batch says which commits were replays, each partner has its
//! rate limit, and a decision that only asks reads what a daily cap has left.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::stack::{Partner, Stack, JOURNAL_BOUND};
use crate::PATIENCE;

/// Beyond the journal's bound, for the refresh and the 2-core machine.
const SLACK: Duration = Duration::from_secs(3);

/// An answer: status, the `idempotent-replayed` header, the body.
struct Answer {
    status: StatusCode,
    replayed: Option<String>,
    body: Value,
}

/// `POST {path}` at the edge with `body`, as `partner` (its key) or anonymously.
async fn post(stack: &Stack, path: &str, partner: Option<&str>, body: &Value) -> Answer {
    let mut req = stack
        .client
        .post(format!("{}{path}", stack.edge))
        .json(body);
    if let Some(key) = partner {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let replayed = resp
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        replayed,
        body,
    }
}

fn refund(amount: f64) -> Value {
    json!({ "amount": amount, "currency": "USD", "region": "US-CA" })
}

/// A commit of `amount` USD of refunds under `key` with `token`, as `partner`.
async fn commit(
    stack: &Stack,
    partner: Option<&str>,
    token: &str,
    key: &str,
    amount: f64,
) -> Answer {
    let body = json!({ "token": token, "capability": "payments.refund", "context": refund(amount),
                       "commit": true, "idempotency_key": key });
    post(stack, "/verify", partner, &body).await
}

/// An ask (no commit) about `agent` refunding `amount` USD.
async fn ask(stack: &Stack, partner: Option<&str>, agent: &str, amount: f64) -> Answer {
    let body =
        json!({ "agent_id": agent, "capability": "payments.refund", "context": refund(amount) });
    post(stack, "/verify", partner, &body).await
}

/// Commits until the token is accepted (it waits for the signing keys in KV); the first answer
/// that is not a token refusal.
async fn first_commit(
    stack: &Stack,
    partner: &Partner,
    token: &str,
    key: &str,
    amount: f64,
) -> Answer {
    let started = Instant::now();
    loop {
        let answer = commit(stack, Some(&partner.key), token, key, amount).await;
        let refused_token = answer.body["reasons"][0]["code"] == "token_invalid";
        if answer.status != StatusCode::OK || !refused_token {
            return answer;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the token is never accepted: {}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[track_caller]
fn assert_unauthorized(answer: &Answer, what: &str) {
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        answer.body
    );
    assert_eq!(answer.body["error"], "unauthorized", "{what}");
    assert!(answer.body["message"].is_string(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_keys_at_the_edge() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let stack = &stack;
    let agent = stack.active_agent("Partnered Bot").await;
    let partner = stack.partner("Good Shop").await;

    // No header: anonymous, as before. A partner's decision names it.
    let anonymous = ask(stack, None, &agent, 5.0).await;
    assert_eq!(anonymous.body["allow"], true, "{}", anonymous.body);
    assert!(anonymous.body.get("partner_id").is_none());
    let named = ask(stack, Some(&partner.key), &agent, 5.0).await;
    assert_eq!(named.body["allow"], true, "{}", named.body);
    assert_eq!(named.body["partner_id"], partner.id.as_str());

    // A header that is not a live partner key is refused on every /verify route.
    let unknown = "vk_partner_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let batch = json!({ "requests": [{ "agent_id": agent, "capability": "payments.refund" }] });
    let oap = json!({ "context": { "agent_id": agent, "amount": 100, "currency": "USD" } });
    for bad in [unknown, "vk_agent_nope", "not-a-key"] {
        assert_unauthorized(&ask(stack, Some(bad), &agent, 5.0).await, bad);
        assert_unauthorized(&post(stack, "/verify/batch", Some(bad), &batch).await, bad);
        assert_unauthorized(
            &post(
                stack,
                "/api/verify/policy/finance.payment.refund.v1",
                Some(bad),
                &oap,
            )
            .await,
            bad,
        );
        let (status, _, body) = stack
            .send(
                stack
                    .client
                    .get(format!("{}/verify?agent_id={agent}", stack.edge))
                    .bearer_auth(bad),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let basic = stack
        .client
        .post(format!("{}/verify", stack.edge))
        .basic_auth("someone", Some("secret"))
        .json(&json!({ "agent_id": agent, "capability": "payments.refund" }))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert!(basic.headers().contains_key("www-authenticate"));

    // A rotated key stops working, the new one works.
    let rotated = stack
        .admin(
            reqwest::Method::POST,
            &format!("/v1/partners/{}/keys", partner.id),
            None,
        )
        .await;
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    stack.partner_known(&new_key, true).await;
    let took = stack.partner_known(&partner.key, false).await;
    assert!(
        took < JOURNAL_BOUND + SLACK,
        "the old key worked for {took:?}"
    );

    // A revoked partner is refused within the bound, through the status journal: KV is held
    // back, so only the journal can tell the edge.
    stack.kv_hold().await;
    stack
        .admin(
            reqwest::Method::DELETE,
            &format!("/v1/partners/{}", partner.id),
            None,
        )
        .await;
    let took = stack.partner_known(&new_key, false).await;
    assert!(
        took < JOURNAL_BOUND + SLACK,
        "the revoked key worked for {took:?}"
    );
    assert_unauthorized(&ask(stack, Some(&new_key), &agent, 5.0).await, "revoked");
    stack.kv_release().await;
    // Once KV has it too, it stays refused.
    let started = Instant::now();
    while stack
        .kv_get(&format!(
            "partner:{}",
            vouch_core::partner::key_hash(&new_key)
        ))
        .await
        .is_none_or(|v| v["status"] != "revoked")
    {
        assert!(started.elapsed() < PATIENCE, "KV never took the revocation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_unauthorized(
        &ask(stack, Some(&new_key), &agent, 5.0).await,
        "revoked, in KV",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_belong_to_partners() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let stack = &stack;
    // The seed passport: refunds of at most 100 USD each, 1,000 USD a day.
    let agent = stack.active_agent("Shared Payer").await;
    let p1 = stack.partner("First Shop").await;
    let p2 = stack.partner("Second Shop").await;
    let for_p1 = stack.agent_token_for(&agent, Some(&p1.id)).await;
    let for_p2 = stack.agent_token_for(&agent, Some(&p2.id)).await;
    let no_aud = stack.agent_token(&agent).await;

    let first = first_commit(stack, &p1, &for_p1, "order-1", 100.0).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["allow"], true, "{}", first.body);
    assert_eq!(first.body["partner_id"], p1.id.as_str());
    assert_eq!(first.replayed.as_deref(), Some("false"));

    // Anonymous callers may ask but never commit.
    assert_unauthorized(
        &commit(stack, None, &for_p1, "order-x", 1.0).await,
        "anonymous commit",
    );
    let anonymous_batch = json!({ "requests": [
        { "agent_id": agent, "capability": "payments.refund" },
        { "token": for_p1, "capability": "payments.refund", "context": refund(1.0), "commit": true, "idempotency_key": "b" }
    ] });
    assert_unauthorized(
        &post(stack, "/verify/batch", None, &anonymous_batch).await,
        "anonymous batch commit",
    );
    // An agent id alone never commits, whoever asks.
    let by_id = json!({ "agent_id": agent, "capability": "payments.refund", "context": refund(1.0),
                        "commit": true, "idempotency_key": "by-id" });
    let refused = post(stack, "/verify", Some(&p1.key), &by_id).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.body["field"], "token");

    // A token handed to P1 cannot spend through P2 (exhausting the cap), nor can one without an
    // `aud`: refused before the ledger, nothing counted.
    for (token, what) in [(&for_p1, "P1's token"), (&no_aud, "a token without aud")] {
        for key in ["order-1", "order-2"] {
            let stolen = commit(stack, Some(&p2.key), token, key, 100.0).await;
            assert_eq!(
                stolen.status,
                StatusCode::FORBIDDEN,
                "{what}: {}",
                stolen.body
            );
            assert_eq!(stolen.body["error"], "token_audience_mismatch", "{what}");
        }
    }
    // Nor can P1 use P2's token.
    let wrong = commit(stack, Some(&p1.key), &for_p2, "order-3", 1.0).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.body);

    // Idempotency keys are the partner's own: P2 using P1's key is its own commit (no squat,
    // no conflict with P1's request), and P1's key still replays P1's decision.
    let p2_first = first_commit(stack, &p2, &for_p2, "order-1", 50.0).await;
    assert_eq!(p2_first.body["allow"], true, "{}", p2_first.body);
    assert_eq!(p2_first.replayed.as_deref(), Some("false"));
    assert_ne!(p2_first.body["decision_id"], first.body["decision_id"]);
    assert_eq!(p2_first.body["partner_id"], p2.id.as_str());
    let replay = commit(stack, Some(&p1.key), &for_p1, "order-1", 100.0).await;
    assert_eq!(replay.replayed.as_deref(), Some("true"));
    assert_eq!(replay.body["decision_id"], first.body["decision_id"]);
    let p2_replay = commit(stack, Some(&p2.key), &for_p2, "order-1", 50.0).await;
    assert_eq!(p2_replay.replayed.as_deref(), Some("true"));
    // P1 reusing its key for another request conflicts within P1 only.
    let reused = commit(stack, Some(&p1.key), &for_p1, "order-1", 99.0).await;
    assert_eq!(reused.status, StatusCode::CONFLICT, "{}", reused.body);
    assert!(
        reused.body["message"]
            .as_str()
            .unwrap()
            .contains("\"order-1\""),
        "the partner's own key, not the ledger's: {}",
        reused.body
    );

    // Exactly 150 USD counted (100 by P1, 50 by P2): 850 are left, and an ask says so.
    let spent_so_far = 150.0;
    for i in 0..8 {
        let answer = commit(stack, Some(&p1.key), &for_p1, &format!("fill-{i}"), 100.0).await;
        assert_eq!(answer.body["allow"], true, "{i}: {}", answer.body);
    }
    let left = 1000.0 - spent_so_far - 800.0;
    let over = ask(stack, None, &agent, left + 0.01).await;
    assert_eq!(over.body["allow"], false, "{}", over.body);
    assert_eq!(over.body["reasons"][0]["code"], "oap.limit_exceeded");
    assert_eq!(
        over.body["reasons"][0]["limit"],
        "limits.refund_usd_daily_cap"
    );
    assert!(
        over.body["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("950.00 USD already spent"),
        "{}",
        over.body
    );
    let fits = ask(stack, Some(&p2.key), &agent, left).await;
    assert_eq!(fits.body["allow"], true, "{}", fits.body);
    // The same with a token, in a batch, and by the commit itself.
    let batch = json!({ "requests": [
        { "token": for_p1, "capability": "payments.refund", "context": refund(left + 0.01) },
        { "agent_id": agent, "capability": "payments.refund", "context": refund(left) }
    ] });
    let asked = post(stack, "/verify/batch", None, &batch).await;
    let decisions = asked.body["decisions"].as_array().unwrap();
    assert_eq!(decisions[0]["allow"], false, "{}", asked.body);
    assert_eq!(decisions[1]["allow"], true, "{}", asked.body);
    assert_eq!(
        asked.body["replayed"],
        json!([null, null]),
        "asks are no commits"
    );
    let too_much = commit(stack, Some(&p1.key), &for_p1, "too-much", left + 0.01).await;
    assert_eq!(too_much.body["allow"], false, "{}", too_much.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_say_which_commits_were_replays() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let stack = &stack;
    let agent = stack.active_agent("Batch Payer").await;
    let partner = stack.partner("Batch Shop").await;
    let token = stack.agent_token_for(&agent, Some(&partner.id)).await;
    first_commit(stack, &partner, &token, "warm-up", 1.0).await;
    let item = |key: &str, amount: f64| {
        json!({ "token": token, "capability": "payments.refund", "context": refund(amount),
                "commit": true, "idempotency_key": key })
    };
    let ask_item =
        json!({ "agent_id": agent, "capability": "payments.refund", "context": refund(1.0) });
    let first = post(
        stack,
        "/verify/batch",
        Some(&partner.key),
        &json!({ "requests": [item("a", 10.0), ask_item, item("b", 20.0)] }),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let d = first.body["decisions"].as_array().unwrap();
    // Replays are reported beside the decisions, which are signed and stay as first answered.
    assert_eq!(
        first.body["replayed"],
        json!([false, null, false]),
        "an ask is no commit: {}",
        first.body
    );
    assert!(d.iter().all(|d| d["partner_id"] == partner.id.as_str()));
    let again = post(
        stack,
        "/verify/batch",
        Some(&partner.key),
        &json!({ "requests": [item("a", 10.0), item("c", 30.0), item("b", 20.0), item("a", 11.0)] }),
    )
    .await;
    let d = again.body["decisions"].as_array().unwrap();
    assert_eq!(
        again.body["replayed"],
        json!([true, false, true, null]),
        "{}",
        again.body
    );
    assert_eq!(
        d[0], first.body["decisions"][0],
        "a replay is the signed decision as first answered"
    );
    assert_eq!(d[2], first.body["decisions"][2]);
    assert_eq!(d[3]["error"], "idempotency_key_reused", "{}", again.body);
    // Another partner's token in a batch is refused in that item's place.
    let other = stack.partner("Other Batch Shop").await;
    let mixed = post(
        stack,
        "/verify/batch",
        Some(&other.key),
        &json!({ "requests": [item("a", 10.0), ask_item] }),
    )
    .await;
    let d = mixed.body["decisions"].as_array().unwrap();
    assert_eq!(d[0]["error"], "token_audience_mismatch", "{}", mixed.body);
    assert_eq!(d[1]["allow"], true, "{}", mixed.body);
    assert_eq!(d[1]["partner_id"], other.id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_are_rate_limited_each() {
    // Five requests per ten seconds per partner, for this test.
    let Some(stack) = Stack::start_with(&[
        ("VOUCH_EDGE_PARTNER_RATE_LIMIT", "5"),
        ("VOUCH_EDGE_PARTNER_RATE_PERIOD", "10"),
    ])
    .await
    else {
        return;
    };
    let stack = &stack;
    let agent = stack.active_agent("Popular Bot").await;
    let partner = stack.partner("Busy Shop").await;
    // Learning the key counted once or more; at most five succeed per window. The limiter's
    // windows are fixed (aligned to the period), so a run may straddle one boundary: within
    // twelve quick requests one is refused whatever the alignment.
    let mut limited = None;
    for _ in 0..12 {
        let answer = ask(stack, Some(&partner.key), &agent, 1.0).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(answer);
            break;
        }
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let limited = limited.expect("a request past five in a period is refused");
    assert_eq!(limited.body["error"], "rate_limited");
    assert!(
        limited.body["message"]
            .as_str()
            .unwrap()
            .contains("partner"),
        "{}",
        limited.body
    );
    let resp = stack
        .client
        .get(format!("{}/verify?agent_id={agent}", stack.edge))
        .bearer_auth(&partner.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "10", "the limit's period");
    // Another partner, and anonymous callers, are not held back by it.
    let other = stack.partner("Quiet Shop").await;
    assert_eq!(
        ask(stack, Some(&other.key), &agent, 1.0).await.status,
        StatusCode::OK
    );
    assert_eq!(ask(stack, None, &agent, 1.0).await.status, StatusCode::OK);
}
