//! What the fuzz targets share: a byte reader for structured inputs, the fixed keys and key set
//! tokens are checked against, and the project's own fixtures (the seed passport of
//! `shared/tests/vectors/policy-seed.json`).
//!
//! Fuzz targets assert properties with `assert!`: a failed property aborts the run like a
//! crash, and libFuzzer keeps the input.

use std::sync::OnceLock;

use p256::ecdsa::SigningKey;
use serde_json::Value;
use vouch_core::edge_view::EdgePassport;
use vouch_core::ids::DelegationId;
use vouch_core::jwk::{self, JwkSet};
use vouch_core::token::{Expectations, DEFAULT_MAX_LEN};
use vouch_core::{AgentId, NewAgent, OrgId, Passport, Status, Timestamp};

/// The policy vectors the core's own tests reproduce.
pub const POLICY_VECTORS: &str = include_str!("../../tests/vectors/policy-seed.json");

/// The issuer every fixed token names.
pub const ISSUER: &str = "https://registry.example";
/// The audience a verifier may be configured with.
pub const AUDIENCE: &str = "https://partner.example";
/// "Now" for token checks, in seconds: the fixtures' tokens are issued at 1,795,000,000.
pub const NOW_SECONDS: i64 = 1_795_000_010;

/// Reads a structured input one byte at a time, front to back; past the end every byte is 0,
/// so a short input is a valid input and the all-zero tail is each target's default case.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    /// The next byte, or 0 past the end.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    /// What is left unread.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// The fixed signing key number `n` in 1..=9 (the scalar `[n; 32]`, as the core's tests use),
/// built once: deriving a public key is a scalar multiplication.
pub fn signing_key(n: u8) -> &'static SigningKey {
    &fixed_keys()[usize::from(n.clamp(1, 9)) - 1].0
}

/// The `kid` of fixed key `n` in 1..=9.
pub fn kid(n: u8) -> &'static str {
    &fixed_keys()[usize::from(n.clamp(1, 9)) - 1].1
}

fn fixed_keys() -> &'static [(SigningKey, String)] {
    static KEYS: OnceLock<Vec<(SigningKey, String)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (1..=9u8)
            .map(|n| {
                let key = jwk::signing_key_from_bytes(&[n; 32]).expect("[n; 32] is a P-256 scalar");
                let kid = jwk::kid(key.verifying_key());
                (key, kid)
            })
            .collect()
    })
}

/// The published key set tokens are verified against: keys 1 and 2, read back from their
/// published JSON the way the edge reads the `jwks` KV value (built once).
pub fn key_set() -> &'static JwkSet {
    static SET: OnceLock<JwkSet> = OnceLock::new();
    SET.get_or_init(|| {
        let published = JwkSet::from_keys([
            signing_key(1).verifying_key(),
            signing_key(2).verifying_key(),
        ]);
        JwkSet::from_json(published.to_json().to_string().as_bytes())
            .expect("a published set reads back")
    })
}

/// What the verifier expects: the fixed issuer, the audience when `with_audience`, `skew`
/// seconds of clock skew (the core clamps it to 60) and the default length bound.
pub fn expectations(with_audience: bool, skew: u32) -> Expectations<'static> {
    Expectations {
        issuer: ISSUER,
        audience: with_audience.then_some(AUDIENCE),
        skew_seconds: skew,
        max_len: DEFAULT_MAX_LEN,
    }
}

/// Agent number `n` (0..16) of a small universe (`ap_…f70` + n), so that inputs name the same
/// agents.
pub fn agent(n: u8) -> AgentId {
    static AGENTS: OnceLock<Vec<AgentId>> = OnceLock::new();
    let all = AGENTS.get_or_init(|| {
        (0..16u8)
            .map(|n| {
                AgentId::parse(&format!(
                    "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f{:02x}",
                    0x70 + n
                ))
            })
            .collect::<Result<_, _>>()
            .expect("agent ids")
    });
    all[usize::from(n % 16)].clone()
}

/// Grant number `n` (0..16) of a small universe.
pub fn grant_id(n: u8) -> DelegationId {
    static GRANTS: OnceLock<Vec<DelegationId>> = OnceLock::new();
    let all = GRANTS.get_or_init(|| {
        (0..16u8)
            .map(|n| {
                DelegationId::parse(&format!(
                    "dlg_0192f2a4c3b87d9e8f1a2b3c4d5e6f{:02x}",
                    0x70 + n
                ))
            })
            .collect::<Result<_, _>>()
            .expect("grant ids")
    });
    all[usize::from(n % 16)].clone()
}

/// The org of every fixture.
pub fn org() -> OrgId {
    OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71").expect("id")
}

/// The registration request of the policy vectors' passport: its fields without `agent_id`.
pub fn seed_registration() -> Value {
    let vectors: Value = serde_json::from_str(POLICY_VECTORS).expect("the vectors are JSON");
    let mut passport = vectors["passport"].clone();
    if let Some(fields) = passport.as_object_mut() {
        fields.remove("agent_id");
    }
    passport
}

/// Registers a request as the origin does: agent 0 of the org, at a fixed instant.
pub fn register(request: Value) -> Result<Passport, vouch_core::CoreError> {
    let new = NewAgent::from_json(request)?;
    Passport::register(
        new,
        agent(0),
        org(),
        Timestamp::from_unix_millis(1_795_000_000_000),
    )
}

/// The seed passport (built once).
pub fn seed_passport() -> &'static Passport {
    static PASSPORT: OnceLock<Passport> = OnceLock::new();
    PASSPORT.get_or_init(|| register(seed_registration()).expect("the seed registers"))
}

/// The seed passport, active, as the edge sees it in KV.
pub fn seed_view() -> EdgePassport {
    let mut view = EdgePassport::from(seed_passport());
    view.status = Status::Active;
    view
}

/// Limits in OAP 1.0's per-capability layout (docs/policy.md), as the core's policy tests use.
pub const OAP_LIMITS: &str = r#"{
  "payments.refund": {
    "currency_limits": { "USD": { "max_per_tx": 10000, "daily_cap": 100000 } },
    "reason_codes": ["customer_request"]
  },
  "data.export": { "max_rows": 1000, "allow_pii": false, "allowed_collections": ["orders"] }
}"#;

/// The edge views decisions are made on: the seed passport with its flat limits, and the same
/// passport with the OAP layout (built once).
pub fn views() -> &'static [EdgePassport] {
    static VIEWS: OnceLock<Vec<EdgePassport>> = OnceLock::new();
    VIEWS.get_or_init(|| {
        let mut oap = seed_view();
        oap.limits = serde_json::from_str(OAP_LIMITS).expect("the OAP limits are a JSON object");
        vec![seed_view(), oap]
    })
}
