use crate::harness::{TestApp, ADMIN};

pub async fn operations(app: &TestApp) {
    let health = app.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(health.assert_status(200)["status"], "ok");
    assert!(
        health.header("x-request-id").is_some(),
        "every response carries a request id"
    );
    let ready = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    let expected = if app.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(ready.assert_status(200)["database"], expected);
    // A caller's request id is echoed back.
    let echoed = app
        .send(
            app.client
                .get(format!("{}/healthz", app.base))
                .header("x-request-id", "trace-me-123"),
        )
        .await;
    assert_eq!(
        echoed.header("x-request-id").as_deref(),
        Some("trace-me-123")
    );

    app.get("/v1/agents", ADMIN).await.assert_status(200);
    let metrics = app.call(reqwest::Method::GET, "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("vouch_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/v1/agents\""), "{text}");
    assert!(
        text.contains("vouch_http_request_duration_seconds_bucket"),
        "{text}"
    );

    let openapi = app
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    let doc = openapi.assert_status(200);
    for path in [
        "/v1/orgs",
        "/v1/orgs/{org_id}",
        "/v1/orgs/{org_id}/tokens",
        "/v1/agents",
        "/v1/agents/{agent_id}",
        "/v1/agents/{agent_id}/status",
        "/v1/agents/{agent_id}/keys",
        "/v1/agents/{agent_id}/events",
        "/v1/agents/{agent_id}/heartbeat",
        "/v1/audit",
        "/v1/audit/verify",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    // A passport as served has exactly the properties its schema names (one object schema,
    // not an allOf whose closed part would refuse the others); so does a registration body.
    let passport_schema = &doc["components"]["schemas"]["Passport"];
    assert!(passport_schema.get("allOf").is_none(), "{passport_schema}");
    let org = app.org("openapi").await;
    let (agent, _) = app.agent(&org, "Schema Bot").await;
    app.set_status(&agent, "active").await.assert_status(200);
    app.set_status(&agent, "suspended").await.assert_status(200);
    let served = app.get("/v1/agents", ADMIN).await;
    let served = served.assert_status(200);
    assert!(!served["data"].as_array().unwrap().is_empty());
    for passport in served["data"].as_array().unwrap() {
        let mut fields: Vec<&String> = passport.as_object().unwrap().keys().collect();
        fields.retain(|f| passport_schema["properties"].get(f.as_str()).is_none());
        assert!(fields.is_empty(), "not in the schema: {fields:?}");
    }
    let registration = &doc["components"]["schemas"]["NewAgent"];
    for field in ["name", "owner", "capabilities", "regions", "org_id"] {
        assert!(
            registration["properties"].get(field).is_some(),
            "{field}: {registration}"
        );
    }
    // The errors every operation can answer from the shared extractors are listed.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = &operation["responses"];
            if path.contains('{') {
                assert!(responses.get("400").is_some(), "{method} {path}: 400");
            }
            if operation.get("requestBody").is_some() {
                assert!(responses.get("415").is_some(), "{method} {path}: 415");
            }
            if path.starts_with("/v1/") {
                assert!(responses.get("429").is_some(), "{method} {path}: 429");
            }
        }
    }

    app.call(reqwest::Method::GET, "/v2/nothing", None, None)
        .await
        .assert_error(404, "not_found");
    app.call(reqwest::Method::DELETE, "/v1/agents", Some(ADMIN), None)
        .await
        .assert_error(405, "method_not_allowed");
}

pub async fn readiness_hides_database_errors(app: &TestApp) {
    app.call(reqwest::Method::GET, "/readyz", None, None)
        .await
        .assert_status(200);
    let name = app.refuse_connections().await;
    let down = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    down.assert_error(503, "unavailable");
    assert_eq!(
        down.body["message"], "the service is not ready: the database is not answering",
        "{}",
        down.body
    );
    let text = down.body.to_string();
    for leak in [name.as_str(), "connections", "postgres", "error returned"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
}

/// Without `VOUCH_ADMIN_TOKEN`, the database's first start generates a platform token (printed
/// once) and no later start does — not even when no platform token is stored any more; the
/// token works and only its hash is stored.
pub async fn generated_platform_token(app: &TestApp) {
    use vouch_origin::app::{bootstrap, PlatformToken};
    let (fresh, first) = app
        .sibling(crate::harness::Options {
            unconfigured: true,
            ..Default::default()
        })
        .await;
    let PlatformToken::Generated(token) = first else {
        panic!("the first start generates a token, not {first:?}");
    };
    assert!(token.starts_with("vk_admin_"));
    let restart =
        |admin: Option<&'static str>| bootstrap(fresh.store.clone(), crate::harness::boot(admin));
    assert_eq!(
        restart(None).await.unwrap().1,
        PlatformToken::Stored,
        "shown once"
    );
    let org = fresh
        .post(
            "/v1/orgs",
            &token,
            serde_json::json!({ "name": "Boot", "slug": "boot" }),
        )
        .await;
    org.assert_status(201);
    assert_eq!(
        fresh
            .count(&format!(
                "SELECT COUNT(*) FROM admin_tokens WHERE token_hash = '{token}'"
            ))
            .await,
        0
    );
    let platform_tokens = "SELECT COUNT(*) FROM admin_tokens WHERE role = 'platform'";
    assert_eq!(fresh.count(platform_tokens).await, 1);
    // Configuring VOUCH_ADMIN_TOKEN later retires the generated token.
    let configured = restart(Some("a-configured-platform-token-replacing-it"))
        .await
        .unwrap();
    assert_eq!(configured.1, PlatformToken::Configured);
    assert_eq!(fresh.count(platform_tokens).await, 0);
    fresh
        .get("/v1/agents", &token)
        .await
        .assert_error(401, "unauthorized");
    // Unsetting it again generates nothing: a token is printed at the first start only.
    for _ in 0..2 {
        assert_eq!(restart(None).await.unwrap().1, PlatformToken::Missing);
    }
    assert_eq!(fresh.count(platform_tokens).await, 0);
    assert!(restart(Some("too short")).await.is_err());
    // A database first started with VOUCH_ADMIN_TOKEN (this suite's) never generates one.
    let started = bootstrap(app.store.clone(), crate::harness::boot(None))
        .await
        .unwrap();
    assert_eq!(started.1, PlatformToken::Missing);
    assert_eq!(app.count(platform_tokens).await, 0);
}

/// `VOUCH_ADMIN_TOKEN` may be any string of 32 or more characters, not only `vk_admin_…`.
pub async fn configured_platform_token_without_prefix(app: &TestApp) {
    let token = "an-operator-chosen-platform-token-0123456789";
    let (state, platform) =
        vouch_origin::app::bootstrap(app.store.clone(), crate::harness::boot(Some(token)))
            .await
            .unwrap();
    assert_eq!(platform, vouch_origin::app::PlatformToken::Configured);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, vouch_origin::app::router(state)).await;
    });
    let ok = app
        .client
        .get(format!("{base}/v1/agents"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let wrong = app
        .client
        .get(format!("{base}/v1/agents"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    server.abort();
}
