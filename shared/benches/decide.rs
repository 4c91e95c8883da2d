//! Times `policy::decide` on the seed passport of SPEC §3 (the one in
//! `tests/vectors/policy-seed.json`): an allowed refund, a refund denied on two limits, an
//! export, and the OAP 1.0 layout; and what signing a decision adds (SPEC §12): the passport
//! digest (once per cached view at the edge) and the JCS + Ed25519 signature (once per decision).
//! Run: `cargo bench -p vouch-core --bench decide`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use vouch_core::edge_view::EdgePassport;
use vouch_core::passport::{NewAgent, Passport};
use vouch_core::policy::{decide, decide_with_spent, Context, DecisionRequest, SpentToday};
use vouch_core::{AgentId, CoreError, OrgId, Status, Timestamp};

const VECTORS: &str = include_str!("../tests/vectors/policy-seed.json");

/// The seed passport, active, as the edge sees it.
fn seed() -> Result<EdgePassport, String> {
    let vectors: Value = serde_json::from_str(VECTORS).map_err(|e| e.to_string())?;
    let mut passport = vectors["passport"].clone();
    let fields = passport
        .as_object_mut()
        .ok_or("the passport is not an object")?;
    for key in ["agent_id", "org_id", "status"] {
        fields.remove(key);
    }
    let new = NewAgent::from_json(passport).map_err(|e: CoreError| e.to_string())?;
    let p = Passport::register(
        new,
        AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70").map_err(|e| e.to_string())?,
        OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71").map_err(|e| e.to_string())?,
        Timestamp::from_unix_millis(1_795_000_000_000),
    )
    .map_err(|e| e.to_string())?;
    let mut view = EdgePassport::from(&p);
    view.status = Status::Active;
    Ok(view)
}

fn request(capability: &str, context: Value) -> Result<DecisionRequest, String> {
    Ok(DecisionRequest {
        capability: capability.to_owned(),
        context: Context::from_json(context).map_err(|r| r.message)?,
        min_assurance: None,
    })
}

fn setup() -> Result<Vec<(&'static str, EdgePassport, DecisionRequest)>, String> {
    let seed = seed()?;
    let mut oap = seed.clone();
    for c in &mut oap.capabilities {
        c.params.clear();
    }
    oap.limits = json!({
        "payments.refund": {
            "currency_limits": { "USD": { "max_per_tx": 10000, "daily_cap": 100000 } },
            "reason_codes": ["customer_request"]
        },
        "data.export": { "max_rows": 1000, "allow_pii": false, "allowed_collections": ["orders"] }
    })
    .as_object()
    .cloned()
    .ok_or("limits are not an object")?;
    Ok(vec![
        (
            "seed refund 50 USD allowed",
            seed.clone(),
            request(
                "payments.refund",
                json!({"amount": 50, "currency": "USD", "region": "US-CA"}),
            )?,
        ),
        (
            "seed refund 250 USD denied",
            seed.clone(),
            request(
                "payments.refund",
                json!({"amount": 250, "currency": "USD", "region": "US-CA"}),
            )?,
        ),
        (
            "seed export 1000 rows allowed",
            seed,
            request(
                "data.export",
                json!({"rows": 1000, "pii": false, "region": "US-NY"}),
            )?,
        ),
        (
            "oap refund 99.99 USD allowed",
            oap,
            request(
                "payments.refund",
                json!({"amount": 99.99, "currency": "USD", "region": "US-CA",
                       "reason_code": "customer_request"}),
            )?,
        ),
    ])
}

fn bench_decide(c: &mut Criterion) {
    let cases = match setup() {
        Ok(cases) => cases,
        Err(e) => {
            eprintln!("cannot build the benchmark inputs: {e}");
            std::process::exit(1);
        }
    };
    for (name, passport, req) in &cases {
        c.bench_function(&format!("decide: {name}"), |b| {
            b.iter(|| decide(black_box(passport), black_box(req)))
        });
    }
    if let Some((_, passport, req)) = cases.first() {
        let spent = SpentToday::from([("USD".to_owned(), 90_000)]);
        c.bench_function("decide_with_spent: seed refund 50 USD", |b| {
            b.iter(|| decide_with_spent(black_box(passport), black_box(req), black_box(&spent)))
        });
    }
}

fn bench_signing(c: &mut Criterion) {
    let view = match seed() {
        Ok(view) => view,
        Err(e) => {
            eprintln!("cannot build the benchmark inputs: {e}");
            std::process::exit(1);
        }
    };
    let key = vouch_core::signing::DecisionKey::from_seed(&[7; 32]);
    let decision = json!({
        "decision_id": "dec_0192f2a4c3b87d9e8f1a2b3c4d5e6f70", "allow": true, "reasons": [],
        "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70", "owner_id": "org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71",
        "assurance_level": "L2", "capability": "payments.refund", "created_at": "2026-12-04T01:00:00.000Z",
        "expires_in": 1, "passport_version": 3, "chain": ["ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"],
        "passport_digest": view.digest(),
    });
    c.bench_function("signing: passport digest of the seed view", |b| {
        b.iter(|| black_box(&view).digest())
    });
    c.bench_function("signing: sign a seed decision (JCS + Ed25519)", |b| {
        b.iter(|| key.signed(black_box(decision.clone())))
    });
    let keys = vouch_core::signing::PublicKeys::of([&key]);
    let signed = key.signed(decision.clone()).unwrap_or_default();
    c.bench_function("signing: verify a signed decision", |b| {
        b.iter(|| keys.verify(black_box(&signed)))
    });
}

criterion_group!(benches, bench_decide, bench_signing);
criterion_main!(benches);
