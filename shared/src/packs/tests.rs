use serde_json::{json, Map, Value};

use super::*;
use crate::edge_view::EdgePassport;
use crate::policy::{codes, SpentToday};
use crate::{AgentId, OrgId, Status, Timestamp};

/// An active passport from an OAP document (its `metadata.contact` added when absent).
pub(crate) fn passport(mut doc: Value) -> EdgePassport {
    if doc["metadata"].get("contact").is_none() {
        doc["metadata"]["contact"] = json!("ops@example.com");
    }
    if doc["metadata"].get("name").is_none() {
        doc["metadata"]["name"] = json!("Test agent");
    }
    let imported = crate::oap::import(doc, "Example Org").unwrap();
    let mut p = imported
        .into_passport(
            AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70").unwrap(),
            OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71").unwrap(),
            Timestamp::from_unix_millis(1_795_000_000_000),
        )
        .unwrap();
    if p.status == Status::Draft {
        p.status = Status::Active;
    }
    EdgePassport::from(&p)
}

fn doc(capability: &str, limits: Value, level: &str) -> Value {
    json!({
        "passport_id": "550e8400-e29b-41d4-a716-446655440000",
        "kind": "template",
        "spec_version": "oap/1.0",
        "owner_id": "org_12345678",
        "owner_type": "org",
        "assurance_level": level,
        "status": "active",
        "capabilities": [{ "id": capability }],
        "limits": { capability: limits },
        "regions": ["US", "CA", "EU"],
        "metadata": { "name": "Test agent", "contact": "ops@example.com" },
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-15T10:30:00Z",
        "version": "1.0.0"
    })
}

fn ctx(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

fn run(pack: &str, p: &EdgePassport, context: Value) -> PackEvaluation {
    let pack = builtin(pack).unwrap();
    let c = ctx(context);
    let key = c.get("idempotency_key").and_then(Value::as_str);
    evaluate(pack, p, &c, &SpentToday::new(), key)
}

fn run_spent(pack: &str, p: &EdgePassport, context: Value, spent: u64) -> PackEvaluation {
    let pack = builtin(pack).unwrap();
    let c = ctx(context);
    let spent: SpentToday = [("USD".to_owned(), spent)].into();
    evaluate(pack, p, &c, &spent, Some("key-12345678"))
}

#[test]
fn every_builtin_pack_parses_and_is_well_formed() {
    assert_eq!(
        builtins().len(),
        SOURCES.len(),
        "a built-in pack does not parse"
    );
    let ids: Vec<&str> = builtins().iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "finance.payment.refund.v1",
            "finance.payment.charge.v1",
            "data.export.create.v1",
            "governance.data.access.v1",
            "code.repository.merge.v1"
        ]
    );
    for pack in builtins() {
        let mut seen = Vec::new();
        for check in &pack.checks {
            if let Some(v) = check.check.vocabulary() {
                assert!(!seen.contains(&v), "{}: {v:?} listed twice", pack.id);
                seen.push(v);
            }
            if let Some(code) = &check.deny_code {
                assert!(code.starts_with("oap."), "{}: {code}", pack.id);
            }
            match check.check {
                CheckKind::Generic(Generic::InList | Generic::NoneInList | Generic::AllInList) => {
                    assert!(
                        check.field.is_some() && check.limit.is_some(),
                        "{}",
                        pack.id
                    );
                }
                CheckKind::Generic(Generic::AtMost) => {
                    assert!(check.field.is_some() || !check.fields.is_empty());
                    assert!(check.limit.is_some());
                }
                CheckKind::Generic(Generic::SameValue) => {
                    assert!(check.field.is_some() && check.other.is_some())
                }
                CheckKind::Generic(Generic::OneOf) => {
                    assert!(check.field.is_some() && !check.values.is_empty())
                }
                _ => {}
            }
            for name in check.field.iter().chain(&check.fields).chain(&check.other) {
                let top = name.split(['.', '[']).next().unwrap();
                assert!(pack.context.contains_key(top), "{}: {name}", pack.id);
            }
        }
        // Every vocabulary check a native decision can fail on is placed, so the pack's order
        // decides where each reason goes.
        for needed in [
            Check::PassportActive,
            Check::Capability,
            Check::Context,
            Check::LimitsReadable,
            Check::PackOnly,
            Check::Approval,
            Check::Assurance,
            Check::Region,
        ] {
            assert!(seen.contains(&needed), "{}: {needed:?}", pack.id);
        }
        // Round trip: the format is what the files say.
        let text = serde_json::to_string(pack).unwrap();
        let again: Pack = serde_json::from_str(&text).unwrap();
        assert_eq!(&again, pack);
    }
    assert!(builtin("nope.v1").is_none());
}

