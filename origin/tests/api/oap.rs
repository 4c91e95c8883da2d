//! OAP 1.0 passports in and out (SPEC §13): import, export validated against OAP's own schema
//! (vendored from aporthq/aport-spec, MIT), and import → export → import deciding the same.

use serde_json::{json, Map, Value};
use vouch_core::edge_view::EdgePassport;
use vouch_core::packs;
use vouch_core::policy::SpentToday;
use vouch_core::Passport;

use crate::harness::{passport, TestApp, ADMIN};

const VENDOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vendor/aport-spec");

fn vendored(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{VENDOR}/{path}"))
        .unwrap_or_else(|e| panic!("vendored {path} is missing: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// OAP's conformance refund passport, with the contact SPEC §13 requires.
fn refund_template() -> Value {
    let mut doc = vendored("conformance/cases/payments.refunds.v1/passports/template.json");
    doc["metadata"]["contact"] = json!("support@acme.example");
    doc
}

/// Every error OAP's passport schema finds in `document`.
fn schema_errors(document: &Value) -> Vec<String> {
    let schema = vendored("oap/passport-schema.json");
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

async fn import(app: &TestApp, org: &str, doc: Value) -> crate::harness::Reply {
    app.post(&format!("/v1/agents/import/oap?org_id={org}"), ADMIN, doc)
        .await
}

async fn read(app: &TestApp, id: &str) -> Passport {
    let body = app
        .get(&format!("/v1/agents/{id}"), ADMIN)
        .await
        .assert_status(200)
        .clone();
    serde_json::from_value(body).unwrap()
}

pub async fn import_and_export(app: &TestApp) {
    let org = app.org("acme").await;
    let reply = import(app, &org, refund_template()).await;
    let body = reply.assert_status(201).clone();
    assert!(body["api_key"].as_str().unwrap().starts_with("vk_agent_"));
    let agent = &body["agent"];
    let id = agent["agent_id"].as_str().unwrap().to_owned();
    assert_eq!(agent["name"], "Customer Support AI");
    assert_eq!(agent["owner"]["display_name"], "acme", "the org's name");
    assert_eq!(agent["owner"]["contact"], "support@acme.example");
    assert_eq!(agent["status"], "active");
    assert_eq!(agent["assurance_level"], "L2");
    assert_eq!(
        agent["oap_passport_id"],
        "550e8400-e29b-41d4-a716-446655440000"
    );
    assert_eq!(agent["regions"], json!(["US", "CA", "EU"]));

    // Searchable by its passport_id (any case), and by name as before.
    for q in [
        "550e8400-e29b-41d4-a716-446655440000",
        "550E8400-E29B-41D4-A716-446655440000",
        "support ai",
    ] {
        let list = app.get(&format!("/v1/agents?q={q}"), ADMIN).await;
        let ids: Vec<&str> = list.assert_status(200)["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["agent_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [id.as_str()], "{q}");
    }

    // One agent per passport_id, across orgs (under another name: names are unique in an org
    // too, and which of the two a database reports first is its own choice).
    let mut again = refund_template();
    again["metadata"]["name"] = json!("Another name");
    import(app, &org, again)
        .await
        .assert_error(409, "oap_passport_exists");
    let other = app.org("other").await;
    import(app, &other, refund_template())
        .await
        .assert_error(409, "oap_passport_exists");

    // The export validates against OAP's schema and keeps the passport_id.
    let exported = app.get(&format!("/v1/agents/{id}/oap"), ADMIN).await;
    assert_eq!(exported.header("etag").as_deref(), Some("\"1\""));
    let doc = exported.assert_status(200).clone();
    assert_eq!(schema_errors(&doc), Vec::<String>::new(), "{doc:#}");
    assert_eq!(doc["passport_id"], "550e8400-e29b-41d4-a716-446655440000");
    assert_eq!(doc["owner_id"], org.as_str());
    assert_eq!(doc["limits"], refund_template()["limits"]);
    // OAP's minor units in params, as imported.
    assert_eq!(doc["capabilities"], refund_template()["capabilities"]);

    // Any passport exports: the seed-shaped native one too, and one with what OAP's schema
    // cannot hold (a `*` region, a capability id with `_`).
    let (native, _) = app.agent(&org, "Native Bot").await;
    let mut odd = passport(&org, "Odd Bot");
    odd["regions"] = json!(["*", "FR-75"]);
    odd["capabilities"] = json!([{ "id": "data.export_v2" }]);
    let odd = app.post("/v1/agents", ADMIN, odd).await.assert_status(201)["agent"]["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for agent in [&native, &odd] {
        let doc = app
            .get(&format!("/v1/agents/{agent}/oap"), ADMIN)
            .await
            .assert_status(200)
            .clone();
        assert_eq!(schema_errors(&doc), Vec::<String>::new(), "{doc:#}");
    }
    // A native agent's passport_id is its own UUID: importing its export again would shadow it.
    let doc = app
        .get(&format!("/v1/agents/{native}/oap"), ADMIN)
        .await
        .assert_status(200)
        .clone();
    assert_eq!(
        doc["passport_id"].as_str().unwrap().replace('-', ""),
        native.trim_start_matches("ap_")
    );
    import(app, &other, doc)
        .await
        .assert_error(409, "oap_passport_exists");

    // Another org's agent is not found, not forbidden.
    let viewer = app.token(&other, "viewer").await;
    app.get(&format!("/v1/agents/{id}/oap"), &viewer)
        .await
        .assert_error(404, "agent_not_found");
    app.post("/v1/agents/import/oap", &viewer, refund_template())
        .await
        .assert_error(403, "forbidden");
    app.get("/v1/agents/ap_nope/oap", ADMIN)
        .await
        .assert_error(400, "invalid_request");
}

pub async fn bad_imports(app: &TestApp) {
    let org = app.org("acme").await;
    let mut no_contact = refund_template();
    no_contact["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("contact");
    let reply = import(app, &org, no_contact).await;
    reply.assert_error(400, "invalid_request");
    assert_eq!(reply.body["field"], "metadata.contact");
    for (edit, field) in [
        (json!({ "passport_id": 5 }), "passport_id"),
        (
            json!({ "expires_at": "2030-01-01T00:00:00Z" }),
            "expires_at",
        ),
        (json!({ "regions": ["usa"] }), "regions[0]"),
        (json!({ "surprise": true }), "surprise"),
    ] {
        let mut doc = refund_template();
        for (k, v) in edit.as_object().unwrap() {
            doc[k] = v.clone();
        }
        let reply = import(app, &org, doc).await;
        reply.assert_error(400, "invalid_request");
        assert_eq!(reply.body["field"], field, "{edit}");
    }
    // The platform admin names the org; an unknown one is not found.
    app.post("/v1/agents/import/oap", ADMIN, refund_template())
        .await
        .assert_error(400, "invalid_request");
    import(
        app,
        "org_0192f2a4c3b87d9e8f1a2b3c4d5e6f7f",
        refund_template(),
    )
    .await
    .assert_error(404, "org_not_found");
    // An org token imports into its own org, suspended when the document says so.
    let owner = app.token(&org, "admin").await;
    let mut suspended = refund_template();
    suspended["passport_id"] = json!("550e8400-e29b-41d4-a716-44665544aaaa");
    suspended["status"] = json!("suspended");
    let reply = app.post("/v1/agents/import/oap", &owner, suspended).await;
    let agent = &reply.assert_status(201)["agent"];
    assert_eq!(agent["status"], "suspended");
    assert_eq!(agent["org_id"], org.as_str());
    assert_eq!(agent["status_reason"], "imported as suspended");
}

/// The decisions of every built-in pack for `passport` on a few contexts.
fn decisions(passport: &Passport) -> Vec<(bool, Vec<String>)> {
    let view = EdgePassport::from(passport);
    let contexts = [
        json!({ "amount": 5000, "currency": "USD", "order_id": "o", "customer_id": "c",
                "reason_code": "customer_request", "region": "US", "idempotency_key": "key-00001" }),
        json!({ "amount": 5001, "currency": "USD", "order_id": "o", "customer_id": "c",
                "reason_code": "customer_request", "region": "US", "idempotency_key": "key-00001" }),
        json!({ "amount": 4500, "currency": "EUR", "order_id": "o", "customer_id": "c",
                "reason_code": "fraud", "region": "CA", "idempotency_key": "key-00001" }),
        json!({ "amount": 1, "currency": "JPY", "order_id": "o", "customer_id": "c",
                "reason_code": "fraud", "region": "CA", "idempotency_key": "key-00001" }),
        json!({ "collection": "users", "estimated_rows": 100000, "include_pii": false, "region": "EU" }),
        json!({ "collection": "users", "estimated_rows": 100001, "include_pii": true, "region": "US" }),
    ];
    let mut out = Vec::new();
    for pack in packs::builtins() {
        for context in &contexts {
            let context: Map<String, Value> = context.as_object().cloned().unwrap();
            let e = packs::evaluate(pack, &view, &context, &SpentToday::new(), Some("key-00001"));
            out.push((e.allow, e.codes().iter().map(|c| c.to_string()).collect()));
        }
    }
    out
}

pub async fn round_trip_decides_the_same(app: &TestApp) {
    let org = app.org("acme").await;
    let mut docs = vec![
        refund_template(),
        vendored("conformance/cases/data.export.v1/passports/template.json"),
    ];
    docs[1]["metadata"]["contact"] = json!("data@acme.example");
    let mut checked = 0;
    for (i, doc) in docs.into_iter().enumerate() {
        let first = import(app, &org, doc).await.assert_status(201)["agent"]["agent_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut exported = app
            .get(&format!("/v1/agents/{first}/oap"), ADMIN)
            .await
            .assert_status(200)
            .clone();
        // A new passport_id: the first import keeps its own.
        exported["passport_id"] = json!(format!("650e8400-e29b-41d4-a716-44665544000{i}"));
        // Names are unique in an org.
        exported["metadata"]["name"] = json!(format!("Copy {i}"));
        let second = import(app, &org, exported).await.assert_status(201)["agent"]["agent_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (a, b) = (read(app, &first).await, read(app, &second).await);
        assert_eq!(a.fields.capabilities, b.fields.capabilities);
        assert_eq!(a.fields.limits, b.fields.limits);
        assert_eq!(a.fields.regions, b.fields.regions);
        assert_eq!(a.fields.assurance_level, b.fields.assurance_level);
        assert_eq!(a.status, b.status);
        let (da, db) = (decisions(&a), decisions(&b));
        assert!(da.iter().any(|(allow, _)| *allow) && da.iter().any(|(allow, _)| !allow));
        assert_eq!(da, db);
        checked += da.len();
    }
    assert!(checked > 0);
}
