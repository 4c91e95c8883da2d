use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{passport, TestApp, ADMIN};

pub async fn register_and_read(app: &TestApp) {
    let org = app.org("acme").await;
    let reply = app
        .post("/v1/agents", ADMIN, passport(&org, "Acme Support Bot"))
        .await;
    let body = reply.assert_status(201).clone();
    let agent = &body["agent"];
    let id = agent["agent_id"].as_str().unwrap();
    assert!(id.starts_with("ap_") && id.len() == 35);
    assert!(body["api_key"].as_str().unwrap().starts_with("vk_agent_"));
    assert_eq!(agent["status"], "draft");
    assert_eq!(agent["version"], 1);
    assert_eq!(agent["org_id"], org.as_str());
    assert_eq!(agent["health"], "unknown");
    assert_eq!(reply.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(reply.header("location"), Some(format!("/v1/agents/{id}")));
    // The key is stored only as a hash.
    let key = body["api_key"].as_str().unwrap();
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM agents WHERE api_key_hash = '{key}'"
        ))
        .await,
        0
    );

    let read = app.get(&format!("/v1/agents/{id}"), ADMIN).await;
    assert_eq!(read.assert_status(200), agent);
    assert_eq!(read.header("etag").as_deref(), Some("\"1\""));
    let cached = app
        .send(
            app.client
                .get(format!("{}/v1/agents/{id}", app.base))
                .bearer_auth(ADMIN)
                .header("if-none-match", "\"1\""),
        )
        .await;
    assert_eq!(cached.status.as_u16(), 304);
    assert_eq!(cached.body, Value::Null);
    // If-None-Match compares weakly (RFC 9110 §13.1.2): a weakened tag, in a list, still hits.
    let conditional_get = |tags: &'static str| {
        app.client
            .get(format!("{}/v1/agents/{id}", app.base))
            .bearer_auth(ADMIN)
            .header("if-none-match", tags)
    };
    for hit in ["W/\"1\"", "\"0\", W/\"1\"", "*"] {
        assert_eq!(
            app.send(conditional_get(hit)).await.status.as_u16(),
            304,
            "{hit}"
        );
    }
    for miss in ["\"2\"", "1", "W/1"] {
        app.send(conditional_get(miss)).await.assert_status(200);
    }

    // Same name in the same org is a conflict; in another org it is fine.
    app.post("/v1/agents", ADMIN, passport(&org, "Acme Support Bot"))
        .await
        .assert_error(409, "already_exists");
    let other = app.org("other").await;
    app.post("/v1/agents", ADMIN, passport(&other, "Acme Support Bot"))
        .await
        .assert_status(201);
    // Registering into an org that does not exist.
    app.post(
        "/v1/agents",
        ADMIN,
        passport("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71", "ghost"),
    )
    .await
    .assert_error(404, "org_not_found");
    // An org token registers into its own org without naming it.
    let admin = app.token(&org, "admin").await;
    let mut p = passport(&org, "implicit org");
    p.as_object_mut().unwrap().remove("org_id");
    let made = app.post("/v1/agents", &admin, p).await;
    assert_eq!(made.assert_status(201)["agent"]["org_id"], org.as_str());
    // The platform admin must name the org.
    let mut p = passport(&org, "no org");
    p.as_object_mut().unwrap().remove("org_id");
    let reply = app.post("/v1/agents", ADMIN, p).await;
    reply.assert_error(400, "invalid_request");
    assert_eq!(reply.body["field"], "org_id");
}

pub async fn immutable_fields(app: &TestApp) {
    let org = app.org("immutable").await;
    let (id, _) = app.agent(&org, "fixed").await;
    let path = format!("/v1/agents/{id}");
    for (field, value) in [
        ("name", json!("renamed")),
        ("org_id", json!("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71")),
        (
            "owner",
            json!({ "display_name": "Mallory", "contact": "m@evil.test" }),
        ),
        ("created_at", json!("2020-01-01T00:00:00.000Z")),
    ] {
        let reply = app
            .patch(&path, ADMIN, json!({ field: value, "role": "changed" }))
            .await;
        reply.assert_error(400, "immutable_field");
        assert_eq!(reply.body["field"], field);
    }
    let agent = app.get(&path, ADMIN).await;
    assert_eq!(agent.body["version"], 1, "a refused patch changes nothing");
    assert_eq!(agent.body["role"], "Tier-2 Support");
    // Sending back the value as read is allowed (and changes nothing).
    let same = app
        .patch(
            &path,
            ADMIN,
            json!({ "name": "fixed", "owner": agent.body["owner"] }),
        )
        .await;
    assert_eq!(same.assert_status(200)["version"], 1);
    // A real change bumps the version and updated_at, and merges objects.
    let changed = app
        .patch(&path, ADMIN, json!({ "limits": { "refund_usd_max_per_tx": 250, "allow_pii": null }, "regions": ["US-CA"] }))
        .await;
    let body = changed.assert_status(200);
    assert_eq!(body["version"], 2);
    assert_eq!(changed.header("etag").as_deref(), Some("\"2\""));
    assert_eq!(
        body["limits"],
        json!({ "refund_usd_max_per_tx": 250, "refund_usd_daily_cap": 1000, "max_export_rows": 1000 })
    );
    assert_eq!(body["regions"], json!(["US-CA"]));
    assert_ne!(body["updated_at"], agent.body["updated_at"]);
    assert_eq!(body["created_at"], agent.body["created_at"]);
    // Status is not patchable.
    let reply = app.patch(&path, ADMIN, json!({ "status": "active" })).await;
    reply.assert_error(400, "invalid_request");
    assert_eq!(reply.body["field"], "status");
}

