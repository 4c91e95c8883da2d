//! Webhooks end to end: a real origin, the real sender, and a real HTTP receiver that checks
//! every signature with the `standardwebhooks` crate. Also the live event stream (SSE).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use vouch_origin::webhooks::{Dispatcher, WebhookSettings};

use crate::harness::{passport, TestApp, ADMIN};
use crate::receiver::{Answer, Receiver};

/// Loopback allowed, and a schedule of milliseconds instead of hours.
pub fn fast() -> WebhookSettings {
    WebhookSettings {
        allow_private: true,
        timeout: Duration::from_secs(2),
        retry_base: Duration::from_millis(20),
        max_attempts: 6,
        ..WebhookSettings::default()
    }
}

/// Like [`fast`], but waiting 30 s for an answer (hanging endpoints hold their slots).
pub fn patient() -> WebhookSettings {
    WebhookSettings {
        timeout: Duration::from_secs(30),
        ..fast()
    }
}

/// Like [`fast`], giving up after three attempts.
pub fn impatient() -> WebhookSettings {
    WebhookSettings {
        max_attempts: 3,
        ..fast()
    }
}

pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// Subscribes `url` (in `org`, for the platform token); returns `(webhook_id, secret)`.
async fn subscribe(
    app: &TestApp,
    token: &str,
    org: Option<&str>,
    url: &str,
    events: Value,
) -> (String, String) {
    let mut body = json!({ "url": url, "events": events, "description": "test receiver" });
    if let Some(org) = org {
        body["org_id"] = json!(org);
    }
    let made = app.post("/v1/webhooks", token, body).await;
    let made = made.assert_status(201);
    let id = made["webhook_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_"), "{made}");
    let secret = made["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{made}");
    assert_eq!(made["status"], "enabled");
    (id, secret)
}

/// A receiver subscribed to `events` (in `org`, for the platform token) that verifies with
/// the new secret; returns it, the webhook id and the secret.
pub(crate) async fn listen(
    app: &TestApp,
    token: &str,
    org: Option<&str>,
    events: Value,
) -> (Receiver, String, String) {
    let receiver = Receiver::start().await;
    let (id, secret) = subscribe(app, token, org, &receiver.url, events).await;
    receiver.set_secrets(&[&secret]);
    (receiver, id, secret)
}

/// The deliveries of `webhook`, every page, newest first.
async fn deliveries(app: &TestApp, token: &str, webhook: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/webhooks/{webhook}/deliveries?limit=3");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path, token).await;
        let page = page.assert_status(200);
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

/// Waits until every delivery of `webhook` has left `pending`; returns them.
async fn settled(app: &TestApp, token: &str, webhook: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = deliveries(app, token, webhook).await;
        if all.len() == count && all.iter().all(|d| d["status"] != "pending") {
            return all;
        }
        assert!(Instant::now() < deadline, "not settled: {all:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ids of the outbox events of these types, of `org` or platform-wide.
async fn outbox_ids(app: &TestApp, org: &str, types: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = app
        .outbox()
        .await
        .into_iter()
        .filter(|row| types.contains(&row.event_type.as_str()))
        .filter(|row| {
            let envelope: Value = serde_json::from_str(&row.payload).unwrap();
            envelope["org_id"] == org || envelope["org_id"].is_null()
        })
        .map(|row| row.event_id)
        .collect();
    ids.sort();
    ids
}

async fn register_active(app: &TestApp, org: &str, name: &str) -> String {
    let mut body = passport(org, name);
    body["status"] = json!("active");
    let made = app.post("/v1/agents", ADMIN, body).await;
    made.assert_status(201)["agent"]["agent_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub async fn every_event_type_once_per_change(app: &TestApp) {
    let org = app.org("hooks").await;
    let org2 = app.org("elsewhere").await;
    let owner = app.token(&org, "owner").await;
    let (everything, all_id, _) = listen(app, &owner, None, json!(["*"])).await;
    let (suspensions, _, _) = listen(app, &owner, None, json!(["agent.suspended"])).await;
    let (elsewhere, _, _) = listen(app, ADMIN, Some(&org2), json!([])).await;

    // One change of each kind (and the lifecycle round trip).
    let (a1, _) = app.agent(&org, "first").await;
    let a2 = register_active(app, &org, "second").await;
    app.patch(
        &format!("/v1/agents/{a1}"),
        &owner,
        json!({ "role": "Tier-3" }),
    )
    .await
    .assert_status(200);
    app.set_status(&a1, "active").await.assert_status(200);
    let grant = app
        .post(
            "/v1/delegations",
            &owner,
            json!({ "delegator": a1, "delegatee": a2, "scopes": ["payments.refund"], "ttl_seconds": 3600, "max_depth": 1 }),
        )
        .await;
    let dlg = grant.assert_status(201)["delegation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call(
        Method::DELETE,
        &format!("/v1/delegations/{dlg}"),
        Some(&owner),
        None,
    )
    .await
    .assert_status(200);
    app.set_status(&a1, "suspended").await.assert_status(200);
    app.set_status(&a1, "active").await.assert_status(200);
    app.set_status(&a1, "revoked").await.assert_status(200);
    app.post("/v1/keys/rotate", ADMIN, json!({}))
        .await
        .assert_status(201);
    // Not webhook events: a token, an API key rotation.
    app.token(&org, "viewer").await;
    app.call(
        Method::POST,
        &format!("/v1/agents/{a2}/keys"),
        Some(&owner),
        None,
    )
    .await
    .assert_status(201);

    let types = [
        "passport.created",
        "passport.updated",
        "passport.status_changed",
        "delegation.created",
        "delegation.revoked",
        "signing_key.rotated",
    ];
    let expected = outbox_ids(app, &org, &types).await;
    assert_eq!(
        expected.len(),
        10,
        "2 created, 1 updated, 4 status changes, 2 delegation events, 1 key rotation"
    );
    everything.wait_for(10, WAIT).await;
    suspensions.wait_for(1, WAIT).await;
    elsewhere.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let got = everything.received();
    let mut ids: Vec<String> = got.iter().map(|d| d.webhook_id.clone()).collect();
    ids.sort();
    assert_eq!(
        ids, expected,
        "each event exactly once, with its event id as webhook-id"
    );
    let mut kinds: Vec<&str> = got.iter().map(|d| d.event_type()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "delegation.created",
            "delegation.revoked",
            "passport.created",
            "passport.created",
            "passport.status_changed",
            "passport.status_changed",
            "passport.status_changed",
            "passport.status_changed",
            "passport.updated",
            "signing_key.rotated",
        ]
    );
    for d in &got {
        assert_eq!(d.verified, [true], "signature of {}", d.webhook_id);
        assert_eq!(d.body["id"], d.webhook_id.as_str());
        assert!(d.body["created_at"].as_str().unwrap().ends_with('Z'));
        assert!(d.body["data"].is_object());
        assert!(
            (d.timestamp - unix_now()).abs() < 60,
            "webhook-timestamp is now"
        );
    }
    let updated = got
        .iter()
        .find(|d| d.event_type() == "passport.updated")
        .unwrap();
    assert_eq!(
        updated.body["data"]["changes"]["role"],
        json!({ "old": "Tier-2 Support", "new": "Tier-3" })
    );
    let mut typed: Vec<&str> = got
        .iter()
        .filter_map(|d| d.body["data"]["typed_event"].as_str())
        .collect();
    typed.sort();
    assert_eq!(
        typed,
        [
            "agent.activated",
            "agent.activated",
            "agent.revoked",
            "agent.suspended"
        ]
    );

    // A filter on a typed name gets that status change only; another org only the key rotation.
    let only = suspensions.received();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].event_type(), "passport.status_changed");
    assert_eq!(only[0].body["data"]["typed_event"], "agent.suspended");
    assert_eq!(only[0].verified, [true]);
    let theirs = elsewhere.received();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].event_type(), "signing_key.rotated");

    // The delivery log: one succeeded delivery per event, one attempt each, paginated.
    let log = settled(app, &owner, &all_id, 10).await;
    let mut logged: Vec<String> = log
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_owned())
        .collect();
    logged.sort();
    assert_eq!(logged, expected);
    for d in &log {
        assert_eq!(d["status"], "succeeded", "{d}");
        assert_eq!(d["attempt_count"], 1);
        assert_eq!(d["attempts"][0]["status_code"], 200);
        assert_eq!(d["attempts"][0]["next_attempt_at"], Value::Null);
        assert!(d["attempts"][0]["duration_ms"].is_i64());
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub async fn retries_keep_the_webhook_id(app: &TestApp) {
    let org = app.org("flaky").await;
    let owner = app.token(&org, "admin").await;
    let (receiver, id, _) = listen(app, &owner, None, json!(["passport.created"])).await;
    receiver.plan([
        Answer::Status(500),
        Answer::RetryAfter(503, 1),
        Answer::Status(500),
    ]);
    app.agent(&org, "retried").await;
    let got = receiver.wait_for(4, WAIT).await;
    let event = outbox_ids(app, &org, &["passport.created"]).await;
    for d in &got {
        assert_eq!(
            d.webhook_id, event[0],
            "the same webhook-id on every attempt"
        );
        assert_eq!(d.verified, [true]);
    }
    assert!(
        got[2].at.duration_since(got[1].at) >= Duration::from_millis(950),
        "retry-after: 1 is honoured ({:?})",
        got[2].at.duration_since(got[1].at)
    );
    assert!(got.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));

    let log = settled(app, &owner, &id, 1).await;
    let d = &log[0];
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["attempt_count"], 4);
    let attempts = d["attempts"].as_array().unwrap();
    let codes: Vec<i64> = attempts
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 503, 500, 200]);
    let numbers: Vec<i64> = attempts
        .iter()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    for failed in &attempts[..3] {
        assert!(failed["next_attempt_at"].is_string(), "{failed}");
        assert!(failed["error"].as_str().unwrap().starts_with("HTTP 50"));
    }
    assert_eq!(attempts[0]["response_body"], "planned failure");
    assert_eq!(attempts[3]["next_attempt_at"], Value::Null);
    assert_eq!(attempts[3]["error"], Value::Null);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 4, "nothing after the success");
}

