//! Token status lists (SPEC §16): every passport's fixed place, the `status` claim of its access
//! tokens, and the signed list documents that follow status changes.

use serde_json::{json, Value};
use vouch_core::jwk::JwkSet;
use vouch_core::status_list::{self, ListDocument, ListStatus};
use vouch_core::token::{self, Expectations};
use vouch_origin::status_lists::StatusListBuilder;

use crate::harness::{passport, TestApp, ADMIN, EDGE, ISSUER};

async fn jwks(app: &TestApp) -> JwkSet {
    let reply = app.get("/.well-known/jwks.json", ADMIN).await;
    JwkSet::from_json(reply.assert_status(200).to_string().as_bytes()).unwrap()
}

/// The claims of a fresh access token of `agent`, verified against the origin's JWKS.
async fn access_claims(app: &TestApp, agent: &str, key: &str) -> token::Claims {
    let token = app.access_token(agent, key).await;
    let set = jwks(app).await;
    let expect = Expectations {
        issuer: ISSUER,
        audience: None,
        skew_seconds: 60,
        max_len: token::DEFAULT_MAX_LEN,
    };
    let now = vouch_origin::clock::now().unix_seconds();
    token::verify(&token, &|kid| set.get(kid), &expect, now)
        .unwrap()
        .1
}

/// The stored document of list `list_id`, its token verified against the origin's JWKS.
async fn list(
    app: &TestApp,
    list_id: u64,
) -> (
    ListDocument,
    status_list::ListClaims,
    status_list::StatusList,
) {
    let docs = app
        .store
        .documents(&[status_list::kv_key(list_id)])
        .await
        .unwrap();
    let (_, _, body) = docs.first().expect("the list was stored").clone();
    let document: ListDocument = serde_json::from_str(&body).unwrap();
    let set = jwks(app).await;
    let uri = status_list::list_uri(EDGE, list_id);
    let now = vouch_origin::clock::now().unix_seconds();
    let (header, claims, list) =
        status_list::verify(&document.token, &|kid| set.get(kid), &uri, now, 60).unwrap();
    assert_eq!(header.typ, status_list::TYP);
    (document, claims, list)
}

/// Lets the next pass rebuild a list built less than a second ago (KV takes one write per key
/// per second, so the builder waits that long otherwise).
async fn age_lists(app: &TestApp) {
    app.sql("UPDATE status_lists SET built_at = built_at - 5000 WHERE built_at IS NOT NULL")
        .await;
}

fn builder(app: &TestApp) -> StatusListBuilder {
    StatusListBuilder::new(app.store.clone(), app.keys.clone())
}

