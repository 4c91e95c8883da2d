//! Partners (SPEC §14): registration, listing, revocation and key rotation by the platform admin
//! only (an org token gets `403` whatever it names: no existence oracle); keys shown once and
//! queued by hash for KV and the status journal in the change's transaction; tokens for a
//! partner audience only while it is live.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{passport, Reply, TestApp, ADMIN};

async fn delete(app: &TestApp, path: &str, token: &str) -> Reply {
    app.call(Method::DELETE, path, Some(token), None).await
}

async fn create(app: &TestApp, name: &str) -> Value {
    app.post(
        "/v1/partners",
        ADMIN,
        json!({ "name": name, "contact": format!("security@{name}.example") }),
    )
    .await
    .assert_status(201)
    .clone()
}

fn sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What the KV and journal queues hold for a key: `(target_version, aggregate_type)` each.
async fn queued(app: &TestApp, key: &str) -> (i64, i64) {
    let kv_key = format!("partner:{}", sha256(key));
    let of = |queue: &str| {
        format!(
            "SELECT COALESCE(MAX(target_version), 0) FROM {queue} \
             WHERE kv_key = '{kv_key}' AND aggregate_type = 'partner_key' AND aggregate_id = '{}'",
            sha256(key)
        )
    };
    (
        app.count(&of("kv_outbox")).await,
        app.count(&of("journal_outbox")).await,
    )
}

pub async fn crud_and_rotation(app: &TestApp) {
    let before = app.count("SELECT COUNT(*) FROM audit_events").await;
    let created = create(app, "acme-pay").await;
    let id = created["partner_id"].as_str().unwrap().to_owned();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(id.starts_with("pt_") && id.len() == 35, "{created}");
    assert!(
        key.starts_with("vk_partner_") && key.len() == 11 + 43,
        "{created}"
    );
    assert_eq!(created["status"], "active");
    assert_eq!(created["name"], "acme-pay");
    assert_eq!(created["contact"], "security@acme-pay.example");
    assert_eq!(created["revoked_at"], Value::Null);
    // Stored only as its hash; queued for KV and the journal, as issued (version 1).
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM partner_keys WHERE key_hash = '{}'",
            sha256(&key)
        ))
        .await,
        1
    );
    assert_eq!(queued(app, &key).await, (1, 1));
    let shown = app.get(&format!("/v1/partners/{id}"), ADMIN).await;
    let shown = shown.assert_status(200);
    assert!(shown.get("key").is_none(), "the key is shown once: {shown}");
    assert_eq!(shown["partner_id"], id);

    // Listed newest first, a page at a time.
    let second = create(app, "globex").await;
    let page = app.get("/v1/partners?limit=1", ADMIN).await;
    let page = page.assert_status(200).clone();
    assert_eq!(page["data"][0]["partner_id"], second["partner_id"]);
    assert!(page["data"][0].get("key").is_none());
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = app
        .get(&format!("/v1/partners?limit=1&cursor={cursor}"), ADMIN)
        .await;
    assert_eq!(next.assert_status(200)["data"][0]["partner_id"], id);

    // Rotation: a new key, the old one queued as revoked (version 2).
    let rotated = app
        .post(&format!("/v1/partners/{id}/keys"), ADMIN, json!({}))
        .await;
    let rotated = rotated.assert_status(201).clone();
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert!(new_key.starts_with("vk_partner_") && new_key != key);
    assert_eq!(rotated["partner_id"], id);
    assert_eq!(queued(app, &key).await, (2, 2));
    assert_eq!(queued(app, &new_key).await, (1, 1));
    let shown = app.get(&format!("/v1/partners/{id}"), ADMIN).await;
    assert_eq!(shown.body["key_issued_at"], rotated["rotated_at"]);

    // Revocation: every live key revoked; a second one changes nothing; no new key after it.
    let revoked = delete(app, &format!("/v1/partners/{id}"), ADMIN).await;
    let revoked = revoked.assert_status(200).clone();
    assert_eq!(revoked["status"], "revoked");
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(queued(app, &new_key).await, (2, 2));
    let again = delete(app, &format!("/v1/partners/{id}"), ADMIN).await;
    assert_eq!(
        again.assert_status(200)["revoked_at"],
        revoked["revoked_at"]
    );
    app.post(&format!("/v1/partners/{id}/keys"), ADMIN, json!({}))
        .await
        .assert_error(409, "partner_revoked");
    assert_eq!(
        app.get(&format!("/v1/partners/{id}"), ADMIN).await.body["status"],
        "revoked"
    );

    // One audit event per change, on the platform chain, none of them holding a key.
    let changes = app.count("SELECT COUNT(*) FROM audit_events").await - before;
    assert_eq!(changes, 4, "two creations, a rotation, a revocation");
    for (action, n) in [
        ("partner.created", 2),
        ("partner.key_rotated", 1),
        ("partner.revoked", 1),
    ] {
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM audit_events WHERE action = '{action}' AND chain_id = 'platform'"
            ))
            .await,
            n,
            "{action}"
        );
    }
    for row in app.outbox().await {
        assert!(
            !row.payload.contains(&key) && !row.payload.contains(&sha256(&key)),
            "an event holds a key: {}",
            row.payload
        );
    }

    // Unknown and malformed ids.
    let nobody = "pt_0192f2a4c3b87d9e8f1a2b3c4d5e6f00";
    for reply in [
        app.get(&format!("/v1/partners/{nobody}"), ADMIN).await,
        delete(app, &format!("/v1/partners/{nobody}"), ADMIN).await,
        app.post(&format!("/v1/partners/{nobody}/keys"), ADMIN, json!({}))
            .await,
    ] {
        reply.assert_error(404, "partner_not_found");
    }
    app.get("/v1/partners/ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f00", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    // Bodies are checked like every other.
    for (body, field) in [
        (json!({ "name": "x" }), None),
        (json!({ "name": "", "contact": "c" }), Some("name")),
        (json!({ "name": "x", "contact": "a\nb" }), Some("contact")),
        (
            json!({ "name": "x", "contact": "c", "tier": 1 }),
            Some("tier"),
        ),
    ] {
        let reply = app.post("/v1/partners", ADMIN, body.clone()).await;
        reply.assert_error(400, "invalid_request");
        if let Some(field) = field {
            assert_eq!(reply.body["field"], field, "{body}");
        }
    }
}

