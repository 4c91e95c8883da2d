//! The emergency brake (issue: hardening): an agent's tokens revoked at once, a whole org frozen
//! in one call, a signing key withdrawn from the JWKS, and rotation that publishes ahead.

use serde_json::{json, Value};

use crate::harness::{passport, Reply, TestApp, ADMIN};

async fn exchange(app: &TestApp, subject: &str, actor: &str) -> Reply {
    let jwt = "urn:ietf:params:oauth:token-type:jwt";
    app.send(app.client.post(format!("{}/oauth/token", app.base)).form(&[
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", subject),
        ("subject_token_type", jwt),
        ("actor_token", actor),
        ("actor_token_type", jwt),
    ]))
    .await
}

fn revoked_description(reply: &Reply, which: &str) {
    assert_eq!(reply.status.as_u16(), 400, "{}", reply.body);
    assert_eq!(reply.body["error"], "invalid_grant", "{}", reply.body);
    let description = reply.body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.starts_with(&format!("{which}: token_revoked")),
        "{description}"
    );
}

/// Waits until the wall clock has passed `at` (RFC 3339), so a token issued now is after it.
async fn after(at: &Value) {
    let at = vouch_core::Timestamp::parse_rfc3339(at.as_str().unwrap()).unwrap();
    let wait = at.unix_millis() - vouch_origin::clock::now().unix_millis();
    if wait >= 0 {
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64 + 5)).await;
    }
}

pub async fn tokens_revoked(app: &TestApp) {
    let org = app.org("brake-tokens").await;
    let (a, key_a) = app.registered(&org, "leaky delegator", "active").await;
    let (b, key_b) = app.registered(&org, "delegatee", "active").await;
    app.post(
        "/v1/delegations",
        ADMIN,
        json!({ "delegator": a, "delegatee": b, "scopes": ["payments.refund"], "ttl_seconds": 3600, "max_depth": 2 }),
    )
    .await
    .assert_status(201);
    let old_a = app.access_token(&a, &key_a).await;
    let token_b = app.access_token(&b, &key_b).await;
    exchange(app, &old_a, &token_b).await.assert_status(200);

    let before = app.get(&format!("/v1/agents/{a}"), ADMIN).await;
    let version = before.assert_status(200)["version"].as_i64().unwrap();
    assert!(
        before.body.get("tokens_not_before").is_none(),
        "{}",
        before.body
    );
    let revoked = app
        .post(
            &format!("/v1/agents/{a}/tokens/revoke"),
            ADMIN,
            json!({ "reason": "key leaked in a log" }),
        )
        .await;
    let body = revoked.assert_status(200).clone();
    assert_eq!(body["agent_id"], a.as_str());
    assert_eq!(body["version"], version + 1);
    assert!(body["propagated_at"].is_null());
    let cut = body["tokens_not_before"].clone();
    let passport = app.get(&format!("/v1/agents/{a}"), ADMIN).await;
    assert_eq!(passport.assert_status(200)["tokens_not_before"], cut);
    assert_eq!(
        passport.body["status"], "active",
        "the agent itself stays active"
    );

    // The old token cannot buy a fresh delegated one; a token issued after the cut-off can.
    revoked_description(&exchange(app, &old_a, &token_b).await, "subject_token");
    after(&cut).await;
    let new_a = app.access_token(&a, &key_a).await;
    exchange(app, &new_a, &token_b).await.assert_status(200);
    // The actor's tokens too.
    app.post(&format!("/v1/agents/{b}/tokens/revoke"), ADMIN, json!({}))
        .await
        .assert_status(200);
    revoked_description(&exchange(app, &new_a, &token_b).await, "actor_token");

    // Recorded once, with the journal's queue (it must reach every edge within seconds).
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'agent.tokens_revoked' AND target_id = '{a}'"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM journal_outbox WHERE kv_key = 'passport:{a}' AND target_version = {}",
            version + 1
        ))
        .await,
        1
    );

    // Who may: a viewer may not, another org never learns the agent exists, a revoked agent
    // has nothing left to revoke, and the body is checked.
    let viewer = app.token(&org, "viewer").await;
    app.post(&format!("/v1/agents/{a}/tokens/revoke"), &viewer, json!({}))
        .await
        .assert_error(403, "forbidden");
    let other = app.org("brake-other").await;
    let stranger = app.token(&other, "admin").await;
    app.post(
        &format!("/v1/agents/{a}/tokens/revoke"),
        &stranger,
        json!({}),
    )
    .await
    .assert_error(404, "agent_not_found");
    app.post(
        &format!("/v1/agents/{a}/tokens/revoke"),
        ADMIN,
        json!({ "reason": "x".repeat(501) }),
    )
    .await
    .assert_error(400, "invalid_request");
    app.post(
        &format!("/v1/agents/{a}/tokens/revoke"),
        ADMIN,
        json!({ "why": "typo" }),
    )
    .await
    .assert_error(400, "invalid_request");
    app.set_status(&a, "revoked").await.assert_status(200);
    app.post(&format!("/v1/agents/{a}/tokens/revoke"), ADMIN, json!({}))
        .await
        .assert_error(409, "agent_revoked");
}