pub async fn failing_subscription_is_disabled(app: &TestApp) {
    let org = app.org("failing").await;
    let owner = app.token(&org, "owner").await;
    let (failing, id, _) = listen(app, &owner, None, json!(["passport.created"])).await;
    failing.plan([
        Answer::Status(500),
        Answer::Status(502),
        Answer::Status(500),
    ]);
    let (watcher, _, _) = listen(app, &owner, None, json!(["webhook.disabled"])).await;
    app.agent(&org, "unlucky").await;

    // Three failures exhaust the schedule: the subscription is disabled, with an event.
    let notice = watcher.wait_for(1, WAIT).await;
    assert_eq!(notice[0].event_type(), "webhook.disabled");
    let url = notice[0].body["data"]["url"].as_str().unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/') && !url.contains("hook"),
        "the envelope names the host only: {url}"
    );
    assert_eq!(notice[0].body["data"]["webhook_id"], id.as_str());
    assert_eq!(notice[0].body["data"]["reason"], "retries_exhausted");
    assert_eq!(notice[0].verified, [true]);
    let first = failing.received();
    assert_eq!(first.len(), 3);
    let hook = app.get(&format!("/v1/webhooks/{id}"), &owner).await;
    let hook = hook.assert_status(200);
    assert_eq!(hook["status"], "disabled");
    assert_eq!(hook["disabled_reason"], "retries_exhausted");
    let log = settled(app, &owner, &id, 1).await;
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["attempt_count"], 3);
    assert_eq!(log[0]["next_attempt_at"], Value::Null);
    let audit = app.get("/v1/audit?limit=50", &owner).await;
    let disabled = audit.assert_status(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "webhook.disabled")
        .cloned()
        .expect("webhook.disabled is in the audit log");
    assert_eq!(disabled["actor"], "webhook-sender");
    assert_eq!(disabled["target_id"], id.as_str());

    // While disabled nothing is queued or sent; redelivery needs it enabled.
    app.agent(&org, "while disabled").await;
    let event = first[0].webhook_id.clone();
    let redeliver = format!("/v1/webhooks/{id}/deliveries/{event}/redeliver");
    app.call(Method::POST, &redeliver, Some(&owner), None)
        .await
        .assert_error(409, "webhook_disabled");
    let enabled = app
        .patch(
            &format!("/v1/webhooks/{id}"),
            &owner,
            json!({ "enabled": true }),
        )
        .await;
    assert_eq!(enabled.assert_status(200)["status"], "enabled");
    assert_eq!(enabled.body["disabled_reason"], Value::Null);
    let again = app.call(Method::POST, &redeliver, Some(&owner), None).await;
    assert_eq!(again.assert_status(202)["status"], "pending");
    let got = failing.wait_for(4, WAIT).await;
    assert_eq!(
        got[3].webhook_id, event,
        "a redelivery keeps the webhook-id"
    );
    assert_eq!(got[3].verified, [true]);
    let log = settled(app, &owner, &id, 1).await;
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(log[0]["attempt_count"], 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        failing.received().len(),
        4,
        "the event made while disabled was never queued"
    );
    app.call(
        Method::POST,
        &format!("/v1/webhooks/{id}/deliveries/evt_0192f2a4c3b87d9e8f1a2b3c4d5e6f72/redeliver"),
        Some(&owner),
        None,
    )
    .await
    .assert_error(404, "delivery_not_found");
}

pub async fn secret_rotation_signs_with_both(app: &TestApp) {
    let org = app.org("rotating").await;
    let owner = app.token(&org, "owner").await;
    let (receiver, id, s1) = listen(app, &owner, None, json!(["passport.created"])).await;
    let rotate = format!("/v1/webhooks/{id}/secret/rotate");
    let rotated = app.post(&rotate, &owner, json!({})).await;
    let rotated = rotated.assert_status(200).clone();
    let s2 = rotated["secret"].as_str().unwrap().to_owned();
    assert!(s2.starts_with("whsec_") && s2 != s1);
    assert!(rotated["previous_secret_expires_at"].is_string());
    receiver.set_secrets(&[&s1, &s2]);
    app.agent(&org, "during grace").await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(
        got[0].verified,
        [true, true],
        "old and new secret both verify during the grace period"
    );
    assert_eq!(
        got[0]
            .signature
            .split(' ')
            .filter(|s| s.starts_with("v1,"))
            .count(),
        2
    );

    // No grace: only the newest secret signs from now on.
    let rotated = app
        .post(&rotate, &owner, json!({ "grace_period_seconds": 0 }))
        .await;
    let s3 = rotated.assert_status(200)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(rotated.body["previous_secret_expires_at"], Value::Null);
    receiver.set_secrets(&[&s1, &s2, &s3]);
    app.agent(&org, "after grace").await;
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got[1].verified, [false, false, true]);
    assert_eq!(got[1].signature.split(' ').count(), 1);

    let shown = app.get(&format!("/v1/webhooks/{id}"), &owner).await;
    let shown = shown.assert_status(200);
    assert!(
        shown.get("secret").is_none(),
        "the secret is shown once: {shown}"
    );
    assert!(!shown.to_string().contains("whsec_"));
    app.post(&rotate, &owner, json!({ "grace_period_seconds": -1 }))
        .await
        .assert_error(400, "invalid_request");
    app.post(&rotate, &owner, json!({ "grace": 1 }))
        .await
        .assert_error(400, "invalid_request");
}