#[test]
fn unknown_members_of_a_pack_are_refused() {
    let mut pack = serde_json::to_value(builtin("data.export.create.v1").unwrap()).unwrap();
    pack["checks"][0]["conditon"] = json!("eval me");
    assert!(serde_json::from_value::<Pack>(pack).is_err());
}

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/vendor/aport-spec/conformance/cases"
);

/// OAP's published conformance cases: `allow` and the reason code, as expected.
#[test]
fn oap_conformance_cases() {
    let mut ran = 0;
    for case in std::fs::read_dir(CASES).unwrap() {
        let dir = case.unwrap().path();
        let template: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("passports/template.json")).unwrap(),
        )
        .unwrap();
        let p = passport(template);
        for context in std::fs::read_dir(dir.join("contexts")).unwrap() {
            let path = context.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let context: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let expected: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join(format!("expected/{name}.decision.json")))
                    .unwrap(),
            )
            .unwrap();
            let pack = expected["policy_id"].as_str().unwrap();
            let got = run(pack, &p, context);
            assert_eq!(
                json!(got.allow),
                expected["allow"],
                "{pack} {name}: {got:?}"
            );
            assert_eq!(
                got.reasons[0].code, expected["reasons"][0]["code"],
                "{pack} {name}: {got:?}"
            );
            ran += 1;
        }
    }
    assert_eq!(ran, 5, "OAP publishes five cases");
}

fn refund_passport(level: &str) -> EdgePassport {
    passport(doc(
        "finance.payment.refund",
        json!({
            "currency_limits": {
                "USD": { "max_per_tx": 50000, "daily_cap": 100000 },
                "EUR": { "max_per_tx": 4500, "daily_cap": 45000 },
                "JPY": { "max_per_tx": 5000 }
            },
            "reason_codes": ["customer_request", "fraud"],
            "idempotency_required": true
        }),
        level,
    ))
}

fn refund(amount: Value, currency: &str, region: &str) -> Value {
    json!({
        "order_id": "order_1", "customer_id": "cust_1", "amount": amount, "currency": currency,
        "region": region, "reason_code": "customer_request", "idempotency_key": "refund_0001"
    })
}

