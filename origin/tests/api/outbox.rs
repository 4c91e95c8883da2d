use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{passport, TestApp, ADMIN};

async fn counts(app: &TestApp) -> (i64, i64) {
    (
        app.count("SELECT COUNT(*) FROM outbox").await,
        app.count("SELECT COUNT(*) FROM audit_events").await,
    )
}

pub async fn row_per_change(app: &TestApp) {
    let (mut outbox, mut audit) = counts(app).await;
    let mut expect_one_more = |label: &str, now: (i64, i64)| {
        assert_eq!(
            now,
            (outbox + 1, audit + 1),
            "{label} writes one outbox row and one audit event"
        );
        (outbox, audit) = now;
    };
    let org = app.org("outbox").await;
    expect_one_more("org", counts(app).await);
    let owner = app.token(&org, "owner").await;
    expect_one_more("token", counts(app).await);
    let (id, key) = app.agent(&org, "published").await;
    expect_one_more("register", counts(app).await);
    app.patch(
        &format!("/v1/agents/{id}"),
        &owner,
        json!({ "role": "new" }),
    )
    .await
    .assert_status(200);
    expect_one_more("patch", counts(app).await);
    app.set_status(&id, "active").await.assert_status(200);
    expect_one_more("status", counts(app).await);
    app.call(
        Method::POST,
        &format!("/v1/agents/{id}/keys"),
        Some(ADMIN),
        None,
    )
    .await
    .assert_status(201);
    expect_one_more("key rotation", counts(app).await);
    // No change, no event: a no-op patch, a refused transition, a heartbeat (telemetry).
    app.patch(
        &format!("/v1/agents/{id}"),
        &owner,
        json!({ "role": "new" }),
    )
    .await
    .assert_status(200);
    app.set_status(&id, "draft")
        .await
        .assert_error(409, "invalid_transition");
    let _ = key;
    assert_eq!(counts(app).await, (outbox, audit));

    // Every outbox row pairs with the audit event of the same id, and carries the version.
    let paired = app
        .count("SELECT COUNT(*) FROM outbox o JOIN audit_events a ON a.event_id = o.event_id AND a.action = o.event_type")
        .await;
    assert_eq!(paired, outbox);
    let versions = app
        .count(&format!("SELECT COUNT(*) FROM outbox WHERE aggregate_id = '{id}' AND aggregate_version IN (1, 2, 3)"))
        .await;
    assert_eq!(
        versions, 4,
        "created v1, updated v2, activated v3, key rotated at v3"
    );
    let rows = app.outbox().await;
    assert_eq!(rows.len() as i64, outbox);
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    let last: Value = serde_json::from_str(&rows.last().unwrap().payload).unwrap();
    assert_eq!(last["type"], "agent.api_key_rotated");
    assert_eq!(last["org_id"], org.as_str());
    assert!(last["id"].as_str().unwrap().starts_with("evt_"));
    let created = rows
        .iter()
        .find(|r| r.event_type == "passport.created")
        .unwrap();
    let created: Value = serde_json::from_str(&created.payload).unwrap();
    assert_eq!(created["type"], "passport.created");
    assert_eq!(created["data"]["passport"]["agent_id"], id.as_str());
}

