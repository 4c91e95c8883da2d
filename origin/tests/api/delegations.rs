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

/// `GET /v1/delegations`: the caller's grants, newest first, filtered by status (as each
/// grant's `status` says it now), party and org, paged; another org's grants are never listed.
pub async fn listing(app: &TestApp) {
    let org = app.org("listing-grants").await;
    let a = active(app, &org, "lister a").await;
    let b = active(app, &org, "lister b").await;
    let c = active(app, &org, "lister c").await;
    let mut ids = Vec::new();
    for (from, to) in [(&a, &b), (&a, &c), (&b, &c), (&c, &a)] {
        let made = app
            .post(
                "/v1/delegations",
                ADMIN,
                grant(from, to, json!(["data.export"])),
            )
            .await;
        ids.push(
            made.assert_status(201)["delegation_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // One revoked, one expired (its expiry moved into the past, as time would).
    app.call(
        reqwest::Method::DELETE,
        &format!("/v1/delegations/{}", ids[1]),
        Some(ADMIN),
        None,
    )
    .await
    .assert_status(200);
    app.sql(&format!(
        "UPDATE delegations SET expires_at = created_at - 1 WHERE delegation_id = '{}'",
        ids[2]
    ))
    .await;
    let other = app.org("listing-outsiders").await;
    let x = active(app, &other, "outsider x").await;
    let y = active(app, &other, "outsider y").await;
    app.post(
        "/v1/delegations",
        ADMIN,
        grant(&x, &y, json!(["data.export"])),
    )
    .await
    .assert_status(201);

    let listed = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["delegation_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let owner = app.token(&org, "viewer").await;
    let all = app.get("/v1/delegations", &owner).await;
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed(all.assert_status(200)), newest_first);
    assert_eq!(all.body["next_cursor"], Value::Null);
    let statuses: Vec<&str> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "expired", "revoked", "active"]);
    for (status, expected) in [
        ("active", vec![ids[3].clone(), ids[0].clone()]),
        ("expired", vec![ids[2].clone()]),
        ("revoked", vec![ids[1].clone()]),
    ] {
        let page = app
            .get(&format!("/v1/delegations?status={status}"), &owner)
            .await;
        assert_eq!(listed(page.assert_status(200)), expected, "{status}");
    }
    let of_b = app
        .get(&format!("/v1/delegations?agent_id={b}"), &owner)
        .await;
    assert_eq!(
        listed(of_b.assert_status(200)),
        [ids[2].clone(), ids[0].clone()]
    );
    // Pages of one, followed by their cursors, give the whole list once.
    let mut paged = Vec::new();
    let mut next = Some("/v1/delegations?limit=1".to_owned());
    while let Some(path) = next {
        let page = app.get(&path, &owner).await;
        paged.extend(listed(page.assert_status(200)));
        next = page.body["next_cursor"]
            .as_str()
            .map(|c| format!("/v1/delegations?limit=1&cursor={c}"));
    }
    assert_eq!(paged, newest_first);
    // The platform admin sees every org, or one; an org token only its own, whatever it asks.
    let platform = app
        .get(&format!("/v1/delegations?org_id={org}"), ADMIN)
        .await;
    assert_eq!(listed(platform.assert_status(200)), newest_first);
    let everything = app.get("/v1/delegations?limit=500", ADMIN).await;
    assert!(listed(everything.assert_status(200)).len() > newest_first.len());
    let foreign = app
        .get(&format!("/v1/delegations?org_id={other}"), &owner)
        .await;
    assert_eq!(listed(foreign.assert_status(200)), Vec::<String>::new());
    // Bad filters are refused, naming them.
    for (query, field) in [
        ("status=dead", "status"),
        ("agent_id=nobody", "agent_id"),
        ("limit=0", "limit"),
        ("colour=red", ""),
    ] {
        let refused = app.get(&format!("/v1/delegations?{query}"), &owner).await;
        refused.assert_error(400, "invalid_request");
        if !field.is_empty() {
            assert_eq!(refused.body["field"], field, "{}", refused.body);
        }
    }
    app.get("/v1/delegations", "vk_admin_nobody")
        .await
        .assert_error(401, "unauthorized");
}

/// `GET /v1/whoami`: the caller's role and org, for tools that act on "their" org.
pub async fn whoami(app: &TestApp) {
    let me = app.get("/v1/whoami", ADMIN).await;
    assert_eq!(
        me.assert_status(200),
        &json!({ "role": "platform", "org_id": null, "token_id": null })
    );
    let org = app.org("whoami").await;
    let created = app
        .post(
            &format!("/v1/orgs/{org}/tokens"),
            ADMIN,
            json!({ "role": "viewer", "name": "ci" }),
        )
        .await;
    let created = created.assert_status(201).clone();
    let me = app
        .get("/v1/whoami", created["token"].as_str().unwrap())
        .await;
    assert_eq!(
        me.assert_status(200),
        &json!({ "role": "viewer", "org_id": org, "token_id": created["token_id"] })
    );
    app.get("/v1/whoami", "vk_admin_nobody")
        .await
        .assert_error(401, "unauthorized");
}
