use serde_json::json;

use super::*;
use crate::edge_view::EdgePassport;
use crate::passport::tests::seed_passport;
use crate::policy::{decide, Context, DecisionRequest};
use crate::{AgentId, OrgId, Timestamp};

fn register(doc: Value) -> Passport {
    import(doc, "Acme")
        .unwrap()
        .into_passport(
            AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f7a").unwrap(),
            OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71").unwrap(),
            Timestamp::from_unix_millis(1_795_000_000_000),
        )
        .unwrap()
}

fn refund_doc() -> Value {
    json!({
        "passport_id": "550E8400-E29B-41D4-A716-446655440000",
        "kind": "template",
        "spec_version": "oap/1.0",
        "owner_id": "org_12345678",
        "owner_type": "org",
        "assurance_level": "L4KYC",
        "status": "active",
        "capabilities": [{ "id": "finance.payment.refund", "params": { "max_amount": 5000, "currency": "USD" } }],
        "limits": { "finance.payment.refund": {
            "currency_limits": { "USD": { "max_per_tx": 5000, "daily_cap": 50000 } },
            "reason_codes": ["customer_request"], "idempotency_required": true } },
        "regions": ["US", "CA"],
        "metadata": { "name": "Refund bot", "contact": "ops@acme.com", "team": "payments", "cost_centre": 42 },
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-15T10:30:00Z",
        "version": "1.0.0"
    })
}

#[test]
fn imports_an_oap_passport() {
    let p = register(refund_doc());
    assert_eq!(p.name, "Refund bot");
    assert_eq!(p.owner.contact, "ops@acme.com");
    assert_eq!(
        p.owner.display_name, "Acme",
        "the org's name when there is no owner_display"
    );
    assert_eq!(
        p.oap_passport_id.as_deref(),
        Some("550e8400-e29b-41d4-a716-446655440000")
    );
    assert_eq!(p.status, Status::Active);
    assert_eq!(
        p.fields.assurance_level,
        AssuranceLevel::L3,
        "L4KYC is our L3"
    );
    assert_eq!(p.fields.metadata["oap_assurance_level"], "L4KYC");
    assert_eq!(p.fields.metadata["team"], "payments");
    assert_eq!(
        p.fields.metadata["cost_centre"], "42",
        "foreign values kept as text"
    );
    // OAP's minor units become our major units in params.
    assert_eq!(p.fields.capabilities[0].params["max_amount"], json!(50.0));
}

#[test]
fn import_errors_name_the_oap_field() {
    for (edit, field) in [
        (json!({ "metadata": { "name": "x" } }), "metadata.contact"),
        (
            json!({ "metadata": { "contact": "a@b.c" } }),
            "metadata.name",
        ),
        (json!({ "passport_id": "not-a-uuid" }), "passport_id"),
        (json!({ "spec_version": "oap/2.0" }), "spec_version"),
        (json!({ "status": "paused" }), "status"),
        (json!({ "assurance_level": "L9" }), "assurance_level"),
        (
            json!({ "expires_at": "2030-01-01T00:00:00Z" }),
            "expires_at",
        ),
        (json!({ "colour": "blue" }), "colour"),
        (json!({ "regions": ["usa"] }), "regions[0]"),
        (
            json!({ "capabilities": [{ "id": "Bad Id" }] }),
            "capabilities[0].id",
        ),
    ] {
        let mut doc = refund_doc();
        for (k, v) in edit.as_object().unwrap() {
            doc[k] = v.clone();
        }
        let err = import(doc, "Acme").unwrap_err();
        assert_eq!(err.field_name(), Some(field), "{edit}: {err}");
    }
    let mut doc = refund_doc();
    doc.as_object_mut().unwrap().remove("passport_id");
    assert_eq!(
        import(doc, "Acme").unwrap_err().field_name(),
        Some("passport_id")
    );
}

#[test]
fn suspended_and_revoked_passports_stay_so() {
    for (status, want) in [
        ("suspended", Status::Suspended),
        ("revoked", Status::Revoked),
        ("draft", Status::Draft),
    ] {
        let mut doc = refund_doc();
        doc["status"] = json!(status);
        let p = register(doc);
        assert_eq!(p.status, want);
        assert_eq!(p.activated_at, None);
    }
}

#[test]
fn exports_any_passport_and_round_trips_its_decisions() {
    let mut seed = seed_passport();
    seed.status = Status::Active;
    seed.fields
        .regions
        .push(crate::Region::parse("FR-75").unwrap());
    seed.fields.capabilities.push(crate::Capability {
        id: crate::CapabilityId::parse("data.export_v2").unwrap(),
        params: Map::new(),
    });
    let exported = export(&seed);
    assert_eq!(
        exported["passport_id"],
        "0192f2a4-c3b8-7d9e-8f1a-2b3c4d5e6f70"
    );
    assert_eq!(exported["spec_version"], "oap/1.0");
    assert_eq!(exported["regions"], json!(["US-NY", "US-CA"]));
    assert_eq!(exported["metadata"]["vouch_regions"], json!(["FR-75"]));
    assert_eq!(
        exported["metadata"]["vouch_capabilities"][0]["id"],
        "data.export_v2"
    );
    // 100 USD is 10000 minor units outside.
    assert_eq!(exported["capabilities"][0]["params"]["max_amount"], 10000);
    let again = register(exported.clone());
    assert_eq!(again.fields.regions, seed.fields.regions);
    assert_eq!(
        again.fields.capabilities.len(),
        seed.fields.capabilities.len()
    );
    assert_eq!(again.fields.limits, seed.fields.limits);
    let (a, b) = (EdgePassport::from(&seed), EdgePassport::from(&again));
    for (capability, context) in [
        (
            "payments.refund",
            json!({ "amount": 100, "currency": "USD", "region": "US-CA" }),
        ),
        (
            "payments.refund",
            json!({ "amount": 100.01, "currency": "USD", "region": "US-CA" }),
        ),
        (
            "payments.refund",
            json!({ "amount": 1, "currency": "USD", "region": "FR-75" }),
        ),
        ("data.export", json!({ "rows": 1000, "region": "US-NY" })),
        ("data.export", json!({ "rows": 1001, "region": "US-NY" })),
        ("data.export_v2", json!({ "region": "US-NY" })),
    ] {
        let request = DecisionRequest {
            capability: capability.into(),
            context: Context::from_json(context.clone()).unwrap(),
            min_assurance: None,
        };
        assert_eq!(
            decide(&a, &request),
            decide(&b, &request),
            "{capability} {context}"
        );
    }
    // And the document exported again is the same but for the registry's own bookkeeping.
    let twice = export(&again);
    for key in [
        "capabilities",
        "limits",
        "regions",
        "assurance_level",
        "status",
    ] {
        assert_eq!(twice[key], exported[key], "{key}");
    }
}

#[test]
fn l4_levels_come_back_on_export() {
    let p = register(refund_doc());
    let exported = export(&p);
    assert_eq!(exported["assurance_level"], "L4KYC");
    assert_eq!(
        exported["passport_id"],
        "550e8400-e29b-41d4-a716-446655440000"
    );
    assert!(exported["metadata"].get("oap_assurance_level").is_some());
    let again = register(exported);
    assert_eq!(again.fields.assurance_level, AssuranceLevel::L3);
    assert_eq!(
        again.fields.metadata.get("oap_assurance_level"),
        Some(&json!("L4KYC"))
    );
    assert!(reserved_metadata().contains(&"oap_assurance_level"));
}