pub async fn private_addresses_are_refused(app: &TestApp) {
    let org = app.org("ssrf").await;
    let owner = app.token(&org, "owner").await;
    for url in [
        "https://127.0.0.1/hook",
        "https://127.1.2.3:8443/hook",
        "https://10.0.0.7/hook",
        "https://172.20.1.1/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:a9fe:a9fe]/hook",
        "https://0x7f000001/hook",
        "https://localhost/hook",
        "https://metadata.google.internal/computeMetadata/v1/",
        "http://93.184.215.14/hook",
        "ftp://93.184.215.14/hook",
        "not a url",
    ] {
        let refused = app
            .post("/v1/webhooks", &owner, json!({ "url": url }))
            .await;
        refused.assert_error(400, "invalid_webhook_url");
        assert_eq!(refused.body["field"], "url", "{url}");
    }
    let (id, _) = subscribe(app, &owner, None, "https://93.184.215.14/hook", json!([])).await;
    app.patch(
        &format!("/v1/webhooks/{id}"),
        &owner,
        json!({ "url": "https://10.1.1.1/" }),
    )
    .await
    .assert_error(400, "invalid_webhook_url");

    // At delivery time too: a stored URL that now points inside (the policy changed, or a
    // name re-resolved) is refused without a request.
    let receiver = Receiver::start().await;
    let inside = receiver.url.replace("http://", "https://");
    app.sql(&format!(
        "UPDATE webhooks SET url = '{inside}' WHERE webhook_id = '{id}'"
    ))
    .await;
    app.agent(&org, "probe").await;
    let sender = Dispatcher::new(
        app.store.clone(),
        app.keys.clone(),
        WebhookSettings {
            allow_private: false,
            ..fast()
        },
    )
    .unwrap();
    assert_eq!(sender.pass().await.unwrap(), 1);
    let log = deliveries(app, &owner, &id).await;
    let attempt = &log[0]["attempts"][0];
    assert_eq!(attempt["status_code"], Value::Null);
    let error = attempt["error"].as_str().unwrap();
    assert!(
        error.starts_with("refused") && error.contains("127.0.0.1"),
        "{error}"
    );
    assert_eq!(
        log[0]["status"], "pending",
        "retried later like any failure"
    );
    assert!(receiver.received().is_empty());
}

pub async fn isolation_and_roles(app: &TestApp) {
    let org = app.org("mine").await;
    let other = app.org("theirs").await;
    let owner = app.token(&org, "owner").await;
    let admin = app.token(&org, "admin").await;
    let viewer = app.token(&org, "viewer").await;
    let outsider = app.token(&other, "owner").await;
    let url = "https://93.184.215.14/hook";
    let (id, _) = subscribe(
        app,
        &admin,
        None,
        url,
        json!(["passport.created", "agent.revoked"]),
    )
    .await;
    let path = format!("/v1/webhooks/{id}");

    // Another org: 404 for everything, and not listed.
    for (method, suffix) in [
        (Method::GET, ""),
        (Method::DELETE, ""),
        (Method::GET, "/deliveries"),
        (Method::POST, "/secret/rotate"),
        (
            Method::POST,
            "/deliveries/evt_0192f2a4c3b87d9e8f1a2b3c4d5e6f72/redeliver",
        ),
    ] {
        app.call(
            method.clone(),
            &format!("{path}{suffix}"),
            Some(&outsider),
            None,
        )
        .await
        .assert_error(404, "webhook_not_found");
    }
    app.patch(&path, &outsider, json!({ "enabled": false }))
        .await
        .assert_error(404, "webhook_not_found");
    let theirs = app.get("/v1/webhooks", &outsider).await;
    assert_eq!(theirs.assert_status(200)["data"], json!([]));
    app.post(
        "/v1/webhooks",
        &outsider,
        json!({ "url": url, "org_id": org }),
    )
    .await
    .assert_error(404, "org_not_found");

    // A viewer reads but cannot write.
    let listed = app.get("/v1/webhooks", &viewer).await;
    assert_eq!(
        listed.assert_status(200)["data"][0]["webhook_id"],
        id.as_str()
    );
    app.get(&path, &viewer).await.assert_status(200);
    app.get(&format!("{path}/deliveries"), &viewer)
        .await
        .assert_status(200);
    app.post("/v1/webhooks", &viewer, json!({ "url": url }))
        .await
        .assert_error(403, "forbidden");
    app.patch(&path, &viewer, json!({ "description": "x" }))
        .await
        .assert_error(403, "forbidden");
    app.post(&format!("{path}/secret/rotate"), &viewer, json!({}))
        .await
        .assert_error(403, "forbidden");
    app.call(Method::DELETE, &path, Some(&viewer), None)
        .await
        .assert_error(403, "forbidden");
    app.call(Method::GET, "/v1/webhooks", None, None)
        .await
        .assert_error(401, "unauthorized");

    // Bad input.
    for (body, field) in [
        (
            json!({ "url": url, "events": ["passport.deleted"] }),
            "events[0]",
        ),
        (json!({ "url": url, "colour": "red" }), "colour"),
        (json!({ "events": ["*"] }), "url"),
        (
            json!({ "url": url, "description": "d".repeat(501) }),
            "description",
        ),
    ] {
        let refused = app.post("/v1/webhooks", &owner, body).await;
        refused.assert_error(400, "invalid_request");
        assert_eq!(refused.body["field"], field);
    }
    app.post("/v1/webhooks", ADMIN, json!({ "url": url }))
        .await
        .assert_error(400, "invalid_request");
    app.get("/v1/webhooks/wh_nope", &owner)
        .await
        .assert_error(400, "invalid_request");

    // Updates record what changed; the platform admin sees every org's subscriptions.
    let updated = app
        .patch(
            &path,
            &owner,
            json!({ "events": ["*"], "description": "all" }),
        )
        .await;
    assert_eq!(updated.assert_status(200)["events"], json!(["*"]));
    let audit = app.get("/v1/audit?limit=10", &owner).await;
    let change = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "webhook.updated")
        .cloned()
        .unwrap();
    let data = match &change["data"] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    };
    assert_eq!(data["changes"]["events"]["new"], json!(["*"]));
    assert_eq!(data["changes"]["description"]["old"], "test receiver");
    let all = app.get("/v1/webhooks", ADMIN).await;
    assert_eq!(all.assert_status(200)["data"].as_array().unwrap().len(), 1);

    // Deleting: gone for good.
    app.call(Method::DELETE, &path, Some(&owner), None)
        .await
        .assert_status(204);
    app.get(&path, &owner)
        .await
        .assert_error(404, "webhook_not_found");
    app.call(Method::DELETE, &path, Some(&owner), None)
        .await
        .assert_error(404, "webhook_not_found");
}