pub async fn forced_failure_rolls_back(app: &TestApp) {
    let org = app.org("rollback").await;
    let (id, _) = app.agent(&org, "steady").await;
    let before_agent = app
        .get(&format!("/v1/agents/{id}"), ADMIN)
        .await
        .body
        .clone();
    let before = counts(app).await;
    let before_agents = app.count("SELECT COUNT(*) FROM agents").await;
    // Make the audit insert fail: it comes after the change, its outbox row and its KV outbox
    // row in every transaction, so all of those must roll back with it.
    if app.is_postgres() {
        app.sql(
            "CREATE FUNCTION fail_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'forced failure'; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION fail_audit();",
        )
        .await;
    } else {
        app.sql("CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'forced failure'); END;")
            .await;
    }
    let kv_rows = app.count("SELECT COUNT(*) FROM kv_outbox").await;
    let reply = app.set_status(&id, "active").await;
    reply.assert_error(500, "internal_error");
    assert!(
        !reply.body["message"].as_str().unwrap().contains("forced"),
        "no internals leak"
    );
    app.patch(
        &format!("/v1/agents/{id}"),
        ADMIN,
        json!({ "role": "lost" }),
    )
    .await
    .assert_error(500, "internal_error");
    app.post("/v1/agents", ADMIN, passport(&org, "never born"))
        .await
        .assert_error(500, "internal_error");
    app.post("/v1/orgs", ADMIN, json!({ "name": "n", "slug": "never" }))
        .await
        .assert_error(500, "internal_error");
    let after_agent: Value = app
        .get(&format!("/v1/agents/{id}"), ADMIN)
        .await
        .body
        .clone();
    assert_eq!(
        after_agent, before_agent,
        "the change rolled back with its events"
    );
    assert_eq!(
        counts(app).await,
        before,
        "no audit event or outbox row without its change"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM agents").await,
        before_agents
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orgs WHERE slug = 'never'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM kv_outbox").await,
        kv_rows,
        "no KV outbox row either"
    );
    let report = app
        .get(&format!("/v1/audit/verify?org_id={org}"), ADMIN)
        .await;
    assert_eq!(
        report.body["ok"], true,
        "the chain head rolled back too: {}",
        report.body
    );
    // Once the fault is gone, the same change goes through.
    if app.is_postgres() {
        app.sql("DROP TRIGGER fail_audit ON audit_events").await;
    } else {
        app.sql("DROP TRIGGER fail_audit").await;
    }
    app.set_status(&id, "active").await.assert_status(200);
    assert_eq!(counts(app).await, (before.0 + 1, before.1 + 1));
}