pub async fn places_claims_and_lists(app: &TestApp) {
    let org = app.org("status-lists").await;
    let (active, active_key) = app.registered(&org, "active bot", "active").await;
    let (draft, _) = app.registered(&org, "draft bot", "draft").await;
    let (other, other_key) = app.registered(&org, "other bot", "active").await;

    // Places in registration order, fixed; the claim names the list at the edge.
    let claims = access_claims(app, &active, &active_key).await;
    assert_eq!(
        serde_json::to_value(&claims.status).unwrap(),
        json!({ "status_list": { "idx": 0, "uri": format!("{EDGE}/status/0") } })
    );
    let claims = access_claims(app, &other, &other_key).await;
    assert_eq!(claims.status.unwrap().status_list.idx, 2);

    // The first pass builds list 0 (and nothing else: no other list has places).
    assert_eq!(builder(app).pass().await.unwrap(), 1);
    let (document, claims, read) = list(app, 0).await;
    assert_eq!(claims.sub, format!("{EDGE}/status/0"));
    assert_eq!(claims.iss.as_deref(), Some(ISSUER));
    assert_eq!(claims.ttl, Some(document.ttl));
    assert_eq!(document.ttl, 10);
    assert_eq!(
        claims.exp,
        Some(claims.iat + vouch_origin::status_lists::LIFETIME_SECONDS)
    );
    assert_eq!(claims.status_list.bits, 2);
    assert_eq!(read.len(), status_list::LIST_SIZE);
    assert_eq!(read.status(0).unwrap(), ListStatus::Active);
    assert_eq!(read.status(1).unwrap(), ListStatus::NotActiveYet);
    assert_eq!(read.status(2).unwrap(), ListStatus::Active);
    // Queued for KV like any document, under its own key.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM kv_outbox WHERE kv_key = 'status:0'")
            .await,
        1
    );
    // The origin serves its own copy too (where tokens point without an edge), with an ETag.
    let served = app
        .send(app.client.get(format!("{}/status/0", app.base)))
        .await;
    assert_eq!(served.status.as_u16(), 200);
    assert_eq!(
        served.header("content-type").as_deref(),
        Some(status_list::MEDIA_TYPE)
    );
    assert_eq!(served.body, document.token);
    let etag = served.header("etag").unwrap();
    let again = app
        .send(
            app.client
                .get(format!("{}/status/0", app.base))
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(again.status.as_u16(), 304);
    app.get("/status/9", ADMIN)
        .await
        .assert_error(404, "status_list_not_found");
    app.get("/status/01", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    // Nothing is due right after a build.
    assert_eq!(builder(app).pass().await.unwrap(), 0);

    // Status changes reach the list on the next pass once a second has passed since the last
    // build (KV's one write per key per second).
    app.set_status(&active, "suspended")
        .await
        .assert_status(200);
    app.set_status(&other, "revoked").await.assert_status(200);
    app.set_status(&draft, "active").await.assert_status(200);
    assert_eq!(builder(app).pass().await.unwrap(), 0, "built a second ago");
    age_lists(app).await;
    assert_eq!(builder(app).pass().await.unwrap(), 1);
    let (_, _, read) = list(app, 0).await;
    assert_eq!(read.status(0).unwrap(), ListStatus::Suspended);
    assert_eq!(read.status(1).unwrap(), ListStatus::Active);
    assert_eq!(read.status(2).unwrap(), ListStatus::Revoked);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM status_list_changes").await,
        0,
        "the changes the build covered are gone"
    );

    // A freeze suspends every active agent of the org: in the list too; the unfreeze undoes it.
    app.post(
        &format!("/v1/orgs/{org}/freeze"),
        ADMIN,
        json!({ "reason": "compromised" }),
    )
    .await
    .assert_status(200);
    age_lists(app).await;
    assert_eq!(builder(app).pass().await.unwrap(), 1);
    let (_, _, read) = list(app, 0).await;
    assert_eq!(read.status(1).unwrap(), ListStatus::Suspended);
    app.post(&format!("/v1/orgs/{org}/unfreeze"), ADMIN, json!({}))
        .await
        .assert_status(200);
    age_lists(app).await;
    assert_eq!(builder(app).pass().await.unwrap(), 1);
    let (_, _, read) = list(app, 0).await;
    assert_eq!(read.status(1).unwrap(), ListStatus::Active);
    assert_eq!(
        read.status(0).unwrap(),
        ListStatus::Suspended,
        "suspended before the freeze"
    );

    // A list is rebuilt when it has stood for ttl / 2 even without changes (fresh `iat`).
    app.sql("UPDATE status_lists SET built_at = built_at - 60000")
        .await;
    assert_eq!(builder(app).pass().await.unwrap(), 1);
}

/// Two builders never build one list at once: the lease hands each list to one of them, and a
/// builder whose lease was taken stores nothing.
pub async fn builders_take_turns(app: &TestApp) {
    let org = app.org("status-builders").await;
    app.registered(&org, "a bot", "active").await;
    let (first, second) = (builder(app), builder(app));
    let (a, b) = tokio::join!(first.pass(), second.pass());
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    let versions = app.store.documents(&["status:0".into()]).await.unwrap();
    assert_eq!(versions.len(), 1);
}

/// Places are unique and dense under concurrent registrations (one transaction each).
pub async fn places_are_unique_under_concurrent_registrations(app: &TestApp) {
    let org = app.org("status-places").await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let client = app.client.clone();
        let url = format!("{}/v1/agents", app.base);
        let body: Value = passport(&org, &format!("bot {i}"));
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().as_u16(), 201);
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(DISTINCT status_index) FROM agents WHERE status_index BETWEEN 0 AND 15"
        )
        .await,
        16
    );
}