/// One Server-Sent Event.
#[derive(Debug)]
struct SseEvent {
    id: String,
    event: String,
    data: Value,
}

/// A live `GET /v1/events/stream`.
struct Stream {
    response: reqwest::Response,
    buffer: String,
    /// The `id` of its `stream.opened` message, once read.
    opened: Option<String>,
    stop_at_opened: bool,
}

impl Stream {
    async fn open(app: &TestApp, token: &str, last_event_id: Option<&str>, query: &str) -> Stream {
        let mut req = app
            .client
            .get(format!("{}/v1/events/stream{query}", app.base))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Stream {
            response,
            buffer: String::new(),
            opened: None,
            stop_at_opened: false,
        }
    }

    /// The `id` of the `stream.opened` message (every stream starts with it, before any event).
    async fn opened_id(&mut self) -> String {
        if self.opened.is_none() {
            self.stop_at_opened = true;
            let event = self.next(WAIT).await;
            self.stop_at_opened = false;
            assert!(event.is_none(), "an event before stream.opened: {event:?}");
        }
        self.opened.clone().expect("no stream.opened")
    }

    /// Whether the server ends the stream `within` (events before the end are dropped).
    async fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }

    /// The next event, or `None` if none comes `within`.
    async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if event == "stream.opened" {
                    assert!(self.opened.is_none(), "one stream.opened per stream");
                    let data: Value = serde_json::from_str(&data).unwrap();
                    assert_eq!(data["last_event_id"].as_str(), Some(id.as_str()));
                    self.opened = Some(id);
                    if self.stop_at_opened {
                        return None;
                    }
                    continue;
                }
                if !data.is_empty() && !id.is_empty() {
                    let data = serde_json::from_str(&data).unwrap();
                    return Some(SseEvent { id, event, data });
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// Exactly `n` events, then silence for a moment.
    async fn take(&mut self, n: usize) -> Vec<SseEvent> {
        let mut got = Vec::new();
        while got.len() < n {
            match self.next(WAIT).await {
                Some(e) => got.push(e),
                None => panic!("only {} of {n} events arrived: {got:#?}", got.len()),
            }
        }
        if let Some(extra) = self.next(Duration::from_millis(300)).await {
            panic!("more than {n} events: {extra:?}");
        }
        got
    }
}

pub async fn event_stream_resumes_without_gaps(app: &TestApp) {
    let org = app.org("streamed").await;
    let other = app.org("not-streamed").await;
    let admin = app.token(&org, "admin").await;
    let viewer = app.token(&org, "viewer").await;
    let outsider = app.token(&other, "viewer").await;
    let mut stream = Stream::open(app, &admin, None, "").await;
    let mut theirs = Stream::open(app, &outsider, None, "").await;

    let (a, key) = app.agent(&org, "alpha").await;
    app.agent(&org, "beta").await;
    app.set_status(&a, "active").await.assert_status(200);
    let first = stream.take(3).await;
    let kinds: Vec<&str> = first.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "passport.created",
            "passport.created",
            "passport.status_changed"
        ]
    );
    for e in &first {
        assert_eq!(e.data["type"], e.event.as_str());
        assert_eq!(e.data["org_id"], org.as_str());
    }
    drop(stream);

    // Changes made while disconnected, some of them concurrent.
    app.patch(
        &format!("/v1/agents/{a}"),
        &admin,
        json!({ "role": "Night shift" }),
    )
    .await
    .assert_status(200);
    app.set_status(&a, "suspended").await.assert_status(200);
    let org_ref = &org;
    let registrations =
        (0..8).map(|i| async move { app.agent(org_ref, &format!("bulk {i}")).await });
    futures::future::join_all(registrations).await;
    let last = first.last().unwrap().id.clone();
    let mut resumed = Stream::open(app, &viewer, Some(&last), "").await;
    let rest = resumed.take(10).await;
    let kinds: Vec<&str> = rest.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(&kinds[..2], ["passport.updated", "passport.status_changed"]);
    assert!(kinds[2..].iter().all(|k| *k == "passport.created"));
    // Exactly the events committed after `last`, each once, in commit order.
    let rows = app.outbox().await;
    let position = |event_id: &str| rows.iter().position(|r| r.event_id == event_id).unwrap();
    let after = position(first.last().unwrap().data["id"].as_str().unwrap());
    let expected: Vec<String> = rows[after + 1..]
        .iter()
        .filter(|r| serde_json::from_str::<Value>(&r.payload).unwrap()["org_id"] == org.as_str())
        .map(|r| r.event_id.clone())
        .collect();
    let mut seen: Vec<String> = rest
        .iter()
        .map(|e| e.data["id"].as_str().unwrap().to_owned())
        .collect();
    let mut wanted = expected.clone();
    seen.sort();
    wanted.sort();
    assert_eq!(seen, wanted, "nothing missed, nothing twice");

    // Live after the replay; the other org saw none of it.
    app.set_status(&a, "active").await.assert_status(200);
    assert_eq!(
        resumed.take(1).await[0].data["data"]["typed_event"],
        "agent.activated"
    );
    assert!(theirs.next(Duration::from_millis(200)).await.is_none());

    // Filters by type (typed names too), replay from the start, and an agent's own stream.
    let mut typed = Stream::open(app, &admin, None, "?types=agent.suspended&last_event_id=0").await;
    let only = typed.take(1).await;
    assert_eq!(only[0].data["data"]["new_status"], "suspended");
    let mut own = Stream::open(app, &key, Some("0"), "").await;
    let mine = own.take(5).await;
    assert!(mine.iter().all(|e| e.data["data"]["agent_id"] == a.as_str()
        || e.data["data"]["passport"]["agent_id"] == a.as_str()));

    // A bad Last-Event-ID is refused, as is a missing token.
    let bad = app
        .client
        .get(format!("{}/v1/events/stream", app.base))
        .bearer_auth(&admin)
        .header("last-event-id", "999999999")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    app.call(Method::GET, "/v1/events/stream", None, None)
        .await
        .assert_error(401, "unauthorized");
}

/// Finding 1: a stream checks its credential again; a revoked org token's stream and a
/// rotated agent key's stream end within seconds.
pub async fn event_streams_end_when_credentials_die(app: &TestApp) {
    let org = app.org("revoked-streams").await;
    let owner = app.token(&org, "owner").await;
    let made = app
        .post(
            &format!("/v1/orgs/{org}/tokens"),
            &owner,
            json!({ "role": "admin", "name": "streamer" }),
        )
        .await;
    let made = made.assert_status(201).clone();
    let (token_id, token) = (
        made["token_id"].as_str().unwrap().to_owned(),
        made["token"].as_str().unwrap().to_owned(),
    );
    let (agent, key) = app.agent(&org, "streaming agent").await;
    let mut by_token = Stream::open(app, &token, None, "").await;
    let mut by_key = Stream::open(app, &key, None, "").await;
    let mut unaffected = Stream::open(app, &owner, None, "").await;
    by_token.opened_id().await;
    by_key.opened_id().await;

    app.call(
        Method::DELETE,
        &format!("/v1/orgs/{org}/tokens/{token_id}"),
        Some(&owner),
        None,
    )
    .await
    .assert_status(200);
    app.call(
        Method::POST,
        &format!("/v1/agents/{agent}/keys"),
        Some(ADMIN),
        None,
    )
    .await
    .assert_status(201);
    let bound = vouch_origin::routes::events::RECHECK + Duration::from_secs(4);
    let started = Instant::now();
    assert!(
        by_token.ends_within(bound).await,
        "revoked token kept streaming"
    );
    assert!(
        by_key
            .ends_within(bound.saturating_sub(started.elapsed()))
            .await,
        "rotated key kept streaming"
    );
    assert!(
        !unaffected.ends_within(Duration::from_millis(200)).await,
        "a live token's stream goes on"
    );
    // …and neither credential opens a new one.
    app.call(Method::GET, "/v1/events/stream", Some(&token), None)
        .await
        .assert_error(401, "unauthorized");
    app.call(Method::GET, "/v1/events/stream", Some(&key), None)
        .await
        .assert_error(401, "unauthorized");
}

