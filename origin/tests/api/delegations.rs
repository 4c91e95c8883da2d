use serde_json::{json, Value};

use crate::harness::{passport, TestApp, ADMIN};

async fn active(app: &TestApp, org: &str, name: &str) -> String {
    let mut p = passport(org, name);
    p["status"] = json!("active");
    app.post("/v1/agents", ADMIN, p).await.assert_status(201)["agent"]["agent_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn grant(delegator: &str, delegatee: &str, scopes: Value) -> Value {
    json!({ "delegator": delegator, "delegatee": delegatee, "scopes": scopes, "ttl_seconds": 3600, "max_depth": 2 })
}

pub async fn grants(app: &TestApp) {
    let org = app.org("delegating").await;
    let a = active(app, &org, "delegator").await;
    let b = active(app, &org, "delegatee").await;
    let made = app
        .post(
            "/v1/delegations",
            ADMIN,
            grant(&a, &b, json!(["payments.refund"])),
        )
        .await;
    let body = made.assert_status(201).clone();
    let id = body["delegation_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("dlg_"));
    assert_eq!(body["status"], "active");
    assert_eq!(body["scopes"], json!(["payments.refund"]));
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    let read = app.get(&format!("/v1/delegations/{id}"), ADMIN).await;
    assert_eq!(read.assert_status(200)["delegator"], a.as_str());

    // Refusals.
    let cases = [
        (
            grant(&a, &b, json!(["payments.transfer"])),
            400,
            "scope_escalation",
        ),
        (
            grant(&a, &a, json!(["payments.refund"])),
            400,
            "invalid_request",
        ),
        (
            json!({ "delegator": a, "delegatee": b, "scopes": ["data.export"], "ttl_seconds": 30, "max_depth": 1 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "delegator": a, "delegatee": b, "scopes": ["data.export"], "ttl_seconds": 86401, "max_depth": 1 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "delegator": a, "delegatee": b, "scopes": ["data.export"], "ttl_seconds": 60, "max_depth": 0 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "delegator": a, "delegatee": b, "scopes": [], "ttl_seconds": 60, "max_depth": 1 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "delegator": a, "delegatee": b, "scopes": ["data.export"], "ttl_seconds": 60, "max_depth": 1, "x": 1 }),
            400,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        app.post("/v1/delegations", ADMIN, body.clone())
            .await
            .assert_error(status, code);
    }
    let draft = app.agent(&org, "draft party").await.0;
    app.post(
        "/v1/delegations",
        ADMIN,
        grant(&a, &draft, json!(["data.export"])),
    )
    .await
    .assert_error(409, "agent_not_active");

    // Tenancy: another org sees nothing; a viewer cannot grant or revoke.
    let other = app.org("outsiders").await;
    let outsider = app.token(&other, "owner").await;
    app.get(&format!("/v1/delegations/{id}"), &outsider)
        .await
        .assert_error(404, "delegation_not_found");
    app.call(
        reqwest::Method::DELETE,
        &format!("/v1/delegations/{id}"),
        Some(&outsider),
        None,
    )
    .await
    .assert_error(404, "delegation_not_found");
    app.post(
        "/v1/delegations",
        &outsider,
        grant(&a, &b, json!(["data.export"])),
    )
    .await
    .assert_error(404, "agent_not_found");
    // Across orgs, not even the platform admin: the delegatee's org could neither see nor
    // revoke the grant its agent acts under. Nothing is recorded.
    let foreigner = active(app, &other, "foreign delegatee").await;
    let grants_before = app.count("SELECT COUNT(*) FROM delegations").await;
    let refused = app
        .post(
            "/v1/delegations",
            ADMIN,
            grant(&a, &foreigner, json!(["payments.refund"])),
        )
        .await;
    refused.assert_error(400, "cross_org_delegation");
    assert_eq!(refused.body["field"], "delegatee", "{}", refused.body);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM delegations").await,
        grants_before
    );
    let viewer = app.token(&org, "viewer").await;
    app.post(
        "/v1/delegations",
        &viewer,
        grant(&a, &b, json!(["data.export"])),
    )
    .await
    .assert_error(403, "forbidden");
    app.call(
        reqwest::Method::DELETE,
        &format!("/v1/delegations/{id}"),
        Some(&viewer),
        None,
    )
    .await
    .assert_error(403, "forbidden");

    // Revocation, idempotent; and a grant dies with a party leaving active.
    let revoked = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/delegations/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(revoked.assert_status(200)["status"], "revoked");
    let again = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/delegations/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(again.assert_status(200)["status"], "revoked");
    let second = app
        .post(
            "/v1/delegations",
            ADMIN,
            grant(&a, &b, json!(["data.export"])),
        )
        .await;
    let second_id = second.assert_status(201)["delegation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.set_status(&b, "suspended").await.assert_status(200);
    let dead = app
        .get(&format!("/v1/delegations/{second_id}"), ADMIN)
        .await;
    assert_eq!(dead.assert_status(200)["status"], "revoked");
    app.set_status(&b, "active").await.assert_status(200);
    let still = app
        .get(&format!("/v1/delegations/{second_id}"), ADMIN)
        .await;
    assert_eq!(still.body["status"], "revoked", "a dead grant stays dead");

    // Every change is audited and queued for KV.
    let events = app.get(&format!("/v1/audit?org_id={org}"), ADMIN).await;
    let actions: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "delegation.revoked")
            .count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "delegation.created")
            .count(),
        2
    );
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM kv_outbox WHERE kv_key = 'delegation:{second_id}' AND target_version = 2")).await,
        1
    );
}
