use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{passport, TestApp, ADMIN};

/// Every agent endpoint, as (method, path, body) for agent `id`.
fn agent_endpoints(id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, format!("/v1/agents/{id}"), None),
        (
            Method::PATCH,
            format!("/v1/agents/{id}"),
            Some(json!({ "role": "x" })),
        ),
        (
            Method::PUT,
            format!("/v1/agents/{id}/status"),
            Some(json!({ "status": "suspended" })),
        ),
        (Method::POST, format!("/v1/agents/{id}/keys"), None),
        (Method::GET, format!("/v1/agents/{id}/events"), None),
    ]
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> crate::harness::Reply {
    if method == Method::PATCH {
        app.patch(path, token, body.unwrap_or(json!({}))).await
    } else {
        app.call(method, path, Some(token), body).await
    }
}

pub async fn matrix(app: &TestApp) {
    let org_a = app.org("org-a").await;
    let org_b = app.org("org-b").await;
    let (b_agent, _) = app.agent(&org_b, "b's agent").await;
    app.set_status(&b_agent, "active").await.assert_status(200);
    let missing = "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70";
    for role in ["owner", "admin", "viewer"] {
        let token = app.token(&org_a, role).await;
        for target in [b_agent.as_str(), missing] {
            for (method, path, body) in agent_endpoints(target) {
                let reply = send(app, method.clone(), &path, &token, body).await;
                // Another org's agent and an agent that does not exist look the same.
                reply.assert_error(404, "agent_not_found");
                assert!(reply.body.get("field").is_none(), "{role} {method} {path}");
            }
        }
        let list = app.get("/v1/agents", &token).await;
        assert!(
            list.assert_status(200)["data"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{role} sees nothing of org B"
        );
        let list = app.get(&format!("/v1/agents?org_id={org_b}"), &token).await;
        assert!(list.assert_status(200)["data"]
            .as_array()
            .unwrap()
            .is_empty());
        app.get(&format!("/v1/orgs/{org_b}"), &token)
            .await
            .assert_error(404, "org_not_found");
        app.post(
            &format!("/v1/orgs/{org_b}/tokens"),
            &token,
            json!({ "role": "owner", "name": "x" }),
        )
        .await
        .assert_error(404, "org_not_found");
        app.get(&format!("/v1/audit?org_id={org_b}"), &token)
            .await
            .assert_error(404, "org_not_found");
        app.get(&format!("/v1/audit/verify?org_id={org_b}"), &token)
            .await
            .assert_error(404, "org_not_found");
        if role != "viewer" {
            app.post("/v1/agents", &token, passport(&org_b, "planted"))
                .await
                .assert_error(404, "org_not_found");
        }
    }
    // B's agent was untouched by all of that.
    let b = app.get(&format!("/v1/agents/{b_agent}"), ADMIN).await;
    assert_eq!(b.assert_status(200)["status"], "active");
    assert_eq!(b.body["version"], 2);
    // The platform admin sees both orgs.
    let (a_agent, _) = app.agent(&org_a, "a's agent").await;
    let all = app.get("/v1/agents", ADMIN).await;
    let ids: Vec<&str> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["agent_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&a_agent.as_str()) && ids.contains(&b_agent.as_str()));
    // And an agent's own key cannot reach another agent.
    let (_, a_key) = app.agent(&org_a, "a's keyed agent").await;
    app.call(
        Method::POST,
        &format!("/v1/agents/{b_agent}/heartbeat"),
        Some(&a_key),
        None,
    )
    .await
    .assert_error(404, "agent_not_found");
}

pub async fn viewer_cannot_write(app: &TestApp) {
    let org = app.org("viewers").await;
    let (id, _) = app.agent(&org, "watched").await;
    let viewer = app.token(&org, "viewer").await;
    app.get(&format!("/v1/agents/{id}"), &viewer)
        .await
        .assert_status(200);
    app.get(&format!("/v1/agents/{id}/events"), &viewer)
        .await
        .assert_status(200);
    app.get("/v1/audit", &viewer).await.assert_status(200);
    for (method, path, body) in agent_endpoints(&id)
        .into_iter()
        .filter(|(m, _, _)| *m != Method::GET)
    {
        send(app, method, &path, &viewer, body)
            .await
            .assert_error(403, "forbidden");
    }
    app.post("/v1/agents", &viewer, passport(&org, "nope"))
        .await
        .assert_error(403, "forbidden");
    let agent = app.get(&format!("/v1/agents/{id}"), ADMIN).await;
    assert_eq!(agent.body["version"], 1, "nothing changed");
    // Admin and owner tokens of the org can write.
    for role in ["admin", "owner"] {
        let token = app.token(&org, role).await;
        app.patch(&format!("/v1/agents/{id}"), &token, json!({ "role": role }))
            .await
            .assert_status(200);
    }
}

pub async fn token_rules(app: &TestApp) {
    let org = app.org("tokens").await;
    let owner = app.token(&org, "owner").await;
    assert!(owner.starts_with("vk_admin_"));
    let made = app
        .post(
            &format!("/v1/orgs/{org}/tokens"),
            &owner,
            json!({ "role": "viewer", "name": "dash" }),
        )
        .await;
    let body = made.assert_status(201);
    assert!(body["token_id"].as_str().unwrap().starts_with("tok_"));
    assert_eq!(body["role"], "viewer");
    for role in ["admin", "viewer"] {
        let token = app.token(&org, role).await;
        app.post(
            &format!("/v1/orgs/{org}/tokens"),
            &token,
            json!({ "role": "viewer", "name": "x" }),
        )
        .await
        .assert_error(403, "forbidden");
    }
    let reply = app
        .post(
            &format!("/v1/orgs/{org}/tokens"),
            ADMIN,
            json!({ "role": "platform", "name": "x" }),
        )
        .await;
    reply.assert_error(400, "invalid_request");
    assert_eq!(reply.body["field"], "role");
    // Org tokens cannot create orgs.
    app.post("/v1/orgs", &owner, json!({ "name": "x", "slug": "xx" }))
        .await
        .assert_error(403, "forbidden");
    let own = app.get(&format!("/v1/orgs/{org}"), &owner).await;
    assert_eq!(own.assert_status(200)["slug"], "tokens");
    // Only the hash is stored.
    let stored = app
        .count(&format!(
            "SELECT COUNT(*) FROM admin_tokens WHERE token_hash = '{owner}'"
        ))
        .await;
    assert_eq!(stored, 0);
}

pub async fn authentication(app: &TestApp) {
    for token in [None, Some("vk_admin_nope"), Some("garbage"), Some("")] {
        let reply = app.call(Method::GET, "/v1/agents", token, None).await;
        reply.assert_error(401, "unauthorized");
        assert!(reply
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer"));
    }
    let reply = app
        .send(
            app.client
                .get(format!("{}/v1/agents", app.base))
                .header("authorization", format!("Basic {ADMIN}")),
        )
        .await;
    reply.assert_error(401, "unauthorized");
    // An agent key is not an admin token.
    let org = app.org("authn").await;
    let (_, key) = app.agent(&org, "keyed").await;
    app.get("/v1/agents", &key)
        .await
        .assert_error(401, "unauthorized");
}

pub async fn token_revocation(app: &TestApp) {
    let org = app.org("revoking").await;
    let owner = app.token(&org, "owner").await;
    let made = app
        .post(
            &format!("/v1/orgs/{org}/tokens"),
            &owner,
            json!({ "role": "admin", "name": "ci" }),
        )
        .await;
    let body = made.assert_status(201).clone();
    let (id, secret) = (
        body["token_id"].as_str().unwrap(),
        body["token"].as_str().unwrap(),
    );
    app.get("/v1/agents", secret).await.assert_status(200);
    // Only the org's owner or the platform admin revokes; another org sees nothing.
    app.call(
        Method::DELETE,
        &format!("/v1/orgs/{org}/tokens/{id}"),
        Some(secret),
        None,
    )
    .await
    .assert_error(403, "forbidden");
    let other = app.org("bystanders").await;
    let outsider = app.token(&other, "owner").await;
    app.call(
        Method::DELETE,
        &format!("/v1/orgs/{org}/tokens/{id}"),
        Some(&outsider),
        None,
    )
    .await
    .assert_error(404, "org_not_found");
    app.call(
        Method::DELETE,
        &format!("/v1/orgs/{other}/tokens/{id}"),
        Some(ADMIN),
        None,
    )
    .await
    .assert_error(404, "token_not_found");
    let revoked = app
        .call(
            Method::DELETE,
            &format!("/v1/orgs/{org}/tokens/{id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(revoked.assert_status(200)["token_id"], id);
    app.get("/v1/agents", secret)
        .await
        .assert_error(401, "unauthorized");
    app.call(
        Method::DELETE,
        &format!("/v1/orgs/{org}/tokens/{id}"),
        Some(&owner),
        None,
    )
    .await
    .assert_error(404, "token_not_found");
    let log = app.get("/v1/audit", &owner).await;
    assert_eq!(log.body["data"][0]["action"], "token.revoked");
}