/// Findings 4 and 5 and the stream nits: `stream.opened` gives a position to resume from
/// (nothing lost when the first connection drops early), a credential holds at most five
/// streams, unknown `types` and ids of other orgs are refused alike.
pub async fn event_stream_opening_and_limits(app: &TestApp) {
    let org = app.org("opening").await;
    let other = app.org("opening-other").await;
    let admin = app.token(&org, "admin").await;
    let theirs = app.token(&other, "admin").await;
    app.agent(&other, "before").await;

    // Disconnect before any event: resuming from stream.opened's id loses nothing.
    let mut first = Stream::open(app, &admin, None, "").await;
    let start = first.opened_id().await;
    // Every event committed by now (a superset of those before `start`).
    let before: std::collections::HashSet<String> = app
        .outbox()
        .await
        .iter()
        .map(|r| r.id.to_string())
        .collect();
    drop(first);
    let (a, _) = app.agent(&org, "while away").await;
    app.agent(&other, "not mine").await;
    let mut resumed = Stream::open(app, &admin, Some(&start), "").await;
    assert_eq!(resumed.opened_id().await, start);
    // Resuming may first repeat events committed before `start` (documented: on Postgres,
    // those at or after the oldest transaction running on the server, which parallel tests
    // hold back), but nothing after it is lost, and nothing new comes twice.
    let got = loop {
        let event = resumed
            .next(WAIT)
            .await
            .expect("the event written while away never arrived");
        if event.event == "passport.created"
            && event.data["data"]["passport"]["agent_id"] == a.as_str()
        {
            break event;
        }
        assert!(
            before.contains(&event.id),
            "neither a repeat nor the event written while away: {event:?}"
        );
    };
    assert_eq!(got.data["org_id"], org.as_str());
    if let Some(extra) = resumed.next(Duration::from_millis(300)).await {
        panic!("an event after the one written while away: {extra:?}");
    }
    drop(resumed);

    // An idle stream moves past other orgs' events and still sees its own. Observable in the
    // store: the frontier a read of this org's events returns moves past the other org's
    // newest event, while the read returns none of them.
    use vouch_origin::store::StreamScope;
    let scope = StreamScope::Org(vouch_core::OrgId::parse(&org).unwrap());
    let head = app.store.stream_head(&scope).await.unwrap().pos;
    let mut idle = Stream::open(app, &admin, None, "").await;
    idle.opened_id().await;
    for i in 0..5 {
        app.agent(&other, &format!("noise {i}")).await;
    }
    let newest = app.outbox().await.iter().map(|r| r.id).max().unwrap();
    let noise = app
        .store
        .stream_pos_of(&StreamScope::All, newest)
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let batch = app.store.stream_after(&scope, head, 100).await.unwrap();
        for row in &batch.rows {
            let envelope: Value = serde_json::from_str(&row.payload).unwrap();
            assert_ne!(envelope["org_id"], other.as_str(), "{row:?}");
        }
        if batch.frontier >= noise {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the frontier stayed at {:?}, before {noise:?}",
            batch.frontier
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    app.agent(&org, "mine again").await;
    assert_eq!(idle.take(1).await[0].event, "passport.created");

    // Ids of another org's events are refused like ids that do not exist.
    let foreign = app
        .outbox()
        .await
        .into_iter()
        .rev()
        .find(|r| serde_json::from_str::<Value>(&r.payload).unwrap()["org_id"] == other.as_str())
        .unwrap();
    for id in [foreign.id.to_string(), "99999999".to_owned()] {
        let refused = app
            .get(&format!("/v1/events/stream?last_event_id={id}"), &admin)
            .await;
        refused.assert_error(400, "invalid_request");
        assert!(
            !refused.body["message"].as_str().unwrap().contains("other"),
            "{}",
            refused.body
        );
    }
    let mut theirs_stream = Stream::open(app, &theirs, Some(&foreign.id.to_string()), "").await;
    assert_eq!(theirs_stream.opened_id().await, foreign.id.to_string());
    drop(theirs_stream);

    // Unknown types are refused.
    app.get(
        "/v1/events/stream?types=passport.created,passport.exploded",
        &admin,
    )
    .await
    .assert_error(400, "invalid_request");

    // Five streams per credential, the sixth is refused until one closes.
    let limited = app.token(&org, "viewer").await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut stream = Stream::open(app, &limited, None, "").await;
        stream.opened_id().await;
        held.push(stream);
    }
    app.get("/v1/events/stream", &limited)
        .await
        .assert_error(429, "too_many_streams");
    // Another credential is not affected.
    Stream::open(app, &theirs, None, "").await;
    held.pop();
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = app
            .client
            .get(format!("{}/v1/events/stream", app.base))
            .bearer_auth(&limited)
            .send()
            .await
            .unwrap();
        if reply.status() == 200 {
            break;
        }
        assert_eq!(reply.status(), 429);
        assert!(
            Instant::now() < deadline,
            "a closed stream's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(idle);
    drop(held);
}

/// Credentials are unlimited, so streams are bounded per org too: every admin token and agent
/// key of one org together hold at most `VOUCH_STREAMS_PER_ORG` (3 here); another org and the
/// platform admin are not affected, and a closed stream gives its slot back.
pub async fn event_streams_are_limited_per_org(app: &TestApp) {
    let (app, _) = app
        .sibling(crate::harness::Options {
            configure: Some(Box::new(|state| {
                state.streams =
                    std::sync::Arc::new(vouch_origin::routes::events::StreamSlots::new(3));
            })),
            ..Default::default()
        })
        .await;
    let app = &app;
    let org = app.org("crowded").await;
    let other = app.org("roomy").await;
    let (_, agent_key) = app.agent(&org, "streaming agent").await;
    let mut held = Vec::new();
    for token in [
        app.token(&org, "viewer").await,
        app.token(&org, "admin").await,
        agent_key,
    ] {
        let mut stream = Stream::open(app, &token, None, "").await;
        stream.opened_id().await;
        held.push(stream);
    }
    // A fresh credential of the same org, under its own bound of five, is refused.
    // (The status is read before the body: an accepted stream's body never ends.)
    let refused = |token: String| async move {
        let reply = app
            .client
            .get(format!("{}/v1/events/stream", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            reply.status(),
            429,
            "a stream past the org's bound was opened"
        );
        reply.json::<Value>().await.unwrap()
    };
    let fresh = app.token(&org, "viewer").await;
    let body = refused(fresh.clone()).await;
    assert_eq!(body["error"], "too_many_streams");
    assert!(
        body["message"].as_str().unwrap().contains("organization"),
        "{body}"
    );
    let (_, key) = app.agent(&org, "another agent").await;
    assert_eq!(refused(key).await["error"], "too_many_streams");
    // Another org and the platform admin still stream.
    let theirs = app.token(&other, "viewer").await;
    Stream::open(app, &theirs, None, "").await.opened_id().await;
    Stream::open(app, ADMIN, None, "").await.opened_id().await;
    held.pop();
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = app
            .client
            .get(format!("{}/v1/events/stream", app.base))
            .bearer_auth(&fresh)
            .send()
            .await
            .unwrap();
        if reply.status() == 200 {
            break;
        }
        assert_eq!(reply.status(), 429);
        assert!(
            Instant::now() < deadline,
            "a closed stream's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);
}

/// Finding 2: a PATCH and a secret rotation at the same time never undo each other; the
/// newest secret always signs.
pub async fn patch_and_rotation_do_not_race(app: &TestApp) {
    let org = app.org("racing").await;
    let owner = app.token(&org, "owner").await;
    let (receiver, id, _) = listen(app, &owner, None, json!(["passport.created"])).await;
    let path = format!("/v1/webhooks/{id}");
    let rotate = format!("/v1/webhooks/{id}/secret/rotate");
    let webhook_id = vouch_core::ids::WebhookId::parse(&id).unwrap();
    let mut newest = String::new();
    for i in 0..30 {
        let description = format!("round {i}");
        let (patched, rotated) = tokio::join!(
            app.patch(&path, &owner, json!({ "description": description })),
            app.post(&rotate, &owner, json!({ "grace_period_seconds": 0 })),
        );
        patched.assert_status(200);
        newest = rotated.assert_status(200)["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let stored = app
            .store
            .get_webhook(&vouch_origin::store::Scope::All, &webhook_id)
            .await
            .unwrap()
            .unwrap();
        let secret =
            vouch_origin::webhooks::open_secret(app.keys.master(), &stored.secret, &id).unwrap();
        assert_eq!(secret, newest, "round {i}: the rotation was overwritten");
        assert_eq!(stored.description, description, "round {i}");
        assert!(stored.previous_secret.is_none(), "round {i}");
    }
    receiver.set_secrets(&[&newest]);
    app.agent(&org, "signed").await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].verified, [true]);
}

/// A new org, its owner token, and a subscription to `passport.created` at a public address
/// that no sender reaches in these tests (their deliveries stay pending).
async fn unsent_subscription(app: &TestApp, slug: &str) -> (String, String, String) {
    let org = app.org(slug).await;
    let owner = app.token(&org, "owner").await;
    let url = "https://93.184.215.14/hook";
    let (id, _) = subscribe(app, &owner, None, url, json!(["passport.created"])).await;
    (org, owner, id)
}

/// A test sender's attempt `n`, answered with `status`.
fn attempt(n: i64, status: u16) -> vouch_origin::store::Attempt {
    vouch_origin::store::Attempt {
        attempt: n,
        started_at: vouch_origin::clock::now(),
        duration_ms: 5,
        status_code: Some(status),
        error: (status != 200).then(|| format!("HTTP {status}")),
        response_body: None,
        next_attempt_at: None,
    }
}

/// The `webhook.disabled` event a sender records when it gives up on subscription `id`.
fn disabled_event(org: &str, id: &str) -> vouch_origin::store::ChangeEvent {
    vouch_origin::store::ChangeEvent::new(
        "webhook-sender",
        Some(&vouch_core::OrgId::parse(org).unwrap()),
        vouch_core::EventType::WebhookDisabled,
        "webhook",
        id,
        0,
        json!({}),
        vouch_origin::clock::now(),
    )
}

/// The due deliveries, leased by `owner` for a minute, in delivery order.
async fn claim(app: &TestApp, owner: &str) -> Vec<vouch_origin::store::DeliveryWork> {
    let mut work = app
        .store
        .claim_deliveries(owner, vouch_origin::clock::now(), 60_000, 10)
        .await
        .unwrap();
    work.sort_by_key(|w| w.delivery_id);
    work
}

/// An org whose subscription `id` (never reached) has two deliveries, both leased by `sender`
/// (attempt 1), the leases run out: `(org, owner token, id, the first claims)`.
async fn two_lapsed_leases(
    app: &TestApp,
    slug: &str,
    sender: &str,
) -> (
    String,
    String,
    String,
    Vec<vouch_origin::store::DeliveryWork>,
) {
    let (org, owner, id) = unsent_subscription(app, slug).await;
    app.agent(&org, "one").await;
    app.agent(&org, "two").await;
    let first = claim(app, sender).await;
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|w| w.attempt == 1));
    app.sql("UPDATE webhook_deliveries SET lease_until = 0")
        .await;
    (org, owner, id, first)
}

