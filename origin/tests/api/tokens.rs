use reqwest::StatusCode;
use serde_json::{json, Value};
use vouch_core::jwk::JwkSet;
use vouch_core::token::{self, Expectations};

use crate::harness::{passport, Reply, TestApp, ADMIN, ISSUER};

async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> Reply {
    app.send(
        app.client
            .post(format!("{}/oauth/token", app.base))
            .form(form),
    )
    .await
}

async fn jwks(app: &TestApp) -> JwkSet {
    let reply = app
        .call(reqwest::Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    JwkSet::from_json(reply.assert_status(200).to_string().as_bytes()).unwrap()
}

/// The JOSE header of a compact JWS.
fn header_of(token: &str) -> Value {
    serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap()
}

fn now_seconds() -> i64 {
    vouch_origin::clock::now().unix_seconds()
}

/// Verifies `access_token` against the origin's JWKS and returns its claims.
async fn verified(app: &TestApp, access_token: &str) -> token::Claims {
    let set = jwks(app).await;
    let expect = Expectations {
        issuer: ISSUER,
        audience: None,
        skew_seconds: 60,
        max_len: token::DEFAULT_MAX_LEN,
    };
    token::verify(access_token, &|kid| set.get(kid), &expect, now_seconds())
        .unwrap()
        .1
}

pub async fn client_credentials(app: &TestApp) {
    let org = app.org("tokens-cc").await;
    let (agent, key) = app.registered(&org, "token bot", "active").await;
    let reply = token_request(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &agent),
            ("client_secret", &key),
        ],
    )
    .await;
    let body = reply.assert_status(200).clone();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    assert_eq!(body["scope"], "payments.refund data.export");
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    let claims = verified(app, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims.sub.as_str(), agent);
    assert_eq!(claims.org.as_str(), org);
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.exp - claims.iat, 300);
    assert_eq!(claims.ver, 1);
    assert!(claims.act.is_none() && claims.dlg.is_empty());

    // HTTP Basic, a narrower scope and an audience.
    let reply = app
        .send(
            app.client
                .post(format!("{}/oauth/token", app.base))
                .basic_auth(&agent, Some(&key))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", "data.export"),
                    ("audience", "https://shop.example"),
                ]),
        )
        .await;
    let body = reply.assert_status(200).clone();
    assert_eq!(body["scope"], "data.export");
    let claims = verified(app, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims.aud, vec!["https://shop.example".to_owned()]);

    // Refusals, in RFC 6749 §5.2 shape.
    let oauth_error = |reply: &Reply, status: u16, error: &str| {
        assert_eq!(
            (reply.status.as_u16(), reply.body["error"].as_str()),
            (status, Some(error)),
            "{}",
            reply.body
        );
        assert!(reply.body["error_description"].is_string());
    };
    let r = token_request(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &agent),
            ("client_secret", "vk_agent_wrong"),
        ],
    )
    .await;
    oauth_error(&r, 401, "invalid_client");
    let r = token_request(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"),
            ("client_secret", &key),
        ],
    )
    .await;
    oauth_error(&r, 401, "invalid_client");
    let r = token_request(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &agent),
            ("client_secret", &key),
            ("scope", "payments.transfer"),
        ],
    )
    .await;
    oauth_error(&r, 400, "invalid_scope");
    let r = token_request(
        app,
        &[
            ("grant_type", "password"),
            ("client_id", &agent),
            ("client_secret", &key),
        ],
    )
    .await;
    oauth_error(&r, 400, "unsupported_grant_type");
    let r = token_request(app, &[("client_id", &agent), ("client_secret", &key)]).await;
    oauth_error(&r, 400, "invalid_request");
    let r = app
        .post(
            "/oauth/token",
            ADMIN,
            json!({ "grant_type": "client_credentials" }),
        )
        .await;
    oauth_error(&r, 400, "invalid_request");

    // Only an active agent gets a token.
    let draft = app
        .post("/v1/agents", ADMIN, passport(&org, "draft bot"))
        .await
        .assert_status(201)
        .clone();
    let (draft_id, draft_key) = (
        draft["agent"]["agent_id"].as_str().unwrap(),
        draft["api_key"].as_str().unwrap(),
    );
    let r = token_request(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", draft_id),
            ("client_secret", draft_key),
        ],
    )
    .await;
    oauth_error(&r, 401, "invalid_client");
    app.set_status(&agent, "suspended").await.assert_status(200);
    let r = token_request(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &agent),
            ("client_secret", &key),
        ],
    )
    .await;
    oauth_error(&r, 401, "invalid_client");
}

