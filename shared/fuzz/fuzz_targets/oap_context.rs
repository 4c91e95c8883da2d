//! `POST /api/verify/policy/{pack_id}` as the edge reads it: the body (`OapRequest::from_json`,
//! both shapes, with or without an `Idempotency-Key`), then every built-in pack's evaluation on
//! fixed passports (an active one holding every pack's capability and limits, the same
//! suspended, and one at L0 without limits).
//!
//! Input: byte 0 picks the pack (mod 5), byte 1's low bit sends an `Idempotency-Key`
//! (`fuzz-key-0001`), the rest is the body.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use vouch_core::edge_view::EdgePassport;
use vouch_core::packs::{self, AgentRef, OapRequest, PackEvaluation};
use vouch_core::policy::{codes, region_covers, SpentToday};
use vouch_core::{AgentId, OrgId, Status, Timestamp};
use vouch_core_fuzz::Reader;

const KEY: &str = "fuzz-key-0001";

fuzz_target!(|data: &[u8]| {
    let mut input = Reader::new(data);
    let builtins = packs::builtins();
    let pack = &builtins[usize::from(input.byte()) % builtins.len()];
    let header = (input.byte() & 1 == 1).then_some(KEY);
    let Ok(body) = serde_json::from_slice::<Value>(input.rest()) else {
        return;
    };
    let request = match OapRequest::from_json(body.clone(), &pack.id, header) {
        Ok(request) => request,
        Err(error) => {
            assert_eq!(error.code(), "invalid_request");
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    check_request(&request, &body, header);
    let [active, suspended, bare] = passports();
    for (passport, spent) in [(active, 0), (active, 9_000), (suspended, 0), (bare, 0)] {
        let spent: SpentToday = [("USD".to_owned(), spent)].into();
        let key = request.idempotency_key.as_deref();
        let e = packs::evaluate(pack, passport, &request.context, &spent, key);
        assert_eq!(
            e,
            packs::evaluate(pack, passport, &request.context, &spent, key)
        );
        check_evaluation(&e);
        if passport.status != Status::Active {
            assert_eq!(e.reasons[0].code, codes::PASSPORT_SUSPENDED, "{e:?}");
        }
        if passport.agent_id == active.agent_id && e.allow {
            independently_allowed(&pack.id, &request.context, spent["USD"]);
        }
    }
});

fn check_request(request: &OapRequest, body: &Value, header: Option<&str>) {
    match &request.agent {
        AgentRef::Agent(id) => assert_eq!(AgentId::parse(id.as_str()).as_ref(), Ok(id)),
        AgentRef::Passport(uuid) => {
            assert_eq!(uuid.len(), 36);
            assert_eq!(uuid, &uuid.to_ascii_lowercase());
            if let Some(agent) = request.agent.derived_agent() {
                assert_eq!(&packs::request::passport_id_of(&agent), uuid);
            }
        }
    }
    assert!(!request.context.contains_key("agent_id") || body["context"].get("context").is_some());
    assert_eq!(request.commit.as_ref().map(|k| k.as_str()), header);
    if let Some(header) = header {
        assert_eq!(request.idempotency_key.as_deref(), Some(header));
        assert_eq!(request.context.get("idempotency_key"), Some(&json!(header)));
    }
    // The fingerprint is a SHA-256 of the request, whatever the order of its keys.
    let agent = vouch_core_fuzz::agent(0);
    let fingerprint = request.fingerprint("p", &agent);
    assert_eq!(fingerprint.len(), 64);
    let reordered: Map<String, Value> = request.context.clone().into_iter().rev().collect();
    let again = OapRequest {
        context: reordered,
        ..request.clone()
    };
    assert_eq!(again.fingerprint("p", &agent), fingerprint);
}

fn check_evaluation(e: &PackEvaluation) {
    // `allow` exactly when the one reason is `oap.allowed`; a denial always says why.
    assert!(!e.reasons.is_empty());
    let allowed = e.reasons.iter().any(|r| r.code == codes::ALLOWED);
    assert_eq!(allowed, e.allow, "{e:?}");
    if e.allow {
        assert_eq!(e.reasons.len(), 1);
    }
    for reason in &e.reasons {
        assert!(
            reason.code.starts_with("oap.") || reason.code == codes::LIMIT_UNKNOWN,
            "{reason:?}"
        );
        assert!(!reason.message.is_empty());
    }
    if let Some(spend) = &e.spend {
        assert!(
            spend.currency.len() == 3 && spend.currency.bytes().all(|b| b.is_ascii_uppercase())
        );
        assert!(spend
            .daily_caps
            .windows(2)
            .all(|w| w[0].cap_minor <= w[1].cap_minor));
        if e.allow {
            assert!(spend
                .daily_caps
                .iter()
                .all(|c| spend.amount_minor <= c.cap_minor));
        }
    }
}

/// What SPEC §13 and the pack say an allowed request must be, stated independently of the
/// evaluator, for the active passport's limits.
fn independently_allowed(pack: &str, c: &Map<String, Value>, spent: u64) {
    let text = |k: &str| c.get(k).and_then(Value::as_str);
    let count = |k: &str| c.get(k).and_then(Value::as_u64);
    let in_regions = |region: Option<&str>| {
        region.is_some_and(|r| ["US", "CA"].iter().any(|listed| region_covers(listed, r)))
    };
    match pack {
        "finance.payment.refund.v1" => {
            let amount = count("amount").expect("an integer amount");
            let max = match text("currency") {
                Some("USD") => 5_000,
                Some("EUR") => 4_500,
                other => panic!("currency {other:?} allowed"),
            };
            assert!((1..=max).contains(&amount), "{amount} of {max}");
            if text("currency") == Some("USD") {
                assert!(spent + amount <= 10_000, "over the daily cap");
            }
            assert!(in_regions(text("region")));
            assert_eq!(text("reason_code"), Some("customer_request"));
            assert!(text("idempotency_key").is_some_and(|k| k.len() >= 8));
            if let Some(order) = c.get("order_currency").filter(|v| !v.is_null()) {
                assert_eq!(Some(order), c.get("currency"));
            }
        }
        "finance.payment.charge.v1" => {
            assert!((1..=20_000).contains(&count("amount").expect("an amount")));
            assert_eq!(text("currency"), Some("USD"));
            assert_eq!(text("merchant_id"), Some("merch_abc"));
            assert_eq!(text("shipping_country"), Some("US"));
            let items = c["items"].as_array().expect("items");
            assert!((1..=2).contains(&items.len()));
            assert!(items
                .iter()
                .all(|i| i.get("category") != Some(&json!("weapons"))));
            assert!(in_regions(text("region")));
        }
        "data.export.create.v1" => {
            assert!(count("estimated_rows").expect("rows") <= 100);
            assert_ne!(c.get("include_pii"), Some(&json!(true)));
            assert_eq!(text("collection"), Some("users"));
            assert!(in_regions(text("region")));
        }
        "governance.data.access.v1" => {
            assert_eq!(text("data_classification"), Some("PII"));
            assert_eq!(text("accessing_entity_type"), Some("employee"));
            assert_eq!(text("action_type"), Some("read"));
            assert_eq!(text("jurisdiction"), Some("US"));
            assert!(count("row_count").is_none_or(|n| n <= 10));
        }
        "code.repository.merge.v1" => {
            assert_eq!(text("repository"), Some("acme/app"));
            assert!(matches!(
                text("action"),
                Some("pr.create" | "pr.update" | "branch.create" | "pr.merge" | "branch.delete")
            ));
            let lines = count("lines_added")
                .unwrap_or(0)
                .saturating_add(count("lines_removed").unwrap_or(0));
            assert!(lines <= 1_000);
            assert!(in_regions(text("region")));
        }
        other => panic!("unknown pack {other}"),
    }
}

fn passports() -> &'static [EdgePassport; 3] {
    static PASSPORTS: OnceLock<[EdgePassport; 3]> = OnceLock::new();
    PASSPORTS.get_or_init(|| {
        let active = passport(everything("L3"), 0);
        let mut suspended = active.clone();
        suspended.status = Status::Suspended;
        let bare = passport(
            json!({
                "passport_id": "0192f2a4-c3b8-7d9e-8f1a-2b3c4d5e6f72",
                "assurance_level": "L0",
                "status": "active",
                "capabilities": [{ "id": "data.export" }, { "id": "payments.charge" }],
                "regions": ["*"],
                "metadata": { "name": "Bare", "contact": "a@b.c" }
            }),
            2,
        );
        [active, suspended, bare]
    })
}

fn passport(doc: Value, n: u8) -> EdgePassport {
    let imported = vouch_core::oap::import(doc, "Fuzz Org").expect("a fixture imports");
    let mut p = imported
        .into_passport(
            vouch_core_fuzz::agent(n),
            OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71").expect("an org id"),
            Timestamp::from_unix_millis(1_795_000_000_000),
        )
        .expect("a fixture registers");
    p.status = Status::Active;
    EdgePassport::from(&p)
}

fn everything(level: &str) -> Value {
    json!({
        "passport_id": "0192f2a4-c3b8-7d9e-8f1a-2b3c4d5e6f70",
        "assurance_level": level,
        "status": "active",
        "capabilities": [
            { "id": "finance.payment.refund" }, { "id": "payments.charge" }, { "id": "data.export" },
            { "id": "data.access" }, { "id": "repo.pr.create" }, { "id": "repo.merge" }
        ],
        "limits": {
            "finance.payment.refund": {
                "currency_limits": {
                    "USD": { "max_per_tx": 5000, "daily_cap": 10000 },
                    "EUR": { "max_per_tx": 4500 }
                },
                "reason_codes": ["customer_request"],
                "idempotency_required": true
            },
            "payments.charge": {
                "currency_limits": { "USD": { "max_per_tx": 20000 } },
                "allowed_merchant_ids": ["merch_abc"], "allowed_countries": ["US"],
                "blocked_categories": ["weapons"], "max_items_per_tx": 2
            },
            "data.export": { "max_rows": 100, "allow_pii": false, "allowed_collections": ["users"] },
            "data.access": {
                "allowed_classifications": ["PII"],
                "permissions": { "PII": { "allowed_entity_types": ["employee"], "allowed_actions": ["read"] } },
                "allowed_jurisdictions": ["US"], "max_rows_per_export": 10
            },
            "repo.pr.create": { "allowed_repos": ["acme/app"], "max_pr_size_kb": 1 },
            "repo.merge": { "allowed_repos": ["acme/app"] }
        },
        "regions": ["US", "CA"],
        "metadata": { "name": "Everything", "contact": "ops@example.com" }
    })
}