/// Both deliveries of `id` succeeded, each with attempts 1 and 2 logged once.
async fn settled_on_second_attempt(app: &TestApp, owner: &str, id: &str) {
    let log = deliveries(app, owner, id).await;
    assert_eq!(log.len(), 2);
    for delivery in &log {
        assert_eq!(delivery["status"], "succeeded", "{delivery}");
        let numbers: Vec<i64> = delivery["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["attempt"].as_i64().unwrap())
            .collect();
        assert_eq!(numbers, [1, 2], "every attempt is logged, once");
        assert_eq!(delivery["attempt_count"], 2);
    }
}

/// `sender`'s attempt 1 of `work` fails for the last time after its lease ran out: the
/// subscription stays enabled, with no success recorded.
async fn gives_up_late(
    app: &TestApp,
    sender: &str,
    work: &vouch_origin::store::DeliveryWork,
    org: &str,
    id: &str,
) {
    let disable = disabled_event(org, id);
    app.store
        .settle_delivery(
            sender,
            work,
            &attempt(1, 500),
            &vouch_origin::store::Settle::Exhausted { disable },
        )
        .await
        .unwrap();
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM webhooks WHERE status = 'enabled' AND last_success_at IS NULL"
        )
        .await,
        1,
        "a stale attempt neither disables nor records a success"
    );
}

/// Finding 6: a sender whose lease ran out logs its attempt but settles nothing: no success
/// recorded, no auto-disable; attempt numbers are taken at lease time and never collide.
pub async fn a_lost_lease_settles_nothing(app: &TestApp) {
    use vouch_origin::store::Settle;
    let (org, owner, id, first) = two_lapsed_leases(app, "leases", "sender-a").await;
    let store = &app.store;
    // Another sender takes the deliveries over.
    let second = claim(app, "sender-b").await;
    assert!(second.iter().all(|w| w.attempt == 2));
    // The late sender: one delivery succeeded, one exhausted, neither held any more.
    store
        .settle_delivery("sender-a", &first[1], &attempt(1, 200), &Settle::Succeeded)
        .await
        .unwrap();
    gives_up_late(app, "sender-a", &first[0], &org, &id).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending' AND lease_owner = 'sender-b'")
            .await,
        2
    );
    for work in &second {
        store
            .settle_delivery("sender-b", work, &attempt(2, 200), &Settle::Succeeded)
            .await
            .unwrap();
    }
    settled_on_second_attempt(app, &owner, &id).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhooks WHERE last_success_at IS NOT NULL")
            .await,
        1
    );
}