/// Every partner route is the platform admin's: an org token of any role is `403` before
/// anything is looked up, so an existing and a missing partner answer alike.
pub async fn authorization(app: &TestApp) {
    let existing = create(app, "initech").await;
    let existing = existing["partner_id"].as_str().unwrap().to_owned();
    let missing = "pt_0192f2a4c3b87d9e8f1a2b3c4d5e6f00".to_owned();
    let org = app.org("partners-authz").await;
    for role in ["owner", "admin", "viewer"] {
        let token = app.token(&org, role).await;
        app.post(
            "/v1/partners",
            &token,
            json!({ "name": "sneaky", "contact": "x@y.z" }),
        )
        .await
        .assert_error(403, "forbidden");
        app.get("/v1/partners", &token)
            .await
            .assert_error(403, "forbidden");
        for id in [&existing, &missing] {
            let answers = [
                app.get(&format!("/v1/partners/{id}"), &token).await,
                delete(app, &format!("/v1/partners/{id}"), &token).await,
                app.post(&format!("/v1/partners/{id}/keys"), &token, json!({}))
                    .await,
            ];
            for reply in answers {
                reply.assert_error(403, "forbidden");
            }
        }
    }
    // Nothing changed, and no credential is no access at all.
    assert_eq!(
        app.get(&format!("/v1/partners/{existing}"), ADMIN)
            .await
            .body["status"],
        "active"
    );
    app.call(Method::GET, "/v1/partners", None, None)
        .await
        .assert_error(401, "unauthorized");
    // A partner key is not an admin token.
    let key = create(app, "hooli").await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get("/v1/partners", &key)
        .await
        .assert_error(401, "unauthorized");
}

async fn token(app: &TestApp, agent: &str, key: &str, audience: Option<&str>) -> Reply {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", agent),
        ("client_secret", key),
    ];
    if let Some(audience) = audience {
        form.push(("audience", audience));
    }
    app.send(
        app.client
            .post(format!("{}/oauth/token", app.base))
            .form(&form),
    )
    .await
}

