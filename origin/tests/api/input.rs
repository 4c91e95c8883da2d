use serde_json::json;

use crate::harness::{passport, Reply, TestApp, ADMIN};

async fn raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> Reply {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(ADMIN)
        .body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    app.send(req).await
}

#[track_caller]
fn assert_field(reply: &Reply, status: u16, code: &str, field: &str) {
    reply.assert_error(status, code);
    assert_eq!(reply.body["field"], field, "body: {}", reply.body);
}

pub async fn orgs(app: &TestApp) {
    use reqwest::Method;
    let json = Some("application/json");
    raw(app, Method::POST, "/v1/orgs", json, "{not json")
        .await
        .assert_error(400, "invalid_request");
    raw(app, Method::POST, "/v1/orgs", json, "")
        .await
        .assert_error(400, "invalid_request");
    raw(
        app,
        Method::POST,
        "/v1/orgs",
        Some("text/plain"),
        r#"{"name":"a","slug":"ab"}"#,
    )
    .await
    .assert_error(415, "unsupported_media_type");
    raw(
        app,
        Method::POST,
        "/v1/orgs",
        None,
        r#"{"name":"a","slug":"ab"}"#,
    )
    .await
    .assert_error(415, "unsupported_media_type");
    let huge = format!(r#"{{"name":"{}","slug":"big"}}"#, "x".repeat(100 * 1024));
    raw(app, Method::POST, "/v1/orgs", json, &huge)
        .await
        .assert_error(413, "payload_too_large");
    let reply = app
        .post(
            "/v1/orgs",
            ADMIN,
            json!({ "name": "a", "slug": "ab", "plan": "gold" }),
        )
        .await;
    assert_field(&reply, 400, "invalid_request", "plan");
    let reply = app.post("/v1/orgs", ADMIN, json!({ "name": "a" })).await;
    assert_field(&reply, 400, "invalid_request", "slug");
    for slug in ["A", "-ab", "ab-", "a", "a_b", "ab cd"] {
        let reply = app
            .post("/v1/orgs", ADMIN, json!({ "name": "a", "slug": slug }))
            .await;
        assert_field(&reply, 400, "invalid_request", "slug");
    }
    for name in [" ", "Acme\u{202E}", "Ac\u{200C}me"] {
        let reply = app
            .post("/v1/orgs", ADMIN, json!({ "name": name, "slug": "blank" }))
            .await;
        assert_field(&reply, 400, "invalid_request", "name");
    }
    app.post("/v1/orgs", ADMIN, json!({ "name": "a", "slug": "taken" }))
        .await
        .assert_status(201);
    app.post("/v1/orgs", ADMIN, json!({ "name": "b", "slug": "taken" }))
        .await
        .assert_error(409, "already_exists");
    app.get("/v1/orgs/org_nope", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    app.get("/v1/orgs/org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71", ADMIN)
        .await
        .assert_error(404, "org_not_found");
    let org = app.org("tok-input").await;
    let reply = app
        .post(
            &format!("/v1/orgs/{org}/tokens"),
            ADMIN,
            json!({ "role": "root", "name": "x" }),
        )
        .await;
    assert_field(&reply, 400, "invalid_request", "role");
}

pub async fn agents(app: &TestApp) {
    let org = app.org("agent-input").await;
    let cases = [
        (json!({ "colour": "red" }), "colour"),
        (json!({ "regions": ["US", "usa"] }), "regions[1]"),
        (
            json!({ "capabilities": [{ "id": "Payments" }] }),
            "capabilities[0].id",
        ),
        (
            json!({ "capabilities": [{ "id": "a" }, { "id": "a" }] }),
            "capabilities[1].id",
        ),
        (json!({ "assurance_level": "L7" }), "assurance_level"),
        (json!({ "tier": "gold" }), "tier"),
        (json!({ "owner": { "display_name": "x" } }), "owner.contact"),
        (
            json!({ "owner": { "display_name": "x", "contact": "y", "pager": "z" } }),
            "owner.pager",
        ),
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x".repeat(201) }), "name"),
        (json!({ "metadata": { "n": 5 } }), "metadata.n"),
        (
            json!({ "public_jwk": { "kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "secret" } }),
            "public_jwk.d",
        ),
        (json!({ "limits": [1, 2] }), "limits"),
        (json!({ "require_act_as": "yes" }), "require_act_as"),
        (json!({ "org_id": "org_bad" }), "org_id"),
        // Invisible and bidi characters reach partners verbatim: refused, naming the field.
        (json!({ "name": "Acme\u{202E}toB troppuS" }), "name"),
        (json!({ "name": "Acme\u{200B}Bot" }), "name"),
        (json!({ "name": "Acme\nVerified by Vouch" }), "name"),
        (
            json!({ "owner": { "display_name": "Acme\u{2067}Team", "contact": "a@b.c" } }),
            "owner.display_name",
        ),
        (
            json!({ "owner": { "display_name": "Acme", "contact": "a@b.c\u{200D}" } }),
            "owner.contact",
        ),
        (json!({ "role": "Tier-2\u{FEFF}" }), "role"),
        (json!({ "description": "refunds\u{202D}" }), "description"),
        (
            json!({ "metadata": { "team": "ops\u{2060}" } }),
            "metadata.team",
        ),
    ];
    for (extra, field) in cases {
        let mut body = passport(&org, "bad input");
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let reply = app.post("/v1/agents", ADMIN, body).await;
        assert_field(&reply, 400, "invalid_request", field);
    }
    let mut body = passport(&org, "no owner");
    body.as_object_mut().unwrap().remove("owner");
    assert_field(
        &app.post("/v1/agents", ADMIN, body).await,
        400,
        "invalid_request",
        "owner",
    );
    app.post("/v1/agents", ADMIN, json!([1, 2]))
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM agents").await,
        0,
        "nothing bad was stored"
    );
    app.get("/v1/agents/ap_nope", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    app.get("/v1/agents/ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70", ADMIN)
        .await
        .assert_error(404, "agent_not_found");
}

pub async fn patch_and_status(app: &TestApp) {
    use reqwest::Method;
    let org = app.org("patch-input").await;
    let (id, _) = app.agent(&org, "patched").await;
    let path = format!("/v1/agents/{id}");
    for ct in ["application/merge-patch+json", "application/json"] {
        let body = json!({ "role": format!("sent as {ct}") }).to_string();
        raw(app, Method::PATCH, &path, Some(ct), &body)
            .await
            .assert_status(200);
    }
    raw(
        app,
        Method::PATCH,
        &path,
        Some("application/json-patch+json"),
        "[]",
    )
    .await
    .assert_error(415, "unsupported_media_type");
    raw(
        app,
        Method::PATCH,
        &path,
        Some("application/merge-patch+json"),
        "{oops",
    )
    .await
    .assert_error(400, "invalid_request");
    raw(
        app,
        Method::PATCH,
        &path,
        Some("application/merge-patch+json"),
        "[1]",
    )
    .await
    .assert_error(400, "invalid_request");
    for (patch, field) in [
        (json!({ "colour": "red" }), "colour"),
        (json!({ "regions": ["nowhere"] }), "regions[0]"),
        (json!({ "version": 9 }), "version"),
        (
            json!({ "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70" }),
            "agent_id",
        ),
        (json!({ "metadata": { "k": [] } }), "metadata.k"),
        (json!({ "role": "\u{202E}nimda" }), "role"),
        (json!({ "description": "a\u{200B}b" }), "description"),
    ] {
        assert_field(
            &app.patch(&path, ADMIN, patch).await,
            400,
            "invalid_request",
            field,
        );
    }
    let status = format!("{path}/status");
    for (body, field) in [
        (json!({ "status": "paused" }), "status"),
        (json!({ "status": "active", "why": "x" }), "why"),
        (json!({}), "status"),
        (
            json!({ "status": "suspended", "reason": "x".repeat(501) }),
            "reason",
        ),
        (
            json!({ "status": "suspended", "reason": "fraud\u{202E}" }),
            "reason",
        ),
    ] {
        assert_field(
            &app.put(&status, ADMIN, body).await,
            400,
            "invalid_request",
            field,
        );
    }
    assert_eq!(
        app.get(&path, ADMIN).await.body["version"],
        3,
        "only the two good patches counted"
    );
    let bad_if_match = app
        .send(
            app.client
                .patch(format!("{}{path}", app.base))
                .bearer_auth(ADMIN)
                .header("content-type", "application/json")
                .header("if-match", "\"1\"")
                .body("{\"role\":\"x\"}"),
        )
        .await;
    bad_if_match.assert_error(412, "version_mismatch");
}

pub async fn queries(app: &TestApp) {
    for (query, field) in [
        ("status=sleeping", "status"),
        ("capability=Bad!", "capability"),
        ("region=usa", "region"),
        ("limit=many", "limit"),
        ("org_id=org_x", "org_id"),
        ("colour=red", "colour"),
    ] {
        let reply = app.get(&format!("/v1/agents?{query}"), ADMIN).await;
        reply.assert_error(400, "invalid_request");
        assert!(
            reply.body["message"].as_str().unwrap().contains(field) || reply.body["field"] == field,
            "{query}: {}",
            reply.body
        );
    }
    app.get("/v1/audit?limit=0", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    app.get("/v1/audit?cursor=abc", ADMIN)
        .await
        .assert_error(400, "invalid_request");
}