/// A sender has one owner name for all its leases: when its lease runs out and the delivery is
/// redelivered, or leased again by the same sender, the stale attempt's settling changes
/// nothing but its own entry in the attempt log (the attempt number, taken at lease time,
/// tells the claims apart).
pub async fn a_stale_settle_by_the_same_owner_changes_nothing(app: &TestApp) {
    use vouch_origin::store::Settle;
    let (org, owner, id, first) = two_lapsed_leases(app, "stale", "sender").await;
    let store = &app.store;
    // The first delivery is redelivered by hand.
    app.call(
        Method::POST,
        &format!(
            "/v1/webhooks/{id}/deliveries/{}/redeliver",
            first[0].event_id
        ),
        Some(&owner),
        None,
    )
    .await
    .assert_status(202);
    // Its stale attempt succeeds late: nothing settles.
    store
        .settle_delivery("sender", &first[0], &attempt(1, 200), &Settle::Succeeded)
        .await
        .unwrap();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending' AND lease_owner IS NULL")
            .await,
        1,
        "a redelivered delivery is not settled by the attempt it replaced"
    );
    // The same sender leases both again (the second one's lease ran out).
    let second = claim(app, "sender").await;
    assert_eq!(second.len(), 2);
    assert!(second.iter().all(|w| w.attempt == 2));
    // The second delivery's stale first attempt gives up late: nothing settles.
    gives_up_late(app, "sender", &first[1], &org, &id).await;
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending' \
             AND lease_owner = 'sender' AND lease_until > 0 AND attempts = 2"
        )
        .await,
        2,
        "both stay leased by the current claims"
    );
    for work in &second {
        store
            .settle_delivery("sender", work, &attempt(2, 200), &Settle::Succeeded)
            .await
            .unwrap();
    }
    settled_on_second_attempt(app, &owner, &id).await;
}

/// Senders claiming at the same time never lease one delivery twice (Postgres re-checks the
/// claim's conditions on rows another sender changed meanwhile).
pub async fn concurrent_claims_lease_once(app: &TestApp) {
    let org = app.org("claiming").await;
    let owner = app.token(&org, "owner").await;
    for i in 0..12 {
        let url = format!("https://93.184.215.14/hook/{i}");
        subscribe(app, &owner, None, &url, json!(["passport.created"])).await;
    }
    for round in 0..5 {
        for i in 0..4 {
            app.agent(&org, &format!("r{round} a{i}")).await;
        }
        // Every lease has run out: all of them are due again at once.
        app.sql("UPDATE webhook_deliveries SET lease_until = 0")
            .await;
        let claims = (0..8).map(|i| {
            let owner = format!("sender-{i}");
            async move {
                app.store
                    .claim_deliveries(&owner, vouch_origin::clock::now(), 60_000, 16)
                    .await
                    .unwrap()
            }
        });
        let mut leased: Vec<i64> = futures::future::join_all(claims)
            .await
            .into_iter()
            .flatten()
            .map(|w| w.delivery_id)
            .collect();
        let total = leased.len();
        leased.sort_unstable();
        leased.dedup();
        assert_eq!(
            leased.len(),
            total,
            "round {round}: a delivery leased twice"
        );
        let leases = app
            .count("SELECT COUNT(*) FROM webhook_deliveries WHERE lease_until > 0")
            .await;
        assert_eq!(leases, i64::try_from(total).unwrap(), "round {round}");
    }
}

/// Findings 7 and 12: no manual redelivery while an attempt is in flight (409), each one an
/// audit event; at most 16 subscriptions per org.
pub async fn redelivery_and_limits(app: &TestApp) {
    let (org, owner, id) = unsent_subscription(app, "redelivering").await;
    app.agent(&org, "redelivered").await;
    let event_id = deliveries(app, &owner, &id).await[0]["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let redeliver = format!("/v1/webhooks/{id}/deliveries/{event_id}/redeliver");
    app.sql("UPDATE webhook_deliveries SET lease_owner = 'busy', lease_until = 99999999999999")
        .await;
    app.call(Method::POST, &redeliver, Some(&owner), None)
        .await
        .assert_error(409, "delivery_in_flight");
    app.sql("UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL")
        .await;
    app.call(Method::POST, &redeliver, Some(&owner), None)
        .await
        .assert_status(202);
    let audit = app
        .get(&format!("/v1/audit?org_id={org}&limit=100"), ADMIN)
        .await;
    let actions: Vec<&str> = audit.assert_status(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "webhook.redelivery_requested")
            .count(),
        1,
        "{actions:?}"
    );
    let verified = app
        .get(&format!("/v1/audit/verify?org_id={org}"), ADMIN)
        .await;
    assert_eq!(verified.body["ok"], true, "{}", verified.body);

    // Sixteen subscriptions per org; the seventeenth is refused, another org is not affected.
    for i in 1..16 {
        app.post(
            "/v1/webhooks",
            &owner,
            json!({ "url": format!("https://93.184.215.14/hook/{i}") }),
        )
        .await
        .assert_status(201);
    }
    app.post(
        "/v1/webhooks",
        &owner,
        json!({ "url": "https://93.184.215.14/one-too-many" }),
    )
    .await
    .assert_error(409, "webhook_limit_reached");
    let other = app.org("other-limits").await;
    app.post(
        "/v1/webhooks",
        ADMIN,
        json!({ "url": "https://93.184.215.14/hook", "org_id": other }),
    )
    .await
    .assert_status(201);
    app.call(
        Method::DELETE,
        &format!("/v1/webhooks/{id}"),
        Some(&owner),
        None,
    )
    .await
    .assert_status(204);
    app.post(
        "/v1/webhooks",
        &owner,
        json!({ "url": "https://93.184.215.14/room-again" }),
    )
    .await
    .assert_status(201);
}

/// Deletes subscriptions `ids` while `writes` run, all at once: every delete is `204`, every
/// write `status`.
async fn deleting_during<W>(
    app: &TestApp,
    owner: &str,
    ids: &[String],
    writes: impl IntoIterator<Item = W>,
    status: u16,
) where
    W: std::future::Future<Output = crate::harness::Reply>,
{
    let deletes = ids.iter().map(|id| {
        let path = format!("/v1/webhooks/{id}");
        async move { app.call(Method::DELETE, &path, Some(owner), None).await }
    });
    let (deleted, written) = tokio::join!(
        futures::future::join_all(deletes),
        futures::future::join_all(writes)
    );
    for reply in deleted {
        reply.assert_status(204);
    }
    for reply in written {
        reply.assert_status(status);
    }
}

/// Finding 8: deleting subscriptions while the org's agents change never fails those changes
/// (Postgres used to answer a bogus `404 org_not_found` from the deliveries' foreign key).
pub async fn deletes_do_not_fail_other_writes(app: &TestApp) {
    let org = app.org("deleting").await;
    let owner = app.token(&org, "owner").await;
    for round in 0..3 {
        let mut ids = Vec::new();
        for _ in 0..8 {
            let (id, _) =
                subscribe(app, &owner, None, "https://93.184.215.14/hook", json!([])).await;
            ids.push(id);
        }
        let org_ref = &org;
        let writes = (0..8).map(|i| async move {
            app.post(
                "/v1/agents",
                ADMIN,
                passport(org_ref, &format!("r{round} a{i}")),
            )
            .await
        });
        deleting_during(app, &owner, &ids, writes, 201).await;
    }
}

