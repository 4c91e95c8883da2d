use serde_json::json;

use crate::harness::{passport, TestApp, ADMIN};

/// An org with a few recorded changes; returns its id.
async fn busy_org(app: &TestApp, slug: &str) -> String {
    let org = app.org(slug).await;
    let (id, _) = app.agent(&org, "audited").await;
    app.set_status(&id, "active").await.assert_status(200);
    app.patch(
        &format!("/v1/agents/{id}"),
        ADMIN,
        json!({ "role": "changed" }),
    )
    .await
    .assert_status(200);
    app.set_status(&id, "suspended").await.assert_status(200);
    // Read once: that seals the pending events (as the background sealer would).
    assert_eq!(verify(app, &org).await["ok"], true);
    org
}

async fn verify(app: &TestApp, org: &str) -> serde_json::Value {
    app.get(&format!("/v1/audit/verify?org_id={org}"), ADMIN)
        .await
        .assert_status(200)
        .clone()
}

pub async fn verifies(app: &TestApp) {
    let org = busy_org(app, "audit-ok").await;
    let report = verify(app, &org).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events_checked"], 5);
    assert_eq!(report["chain_id"], org.as_str());
    let log = app.get(&format!("/v1/audit?org_id={org}"), ADMIN).await;
    let events = log.assert_status(200)["data"].as_array().unwrap().clone();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "passport.status_changed",
            "passport.updated",
            "passport.status_changed",
            "passport.created",
            "org.created"
        ]
    );
    assert_eq!(
        events[1]["data"]["changes"]["role"],
        json!({ "old": "Tier-2 Support", "new": "changed" })
    );
    assert_eq!(events[0]["actor"], "platform");
    // An org token reads its own log by default, and the platform log is separate.
    let owner = app.token(&org, "owner").await;
    let own = app.get("/v1/audit", &owner).await;
    assert_eq!(own.assert_status(200)["data"][0]["action"], "token.created");
    assert_eq!(app.get("/v1/audit/verify", &owner).await.body["ok"], true);
    let platform = app.get("/v1/audit", ADMIN).await;
    assert!(platform.assert_status(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["chain_id"] == "platform"));
    // Pagination over the log.
    let page = app
        .get(&format!("/v1/audit?org_id={org}&limit=2"), ADMIN)
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let next = app
        .get(
            &format!("/v1/audit?org_id={org}&limit=2&cursor={cursor}"),
            ADMIN,
        )
        .await;
    assert_eq!(
        next.body["data"][0]["seq"].as_i64(),
        Some(page.body["data"][1]["seq"].as_i64().unwrap() - 1)
    );
}

pub async fn edit_detected(app: &TestApp) {
    let org = busy_org(app, "audit-edit").await;
    app.sql(&format!(
        "UPDATE audit_events SET data = '{{\"forged\":true}}' WHERE chain_id = '{org}' AND seq = 3"
    ))
    .await;
    let report = verify(app, &org).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_break"]["seq"], 3);
    assert_eq!(report["first_break"]["kind"], "hash_mismatch");
    assert!(report["first_break"]["event_id"]
        .as_str()
        .unwrap()
        .starts_with("evt_"));
    assert_eq!(report["events_checked"], 2);
    // Another org's chain is unaffected.
    let other = busy_org(app, "audit-bystander").await;
    assert_eq!(verify(app, &other).await["ok"], true);
}

pub async fn delete_detected(app: &TestApp) {
    let org = busy_org(app, "audit-delete").await;
    app.sql(&format!(
        "DELETE FROM audit_events WHERE chain_id = '{org}' AND seq = 2"
    ))
    .await;
    let report = verify(app, &org).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_break"]["seq"], 2);
    assert_eq!(report["first_break"]["kind"], "missing_event");
}

pub async fn truncation_detected(app: &TestApp) {
    let org = busy_org(app, "audit-truncate").await;
    app.sql(&format!(
        "DELETE FROM audit_events WHERE chain_id = '{org}' AND seq >= 4"
    ))
    .await;
    let report = verify(app, &org).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_break"]["seq"], 4);
    assert_eq!(report["first_break"]["kind"], "truncated");
}