#[test]
fn refund_boundaries_currencies_and_regions() {
    let p = refund_passport("L3");
    let r = "finance.payment.refund.v1";
    // Exactly at the per-transaction limit, and one minor unit over, in each currency.
    for (ccy, max) in [("USD", 50000u64), ("EUR", 4500), ("JPY", 5000)] {
        assert!(
            run(r, &p, refund(json!(max), ccy, "US")).allow,
            "{ccy} at cap"
        );
        let over = run(r, &p, refund(json!(max + 1), ccy, "US"));
        assert_eq!(over.codes(), ["oap.limit_exceeded"], "{ccy} over: {over:?}");
        assert_eq!(
            over.reasons[0].limit.as_deref(),
            Some(
                format!("limits.finance.payment.refund.currency_limits.{ccy}.max_per_tx").as_str()
            )
        );
    }
    assert_eq!(
        run(r, &p, refund(json!(100), "GBP", "US")).codes(),
        ["oap.currency_unsupported"]
    );
    // Daily cap: what was spent today counts; exactly at the cap allows.
    assert!(run_spent(r, &p, refund(json!(50000), "USD", "US"), 50000).allow);
    let over = run_spent(r, &p, refund(json!(50000), "USD", "US"), 50001);
    assert_eq!(over.codes(), ["oap.limit_exceeded"]);
    assert!(over.reasons[0]
        .limit
        .as_deref()
        .unwrap()
        .ends_with("daily_cap"));
    let spend = over.spend.unwrap();
    assert_eq!(
        (spend.currency.as_str(), spend.amount_minor),
        ("USD", 50000)
    );
    // Regions: listed countries and their subdivisions; nothing else.
    assert!(run(r, &p, refund(json!(1), "USD", "CA")).allow);
    assert!(run(r, &p, refund(json!(1), "USD", "US-NY")).allow);
    assert_eq!(
        run(r, &p, refund(json!(1), "USD", "MX")).codes(),
        ["oap.region_blocked"]
    );
    assert_eq!(
        run(r, &p, refund(json!(1), "USD", "nowhere")).codes(),
        ["oap.invalid_context"]
    );
}

#[test]
fn refund_assurance_steps_by_amount() {
    let p = refund_passport("L2");
    let r = "finance.payment.refund.v1";
    assert!(run(r, &p, refund(json!(10000), "USD", "US")).allow);
    let above = run(r, &p, refund(json!(10001), "USD", "US"));
    assert_eq!(above.codes(), ["oap.assurance_insufficient"]);
    assert!(run(r, &refund_passport("L3"), refund(json!(10001), "USD", "US")).allow);
    let low = run(r, &refund_passport("L1"), refund(json!(1), "USD", "US"));
    assert_eq!(low.codes(), ["oap.assurance_insufficient"]);
}

#[test]
fn refund_checks_in_the_packs_order() {
    let mut p = refund_passport("L1");
    p.status = Status::Suspended;
    let mut c = refund(json!(60000), "USD", "MX");
    c["reason_code"] = json!("bored");
    c["order_currency"] = json!("EUR");
    let got = run("finance.payment.refund.v1", &p, c);
    assert_eq!(
        got.codes(),
        [
            "oap.passport_suspended",
            "oap.limit_exceeded",
            "oap.invalid_reason_code",
            "oap.cross_currency_denied",
            "oap.region_blocked",
            "oap.assurance_insufficient"
        ],
        "{got:?}"
    );
    // Revoked is the same code.
    let mut revoked = refund_passport("L3");
    revoked.status = Status::Revoked;
    assert_eq!(
        run(
            "finance.payment.refund.v1",
            &revoked,
            refund(json!(1), "USD", "US")
        )
        .codes(),
        ["oap.passport_suspended"]
    );
}

#[test]
fn refund_missing_fields_and_wrong_types() {
    let p = refund_passport("L3");
    let r = "finance.payment.refund.v1";
    for (field, value) in [
        ("amount", json!("5000")),
        ("amount", json!(50.5)),
        ("amount", json!(-1)),
        ("amount", json!(0)),
        ("currency", json!("usd")),
        ("region", json!(1)),
        ("order_id", json!("")),
        ("idempotency_key", json!("short")),
        ("reason_code", json!(["customer_request"])),
    ] {
        let mut c = refund(json!(100), "USD", "US");
        c[field] = value.clone();
        let got = run(r, &p, c);
        assert!(!got.allow, "{field} = {value}");
        assert_eq!(
            got.reasons[0].code,
            codes::INVALID_CONTEXT,
            "{field}: {got:?}"
        );
        assert_eq!(
            got.reasons[0].field.as_deref(),
            Some(format!("context.{field}").as_str())
        );
        // One reason per fault: the native decision does not say it again.
        let about_it = got
            .reasons
            .iter()
            .filter(|r| r.field.as_deref() == Some(&format!("context.{field}")))
            .count();
        assert_eq!(about_it, 1, "{field}: {got:?}");
    }
    for field in [
        "order_id",
        "customer_id",
        "amount",
        "currency",
        "region",
        "reason_code",
        "idempotency_key",
    ] {
        let mut c = refund(json!(100), "USD", "US");
        c.as_object_mut().unwrap().remove(field);
        let got = run(r, &p, c);
        assert_eq!(got.reasons[0].code, codes::INVALID_CONTEXT, "{field}");
        assert!(got.reasons[0].message.contains(field), "{got:?}");
    }
}