/// Deletes race status changes that revoke delegations (several events, each queueing
/// deliveries to the subscriptions being deleted): one lock order, no deadlock (Postgres).
pub async fn deletes_do_not_deadlock_with_cascades(app: &TestApp) {
    let org = app.org("cascading").await;
    let owner = app.token(&org, "owner").await;
    for round in 0..8 {
        let delegatee = register_active(app, &org, &format!("r{round} delegatee")).await;
        let mut delegators = Vec::new();
        for i in 0..4 {
            let delegator = register_active(app, &org, &format!("r{round} d{i}")).await;
            for _ in 0..3 {
                let grant = json!({ "delegator": delegator, "delegatee": delegatee,
                    "scopes": ["payments.refund"], "ttl_seconds": 3600, "max_depth": 2 });
                app.post("/v1/delegations", ADMIN, grant)
                    .await
                    .assert_status(201);
            }
            delegators.push(delegator);
        }
        let mut ids = Vec::new();
        // Not subscribed to the status change itself: its first event takes the chain without
        // touching them, the delegations' events then queue deliveries to them.
        for _ in 0..6 {
            let url = "https://93.184.215.14/hook";
            let (id, _) = subscribe(app, &owner, None, url, json!(["delegation.revoked"])).await;
            ids.push(id);
        }
        let revokes = delegators
            .iter()
            .map(|agent| async move { app.set_status(agent, "revoked").await });
        deleting_during(app, &owner, &ids, revokes, 200).await;
    }
}

/// A PATCH that re-enables a subscription (rescheduling its deliveries) races the sender
/// settling those deliveries: one lock order, no deadlock (Postgres).
pub async fn reenabling_does_not_deadlock_with_settling(app: &TestApp) {
    use vouch_origin::store::Settle;
    let (org, owner, id) = unsent_subscription(app, "reenabling").await;
    let path = format!("/v1/webhooks/{id}");
    for round in 0..6 {
        for i in 0..4 {
            app.agent(&org, &format!("r{round} a{i}")).await;
        }
        let work = claim(app, "sender").await;
        assert_eq!(work.len(), 4, "round {round}");
        app.sql("UPDATE webhooks SET status = 'disabled', disabled_reason = 'disabled_by_admin'")
            .await;
        let settles = work.iter().map(|w| async move {
            app.store
                .settle_delivery("sender", w, &attempt(w.attempt, 200), &Settle::Succeeded)
                .await
        });
        let (settled, patched) = tokio::join!(
            futures::future::join_all(settles),
            app.patch(&path, &owner, json!({ "enabled": true }))
        );
        for result in settled {
            result.unwrap();
        }
        patched.assert_status(200);
    }
}

/// Finding 3: a hanging endpoint of one org holds at most four sender slots and does not delay
/// another org's delivery.
pub async fn a_hanging_endpoint_starves_nobody(app: &TestApp) {
    let slow_org = app.org("slow").await;
    let fast_org = app.org("quick").await;
    let (slow, _, _) = listen(app, ADMIN, Some(&slow_org), json!(["passport.created"])).await;
    let (quick, _, _) = listen(app, ADMIN, Some(&fast_org), json!(["passport.created"])).await;
    // Every attempt at the slow endpoint hangs until the sender's timeout (`patient`: 30 s),
    // far beyond the bound below.
    slow.plan((0..100).map(|_| Answer::Hang(Duration::from_secs(120))));
    let registrations = (0..12).map(|i| {
        let org = slow_org.clone();
        async move { app.agent(&org, &format!("slow {i}")).await }
    });
    futures::future::join_all(registrations).await;
    slow.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        slow.received().len() <= vouch_origin::webhooks::PER_WEBHOOK_IN_FLIGHT as usize,
        "one subscription holds at most 4 attempts at once: {}",
        slow.received().len()
    );
    let started = Instant::now();
    app.agent(&fast_org, "quick one").await;
    quick.wait_for(1, WAIT).await;
    let waited = started.elapsed();
    // Generous for a loaded machine (it includes registering the agent), and still far below
    // the slow endpoint's timeout: the delivery did not wait for a slot held by the hangs.
    assert!(
        waited < Duration::from_secs(5),
        "the other org's delivery waited {waited:?} behind the slow endpoint"
    );
}

/// Finding 13: settled deliveries older than the retention period go, with their attempts;
/// pending ones stay.
pub async fn old_deliveries_are_pruned(app: &TestApp) {
    let (org, _, _) = unsent_subscription(app, "pruning").await;
    for i in 0..3 {
        app.agent(&org, &format!("old {i}")).await;
    }
    let ids: Vec<i64> = app
        .store
        .claim_deliveries("test", vouch_origin::clock::now(), 60_000, 10)
        .await
        .unwrap()
        .iter()
        .map(|w| w.delivery_id)
        .collect();
    assert_eq!(ids.len(), 3);
    app.sql(&format!(
        "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms) VALUES ({}, 1, 0, 1); \
         UPDATE webhook_deliveries SET state = 'succeeded', updated_at = 1, lease_owner = NULL WHERE id IN ({}, {}); \
         UPDATE webhook_deliveries SET state = 'pending', updated_at = 1, lease_owner = NULL WHERE id = {}",
        ids[0], ids[0], ids[1], ids[2]
    ))
    .await;
    let sender = Dispatcher::new(app.store.clone(), app.keys.clone(), fast()).unwrap();
    assert_eq!(sender.prune().await.unwrap(), 2);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_deliveries").await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM webhook_attempts").await, 0);
    assert_eq!(sender.prune().await.unwrap(), 0);
}

/// Finding 10: events and the audit log name a webhook's scheme and host, never its path or
/// query (where receivers put tokens).
pub async fn urls_in_events_are_redacted(app: &TestApp) {
    let org = app.org("redacting").await;
    let owner = app.token(&org, "owner").await;
    let (id, _) = subscribe(
        app,
        &owner,
        None,
        "https://93.184.215.14/in/s3cret-path?token=s3cret-query",
        json!([]),
    )
    .await;
    let shown = app.get(&format!("/v1/webhooks/{id}"), &owner).await;
    assert!(
        shown.assert_status(200)["url"]
            .as_str()
            .unwrap()
            .contains("s3cret-query"),
        "the owner still reads the whole URL"
    );
    app.patch(
        &format!("/v1/webhooks/{id}"),
        &owner,
        json!({ "url": "https://93.184.215.15:8443/other/s3cret-path2" }),
    )
    .await
    .assert_status(200);
    app.call(
        Method::DELETE,
        &format!("/v1/webhooks/{id}"),
        Some(&owner),
        None,
    )
    .await
    .assert_status(204);
    let events: Vec<_> = app
        .outbox()
        .await
        .into_iter()
        .filter(|r| r.event_type.starts_with("webhook."))
        .collect();
    assert_eq!(events.len(), 3);
    for row in &events {
        assert!(!row.payload.contains("s3cret"), "{}", row.payload);
    }
    let updated: Value = serde_json::from_str(&events[1].payload).unwrap();
    assert_eq!(
        updated["data"]["changes"]["url"],
        json!({ "old": "https://93.184.215.14/", "new": "https://93.184.215.15:8443/" })
    );
    let audit = app
        .get(&format!("/v1/audit?org_id={org}&limit=100"), ADMIN)
        .await;
    assert!(!audit.assert_status(200).to_string().contains("s3cret"));
}