// ---- The Merkle log against its published checkpoint ------------------------------------------

/// An org with a few changes, sealed, and its checkpoint "published": written to a file outside
/// the database, as the edge would serve it. Returns (org, checkpoint file, verifier key).
async fn published_org(
    app: &TestApp,
    slug: &str,
    dir: &std::path::Path,
) -> (String, String, String) {
    let org = busy_org(app, slug).await;
    let view = app
        .get(&format!("/v1/audit/checkpoint?org_id={org}"), ADMIN)
        .await;
    let view = view.assert_status(200);
    assert_eq!(view["tree_size"], 5, "{view}");
    let file = dir.join(format!("{slug}.checkpoint"));
    std::fs::write(&file, view["checkpoint"].as_str().unwrap()).unwrap();
    let key = view["verifier_key"].as_str().unwrap().to_owned();
    (org, file.display().to_string(), key)
}

/// The chain of `org` checked against the checkpoint in `file`, pinned to `key`, by
/// `vouch-client` (what `vouch audit verify` runs; a broken chain is its exit code 4): the
/// JSON report.
async fn client_verify(app: &TestApp, org: &str, file: &str, key: &str) -> serde_json::Value {
    let client = vouch_client::Client::new(&app.base, Some(ADMIN.into())).unwrap();
    let from = vouch_client::Published {
        checkpoint: Some(file),
        edge: None,
        key: Some(key),
    };
    vouch_client::verify_audit_log(&client, Some(org), &from)
        .await
        .unwrap()
        .to_json()
}

/// Every sealed event of `org`, oldest first, as the API serves them.
async fn events_of(app: &TestApp, org: &str) -> Vec<vouch_core::audit::AuditEvent> {
    let page = app
        .get(&format!("/v1/audit?org_id={org}&limit=500"), ADMIN)
        .await;
    let mut events: Vec<vouch_core::audit::AuditEvent> =
        serde_json::from_value(page.assert_status(200)["data"].clone()).unwrap();
    events.reverse();
    events
}

/// A blob literal of the backend.
fn blob(app: &TestApp, bytes: &[u8]) -> String {
    if app.is_postgres() {
        format!("'\\x{}'::bytea", hex::encode(bytes))
    } else {
        format!("X'{}'", hex::encode(bytes))
    }
}