#[test]
fn idempotency_required_needs_a_key() {
    let mut p = refund_passport("L3");
    let pack = builtin("finance.payment.refund.v1").unwrap();
    let c = ctx(refund(json!(1), "USD", "US"));
    assert!(evaluate(pack, &p, &c, &SpentToday::new(), Some("header-key-1")).allow);
    let got = evaluate(pack, &p, &c, &SpentToday::new(), None);
    assert_eq!(got.codes(), ["oap.invalid_context"]);
    assert!(got.reasons[0].message.contains("idempotency"));
    p.limits["finance.payment.refund"]["idempotency_required"] = json!(false);
    assert!(evaluate(pack, &p, &c, &SpentToday::new(), None).allow);
}

fn charge_passport() -> EdgePassport {
    passport(doc(
        "payments.charge",
        json!({
            "currency_limits": { "USD": { "max_per_tx": 20000, "daily_cap": 100000 } },
            "allowed_countries": ["US", "CA"],
            "blocked_categories": ["weapons"],
            "allowed_merchant_ids": ["merch_abc"],
            "max_items_per_tx": 2,
            "require_assurance_at_least": "L2",
            "idempotency_required": true
        }),
        "L2",
    ))
}

fn charge(items: Value) -> Value {
    json!({ "amount": 20000, "currency": "USD", "merchant_id": "merch_abc", "region": "US",
            "shipping_country": "US", "items": items, "idempotency_key": "charge_0001" })
}

#[test]
fn charge_checks() {
    let p = charge_passport();
    let c = "finance.payment.charge.v1";
    let item = json!({ "sku": "a", "qty": 1, "price": 100, "category": "books" });
    assert!(run(c, &p, charge(json!([item, item]))).allow);
    assert_eq!(
        run(c, &p, charge(json!([item, item, item]))).codes(),
        ["oap.limit_exceeded"]
    );
    let mut body = charge(json!([item]));
    body["merchant_id"] = json!("merch_evil");
    assert_eq!(run(c, &p, body).codes(), ["oap.merchant_forbidden"]);
    let mut body = charge(json!([item]));
    body["shipping_country"] = json!("DE");
    assert_eq!(run(c, &p, body).codes(), ["oap.region_blocked"]);
    let mut body = charge(json!([item]));
    body.as_object_mut().unwrap().remove("shipping_country");
    assert_eq!(run(c, &p, body).codes(), ["oap.invalid_context"]);
    let gun = json!({ "sku": "g", "qty": 1, "price": 100, "category": "weapons" });
    assert_eq!(
        run(c, &p, charge(json!([item, gun]))).codes(),
        ["oap.category_blocked"]
    );
    let mut body = charge(json!([item]));
    body["amount"] = json!(20001);
    assert_eq!(run(c, &p, body).codes(), ["oap.limit_exceeded"]);
    assert_eq!(
        run(c, &p, charge(json!([{ "sku": "a", "qty": 0, "price": 1 }]))).codes(),
        ["oap.invalid_context"]
    );
    assert_eq!(
        run(c, &p, charge(json!([]))).codes(),
        ["oap.invalid_context"]
    );
    // Every failure, in the pack's order.
    let mut body = charge(json!([item, item, gun]));
    body["amount"] = json!(20001);
    body["merchant_id"] = json!("merch_evil");
    body["shipping_country"] = json!("DE");
    body["region"] = json!("MX");
    assert_eq!(
        run(c, &p, body).codes(),
        [
            "oap.limit_exceeded",
            "oap.limit_exceeded",
            "oap.merchant_forbidden",
            "oap.region_blocked",
            "oap.category_blocked",
            "oap.region_blocked"
        ]
    );
}