/// The KV outbox's leases, on both databases: a claimed key is invisible to other publishers
/// until completed or released; completion never lowers the published version; resync marks
/// every agent again.
pub async fn kv_outbox_leases(app: &TestApp) {
    use vouch_core::Timestamp;
    let store = &app.store;
    // Start from an empty queue: publish (here: mark as published) the documents the origin
    // queued at start (jwks, discovery).
    let start = vouch_origin::clock::now();
    for work in store.claim_kv("setup", start, 60_000, 100).await.unwrap() {
        assert_eq!(work.aggregate_type, "document", "{work:?}");
        store
            .complete_kv("setup", &work.key, work.target_version)
            .await
            .unwrap();
    }
    let org = app.org("leases").await;
    let (a, _) = app.agent(&org, "leased a").await;
    let (b, _) = app.agent(&org, "leased b").await;
    app.set_status(&a, "active").await.assert_status(200);
    let now = vouch_origin::clock::now();
    let (behind, oldest) = store.kv_backlog().await.unwrap();
    assert_eq!(behind, 2);
    assert!(oldest.is_some());

    let first = store.claim_kv("one", now, 60_000, 10).await.unwrap();
    assert_eq!(first.len(), 2);
    let claimed_a = first.iter().find(|w| w.aggregate_id == a).unwrap();
    assert_eq!(
        claimed_a.target_version, 2,
        "coalesced: one row per key at its newest version"
    );
    assert!(
        store
            .claim_kv("two", now, 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased keys are not claimed twice"
    );

    // "two" cannot complete or release what "one" holds.
    store.complete_kv("two", &claimed_a.key, 2).await.unwrap();
    assert_eq!(store.kv_backlog().await.unwrap().0, 2);
    store.complete_kv("one", &claimed_a.key, 2).await.unwrap();
    assert_eq!(store.kv_backlog().await.unwrap().0, 1);
    let claimed_b = first.iter().find(|w| w.aggregate_id == b).unwrap();
    let later = Timestamp::from_unix_millis(now.unix_millis() + 5_000);
    store
        .retry_kv("one", &claimed_b.key, later, "HTTP 500")
        .await
        .unwrap();
    assert!(
        store
            .claim_kv("two", now, 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let retried = store.claim_kv("two", later, 60_000, 10).await.unwrap();
    assert_eq!((retried.len(), retried[0].attempts), (1, 1));

    // An expired lease can be taken over.
    let expired = Timestamp::from_unix_millis(later.unix_millis() + 61_000);
    let taken = store.claim_kv("three", expired, 60_000, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    store.complete_kv("three", &taken[0].key, 1).await.unwrap();
    assert_eq!(store.kv_backlog().await.unwrap().0, 0);

    // A newer change makes the key due again; an older completion never lowers what is recorded.
    app.set_status(&a, "suspended").await.assert_status(200);
    let again = store.claim_kv("one", expired, 60_000, 10).await.unwrap();
    assert_eq!(again[0].target_version, 3);
    store.complete_kv("one", &again[0].key, 1).await.unwrap();
    assert_eq!(
        store.kv_backlog().await.unwrap().0,
        1,
        "version 1 does not cover version 3"
    );

    let marked = store.mark_all_kv_dirty(expired).await.unwrap();
    assert_eq!(marked, 2);
    assert_eq!(store.kv_backlog().await.unwrap().0, 2);
}

/// The status journal's queue, on both databases: only status changes and delegation
/// revocations enter it, in the change's transaction; completion records the journal's `seq`
/// and store time (what `?wait=propagated` reads); an entry may be compacted only once KV has
/// held its version since before the settle point.
pub async fn journal_outbox(app: &TestApp) {
    use vouch_core::Timestamp;
    let store = &app.store;
    let queued = |key: String| async move {
        app.count(&format!(
            "SELECT COUNT(*) FROM journal_outbox WHERE kv_key = '{key}' AND published_version < target_version"
        ))
        .await
    };
    let org = app.org("journal").await;
    let owner = app.token(&org, "owner").await;
    let (a, _) = app.agent(&org, "journaled a").await;
    let key_a = format!("passport:{a}");
    assert_eq!(
        queued(key_a.clone()).await,
        0,
        "a registration is not a status change"
    );
    app.patch(&format!("/v1/agents/{a}"), &owner, json!({ "role": "x" }))
        .await
        .assert_status(200);
    assert_eq!(queued(key_a.clone()).await, 0, "nor is a patch");
    let changed = app.set_status(&a, "active").await;
    let version = changed.assert_status(200)["version"].as_i64().unwrap();
    assert!(changed.body["propagated_at"].is_null());
    assert_eq!(queued(key_a.clone()).await, 1);

    let now = vouch_origin::clock::now();
    assert_eq!(
        store.journal_stored_at(&key_a, version).await.unwrap(),
        None
    );
    let later = Timestamp::from_unix_millis(now.unix_millis() + 3_600_000);
    assert!(store.journal_settled(later, 10).await.unwrap().is_empty());
    let work = store.claim_journal("j", now, 60_000, 10).await.unwrap();
    assert_eq!(work.len(), 1);
    assert_eq!(work[0].key, key_a);
    assert!(store
        .claim_journal("k", now, 60_000, 10)
        .await
        .unwrap()
        .is_empty());
    let stored_at = Timestamp::from_unix_millis(now.unix_millis() + 5);
    store
        .complete_journal("j", &key_a, version, Some(7), stored_at)
        .await
        .unwrap();
    assert_eq!(
        store.journal_stored_at(&key_a, version).await.unwrap(),
        Some(stored_at)
    );
    assert_eq!(
        store.journal_stored_at(&key_a, version + 1).await.unwrap(),
        None
    );
    assert_eq!(store.journal_backlog().await.unwrap().0, 0);
    // KV has not written that version: entry 7 must stay.
    assert!(store.journal_settled(later, 10).await.unwrap().is_empty());
    // Once KV has it, the entry may go as soon as the settle point passes the KV write.
    for w in store.claim_kv("kv", now, 60_000, 100).await.unwrap() {
        store
            .complete_kv("kv", &w.key, w.target_version)
            .await
            .unwrap();
    }
    let before_kv = Timestamp::from_unix_millis(now.unix_millis() - 1);
    assert!(store
        .journal_settled(before_kv, 10)
        .await
        .unwrap()
        .is_empty());
    let settled = store.journal_settled(later, 10).await.unwrap();
    assert_eq!(settled, vec![(key_a.clone(), version)]);
    // A newer change appended meanwhile keeps its own entry when the old one is forgotten.
    app.set_status(&a, "suspended").await.assert_status(200);
    let newer = store.claim_journal("j", now, 60_000, 10).await.unwrap();
    store
        .complete_journal("j", &key_a, version + 1, Some(9), stored_at)
        .await
        .unwrap();
    assert_eq!(newer.len(), 1);
    store.journal_forgot(&settled).await.unwrap();
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM journal_outbox WHERE kv_key = '{key_a}' AND journal_seq = 9"
        ))
        .await,
        1
    );
    // The same once KV has the newer one too: then the entry is forgotten.
    for w in store.claim_kv("kv", now, 60_000, 100).await.unwrap() {
        store
            .complete_kv("kv", &w.key, w.target_version)
            .await
            .unwrap();
    }
    let settled = store.journal_settled(later, 10).await.unwrap();
    assert_eq!(settled, vec![(key_a.clone(), version + 1)]);
    store.journal_forgot(&settled).await.unwrap();
    assert!(store.journal_settled(later, 10).await.unwrap().is_empty());

    // A journal of another epoch gets every entry it must hold appended again: here none is
    // held (the only one was forgotten) until a new change is stored.
    assert_eq!(store.journal_epoch().await.unwrap(), None);
    assert_eq!(store.adopt_journal_epoch(41, now).await.unwrap(), 0);
    assert_eq!(store.journal_epoch().await.unwrap(), Some(41));
    app.set_status(&a, "active").await.assert_status(200);
    for w in store.claim_journal("j", now, 60_000, 10).await.unwrap() {
        store
            .complete_journal("j", &w.key, w.target_version, Some(3), stored_at)
            .await
            .unwrap();
    }
    assert_eq!(store.journal_backlog().await.unwrap().0, 0);
    assert_eq!(store.adopt_journal_epoch(42, now).await.unwrap(), 1);
    assert_eq!(store.journal_epoch().await.unwrap(), Some(42));
    assert_eq!(queued(key_a.clone()).await, 1);
    assert_eq!(
        store.journal_stored_at(&key_a, version + 2).await.unwrap(),
        None
    );

    // A delegation revocation queues its grant's key.
    let (b, _) = app.agent(&org, "journaled b").await;
    app.set_status(&b, "active").await.assert_status(200);
    let grant = app
        .post(
            "/v1/delegations",
            ADMIN,
            json!({ "delegator": a, "delegatee": b, "scopes": ["payments.refund"], "ttl_seconds": 600, "max_depth": 1 }),
        )
        .await;
    let id = grant.assert_status(201)["delegation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(queued(format!("delegation:{id}")).await, 0);
    app.call(
        Method::DELETE,
        &format!("/v1/delegations/{id}"),
        Some(ADMIN),
        None,
    )
    .await
    .assert_status(200);
    assert_eq!(queued(format!("delegation:{id}")).await, 1);
}

/// `?wait=` accepts only `propagated`, and only on an origin that runs a journal publisher.
pub async fn wait_needs_a_journal(app: &TestApp) {
    let org = app.org("waiting").await;
    let (a, _) = app.agent(&org, "waiter").await;
    for (query, message) in [
        ("?wait=forever", "`wait` must be `propagated`"),
        ("?wait=propagated", "no status journal"),
    ] {
        let reply = app
            .put(
                &format!("/v1/agents/{a}/status{query}"),
                ADMIN,
                json!({ "status": "active" }),
            )
            .await;
        reply.assert_error(400, "invalid_request");
        assert_eq!(reply.body["field"], "wait");
        assert!(
            reply.body["message"].as_str().unwrap().contains(message),
            "{}",
            reply.body
        );
    }
    // Nothing changed: the check comes before the change.
    let agent = app.get(&format!("/v1/agents/{a}"), ADMIN).await;
    assert_eq!(agent.assert_status(200)["status"], "draft");
}
