//! Agent-emitted events (SPEC §20): `POST /v1/agents/{id}/events` with the agent's own key or
//! token, into the org's audit chain, the outbox (event stream) and webhooks.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{TestApp, ADMIN};

const EVENT: &str = "agent.custom.deploy_finished";

fn path(agent: &str) -> String {
    format!("/v1/agents/{agent}/events")
}

pub async fn recorded_delivered_and_streamed(app: &TestApp) {
    let org = app.org("agent-signals").await;
    let owner = app.token(&org, "owner").await;
    let (every, _, _) = crate::webhooks::listen(app, &owner, None, json!(["agent.custom"])).await;
    let (exact, _, _) = crate::webhooks::listen(app, &owner, None, json!([EVENT])).await;
    let (other_name, _, _) =
        crate::webhooks::listen(app, &owner, None, json!(["agent.custom.other"])).await;
    let (agent, key) = app.registered(&org, "signalling bot", "active").await;

    // With its API key.
    let reply = app
        .post(
            &path(&agent),
            &key,
            json!({ "type": EVENT, "data": { "version": "1.4.2", "ok": true } }),
        )
        .await;
    let body = reply.assert_status(201).clone();
    assert!(body["event_id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(body["type"], EVENT);
    assert_eq!(body["agent_id"], agent);
    assert_eq!(body["org_id"], org);
    assert_eq!(body["data"], json!({ "version": "1.4.2", "ok": true }));
    assert!(body["created_at"].is_string());

    // With its access token; `data` may be left out.
    let token = app.access_token(&agent, &key).await;
    let second = app
        .post(
            &path(&agent),
            &token,
            json!({ "type": "agent.custom.human.took_over" }),
        )
        .await;
    let second = second.assert_status(201).clone();
    assert_eq!(second["data"], json!({}));

    // In the org's audit chain, under the agent, with its full type; and the chain verifies.
    let events = app.get(&path(&agent), ADMIN).await;
    let events = events.assert_status(200)["data"]
        .as_array()
        .unwrap()
        .clone();
    let mine: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("agent.custom."))
        .collect();
    assert_eq!(mine.len(), 2, "{events:?}");
    let first = mine
        .iter()
        .find(|e| e["event_id"] == body["event_id"])
        .unwrap();
    assert_eq!(first["action"], EVENT);
    assert_eq!(first["actor"], agent);
    assert_eq!(first["chain_id"], org);
    assert_eq!(first["data"]["data"]["version"], "1.4.2");
    let verified = app.get("/v1/audit/verify", &owner).await;
    assert_eq!(verified.assert_status(200)["ok"], true, "{}", verified.body);

    // In the outbox (what the live stream reads), as the agent's own event.
    let outbox = app.outbox().await;
    let row = outbox
        .iter()
        .find(|r| r.event_id == body["event_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(row.event_type, EVENT);
    assert_eq!(row.aggregate_id, agent);
    let envelope: Value = serde_json::from_str(&row.payload).unwrap();
    assert_eq!(envelope["type"], EVENT);
    assert_eq!(envelope["org_id"], org);

    // Webhooks: `agent.custom` takes both, the exact name one, another name none.
    let got = every.wait_for(2, crate::webhooks::WAIT).await;
    let types: Vec<&str> = got
        .iter()
        .map(|d| d.body["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&EVENT) && types.contains(&"agent.custom.human.took_over"));
    assert!(got.iter().all(|d| d.verified == [true]));
    let got = exact.wait_for(1, crate::webhooks::WAIT).await;
    assert_eq!(got[0].webhook_id, body["event_id"].as_str().unwrap());
    assert_eq!(got[0].body["data"]["data"]["ok"], true);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE event_id = '{}'",
            body["event_id"].as_str().unwrap()
        ))
        .await,
        2,
        "delivered to `agent.custom` and to the exact name, not to `agent.custom.other`"
    );
    assert!(other_name.received().is_empty());

    // Filters name them: a bad custom name is refused like any unknown type.
    app.post(
        "/v1/webhooks",
        &owner,
        json!({ "url": "http://127.0.0.1:9/x", "events": ["agent.custom.Bad"] }),
    )
    .await
    .assert_error(400, "invalid_request");
}

pub async fn credentials(app: &TestApp) {
    let org = app.org("agent-signal-auth").await;
    let elsewhere = app.org("agent-signal-elsewhere").await;
    let (agent, key) = app.registered(&org, "bot", "active").await;
    let (sibling, sibling_key) = app.registered(&org, "sibling", "active").await;
    let (_, stranger_key) = app.registered(&elsewhere, "stranger", "active").await;
    let event = json!({ "type": EVENT, "data": {} });

    // Another agent's key or token, of the same org or not: as if the agent did not exist.
    app.post(&path(&agent), &sibling_key, event.clone())
        .await
        .assert_error(404, "agent_not_found");
    app.post(&path(&agent), &stranger_key, event.clone())
        .await
        .assert_error(404, "agent_not_found");
    let sibling_token = app.access_token(&sibling, &sibling_key).await;
    app.post(&path(&agent), &sibling_token, event.clone())
        .await
        .assert_error(404, "agent_not_found");
    // An admin token (platform or org) is not the agent: 403, its signals come from itself.
    app.post(&path(&agent), ADMIN, event.clone())
        .await
        .assert_error(403, "forbidden");
    let owner = app.token(&org, "owner").await;
    app.post(&path(&agent), &owner, event.clone())
        .await
        .assert_error(403, "forbidden");
    // No credential, an unknown key, a forged token.
    app.call(Method::POST, &path(&agent), None, Some(event.clone()))
        .await
        .assert_error(401, "unauthorized");
    app.post(&path(&agent), "vk_agent_nope", event.clone())
        .await
        .assert_error(401, "unauthorized");
    let token = app.access_token(&agent, &key).await;
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    app.post(&path(&agent), &forged, event.clone())
        .await
        .assert_error(401, "unauthorized");
    app.post(&path(&agent), "a.b.c", event.clone())
        .await
        .assert_error(401, "unauthorized");
    // A suspended agent still reports (its key works, as for heartbeats) ...
    app.set_status(&agent, "suspended").await.assert_status(200);
    app.post(&path(&agent), &key, event.clone())
        .await
        .assert_status(201);
    // ... its tokens die with a revocation of its tokens, and everything with its revocation.
    app.post(
        &format!("/v1/agents/{agent}/tokens/revoke"),
        ADMIN,
        json!({ "reason": "leaked" }),
    )
    .await
    .assert_status(200);
    app.post(&path(&agent), &token, event.clone())
        .await
        .assert_error(401, "unauthorized");
    app.set_status(&agent, "revoked").await.assert_status(200);
    app.post(&path(&agent), &key, event.clone())
        .await
        .assert_error(401, "unauthorized");
    // The heartbeat takes the token too (SPEC §4: "API key or token").
    let (beater, beater_key) = app.registered(&org, "beater", "active").await;
    let beater_token = app.access_token(&beater, &beater_key).await;
    app.call(
        Method::POST,
        &format!("/v1/agents/{beater}/heartbeat"),
        Some(&beater_token),
        None,
    )
    .await
    .assert_status(200);
}

pub async fn bad_input(app: &TestApp) {
    let org = app.org("agent-signal-input").await;
    let (agent, key) = app.registered(&org, "bot", "active").await;
    for (body, field) in [
        (json!({ "type": "passport.updated" }), "type"),
        (json!({ "type": "agent.custom." }), "type"),
        (json!({ "type": "agent.custom.Deploy" }), "type"),
        (json!({ "type": "agent.custom.a..b" }), "type"),
        (json!({ "type": 7 }), "type"),
        (json!({ "data": {} }), "type"),
        (json!({ "type": EVENT, "data": [1, 2] }), "data"),
        (json!({ "type": EVENT, "data": "text" }), "data"),
        (json!({ "type": EVENT, "colour": "red" }), "colour"),
    ] {
        let reply = app.post(&path(&agent), &key, body.clone()).await;
        reply.assert_error(400, "invalid_request");
        assert_eq!(reply.body["field"], field, "{body}: {}", reply.body);
    }
    // At most 8 KiB: one byte under is fine, one over is 413.
    let wrapper = json!({ "type": EVENT, "data": { "blob": "" } })
        .to_string()
        .len();
    let fits = json!({ "type": EVENT, "data": { "blob": "x".repeat(8 * 1024 - wrapper) } });
    assert_eq!(fits.to_string().len(), 8 * 1024);
    app.post(&path(&agent), &key, fits).await.assert_status(201);
    let over = json!({ "type": EVENT, "data": { "blob": "x".repeat(8 * 1024 - wrapper + 1) } });
    let reply = app.post(&path(&agent), &key, over).await;
    reply.assert_error(413, "payload_too_large");
    assert!(reply.body["message"].as_str().unwrap().contains("8192"));
    // Far over the origin's own limit: still this route's 413.
    let huge = json!({ "type": EVENT, "data": { "blob": "x".repeat(100 * 1024) } });
    app.post(&path(&agent), &key, huge)
        .await
        .assert_error(413, "payload_too_large");
    // Not JSON, a malformed id.
    let reply = app
        .send(
            app.client
                .post(format!("{}{}", app.base, path(&agent)))
                .bearer_auth(&key)
                .header("content-type", "text/plain")
                .body("hello"),
        )
        .await;
    reply.assert_error(415, "unsupported_media_type");
    app.post("/v1/agents/ap_nope/events", &key, json!({ "type": EVENT }))
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action LIKE 'agent.custom.%'")
            .await,
        1,
        "only the body that fits was recorded"
    );
}