#[test]
fn export_checks() {
    let p = passport(doc(
        "data.export",
        json!({ "max_rows": 1000, "allow_pii": false, "allowed_collections": ["users"] }),
        "L1",
    ));
    let e = "data.export.create.v1";
    let base = || json!({ "collection": "users", "estimated_rows": 1000, "include_pii": false, "region": "US", "format": "csv" });
    assert!(run(e, &p, base()).allow);
    let mut c = base();
    c["estimated_rows"] = json!(1001);
    assert_eq!(run(e, &p, c).codes(), ["oap.limit_exceeded"]);
    let mut c = base();
    c.as_object_mut().unwrap().remove("estimated_rows");
    let got = run(e, &p, c);
    assert_eq!(got.codes(), ["oap.invalid_context"]);
    assert_eq!(
        got.reasons[0].field.as_deref(),
        Some("context.estimated_rows")
    );
    let mut c = base();
    c["include_pii"] = json!(true);
    assert_eq!(run(e, &p, c).codes(), ["oap.pii_blocked"]);
    let mut c = base();
    c["collection"] = json!("payroll");
    assert_eq!(run(e, &p, c).codes(), ["oap.limit_exceeded"]);
    let mut c = base();
    c["format"] = json!("pdf");
    assert_eq!(run(e, &p, c).codes(), ["oap.format_unsupported"]);
    let mut c = base();
    c["include_pii"] = json!("yes");
    assert_eq!(run(e, &p, c).codes(), ["oap.invalid_context"]);
    let l0 = passport(doc("data.export", json!({}), "L0"));
    assert_eq!(
        run(e, &l0, json!({ "region": "US" })).codes(),
        ["oap.assurance_insufficient"]
    );
    // A passport without the capability.
    let other = passport(doc("data.import", json!({}), "L3"));
    assert_eq!(
        run(e, &other, json!({ "region": "US" })).codes(),
        ["oap.unknown_capability"]
    );
}

fn access_passport() -> EdgePassport {
    passport(doc(
        "data.access",
        json!({
            "allowed_classifications": ["PII", "HR"],
            "permissions": {
                "PII": { "allowed_entity_types": ["employee"], "allowed_actions": ["read", "export"] },
                "HR": { "allowed_entity_types": ["employee"], "allowed_actions": ["read"] }
            },
            "allowed_jurisdictions": ["US", "CA"],
            "max_rows_per_export": 100,
            "allowed_destination_jurisdictions": ["US"],
            "balance_inquiry_cap_usd": 100000
        }),
        "L3",
    ))
}

#[test]
fn access_checks() {
    let p = access_passport();
    let a = "governance.data.access.v1";
    let base = || {
        json!({ "data_classification": "PII", "accessing_entity_id": "u1",
                "accessing_entity_type": "employee", "resource_id": "r1", "action_type": "read",
                "jurisdiction": "US", "row_count": 100, "destination_jurisdiction": "US",
                "resource_attributes": { "account_balance_usd": 99999 } })
    };
    assert!(run(a, &p, base()).allow, "{:?}", run(a, &p, base()));
    for (field, value, code) in [
        (
            "data_classification",
            json!("Secret"),
            "oap.classification_forbidden",
        ),
        (
            "accessing_entity_type",
            json!("client"),
            "oap.entity_type_forbidden",
        ),
        ("jurisdiction", json!("CA"), "oap.allowed"),
        ("jurisdiction", json!("DE"), "oap.jurisdiction_blocked"),
        ("row_count", json!(101), "oap.row_limit_exceeded"),
        (
            "destination_jurisdiction",
            json!("CA"),
            "oap.jurisdiction_blocked",
        ),
        (
            "resource_attributes",
            json!({ "account_balance_usd": 100000 }),
            "oap.balance_inquiry_forbidden",
        ),
        ("resource_attributes", json!({}), "oap.allowed"),
        ("action_type", json!("delete"), "oap.action_forbidden"),
        (
            "accessing_entity_type",
            json!("robot"),
            "oap.invalid_context",
        ),
    ] {
        let mut c = base();
        c[field] = value.clone();
        let got = run(a, &p, c);
        assert_eq!(got.reasons[0].code, code, "{field} = {value}: {got:?}");
    }
    // A classification the permissions do not name allows nothing.
    let mut c = base();
    c["data_classification"] = json!("HR");
    c["action_type"] = json!("export");
    assert_eq!(run(a, &p, c).codes(), ["oap.action_forbidden"]);
    let l2 = passport(doc("data.access", json!({}), "L2"));
    let got = run(a, &l2, base());
    assert_eq!(got.codes(), ["oap.assurance_insufficient"]);
}

