//! Writes the starting corpus of every fuzz target from the project's own fixtures: the policy
//! vectors' passport and cases, the core's test tokens, claims, key sets, journal appends and
//! delegation chains. Deterministic (ES256 signatures use RFC 6979 nonces).
//!
//! `cargo run --manifest-path shared/fuzz/Cargo.toml --example seeds -- <dir>` writes
//! `<dir>/<target>/<name>`; `scripts/fuzz.sh` then runs from them, and `cargo fuzz cmin`
//! keeps what adds coverage in `shared/fuzz/corpus/`.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::Signature;
use serde_json::{json, Value};
use vouch_core::jwk::{self, JwkSet};
use vouch_core::jws;
use vouch_core::token::{Actor, Claims};
use vouch_core_fuzz::{
    agent, grant_id, kid, org, seed_registration, signing_key, AUDIENCE, ISSUER, OAP_LIMITS,
    POLICY_VECTORS,
};

/// Parameter byte of the token target: 60 s of skew, an audience expected.
const PARAMS: char = '<';
const ISSUED: i64 = 1_795_000_000;

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("seeds"));
    token(&dir.join("token"));
    verify_request(&dir.join("verify_request"));
    passport(&dir.join("passport"));
    journal(&dir.join("journal"));
    delegation(&dir.join("delegation"));
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(dir).expect("create the corpus folder");
    std::fs::write(dir.join(name), bytes).expect("write a seed");
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn own_claims() -> Claims {
    Claims {
        iss: ISSUER.to_owned(),
        sub: agent(0),
        aud: vec![AUDIENCE.to_owned()],
        iat: ISSUED,
        nbf: ISSUED,
        exp: ISSUED + 300,
        jti: "jti-1".to_owned(),
        org: org(),
        scope: "payments.refund data.export".to_owned(),
        ver: 7,
        act: None,
        dlg: Vec::new(),
        status: None,
    }
}

fn two_hop_claims() -> Claims {
    let mut claims = own_claims();
    claims.act = Some(Actor::nest(agent(2), Some(Actor::nest(agent(1), None))));
    claims.dlg = vec![grant_id(1), grant_id(2)];
    claims
}

/// Signs header and payload segments as they are (tokens `jws::sign` would never write).
fn sign_raw(header: &Value, payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(payload));
    let signature: Signature = signing_key(1).sign(input.as_bytes());
    format!("{input}.{}", b64(signature.to_bytes()))
}

