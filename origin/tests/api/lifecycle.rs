use serde_json::json;

use crate::harness::{TestApp, ADMIN};

/// Drives a fresh agent to `state` along allowed moves.
async fn agent_in(app: &TestApp, org: &str, name: &str, state: &str) -> (String, String) {
    let (id, key) = app.agent(org, name).await;
    let path: &[&str] = match state {
        "draft" => &[],
        "active" => &["active"],
        "suspended" => &["active", "suspended"],
        "revoked" => &["revoked"],
        other => panic!("unknown state {other}"),
    };
    for step in path {
        app.set_status(&id, step).await.assert_status(200);
    }
    (id, key)
}

pub async fn every_pair(app: &TestApp) {
    let org = app.org("lifecycle").await;
    let states = ["draft", "active", "suspended", "revoked"];
    let allowed = [
        ("draft", "active"),
        ("draft", "revoked"),
        ("active", "suspended"),
        ("active", "revoked"),
        ("suspended", "active"),
        ("suspended", "revoked"),
    ];
    for from in states {
        for to in states {
            let (id, _) = agent_in(app, &org, &format!("{from}-to-{to}"), from).await;
            let before = app.get(&format!("/v1/agents/{id}"), ADMIN).await;
            let version = before.body["version"].as_i64().unwrap();
            let reply = app.set_status(&id, to).await;
            if allowed.contains(&(from, to)) {
                let body = reply.assert_status(200);
                assert_eq!(body["previous_status"], from, "{from} -> {to}");
                assert_eq!(body["new_status"], to);
                assert_eq!(body["version"].as_i64(), Some(version + 1));
            } else {
                reply.assert_error(409, "invalid_transition");
                let after = app.get(&format!("/v1/agents/{id}"), ADMIN).await;
                assert_eq!(
                    after.body["status"], from,
                    "{from} -> {to} must not change anything"
                );
                assert_eq!(after.body["version"].as_i64(), Some(version));
            }
        }
    }
}

pub async fn revoked_key_stops_working(app: &TestApp) {
    let org = app.org("revoke").await;
    let (id, key) = agent_in(app, &org, "soon revoked", "active").await;
    let beat = format!("/v1/agents/{id}/heartbeat");
    app.call(reqwest::Method::POST, &beat, Some(&key), None)
        .await
        .assert_status(200);
    app.set_status(&id, "revoked").await.assert_status(200);
    app.call(reqwest::Method::POST, &beat, Some(&key), None)
        .await
        .assert_error(401, "unauthorized");
    // Terminal: nothing brings it back, and the record is kept.
    for to in ["active", "suspended", "draft", "revoked"] {
        app.set_status(&id, to)
            .await
            .assert_error(409, "invalid_transition");
    }
    let kept = app.get(&format!("/v1/agents/{id}"), ADMIN).await;
    assert_eq!(kept.assert_status(200)["status"], "revoked");
    assert!(kept.body["revoked_at"].is_string());
    app.post(&format!("/v1/agents/{id}/keys"), ADMIN, json!({}))
        .await
        .assert_error(409, "agent_revoked");
    // Its passport is frozen as revoked: no patch, whatever it says, and no new version.
    let path = format!("/v1/agents/{id}");
    let events = app.count("SELECT COUNT(*) FROM audit_events").await;
    for patch in [json!({ "role": "back in business" }), json!({})] {
        app.patch(&path, ADMIN, patch)
            .await
            .assert_error(409, "agent_revoked");
    }
    let after = app.get(&path, ADMIN).await;
    assert_eq!(after.body["version"], kept.body["version"]);
    assert_eq!(after.body["role"], kept.body["role"]);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_events").await, events);
}

pub async fn status_response_and_reason(app: &TestApp) {
    let org = app.org("reasons").await;
    let (id, _) = agent_in(app, &org, "reasoned", "active").await;
    let reply = app
        .put(
            &format!("/v1/agents/{id}/status"),
            ADMIN,
            json!({ "status": "suspended", "reason": "fraud review" }),
        )
        .await;
    let body = reply.assert_status(200);
    assert_eq!(body["agent_id"], id.as_str());
    assert!(body["changed_at"].as_str().unwrap().ends_with('Z'));
    let agent = app.get(&format!("/v1/agents/{id}"), ADMIN).await;
    assert_eq!(agent.body["status_reason"], "fraud review");
    assert_eq!(agent.body["suspended_at"], body["changed_at"]);
    let active = app.set_status(&id, "active").await;
    active.assert_status(200);
    let agent = app.get(&format!("/v1/agents/{id}"), ADMIN).await;
    assert_eq!(agent.body["status_reason"], serde_json::Value::Null);
    assert_eq!(agent.body["suspended_at"], serde_json::Value::Null);
    // Starting active at registration is allowed; anything else is not.
    let mut p = crate::harness::passport(&org, "born active");
    p["status"] = json!("active");
    let born = app.post("/v1/agents", ADMIN, p).await;
    assert_eq!(born.assert_status(201)["agent"]["status"], "active");
    let mut p = crate::harness::passport(&org, "born suspended");
    p["status"] = json!("suspended");
    let reply = app.post("/v1/agents", ADMIN, p).await;
    reply.assert_error(400, "invalid_request");
    assert_eq!(reply.body["field"], "status");
}