pub async fn tampering_is_caught_against_the_published_checkpoint(app: &TestApp) {
    let dir = tempfile::tempdir().unwrap();
    // Untouched: verifies, and says what it checked.
    let (org, file, key) = published_org(app, "merkle-ok", dir.path()).await;
    let report = client_verify(app, &org, &file, &key).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events_checked"], 5);
    assert_eq!(report["published"]["tree_size"], 5);
    assert_eq!(report["consistency"], "verified");
    // More changes after publishing: still verifies (the newer tree extends the published one).
    app.set_status(&events_of(app, &org).await[1].target_id, "active")
        .await
        .assert_status(200);
    let report = client_verify(app, &org, &file, &key).await;
    assert_eq!(
        (&report["ok"], &report["tree_size"]),
        (&json!(true), &json!(6)),
        "{report}"
    );

    // A wipe: every row of the chain gone, its tree and head too.
    let (org, file, key) = published_org(app, "merkle-wipe", dir.path()).await;
    app.sql(&format!(
        "DELETE FROM audit_events WHERE chain_id = '{org}'; DELETE FROM audit_tree WHERE chain_id = '{org}'; \
         DELETE FROM audit_chains WHERE chain_id = '{org}';"
    ))
    .await;
    let report = client_verify(app, &org, &file, &key).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_break"]["kind"], "missing_genesis", "{report}");

    // One event rewritten, its stored leaf hash recomputed to match.
    let (org, file, key) = published_org(app, "merkle-rewrite", dir.path()).await;
    let mut events = events_of(app, &org).await;
    events[2].data = "{\"forged\":true}".into();
    let leaf = events[2].expected_leaf_hash().to_string();
    app.sql(&format!(
        "UPDATE audit_events SET data = '{{\"forged\":true}}', leaf_hash = '{leaf}' WHERE event_id = '{}'",
        events[2].event_id
    ))
    .await;
    let report = client_verify(app, &org, &file, &key).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_break"]["kind"], "root_mismatch", "{report}");

    // A fork: another history of the same size, every leaf and tree hash recomputed, the head's
    // root too (the checkpoint cannot be re-signed without the key).
    let (org, file, key) = published_org(app, "merkle-fork", dir.path()).await;
    let mut events = events_of(app, &org).await;
    let mut statements = Vec::new();
    for event in events.iter_mut().skip(1) {
        event.data = format!("{{\"forked\":{}}}", event.seq);
        event.leaf_hash = event.expected_leaf_hash().to_string();
        statements.push(format!(
            "UPDATE audit_events SET data = '{}', leaf_hash = '{}' WHERE event_id = '{}';",
            event.data, event.leaf_hash, event.event_id
        ));
    }
    let leaves: Vec<_> = events.iter().map(|e| e.expected_leaf_hash()).collect();
    let forged = vouch_core::audit::tree::append(0, &Default::default(), &leaves).unwrap();
    statements.push(format!("DELETE FROM audit_tree WHERE chain_id = '{org}';"));
    for (index, hash) in &forged.stored {
        statements.push(format!(
            "INSERT INTO audit_tree (chain_id, idx, hash) VALUES ('{org}', {index}, {});",
            blob(app, &hash.0)
        ));
    }
    statements.push(format!(
        "UPDATE audit_chains SET root_hash = '{}' WHERE chain_id = '{org}';",
        forged.root
    ));
    app.sql(&statements.join("\n")).await;
    let report = client_verify(app, &org, &file, &key).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_break"]["kind"], "root_mismatch", "{report}");
    assert_eq!(report["tree_size"], 5, "the same size: {report}");
    // The origin refuses to sign over the forged tree: a new change stays pending, and its own
    // check says so.
    app.patch(
        &format!("/v1/agents/{}", events[1].target_id),
        ADMIN,
        json!({ "role": "after the fork" }),
    )
    .await
    .assert_status(200);
    let own = verify(app, &org).await;
    assert_eq!(
        (own["ok"].clone(), own["pending"].clone()),
        (json!(false), json!(1)),
        "{own}"
    );
    // Another chain's checkpoint does not pass for this one.
    let bystander = busy_org(app, "merkle-bystander").await;
    let report = client_verify(app, &bystander, &file, &key).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_break"]["kind"], "bad_checkpoint", "{report}");
}

/// RFC 9162 §2.1.3.2 and §2.1.4.2, written from the RFC with nothing but hashlib: an independent
/// check of the origin's proofs. Reads JSON on stdin, prints `ok` or `fail: …`.
const RFC9162_CHECK: &str = r#"
import base64, hashlib, json, sys
b = lambda s: base64.b64decode(s)
node = lambda l, r: hashlib.sha256(b"\x01" + l + r).digest()
def inclusion(index, size, leaf, path, root):
    if index >= size: return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0: return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1: fn >>= 1; sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1; sn >>= 1
    return sn == 0 and r == root