fn kid_of(token: &str) -> String {
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn published_kids(app: &TestApp) -> Vec<String> {
    let jwks = app
        .call(reqwest::Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    jwks.assert_status(200)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn states(app: &TestApp) -> Vec<(String, String)> {
    app.get("/v1/keys", ADMIN).await.assert_status(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub async fn keys_withdrawn(app: &TestApp) {
    let org = app.org("brake-keys").await;
    let (a, key_a) = app.registered(&org, "signed agent", "active").await;
    let (b, key_b) = app.registered(&org, "other agent", "active").await;
    app.post(
        "/v1/delegations",
        ADMIN,
        json!({ "delegator": a, "delegatee": b, "scopes": ["payments.refund"], "ttl_seconds": 3600, "max_depth": 2 }),
    )
    .await
    .assert_status(201);
    let old = app.access_token(&a, &key_a).await;
    let leaked = kid_of(&old);
    let standby = states(app)
        .await
        .into_iter()
        .find(|(_, s)| s == "standby")
        .map(|(k, _)| k)
        .expect("a standby key");
    assert!(published_kids(app).await.contains(&leaked));

    // Only the platform may; an unknown kid is a 404.
    let owner = app.token(&org, "owner").await;
    app.post(&format!("/v1/keys/{leaked}/withdraw"), &owner, json!({}))
        .await
        .assert_error(403, "forbidden");
    app.post("/v1/keys/no-such-kid/withdraw", ADMIN, json!({}))
        .await
        .assert_error(404, "key_not_found");

    let withdrawn = app
        .post(
            &format!("/v1/keys/{leaked}/withdraw"),
            ADMIN,
            json!({ "reason": "found in a public repository" }),
        )
        .await;
    let body = withdrawn.assert_status(200).clone();
    assert_eq!(body["kid"], leaked.as_str());
    assert_eq!(
        body["signing_kid"],
        standby.as_str(),
        "the standby signs at once"
    );

    // Out of the JWKS at once; its tokens buy nothing; new tokens come from the standby; a new
    // standby stands by.
    let kids = published_kids(app).await;
    assert!(!kids.contains(&leaked), "{kids:?}");
    assert!(kids.contains(&standby), "{kids:?}");
    let token_b = app.access_token(&b, &key_b).await;
    assert_eq!(kid_of(&token_b), standby);
    let refused = exchange(app, &old, &token_b).await;
    assert_eq!(refused.status.as_u16(), 400, "{}", refused.body);
    assert_eq!(refused.body["error"], "invalid_grant");
    let fresh = app.access_token(&a, &key_a).await;
    exchange(app, &fresh, &token_b).await.assert_status(200);
    let now = states(app).await;
    assert!(
        now.contains(&(leaked.clone(), "withdrawn".into())),
        "{now:?}"
    );
    assert!(
        now.contains(&(standby.clone(), "signing".into())),
        "{now:?}"
    );
    assert_eq!(
        now.iter().filter(|(_, s)| s == "standby").count(),
        1,
        "{now:?}"
    );

    // Once in the audit log and the journal's queue; a second call changes nothing.
    let recorded = format!(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'signing_key.withdrawn' AND target_id = '{leaked}'"
    );
    assert_eq!(app.count(&recorded).await, 1);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM journal_outbox WHERE kv_key = 'signing_key:{leaked}'"
        ))
        .await,
        1
    );
    app.post(&format!("/v1/keys/{leaked}/withdraw"), ADMIN, json!({}))
        .await
        .assert_status(200);
    assert_eq!(app.count(&recorded).await, 1);

    // Withdrawing the standby: another takes its place, the signer keeps signing.
    let spare = states(app)
        .await
        .into_iter()
        .find(|(_, s)| s == "standby")
        .map(|(k, _)| k)
        .unwrap();
    let body = app
        .post(&format!("/v1/keys/{spare}/withdraw"), ADMIN, json!({}))
        .await
        .assert_status(200)
        .clone();
    assert_eq!(body["signing_kid"], standby.as_str());
    let now = states(app).await;
    assert_eq!(
        now.iter().filter(|(_, s)| s == "standby").count(),
        1,
        "{now:?}"
    );
    assert_eq!(kid_of(&app.access_token(&a, &key_a).await), standby);
}

pub async fn org_frozen(app: &TestApp) {
    let org = app.org("brake-freeze").await;
    let (a, key_a) = app.registered(&org, "frozen a", "active").await;
    let (b, _) = app.registered(&org, "frozen b", "active").await;
    let (c, _) = app.registered(&org, "already suspended", "active").await;
    app.set_status(&c, "suspended").await.assert_status(200);
    let (d, _) = app.agent(&org, "still a draft").await;
    app.post(
        "/v1/delegations",
        ADMIN,
        json!({ "delegator": a, "delegatee": b, "scopes": ["payments.refund"], "ttl_seconds": 3600, "max_depth": 2 }),
    )
    .await
    .assert_status(201);
    let other = app.org("brake-freeze-other").await;
    let (outsider, _) = app.registered(&other, "outsider", "active").await;
    let journal_version = |agent: String| async move {
        app.count(&format!(
                "SELECT COALESCE(MAX(target_version), 0) FROM journal_outbox WHERE kv_key = 'passport:{agent}'"
            ))
            .await
    };
    let a_in_journal = journal_version(a.clone()).await;

    // Only the org's owner or the platform; another org's owner never learns it exists.
    let admin = app.token(&org, "admin").await;
    app.post(&format!("/v1/orgs/{org}/freeze"), &admin, json!({}))
        .await
        .assert_error(403, "forbidden");
    let stranger = app.token(&other, "owner").await;
    app.post(&format!("/v1/orgs/{org}/freeze"), &stranger, json!({}))
        .await
        .assert_error(404, "org_not_found");
    let owner = app.token(&org, "owner").await;
    let frozen = app
        .post(
            &format!("/v1/orgs/{org}/freeze"),
            &owner,
            json!({ "reason": "incident 42" }),
        )
        .await;
    let body = frozen.assert_status(200).clone();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(body["agents"], json!(expected));
    assert_eq!(body["grants_revoked"], 1);
    assert_eq!(body["frozen"], true);
    assert_eq!(
        app.get(&format!("/v1/orgs/{org}"), &owner)
            .await
            .assert_status(200)["frozen_reason"],
        "incident 42"
    );

    // Every active agent suspended with the reason; the others untouched; another org untouched.
    for (agent, status) in [
        (&a, "suspended"),
        (&b, "suspended"),
        (&c, "suspended"),
        (&d, "draft"),
        (&outsider, "active"),
    ] {
        let p = app.get(&format!("/v1/agents/{agent}"), ADMIN).await;
        assert_eq!(p.assert_status(200)["status"], status, "{agent}");
    }
    let p = app.get(&format!("/v1/agents/{a}"), ADMIN).await;
    assert_eq!(p.body["status_reason"], "incident 42");
    let refused = app
        .send(app.client.post(format!("{}/oauth/token", app.base)).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", a.as_str()),
            ("client_secret", key_a.as_str()),
        ]))
        .await;
    assert_eq!(refused.status.as_u16(), 401, "{}", refused.body);

    // One audit event, one journal entry for the org (none per agent), KV for each agent.
    let in_chain = |action: &str| {
        format!(
            "SELECT COUNT(*) FROM audit_events WHERE chain_id = '{org}' AND action = '{action}'"
        )
    };
    assert_eq!(app.count(&in_chain("org.frozen")).await, 1);
    assert_eq!(
        app.count(&in_chain("passport.status_changed")).await,
        1,
        "c's own suspension only"
    );
    assert_eq!(app.count(&in_chain("delegation.revoked")).await, 0);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM journal_outbox WHERE kv_key = 'org:{org}'"
        ))
        .await,
        1
    );
    assert_eq!(journal_version(a.clone()).await, a_in_journal);
    let kv_version = app
        .count(&format!(
            "SELECT target_version FROM kv_outbox WHERE kv_key = 'passport:{a}'"
        ))
        .await;
    assert_eq!(kv_version, p.body["version"].as_i64().unwrap());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM delegations WHERE revoked_at IS NULL")
            .await,
        0
    );

    // Nothing of the org can be activated while it is frozen; a second freeze is a conflict.
    app.set_status(&a, "active")
        .await
        .assert_error(409, "org_frozen");
    app.set_status(&d, "active")
        .await
        .assert_error(409, "org_frozen");
    let mut p = passport(&org, "born active");
    p["status"] = json!("active");
    app.post("/v1/agents", ADMIN, p)
        .await
        .assert_error(409, "org_frozen");
    app.agent(&org, "born a draft").await;
    app.post(&format!("/v1/orgs/{org}/freeze"), ADMIN, json!({}))
        .await
        .assert_error(409, "org_frozen");

    // Unfreeze: the agents the freeze suspended come back, each through the journal; c stays
    // suspended; the grant stays revoked.
    let unfrozen = app
        .post(&format!("/v1/orgs/{org}/unfreeze"), &owner, json!({}))
        .await;
    let body = unfrozen.assert_status(200).clone();
    assert_eq!(body["agents"], json!(expected));
    assert_eq!(body["frozen"], false);
    for (agent, status) in [
        (&a, "active"),
        (&b, "active"),
        (&c, "suspended"),
        (&d, "draft"),
    ] {
        let p = app.get(&format!("/v1/agents/{agent}"), ADMIN).await;
        assert_eq!(p.assert_status(200)["status"], status, "{agent}");
    }
    assert!(journal_version(a.clone()).await > a_in_journal);
    assert_eq!(app.count(&in_chain("org.unfrozen")).await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM delegations WHERE revoked_at IS NULL")
            .await,
        0
    );
    app.post(&format!("/v1/orgs/{org}/unfreeze"), &owner, json!({}))
        .await
        .assert_error(409, "org_not_frozen");
    app.set_status(&d, "active").await.assert_status(200);
}
