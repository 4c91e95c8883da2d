use serde_json::json;

use crate::harness::{TestApp, ADMIN};

/// An org with a few recorded changes; returns its id.
async fn busy_org(app: &TestApp, slug: &str) -> String {
    let org = app.org(slug).await;
    let (id, _) = app.agent(&org, "audited").await;
    app.set_status(&id, "active").await.assert_status(200);
    app.patch(
        &format!("/v1/agents/{id}"),
        ADMIN,
        json!({ "role": "changed" }),
    )
    .await
    .assert_status(200);
    app.set_status(&id, "suspended").await.assert_status(200);
    // Read once: that seals the pending events (as the background sealer would).
    assert_eq!(verify(app, &org).await["ok"], true);
    org
}

async fn verify(app: &TestApp, org: &str) -> serde_json::Value {
    app.get(&format!("/v1/audit/verify?org_id={org}"), ADMIN)
        .await
        .assert_status(200)
        .clone()
}

pub async fn verifies(app: &TestApp) {
    let org = busy_org(app, "audit-ok").await;
    let report = verify(app, &org).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events_checked"], 5);
    assert_eq!(report["chain_id"], org.as_str());
    let log = app.get(&format!("/v1/audit?org_id={org}"), ADMIN).await;
    let events = log.assert_status(200)["data"].as_array().unwrap().clone();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "passport.status_changed",
            "passport.updated",
            "passport.status_changed",
            "passport.created",
            "org.created"
        ]
    );
    assert_eq!(
        events[1]["data"]["changes"]["role"],
        json!({ "old": "Tier-2 Support", "new": "changed" })
    );
    assert_eq!(events[0]["actor"], "platform");
    // An org token reads its own log by default, and the platform log is separate.
    let owner = app.token(&org, "owner").await;
    let own = app.get("/v1/audit", &owner).await;
    assert_eq!(own.assert_status(200)["data"][0]["action"], "token.created");
    assert_eq!(app.get("/v1/audit/verify", &owner).await.body["ok"], true);
    let platform = app.get("/v1/audit", ADMIN).await;
    assert!(platform.assert_status(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["chain_id"] == "platform"));
    // Pagination over the log.
    let page = app
        .get(&format!("/v1/audit?org_id={org}&limit=2"), ADMIN)
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let next = app
        .get(
            &format!("/v1/audit?org_id={org}&limit=2&cursor={cursor}"),
            ADMIN,
        )
        .await;
    assert_eq!(
        next.body["data"][0]["seq"].as_i64(),
        Some(page.body["data"][1]["seq"].as_i64().unwrap() - 1)
    );
}

pub async fn edit_detected(app: &TestApp) {
    let org = busy_org(app, "audit-edit").await;
    app.sql(&format!(
        "UPDATE audit_events SET data = '{{\"forged\":true}}' WHERE chain_id = '{org}' AND seq = 3"
    ))
    .await;
    let report = verify(app, &org).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_break"]["seq"], 3);
    assert_eq!(report["first_break"]["kind"], "hash_mismatch");
    assert!(report["first_break"]["event_id"]
        .as_str()
        .unwrap()
        .starts_with("evt_"));
    assert_eq!(report["events_checked"], 2);
    // Another org's chain is unaffected.
    let other = busy_org(app, "audit-bystander").await;
    assert_eq!(verify(app, &other).await["ok"], true);
}

pub async fn delete_detected(app: &TestApp) {
    let org = busy_org(app, "audit-delete").await;
    app.sql(&format!(
        "DELETE FROM audit_events WHERE chain_id = '{org}' AND seq = 2"
    ))
    .await;
    let report = verify(app, &org).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_break"]["seq"], 2);
    assert_eq!(report["first_break"]["kind"], "missing_event");
}

pub async fn truncation_detected(app: &TestApp) {
    let org = busy_org(app, "audit-truncate").await;
    app.sql(&format!(
        "DELETE FROM audit_events WHERE chain_id = '{org}' AND seq >= 4"
    ))
    .await;
    let report = verify(app, &org).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_break"]["seq"], 4);
    assert_eq!(report["first_break"]["kind"], "truncated");
}