def consistency(first, second, first_root, second_root, path):
    if first == second: return not path and first_root == second_root
    if first == 0 or first > second or not path: return False
    if first & (first - 1) == 0: path = [first_root] + path
    fn, sn = first - 1, second - 1
    while fn & 1: fn >>= 1; sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0: return False
        if fn & 1 or fn == sn:
            fr = node(c, fr); sr = node(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1: fn >>= 1; sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1; sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root
def checkpoint_root(note, size):
    lines = note.split("\n")
    assert int(lines[1]) == size, "size"
    return b(lines[2])
q = json.load(sys.stdin)
leaf = hashlib.sha256(b"\x00" + b(q["leaf_data"])).digest()
ok = leaf == b(q["leaf_hash"])
ok = ok and inclusion(q["leaf_index"], q["tree_size"], leaf, [b(p) for p in q["inclusion_path"]],
                      checkpoint_root(q["checkpoint"], q["tree_size"]))
ok = ok and consistency(q["from"], q["to"], b(q["from_root"]), checkpoint_root(q["to_checkpoint"], q["to"]),
                        [b(p) for p in q["proof"]])
print("ok" if ok else "fail")
"#;

fn python_check(input: &serde_json::Value) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", RFC9162_CHECK])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the independent check (CPython is on every machine of this project)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the check itself failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub async fn proofs_verify_independently(app: &TestApp) {
    let org = busy_org(app, "proofs").await;
    let first = app
        .get(&format!("/v1/audit/checkpoint?org_id={org}"), ADMIN)
        .await
        .assert_status(200)
        .clone();
    // More events, so that the tree grows past the first checkpoint (5 → 11).
    for i in 0..3 {
        app.agent(&org, &format!("proof {i}")).await;
        app.token(&org, "viewer").await;
    }
    let events = events_of(app, &org).await;
    assert_eq!(events.len(), 11);
    let consistency = app
        .get(&format!("/v1/audit/consistency?org_id={org}&from=5"), ADMIN)
        .await
        .assert_status(200)
        .clone();
    assert_eq!(
        (consistency["from"].clone(), consistency["to"].clone()),
        (json!(5), json!(11))
    );
    assert_eq!(consistency["from_root"], first["root_hash"]);
    for event in [&events[0], &events[4], &events[10]] {
        let proof = app
            .get(&format!("/v1/audit/events/{}/proof", event.event_id), ADMIN)
            .await
            .assert_status(200)
            .clone();
        assert_eq!(proof["tree_size"], 11);
        assert_eq!(proof["seq"], event.seq);
        let mut input = proof.clone();
        let map = input.as_object_mut().unwrap();
        for (k, v) in ["from", "proof", "from_root"].map(|k| (k, consistency[k].clone())) {
            map.insert(k.into(), v);
        }
        map.insert("to".into(), consistency["to"].clone());
        map.insert("to_checkpoint".into(), consistency["checkpoint"].clone());
        assert_eq!(python_check(&input), "ok", "{input}");
        // The check can fail: a wrong path, a wrong leaf, a wrong consistency hash.
        let mut bad = input.clone();
        bad["leaf_index"] = json!((event.seq) % 11);
        assert_eq!(python_check(&bad), "fail");
        let mut bad = input.clone();
        bad["leaf_data"] = json!(base64_of(b"forged"));
        assert_eq!(python_check(&bad), "fail");
        let mut bad = input.clone();
        bad["proof"][0] = bad["inclusion_path"][0].clone();
        assert_eq!(python_check(&bad), "fail");
    }
    // A proof in an older tree (the first checkpoint's), and the bounds.
    let old = app
        .get(
            &format!("/v1/audit/events/{}/proof?tree_size=5", events[2].event_id),
            ADMIN,
        )
        .await;
    assert_eq!(old.assert_status(200)["root_hash"], first["root_hash"]);
    assert!(old.body["checkpoint"].is_null());
    app.get(
        &format!("/v1/audit/events/{}/proof?tree_size=2", events[4].event_id),
        ADMIN,
    )
    .await
    .assert_error(400, "invalid_request");
    app.get(
        &format!("/v1/audit/consistency?org_id={org}&from=12"),
        ADMIN,
    )
    .await
    .assert_error(400, "invalid_request");
    app.get(
        &format!("/v1/audit/consistency?org_id={org}&from=3&to=99"),
        ADMIN,
    )
    .await
    .assert_error(400, "invalid_request");
    // Authorized like the log: the org's own token sees its events; another org's token gets a
    // 404 for them, as for an event that does not exist (no oracle).
    let owner = app.token(&org, "viewer").await;
    app.get(
        &format!("/v1/audit/events/{}/proof", events[3].event_id),
        &owner,
    )
    .await
    .assert_status(200);
    let other = app.org("proofs-other").await;
    let stranger = app.token(&other, "owner").await;
    let theirs = app
        .get(
            &format!("/v1/audit/events/{}/proof", events[3].event_id),
            &stranger,
        )
        .await;
    theirs.assert_error(404, "event_not_found");
    let missing = app
        .get(
            "/v1/audit/events/evt_0192f2a4c3b87d9e8f1a2b3c4d5e6f70/proof",
            &stranger,
        )
        .await;
    missing.assert_error(404, "event_not_found");
    assert_eq!(theirs.body["message"], missing.body["message"]);
    app.get(
        &format!("/v1/audit/consistency?org_id={org}&from=1"),
        &stranger,
    )
    .await
    .assert_error(404, "org_not_found");
    app.get("/v1/audit/events/not-an-id/proof", ADMIN)
        .await
        .assert_error(400, "invalid_request");
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Many registrations on one org at once, with two sealers racing and a third that dies in the
/// middle of a batch (its transaction never commits): every event is sealed exactly once, the
/// seqs run 1..N without a gap, every checkpoint seen on the way is a prefix of the next, and
/// the log verifies.
pub async fn concurrent_registrations_seal_once(app: &TestApp) {
    use vouch_core::audit::checkpoint;
    let org = app.org("sealing").await;
    let (stop, _) = tokio::sync::watch::channel(false);
    let sealers: Vec<_> = (0..2)
        .map(|_| {
            let sealer = vouch_origin::audit::Sealer::new(app.store.clone(), app.audit.clone());
            tokio::spawn(sealer.run(stop.subscribe()))
        })
        .collect();
    const N: usize = 64;
    let org_ref = &org;
    let registrations = (0..N).map(|i| async move {
        app.post(
            "/v1/agents",
            ADMIN,
            passport(org_ref, &format!("concurrent {i}")),
        )
        .await
        .assert_status(201)["agent"]["agent_id"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    // Checkpoints as they appear, read while the registrations run.
    let watching = async {
        let mut seen = Vec::new();
        for _ in 0..40 {
            let view = app
                .get(&format!("/v1/audit/checkpoint?org_id={org}"), ADMIN)
                .await;
            seen.push(
                view.body["checkpoint"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        seen
    };
    // A sealer that dies mid-batch: it takes the chain, numbers pending events, and is killed
    // before it commits.
    let dying = async {
        // Until it catches some pending events (the live sealers are quick).
        for _ in 0..200 {
            if app.die_mid_seal(&org).await > 0 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        false
    };
    let (agents, seen, died) =
        tokio::join!(futures::future::join_all(registrations), watching, dying);
    assert!(
        died,
        "the dying sealer numbered some pending events before it died"
    );
    let _ = stop.send(true);
    for sealer in sealers {
        sealer.await.unwrap();
    }
    // One after another, the sealers stopped: each answered before the next began, so their
    // order is known, and the read below seals them in one batch.
    let mut sequential = Vec::new();
    for i in 0..5 {
        sequential.push(app.agent(&org, &format!("sequential {i}")).await.0);
    }
    let report = verify(app, &org).await;
    assert_eq!(report["ok"], true, "{report}");
    const ALL: usize = N + 6;
    assert_eq!(report["tree_size"], ALL, "{report}");
    assert_eq!(report["pending"], 0);
    let events = events_of(app, &org).await;
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=ALL as i64).collect::<Vec<_>>(), "1..N, no gap");
    let order: Vec<&str> = events[ALL - 5..]
        .iter()
        .map(|e| e.target_id.as_str())
        .collect();
    assert_eq!(order, sequential, "sealed in the order they were made");
    let mut created: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "passport.created")
        .map(|e| e.target_id.as_str())
        .collect();
    created.sort_unstable();
    let mut wanted: Vec<&str> = agents
        .iter()
        .chain(&sequential)
        .map(String::as_str)
        .collect();
    wanted.sort_unstable();
    assert_eq!(created, wanted, "every registration's event, once");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE chain_id = '{org}'"
        ))
        .await,
        ALL as i64
    );
    // No reordering: each checkpoint seen is a prefix of the final tree.
    let key = report["verifier_key"].as_str().unwrap();
    let mut sizes = Vec::new();
    for note in seen.iter().filter(|n| !n.is_empty()) {
        let head = checkpoint::open(note, key, &org).unwrap();
        let proof = app
            .get(
                &format!("/v1/audit/consistency?org_id={org}&from={}", head.size),
                ADMIN,
            )
            .await;
        let proof = proof.assert_status(200);
        assert_eq!(
            proof["from_root"],
            head.root.to_string(),
            "the tree at {} changed",
            head.size
        );
        sizes.push(head.size);
    }
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
}