pub async fn signing_keys_rotate(app: &TestApp) {
    let org = app.org("tokens-rotate").await;
    let (agent, key) = app.registered(&org, "rotating signer", "active").await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", agent.as_str()),
        ("client_secret", key.as_str()),
    ];
    let old_token = token_request(app, &form).await.assert_status(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // One key signs, one stands by in the JWKS.
    let before = jwks(app).await;
    assert_eq!(before.len(), 2);
    let old_kid = header_of(&old_token)["kid"].as_str().unwrap().to_owned();
    let standby: Vec<&str> = before.kids().filter(|k| *k != old_kid).collect();
    assert_eq!(standby.len(), 1);
    let standby = standby[0].to_owned();

    let owner = app.token(&org, "owner").await;
    app.post("/v1/keys/rotate", &owner, json!({}))
        .await
        .assert_error(403, "forbidden");
    // The standby has been published long enough: it signs at once.
    app.age_standby_key().await;
    let rotated = app.post("/v1/keys/rotate", ADMIN, json!({})).await;
    let body = rotated.assert_status(201).clone();
    let new_kid = body["kid"].as_str().unwrap().to_owned();
    assert_eq!(new_kid, standby, "the standby key signs, not a new one");
    assert_eq!(body["previous_kid"], old_kid.as_str());
    let next_standby = body["standby_kid"].as_str().unwrap().to_owned();

    // The old, the new and the next key are published; the old token still verifies; new
    // tokens use the new key.
    let after = jwks(app).await;
    assert_eq!(after.len(), 3);
    assert!(after.kids().any(|k| k == next_standby));
    assert_eq!(verified(app, &old_token).await.sub.as_str(), agent);
    let new_token = token_request(app, &form).await.assert_status(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = header_of(&new_token);
    assert_eq!(header["kid"], new_kid.as_str());
    assert_eq!(header["alg"], "ES256");
    verified(app, &new_token).await;

    // A rotation right after: the new standby has not been published long enough, so it is
    // scheduled, tokens keep coming from the current key, and a third rotation must wait.
    let scheduled = app.post("/v1/keys/rotate", ADMIN, json!({})).await;
    let body = scheduled.assert_status(201).clone();
    assert_eq!(body["kid"], next_standby.as_str());
    let signs_from =
        vouch_core::Timestamp::parse_rfc3339(body["signs_from"].as_str().unwrap()).unwrap();
    assert!(
        signs_from.unix_seconds()
            >= now_seconds() + crate::harness::PUBLISH_AHEAD.as_secs() as i64 - 5,
        "{body}"
    );
    let still = token_request(app, &form).await.assert_status(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(header_of(&still)["kid"], new_kid.as_str());
    app.post("/v1/keys/rotate", ADMIN, json!({}))
        .await
        .assert_error(409, "rotation_pending");
    let listed = app.get("/v1/keys", ADMIN).await;
    let states: Vec<(String, String)> = listed.assert_status(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (kid, state) in [
        (&old_kid, "retired"),
        (&new_kid, "signing"),
        (&next_standby, "scheduled"),
    ] {
        assert!(
            states.contains(&(kid.clone(), state.to_owned())),
            "{states:?}"
        );
    }
    assert_eq!(
        states.iter().filter(|(_, s)| s == "standby").count(),
        1,
        "{states:?}"
    );

    // Private keys are sealed at rest; the audit log has the rotation.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM signing_keys WHERE private_key LIKE 'v1.%'")
            .await,
        4
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NOT NULL")
            .await,
        2,
        "the first key retired, the second retires when the scheduled one signs"
    );
    let log = app.get("/v1/audit", ADMIN).await;
    let actions: Vec<&str> = log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"signing_key.rotated"), "{actions:?}");

    // Discovery names the token endpoint, the JWKS and ES256.
    let discovery = app
        .call(
            reqwest::Method::GET,
            "/.well-known/openid-configuration",
            None,
            None,
        )
        .await;
    let d = discovery.assert_status(200);
    assert_eq!(d["issuer"], ISSUER);
    assert_eq!(d["token_endpoint"], format!("{ISSUER}/oauth/token"));
    assert_eq!(d["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["ES256"]));
    assert!(d["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("client_credentials")));
    let _ = StatusCode::OK;
}