pub async fn if_match_conflicts(app: &TestApp) {
    let org = app.org("ifmatch").await;
    let (id, _) = app.agent(&org, "contended").await;
    let path = format!("/v1/agents/{id}");
    let patch = |tag: &'static str, role: &'static str| {
        app.client
            .patch(format!("{}{path}", app.base))
            .bearer_auth(ADMIN)
            .header("content-type", "application/merge-patch+json")
            .header("if-match", tag)
            .body(json!({ "role": role }).to_string())
    };
    let first = app.send(patch("\"1\"", "first writer")).await;
    assert_eq!(first.assert_status(200)["version"], 2);
    let second = app.send(patch("\"1\"", "second writer")).await;
    second.assert_error(412, "version_mismatch");
    let agent = app.get(&path, ADMIN).await;
    assert_eq!(
        agent.body["role"], "first writer",
        "the stale write was not applied"
    );
    app.send(patch("\"2\"", "second writer, rebased"))
        .await
        .assert_status(200);
    app.send(patch("*", "anything goes"))
        .await
        .assert_status(200);
    // If-Match compares strongly (RFC 9110 §13.1.1): a weak tag never lets a write through.
    app.send(patch("W/\"4\"", "weakly guarded"))
        .await
        .assert_error(412, "version_mismatch");
    app.send(patch("\"3\", \"4\"", "one of a list"))
        .await
        .assert_status(200);
    // Status changes honour If-Match too.
    let stale = app
        .send(
            app.client
                .put(format!("{}{path}/status", app.base))
                .bearer_auth(ADMIN)
                .header("if-match", "\"1\"")
                .json(&json!({ "status": "active" })),
        )
        .await;
    stale.assert_error(412, "version_mismatch");
    assert_eq!(app.get(&path, ADMIN).await.body["status"], "draft");
}