#[test]
fn merge_checks() {
    let p = passport(json!({
        "passport_id": "550e8400-e29b-41d4-a716-446655440009",
        "assurance_level": "L2", "status": "active",
        "capabilities": [{ "id": "repo.pr.create" }, { "id": "repo.merge" }],
        "limits": {
            "repo.pr.create": { "allowed_repos": ["acme/app"], "path_allowlist": ["src/*", "README.md"],
                                "max_files_changed": 2, "max_pr_size_kb": 1 },
            "repo.merge": { "allowed_repos": ["acme/app"], "allowed_base_branches": ["main"] }
        },
        "regions": ["*"],
        "metadata": { "name": "Merge bot", "contact": "dev@example.com" }
    }));
    let m = "code.repository.merge.v1";
    let pr = || {
        json!({ "repository": "acme/app", "action": "pr.create", "branch": "fix",
                        "files_changed": ["src/a.rs", "README.md"], "lines_added": 600, "lines_removed": 400 })
    };
    assert!(run(m, &p, pr()).allow, "{:?}", run(m, &p, pr()));
    let mut c = pr();
    c["lines_removed"] = json!(401);
    assert_eq!(run(m, &p, c).codes(), ["oap.limit_exceeded"]);
    let mut c = pr();
    c["files_changed"] = json!(["src/a.rs", "secrets.env"]);
    assert_eq!(run(m, &p, c).codes(), ["oap.limit_exceeded"]);
    let mut c = pr();
    c["files_changed"] = json!(["src/a", "src/b", "src/c"]);
    assert_eq!(run(m, &p, c).codes(), ["oap.limit_exceeded"]);
    let mut c = pr();
    c["repository"] = json!("acme/other");
    assert_eq!(run(m, &p, c).codes(), ["oap.limit_exceeded"]);
    let merge = json!({ "repository": "acme/app", "action": "pr.merge", "branch": "fix", "base_branch": "main" });
    let got = run(m, &p, merge.clone());
    assert!(got.allow, "{got:?}");
    assert_eq!(got.capability, "repo.merge");
    let mut c = merge.clone();
    c["base_branch"] = json!("release");
    assert_eq!(run(m, &p, c).codes(), ["oap.limit_exceeded"]);
    let only_pr = passport(json!({
        "passport_id": "550e8400-e29b-41d4-a716-446655440009", "assurance_level": "L2",
        "status": "active", "capabilities": [{ "id": "repo.pr.create" }], "regions": ["*"],
        "metadata": {}
    }));
    assert_eq!(run(m, &only_pr, merge).codes(), ["oap.unknown_capability"]);
    let mut c = pr();
    c["action"] = json!("force.push");
    let got = run(m, &p, c);
    assert_eq!(got.reasons[0].code, "oap.invalid_context");
}

