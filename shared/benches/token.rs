//! Times the native cost of a token decision's cryptography and chain rules: ES256 verification
//! of a one-hop delegated token (p256), claim checks, and `delegation::check_chain`.
//! Run: `cargo bench -p vouch-core --bench token`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use vouch_core::delegation::{check_chain, Grant};
use vouch_core::ids::DelegationId;
use vouch_core::jwk;
use vouch_core::token::{self, Actor, Claims, Expectations};
use vouch_core::{AgentId, CapabilityId, OrgId, Status, Timestamp};

fn bench(c: &mut Criterion) {
    let key = jwk::signing_key_from_bytes(&[7u8; 32]).unwrap();
    let verifying = *key.verifying_key();
    let kid = jwk::kid(&verifying);
    let now = 1_795_000_000;
    let a = AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70").unwrap();
    let b = AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f71").unwrap();
    let dlg = DelegationId::parse("dlg_0192f2a4c3b87d9e8f1a2b3c4d5e6f72").unwrap();
    let claims = Claims {
        iss: "https://vouch.example".into(),
        sub: a.clone(),
        aud: Vec::new(),
        iat: now,
        nbf: now,
        exp: now + 300,
        jti: "0192f2a4c3b87d9e8f1a2b3c4d5e6f73".into(),
        org: OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f74").unwrap(),
        scope: "payments.refund".into(),
        ver: 3,
        act: Some(Actor::nest(b.clone(), None)),
        dlg: vec![dlg.clone()],
        status: None,
    };
    let compact = claims.sign(&key, &kid);
    let grant = Grant {
        delegation_id: dlg,
        delegator: a,
        delegatee: b,
        scopes: vec![CapabilityId::parse("payments.refund").unwrap()],
        expires_at: Timestamp::from_unix_millis((now + 3600) * 1000),
        max_depth: 1,
        revoked: false,
    };
    let expect = Expectations {
        issuer: "https://vouch.example",
        audience: None,
        skew_seconds: 60,
        max_len: token::DEFAULT_MAX_LEN,
    };
    let keys = |k: &str| (k == kid).then_some(verifying);
    c.bench_function("verify one-hop delegated ES256 token (p256)", |bench| {
        bench.iter(|| token::verify(black_box(&compact), &keys, &expect, now).unwrap())
    });
    let (_, verified) = token::verify(&compact, &keys, &expect, now).unwrap();
    let grants = [Some(grant)];
    let status = |_: &AgentId| Some(Status::Active);
    c.bench_function("check_chain one hop", |bench| {
        bench.iter(|| {
            check_chain(
                black_box(&verified),
                &grants,
                &status,
                "payments.refund",
                Timestamp::from_unix_millis(now * 1000),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