pub async fn list_filters(app: &TestApp) {
    let org = app.org("filters").await;
    let make = |name: &'static str, caps: Value, regions: Value, status: &'static str| {
        let mut p = passport(&org, name);
        p["capabilities"] = caps;
        p["regions"] = regions;
        p["status"] = json!(status);
        app.post("/v1/agents", ADMIN, p)
    };
    make(
        "Refund Bot",
        json!([{ "id": "payments.refund" }]),
        json!(["US-CA"]),
        "active",
    )
    .await
    .assert_status(201);
    make(
        "Export Bot",
        json!([{ "id": "data.export" }]),
        json!(["DE"]),
        "draft",
    )
    .await
    .assert_status(201);
    make(
        "Global Bot",
        json!([{ "id": "payments.refund" }, { "id": "data.export" }]),
        json!(["*"]),
        "active",
    )
    .await
    .assert_status(201);
    make("US Bot", json!([]), json!(["US"]), "draft")
        .await
        .assert_status(201);
    let names = |reply: crate::harness::Reply| -> Vec<String> {
        let mut names: Vec<String> = reply.assert_status(200)["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let q = |query: &str| {
        let path = format!("/v1/agents?org_id={org}&{query}");
        async move { app.get(&path, ADMIN).await }
    };
    assert_eq!(
        names(q("status=active").await),
        ["Global Bot", "Refund Bot"]
    );
    assert_eq!(
        names(q("capability=data.export").await),
        ["Export Bot", "Global Bot"]
    );
    assert_eq!(
        names(q("region=US-CA").await),
        ["Global Bot", "Refund Bot", "US Bot"]
    );
    assert_eq!(names(q("region=DE-BY").await), ["Export Bot", "Global Bot"]);
    assert_eq!(names(q("q=bot").await).len(), 4);
    assert_eq!(names(q("q=REFUND").await), ["Refund Bot"]);
    assert_eq!(
        names(q("q=%25").await),
        Vec::<String>::new(),
        "LIKE wildcards are literal"
    );
    assert_eq!(
        names(q("status=active&capability=data.export&region=FR").await),
        ["Global Bot"]
    );
    // Newest first.
    let all = app.get(&format!("/v1/agents?org_id={org}"), ADMIN).await;
    let ids: Vec<&str> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["agent_id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);
    assert_eq!(all.body["next_cursor"], Value::Null);
}

pub async fn pagination_under_concurrent_inserts(app: &TestApp) {
    let org = app.org("pages").await;
    let mut before = HashSet::new();
    for i in 0..60 {
        before.insert(app.agent(&org, &format!("existing {i}")).await.0);
    }
    let writer = {
        let client = app.client.clone();
        let base = app.base.clone();
        let org = org.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let resp = client
                    .post(format!("{base}/v1/agents"))
                    .bearer_auth(ADMIN)
                    .json(&passport(&org, &format!("concurrent {i}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status().as_u16(), 201);
            }
        })
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/agents?org_id={org}&limit=7&cursor={c}"),
            None => format!("/v1/agents?org_id={org}&limit=7"),
        };
        let page = app.get(&path, ADMIN).await;
        let body = page.assert_status(200);
        let data = body["data"].as_array().unwrap();
        assert!(data.len() <= 7);
        seen.extend(
            data.iter()
                .map(|p| p["agent_id"].as_str().unwrap().to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no row repeated");
    for id in &before {
        assert!(
            unique.contains(id),
            "row {id} that existed before paging was skipped"
        );
    }
    // Limits are checked.
    app.get("/v1/agents?limit=0", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    app.get("/v1/agents?limit=501", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    app.get("/v1/agents?limit=500", ADMIN)
        .await
        .assert_status(200);
    let bad = app.get("/v1/agents?cursor=%21%21", ADMIN).await;
    bad.assert_error(400, "invalid_request");
    assert_eq!(bad.body["field"], "cursor");
}

pub async fn key_rotation_and_heartbeat(app: &TestApp) {
    let org = app.org("keys").await;
    let (id, old_key) = app.agent(&org, "rotating").await;
    let beat = format!("/v1/agents/{id}/heartbeat");
    let first = app.call(Method::POST, &beat, Some(&old_key), None).await;
    let body = first.assert_status(200);
    assert_eq!(body["health"], "healthy");
    assert_eq!(body["status"], "draft");
    let degraded = app
        .call(
            Method::POST,
            &beat,
            Some(&old_key),
            Some(json!({ "health": "degraded" })),
        )
        .await;
    assert_eq!(degraded.assert_status(200)["health"], "degraded");
    let agent = app.get(&format!("/v1/agents/{id}"), ADMIN).await;
    assert_eq!(agent.body["health"], "degraded");
    assert!(agent.body["last_seen_at"].is_string());
    assert_eq!(
        agent.body["version"], 1,
        "heartbeats are telemetry, not versioned changes"
    );

    let rotated = app
        .call(
            Method::POST,
            &format!("/v1/agents/{id}/keys"),
            Some(ADMIN),
            None,
        )
        .await;
    let new_key = rotated.assert_status(201)["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_key, old_key);
    app.call(Method::POST, &beat, Some(&old_key), None)
        .await
        .assert_error(401, "unauthorized");
    app.call(Method::POST, &beat, Some(&new_key), None)
        .await
        .assert_status(200);
    let bad = app
        .call(
            Method::POST,
            &beat,
            Some(&new_key),
            Some(json!({ "health": "great" })),
        )
        .await;
    bad.assert_error(400, "invalid_request");
    assert_eq!(bad.body["field"], "health");
    app.call(Method::POST, &beat, Some("vk_agent_forged"), None)
        .await
        .assert_error(401, "unauthorized");
    // An admin token is a credential, but not the agent's: forbidden, not unknown.
    app.call(Method::POST, &beat, Some(ADMIN), None)
        .await
        .assert_error(403, "forbidden");
    app.call(Method::POST, &beat, Some("vk_admin_forged"), None)
        .await
        .assert_error(401, "unauthorized");
    // Events of the agent: created and key rotated, newest first.
    let events = app.get(&format!("/v1/agents/{id}/events"), ADMIN).await;
    let actions: Vec<&str> = events.assert_status(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["agent.api_key_rotated", "passport.created"]);
}

pub async fn concurrent_status_changes(app: &TestApp) {
    let org = app.org("races").await;
    let (id, _) = app.agent(&org, "raced").await;
    app.set_status(&id, "active").await.assert_status(200);
    // Twenty writers race to suspend the same active agent: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = format!("{}/v1/agents/{id}/status", app.base);
        tasks.push(tokio::spawn(async move {
            client
                .put(url)
                .bearer_auth(ADMIN)
                .json(&json!({ "status": "suspended" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 19, "{codes:?}");
    let agent = app.get(&format!("/v1/agents/{id}"), ADMIN).await;
    assert_eq!(agent.body["version"], 3);
    let verify = app
        .get(&format!("/v1/audit/verify?org_id={org}"), ADMIN)
        .await;
    assert_eq!(verify.assert_status(200)["ok"], true);
}