#[test]
fn pack_only_limits_never_allow_silently() {
    // A charge limit on a refund capability: the refund pack does not enforce it.
    let p = passport(doc(
        "finance.payment.refund",
        json!({ "currency_limits": { "USD": { "max_per_tx": 100 } }, "allowed_merchant_ids": ["m1"] }),
        "L3",
    ));
    let got = run(
        "finance.payment.refund.v1",
        &p,
        refund(json!(1), "USD", "US"),
    );
    assert_eq!(got.codes(), ["oap.invalid_context"]);
    assert!(
        got.reasons[0].message.contains("finance.payment.charge.v1"),
        "{got:?}"
    );
    // Empty allowlists and false flags restrict nothing.
    let p = passport(doc(
        "finance.payment.refund",
        json!({ "currency_limits": { "USD": { "max_per_tx": 100 } }, "allowed_merchant_ids": [],
                "compliance_checks_required": false, "approval_required": false }),
        "L3",
    ));
    assert!(
        run(
            "finance.payment.refund.v1",
            &p,
            refund(json!(1), "USD", "US")
        )
        .allow
    );
    // A malformed one is a policy error; an unknown one stays unknown.
    for (limits, code) in [
        (json!({ "allowed_merchant_ids": "m1" }), codes::POLICY_ERROR),
        (json!({ "weekly_cap": 5 }), codes::LIMIT_UNKNOWN),
        (json!({ "approval_required": true }), codes::LIMIT_EXCEEDED),
    ] {
        let p = passport(doc("finance.payment.refund", limits.clone(), "L3"));
        let got = run(
            "finance.payment.refund.v1",
            &p,
            refund(json!(1), "USD", "US"),
        );
        assert_eq!(got.reasons[0].code, code, "{limits}: {got:?}");
    }
}

#[test]
fn supported_currencies_narrow_the_currency_limits() {
    let p = passport(doc(
        "finance.payment.refund",
        json!({ "supported_currencies": ["USD"],
                "currency_limits": { "USD": { "max_per_tx": 100 }, "EUR": { "max_per_tx": 100 } } }),
        "L3",
    ));
    let r = "finance.payment.refund.v1";
    assert!(run(r, &p, refund(json!(1), "USD", "US")).allow);
    assert_eq!(
        run(r, &p, refund(json!(1), "EUR", "US")).codes(),
        ["oap.currency_unsupported"]
    );
}

#[test]
fn reads_both_request_shapes() {
    let pid = "550E8400-E29B-41D4-A716-446655440000";
    let flat =
        json!({ "context": { "agent_id": pid, "policy_id": "data.export.create.v1", "rows": 1 } });
    let r = OapRequest::from_json(flat, "data.export.create.v1", None).unwrap();
    assert_eq!(
        r.agent,
        AgentRef::Passport("550e8400-e29b-41d4-a716-446655440000".into())
    );
    assert_eq!(Value::Object(r.context.clone()), json!({ "rows": 1 }));
    let nested = json!({ "context": { "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70",
                                       "policy_id": "data.export.create.v1", "context": { "rows": 1 } } });
    let n = OapRequest::from_json(nested, "data.export.create.v1", None).unwrap();
    assert_eq!(n.context, r.context);
    assert_eq!(
        n.agent.derived_agent().unwrap().as_str(),
        "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"
    );
    // The same request in both shapes is the same commit.
    let agent = n.agent.derived_agent().unwrap();
    assert_eq!(r.fingerprint("p", &agent), n.fingerprint("p", &agent));
    assert_ne!(r.fingerprint("p", &agent), r.fingerprint("q", &agent));

    for (body, field) in [
        (json!([]), None),
        (json!({ "agent_id": pid }), Some("agent_id")),
        (json!({ "context": 5 }), Some("context")),
        (json!({ "context": {} }), Some("context.agent_id")),
        (
            json!({ "context": { "agent_id": 5 } }),
            Some("context.agent_id"),
        ),
        (
            json!({ "context": { "agent_id": "ap_bad" } }),
            Some("context.agent_id"),
        ),
        (
            json!({ "context": { "agent_id": pid, "policy_id": "other.v1" } }),
            Some("context.policy_id"),
        ),
        (
            json!({ "context": { "agent_id": pid, "context": [] } }),
            Some("context.context"),
        ),
        (
            json!({ "context": { "agent_id": pid, "context": {}, "extra": 1 } }),
            Some("context.extra"),
        ),
    ] {
        let err = OapRequest::from_json(body.clone(), "data.export.create.v1", None).unwrap_err();
        assert_eq!(err.field_name(), field, "{body}");
    }
}