fn claims(access_token: &str) -> Value {
    use base64::Engine;
    let payload = access_token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A token for a partner audience is issued only while that partner is live (`invalid_target`
/// otherwise); other audiences are the caller's business, as before.
pub async fn token_audience(app: &TestApp) {
    let org = app.org("partners-aud").await;
    let mut p = passport(&org, "aud bot");
    p["status"] = json!("active");
    let registered = app.post("/v1/agents", ADMIN, p).await;
    let registered = registered.assert_status(201);
    let agent = registered["agent"]["agent_id"].as_str().unwrap().to_owned();
    let api_key = registered["api_key"].as_str().unwrap().to_owned();
    let partner = create(app, "umbrella").await["partner_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let issued = token(app, &agent, &api_key, Some(&partner)).await;
    let issued = issued.assert_status(200);
    assert_eq!(
        claims(issued["access_token"].as_str().unwrap())["aud"],
        partner
    );
    let other = token(app, &agent, &api_key, Some("https://shop.example")).await;
    assert_eq!(
        claims(other.assert_status(200)["access_token"].as_str().unwrap())["aud"],
        "https://shop.example"
    );
    let none = token(app, &agent, &api_key, None).await;
    assert!(
        claims(none.assert_status(200)["access_token"].as_str().unwrap())
            .get("aud")
            .is_none()
    );

    // A token exchange's `audience` sets the delegated token's `aud` (RFC 8693), checked alike.
    let mut p = passport(&org, "aud delegatee");
    p["status"] = json!("active");
    let delegatee = app.post("/v1/agents", ADMIN, p).await;
    let delegatee = delegatee.assert_status(201).clone();
    let delegatee_id = delegatee["agent"]["agent_id"].as_str().unwrap();
    app.post(
        "/v1/delegations",
        ADMIN,
        json!({ "delegator": agent, "delegatee": delegatee_id, "scopes": ["payments.refund"],
                "ttl_seconds": 3600, "max_depth": 2 }),
    )
    .await
    .assert_status(201);
    let subject = none.body["access_token"].as_str().unwrap().to_owned();
    let actor = token(
        app,
        delegatee_id,
        delegatee["api_key"].as_str().unwrap(),
        None,
    )
    .await;
    let actor = actor.assert_status(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let exchange = |audience: Option<&str>| {
        let jwt = "urn:ietf:params:oauth:token-type:jwt";
        let mut form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject.as_str()),
            ("subject_token_type", jwt),
            ("actor_token", actor.as_str()),
            ("actor_token_type", jwt),
        ];
        if let Some(audience) = audience {
            form.push(("audience", audience));
        }
        app.send(
            app.client
                .post(format!("{}/oauth/token", app.base))
                .form(&form),
        )
    };
    let delegated = exchange(Some(&partner)).await;
    let delegated = claims(
        delegated.assert_status(200)["access_token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(delegated["aud"], partner);
    assert!(delegated["act"].is_object(), "{delegated}");
    let carried = exchange(None).await;
    assert!(
        claims(carried.assert_status(200)["access_token"].as_str().unwrap())
            .get("aud")
            .is_none()
    );

    delete(app, &format!("/v1/partners/{partner}"), ADMIN)
        .await
        .assert_status(200);
    let refused = exchange(Some(&partner)).await;
    assert_eq!(refused.body["error"], "invalid_target", "{}", refused.body);
    for audience in [
        partner.as_str(),
        "pt_0192f2a4c3b87d9e8f1a2b3c4d5e6f00",
        "pt_not-an-id",
    ] {
        let refused = token(app, &agent, &api_key, Some(audience)).await;
        assert_eq!(refused.status.as_u16(), 400, "{}", refused.body);
        assert_eq!(refused.body["error"], "invalid_target", "{audience}");
    }
    // A wrong secret is still `invalid_client`, whatever the audience: no partner oracle for
    // callers without credentials.
    let refused = token(
        app,
        &agent,
        "vk_agent_wrong",
        Some("pt_0192f2a4c3b87d9e8f1a2b3c4d5e6f00"),
    )
    .await;
    assert_eq!(refused.body["error"], "invalid_client");
}