fn token(dir: &Path) {
    let key = signing_key(1);
    let own = own_claims();
    let mut tokens: Vec<(&str, String)> = vec![
        ("own", own.sign(key, kid(1))),
        ("two-hops", two_hop_claims().sign(signing_key(2), kid(2))),
        ("unknown-kid", own.sign(signing_key(9), kid(9))),
        ("liar-kid", own.sign(signing_key(9), kid(1))),
        (
            "not-claims",
            jws::sign(br#"{"hello":"world"}"#, key, kid(1)),
        ),
        ("array-payload", jws::sign(b"[1,2]", key, kid(1))),
        // Found by this target: a claim that is not UTF-8 (jws now refuses the payload).
        (
            "non-utf8-claim",
            jws::sign(b"{\"scope\":\"a\xd8\"}", key, kid(1)),
        ),
    ];
    let mut expired = own.clone();
    expired.exp = ISSUED;
    tokens.push(("expired", expired.sign(key, kid(1))));
    let mut audiences = own.clone();
    audiences.aud = vec!["x".into(), AUDIENCE.into()];
    tokens.push(("audiences", audiences.sign(key, kid(1))));
    let mut future = own.clone();
    future.iat = ISSUED + 1000;
    tokens.push(("future", future.sign(key, kid(1))));
    let header = json!({ "alg": "ES256", "typ": "JWT", "kid": kid(1) });
    for (name, edit) in [
        ("alg-none", json!({ "alg": "none" })),
        ("alg-hs256", json!({ "alg": "HS256" })),
        ("crit", json!({ "crit": ["b64"], "b64": false })),
        ("typ-lower", json!({ "typ": "jwt" })),
        ("typ-at-jwt", json!({ "typ": "at+jwt" })),
        ("no-kid", json!({ "kid": null })),
        (
            "jku",
            json!({ "jku": "https://attacker.example/jwks.json" }),
        ),
    ] {
        let mut header = header.clone();
        for (k, v) in edit.as_object().expect("an object") {
            header[k] = v.clone();
        }
        tokens.push((name, sign_raw(&header, &own.to_json())));
    }
    let good = own.sign(key, kid(1));
    let (input, _) = good.rsplit_once('.').expect("three segments");
    tokens.push(("short-signature", format!("{input}.{}", b64([1u8; 63]))));
    for (name, token) in &tokens {
        write(dir, &format!("parse-{name}"), format!("0{PARAMS}{token}"));
        write(dir, &format!("verify-{name}"), format!("1{PARAMS}{token}"));
    }
    write(dir, "parse-no-audience", format!("0\u{7f}{good}"));

    let mut payloads: Vec<(&str, Vec<u8>)> = vec![
        ("own", own.to_json()),
        ("two-hops", two_hop_claims().to_json()),
        ("expired", expired.to_json()),
        ("audiences", audiences.to_json()),
        ("empty", b"{}".to_vec()),
    ];
    let mut extra: Value = serde_json::from_slice(&own.to_json()).expect("claims are JSON");
    extra["cnf"] = json!({ "jkt": "x" });
    payloads.push(("unknown-claim", extra.to_string().into_bytes()));
    let mut fractional = extra.clone();
    fractional["exp"] = json!(1.5);
    payloads.push(("fractional-exp", fractional.to_string().into_bytes()));
    for (name, payload) in payloads {
        for (mode, prefix) in [('2', "claims"), ('4', "sign")] {
            let mut seed = format!("{mode}{PARAMS}").into_bytes();
            seed.extend(&payload);
            write(dir, &format!("{prefix}-{name}"), seed);
        }
    }

    let set = JwkSet::from_keys([
        signing_key(1).verifying_key(),
        signing_key(2).verifying_key(),
    ]);
    let mut one = serde_json::to_value(jwk::public_jwk(signing_key(3).verifying_key()))
        .expect("a JWK serializes");
    let sets = [
        ("published", set.to_json()),
        ("one", json!({ "keys": [one.clone()] })),
        ("empty", json!({ "keys": [] })),
    ];
    for (name, document) in sets {
        write(dir, &format!("jwks-{name}"), format!("3{PARAMS}{document}"));
    }
    one["kid"] = json!("not-the-thumbprint");
    write(
        dir,
        "jwks-kid-mismatch",
        format!("3{PARAMS}{}", json!({ "keys": [one.clone()] })),
    );
    one["d"] = json!(b64([3u8; 32]));
    write(
        dir,
        "jwks-private",
        format!("3{PARAMS}{}", json!({ "keys": [one] })),
    );
}

fn verify_request(dir: &Path) {
    let vectors: Value = serde_json::from_str(POLICY_VECTORS).expect("the vectors are JSON");
    let agent_id = vectors["passport"]["agent_id"].clone();
    let mut items = Vec::new();
    for (i, case) in vectors["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .enumerate()
    {
        let body = json!({
            "agent_id": agent_id,
            "capability": case["capability"],
            "context": case["context"],
        });
        write(dir, &format!("vector-{i}"), body.to_string());
        items.push(body);
    }
    write(dir, "batch", json!({ "requests": items }).to_string());
    let token = own_claims().sign(signing_key(1), kid(1));
    let bodies = [
        (
            "token-commit",
            json!({ "token": token, "capability": "payments.refund",
            "context": { "amount": 250.5, "currency": "USD", "region": "US-CA" },
            "commit": true, "idempotency_key": "order-1234" }),
        ),
        (
            "min-assurance",
            json!({ "agent_id": agent_id, "capability": "payments.refund",
            "min_assurance": "L3" }),
        ),
        (
            "export-pii",
            json!({ "agent_id": agent_id, "capability": "data.export",
            "context": { "rows": 10, "pii": true, "region": "US-NY", "collection": "orders" } }),
        ),
        (
            "oap-reason",
            json!({ "agent_id": agent_id, "capability": "payments.refund",
            "context": { "amount": 100.01, "currency": "USD", "region": "US-CA",
                         "reason_code": "customer_request" } }),
        ),
        (
            "zero-decimal",
            json!({ "agent_id": agent_id, "capability": "payments.refund",
            "context": { "amount": 250, "currency": "JPY", "region": "US" } }),
        ),
        (
            "bad-context",
            json!({ "agent_id": agent_id, "capability": "payments.refund",
            "context": { "amount": "ten", "colour": "red" } }),
        ),
        (
            "both-subjects",
            json!({ "agent_id": agent_id, "token": "a.b.c", "capability": "a" }),
        ),
        (
            "commit-by-id",
            json!({ "agent_id": agent_id, "capability": "a", "commit": true,
            "idempotency_key": "k" }),
        ),
    ];
    for (name, body) in bodies {
        write(dir, name, body.to_string());
    }
}

fn passport(dir: &Path) {
    let seed = seed_registration();
    write(dir, "register-seed", seed.to_string());
    let mut oap = seed.clone();
    oap["limits"] = serde_json::from_str(OAP_LIMITS).expect("the OAP limits are JSON");
    oap["public_jwk"] = json!({ "kty": "OKP", "crv": "Ed25519",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" });
    oap["metadata"] = json!({ "environment": "production" });
    oap["tier"] = json!("privileged");
    oap["require_act_as"] = json!(true);
    write(dir, "register-oap", oap.to_string());
    let mut draft = seed.clone();
    draft["status"] = json!("draft");
    draft["description"] = json!("line\nline");
    write(dir, "register-draft", draft.to_string());
    let patches = [
        (
            "merge",
            json!({ "limits": { "refund_usd_max_per_tx": 250, "allow_pii": null },
            "regions": ["US-CA"], "description": "handles refunds" }),
        ),
        (
            "no-op",
            json!({ "role": "Tier-2 Support", "name": "Acme Support Bot" }),
        ),
        (
            "reset",
            json!({ "role": null, "capabilities": null, "tier": null }),
        ),
        ("immutable", json!({ "name": "Other" })),
        ("read-only", json!({ "status": "active", "version": 99 })),
        ("unknown", json!({ "colour": "red" })),
        ("duplicate-region", json!({ "regions": ["US", "US"] })),
        (
            "metadata",
            json!({ "metadata": { "k": "v", "environment": null } }),
        ),
        (
            "jwk",
            json!({ "public_jwk": { "kty": "EC", "crv": "P-256", "x": "a", "y": "b" } }),
        ),
        (
            "capabilities",
            json!({ "capabilities": [{ "id": "payments.refund",
            "params": { "max_amount": 100.5, "currency": "USD" } }, { "id": "a.b" }] }),
        ),
    ];
    for (name, patch) in patches {
        write(dir, &format!("patch-{name}"), format!("\0{patch}"));
    }
    write(
        dir,
        "register-oap-then-patch",
        format!(
            "{oap}\0{}",
            json!({ "limits": { "payments.refund": { "currency_limits": { "EUR": { "max_per_tx": 5 } } } } })
        ),
    );
}

fn journal(dir: &Path) {
    let append = json!({
        "epoch": 42,
        "changes": [
            { "kind": "agent", "agent_id": agent(0), "version": 3, "status": "suspended",
              "status_reason": "fraud review", "suspended_at": "2026-11-22T00:00:00.000Z",
              "updated_at": "2026-11-22T00:00:00.000Z" },
            { "kind": "agent", "agent_id": agent(0), "version": 4, "status": "active",
              "updated_at": "2026-11-22T00:00:01.000Z" },
            { "kind": "delegation_revoked", "delegation_id": grant_id(0), "version": 2,
              "expires_at": "2026-11-22T01:00:00.000Z", "revoked_at": "2026-11-22T00:00:00.000Z" },
            { "kind": "key_withdrawn", "kid": "k1", "withdrawn_at": "2026-11-22T00:00:00.000Z",
              "refuse_until": "2026-11-22T00:06:05.000Z" },
            { "kind": "org", "org_id": "org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71", "version": 1,
              "frozen": true, "reason": "incident", "changed_at": "2026-11-22T00:00:00.000Z" },
            { "kind": "agent", "agent_id": agent(1), "version": 5, "status": "active",
              "tokens_not_before": "2026-11-22T00:00:01.000Z", "updated_at": "2026-11-22T00:00:01.000Z" }
        ],
        "settled": [{ "key": format!("passport:{}", agent(0)), "version": 2 }],
        "seed": true
    });
    write(dir, "append", append.to_string());
    write(dir, "append-empty", "{}");
    let pull = json!({
        "entries": [
            { "seq": 7, "stored_at": "2026-11-22T00:00:02.000Z", "change": append["changes"][0] },
            { "seq": 8, "stored_at": "2026-11-22T00:00:02.000Z", "change": append["changes"][2] }
        ],
        "head": 8, "floor": 7, "more": false, "epoch": 42, "seeded": true
    });
    write(dir, "pull", pull.to_string());
    let revoked = json!({ "changes": [{ "kind": "agent", "agent_id": agent(1), "version": 9,
        "status": "revoked", "revoked_at": "2026-11-22T00:00:00+01:00",
        "updated_at": "2026-11-22T00:00:00.123456Z" }] });
    write(dir, "append-revoked", revoked.to_string());
    // The ends of the years a timestamp can write (found by this target: an offset that moves
    // an instant out of them was accepted and never read back).
    let edges = json!({ "changes": [
        { "kind": "delegation_revoked", "delegation_id": grant_id(1), "version": 1,
          "expires_at": "9999-12-31T23:59:59.999Z", "revoked_at": "0000-01-01T00:00:00+00:01" },
        { "kind": "agent", "agent_id": agent(2), "version": 1, "status": "active",
          "updated_at": "9999-12-31T23:59:59.999-00:01" }] });
    write(dir, "append-time-edges", edges.to_string());
}

fn delegation(dir: &Path) {
    // See the table in fuzz_targets/delegation.rs; zero bytes are the consistent choices.
    let seeds: [(&str, &[u8]); 12] = [
        ("own-token", &[]),
        ("one-hop", &[0, 0, 1]),
        ("two-hops", &[0, 0, 2]),
        ("five-hops", &[0, 0, 5]),
        ("six-hops-too-deep", &[0, 0, 6]),
        ("suspended-actor", &[0, 0b10, 1, 1, 0, 0]),
        ("agent-twice", &[0, 0, 2, 0, 0, 6]),
        ("revoked-grant", &[0, 0, 1, 0, 0, 0, 0, 0, 0x80]),
        ("expired-grant", &[0, 0, 1, 0, 0, 0, 0, 0, 0x20, 128]),
        ("wrong-delegator", &[0, 0, 1, 0, 0, 0, 0, 0, 0x04, 5]),
        (
            "max-depth-1-of-2",
            &[1, 0, 2, 0, 0, 0, 0, 0, 0, 0x40, 1, 0, 0],
        ),
        (
            "exchange-scoped",
            &[0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0b1110],
        ),
    ];
    for (name, bytes) in seeds {
        write(dir, name, bytes);
    }
}