#[test]
fn idempotency_header_and_context_key() {
    let body = |key: Value| json!({ "context": { "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70", "idempotency_key": key } });
    let r = OapRequest::from_json(body(json!("order-1")), "p", Some("order-1")).unwrap();
    assert_eq!(r.commit.as_ref().map(|k| k.as_str()), Some("order-1"));
    let err = OapRequest::from_json(body(json!("order-1")), "p", Some("order-2")).unwrap_err();
    assert_eq!(err.field_name(), Some("context.idempotency_key"));
    let err = OapRequest::from_json(body(json!("x")), "p", Some("has space")).unwrap_err();
    assert_eq!(err.field_name(), Some("Idempotency-Key"));
    // Without the header nothing is committed; the context's key still counts as a key.
    let r = OapRequest::from_json(body(json!("order-1")), "p", None).unwrap();
    assert_eq!(
        (r.commit, r.idempotency_key.as_deref()),
        (None, Some("order-1"))
    );
    // The header alone stands for the context's key.
    let bare = json!({ "context": { "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70" } });
    let r = OapRequest::from_json(bare, "p", Some("order-9")).unwrap();
    assert_eq!(r.context["idempotency_key"], "order-9");
}

#[test]
fn decisions_name_the_agent_as_asked() {
    let p = refund_passport("L3");
    let asked = AgentRef::Passport("550e8400-e29b-41d4-a716-446655440000".into());
    let e = run(
        "finance.payment.refund.v1",
        &p,
        refund(json!(1), "USD", "US"),
    );
    let d = OapDecision::new(
        "dec_1".into(),
        "finance.payment.refund.v1",
        &asked,
        &p,
        e,
        Timestamp::from_unix_millis(0),
        1,
    );
    let v = serde_json::to_value(&d).unwrap();
    for key in [
        "decision_id",
        "policy_id",
        "agent_id",
        "owner_id",
        "assurance_level",
        "allow",
        "reasons",
        "created_at",
        "expires_in",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert_eq!(v["agent_id"], "550e8400-e29b-41d4-a716-446655440000");
    assert_eq!(v["passport_id"], "550e8400-e29b-41d4-a716-446655440000");
    assert_eq!(
        v["registry_agent_id"],
        "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"
    );
    assert_eq!(v["reasons"][0]["code"], "oap.allowed");
    let none = OapDecision::not_found(
        "dec_2".into(),
        "p.v1",
        &asked,
        Timestamp::from_unix_millis(0),
        1,
    );
    assert_eq!(
        serde_json::to_value(&none).unwrap()["reasons"][0]["code"],
        "agent_not_found"
    );
}

#[test]
fn discovery_document() {
    let d = discovery("https://edge.example/", Some("https://origin.example"));
    assert_eq!(
        d["jwks_uri"],
        "https://edge.example/.well-known/oap/jwks.json"
    );
    assert_eq!(
        d["passport_endpoint"],
        "https://origin.example/v1/agents/{agent_id}/oap"
    );
    let caps = d["supported_capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("payments.charge")) && caps.contains(&json!("repo.merge")));
    assert_eq!(
        discovery("https://e.example", None)["passport_endpoint"],
        "https://e.example/v1/agents/{agent_id}/oap"
    );
    let tag = etag(builtin("data.export.create.v1").unwrap());
    assert!(tag.starts_with("\"oap-") && tag.ends_with('"'));
}
