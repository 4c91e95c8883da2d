use serde_json::{json, Value};

use super::*;

fn hex32(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).unwrap();
    out
}

fn jcs(value: &Value) -> String {
    String::from_utf8(canonical(value).unwrap()).unwrap()
}

/// RFC 8785 §3.2.2's example: literals, numbers as ECMAScript prints them, string escapes.
#[test]
fn the_rfc_8785_example_canonicalizes_as_published() {
    let input = r#"{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }"#;
    let value: Value = serde_json::from_str(input).unwrap();
    assert_eq!(
        jcs(&value),
        r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
    );
}

/// RFC 8785 §3.2.3: members sort by their UTF-16 code units, not by UTF-8 bytes or chars.
#[test]
fn members_sort_by_utf16_code_units() {
    let input = r#"{
      "\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    let value: Value = serde_json::from_str(input).unwrap();
    assert_eq!(
        jcs(&value),
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
         \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
         \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
    );
}

/// RFC 8785 Appendix B: IEEE 754 doubles and their ECMAScript form.
#[test]
fn numbers_print_as_ecmascript_does() {
    let cases: [(u64, &str); 20] = [
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];
    for (bits, expected) in cases {
        let value = json!(f64::from_bits(bits));
        assert_eq!(jcs(&value), expected, "{bits:#018x}");
    }
}

/// RFC 8032 §7.1, test 1: the Ed25519 underneath is the standard one.
#[test]
fn ed25519_matches_rfc_8032() {
    let key = DecisionKey::from_seed(&hex32(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    ));
    let x = key.public_jwk()["x"].as_str().unwrap().to_owned();
    let public =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, x).unwrap();
    assert_eq!(
        hex::encode(public),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
}

fn golden_key() -> DecisionKey {
    DecisionKey::from_seed(&[7u8; 32])
}

fn golden_decision() -> Value {
    json!({
        "decision_id": "dec_0192f2a4c3b87d9e8f1a2b3c4d5e6f70",
        "allow": false,
        "reasons": [{ "code": "oap.limit_exceeded", "message": "€250.00 is over the €100.00 limit",
                      "limit": "limits.refund_usd_max_per_tx" }],
        "agent_id": "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70",
        "owner_id": "org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71",
        "assurance_level": "L2",
        "capability": "payments.refund",
        "created_at": "2026-12-04T01:00:00.000Z",
        "expires_in": 1,
        "passport_version": 3,
        "chain": ["ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"],
        "passport_digest": "sha256:00",
    })
}

/// Fixed key, fixed decision → fixed JCS bytes and signature. The expected signature was
/// computed independently (Node's `crypto.sign(null, …)` over the same bytes), so this pins
/// both the canonical form and the Ed25519 signing.
#[test]
fn golden_vector_fixed_key_fixed_decision() {
    let key = golden_key();
    assert_eq!(key.kid(), GOLDEN_KID);
    let signed = key.signed(golden_decision()).unwrap();
    let mut unsigned = signed.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    assert_eq!(jcs(&unsigned), GOLDEN_JCS);
    assert_eq!(signed["signature"], GOLDEN_SIGNATURE);
    // Deterministic: signing again gives the same bytes.
    assert_eq!(key.signed(signed.clone()).unwrap(), signed);
}

const GOLDEN_KID: &str = "oap:registry:--6IM5l0OosLj9yWskISYhUA3n_3CURQkmrYMSha_ck";
const GOLDEN_JCS: &str = r#"{"agent_id":"ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70","allow":false,"assurance_level":"L2","capability":"payments.refund","chain":["ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"],"created_at":"2026-12-04T01:00:00.000Z","decision_id":"dec_0192f2a4c3b87d9e8f1a2b3c4d5e6f70","expires_in":1,"kid":"oap:registry:--6IM5l0OosLj9yWskISYhUA3n_3CURQkmrYMSha_ck","owner_id":"org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71","passport_digest":"sha256:00","passport_version":3,"reasons":[{"code":"oap.limit_exceeded","limit":"limits.refund_usd_max_per_tx","message":"€250.00 is over the €100.00 limit"}]}"#;
const GOLDEN_SIGNATURE: &str =
    "ed25519:D1M9S7Uwb/C9wIb6tflZxZdACH3sQLW7APWk3rXBWODoj3raHwfz4fPESa5fe9W87BIhaqhudERvVQicdlADAQ==";

#[test]
fn a_signed_decision_verifies_and_any_change_breaks_it() {
    let key = golden_key();
    let keys = PublicKeys::of([&key]);
    let signed = key.signed(golden_decision()).unwrap();
    assert_eq!(keys.verify(&signed), Ok(()));
    // Member order and whitespace do not matter: the JCS form does.
    let reordered: Value =
        serde_json::from_str(&serde_json::to_string_pretty(&signed).unwrap()).unwrap();
    assert_eq!(keys.verify(&reordered), Ok(()));

    for (member, value) in [
        ("allow", json!(true)),
        ("expires_in", json!(2)),
        ("passport_digest", json!("sha256:01")),
        ("extra", json!("added")),
    ] {
        let mut tampered = signed.clone();
        tampered[member] = value;
        assert_eq!(
            keys.verify(&tampered),
            Err(SignatureError::Mismatch),
            "{member}"
        );
    }
    let mut removed = signed.clone();
    removed.as_object_mut().unwrap().remove("chain");
    assert_eq!(keys.verify(&removed), Err(SignatureError::Mismatch));

    let mut other_kid = signed.clone();
    other_kid["kid"] = json!("oap:registry:other");
    assert_eq!(
        keys.verify(&other_kid),
        Err(SignatureError::UnknownKid("oap:registry:other".into()))
    );
    let mut unsigned = signed.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    assert_eq!(keys.verify(&unsigned), Err(SignatureError::Unsigned));
    let mut short = signed.clone();
    short["signature"] = json!("ed25519:AAAA");
    assert_eq!(keys.verify(&short), Err(SignatureError::Malformed));
    assert_eq!(keys.verify(&json!([1])), Err(SignatureError::NotAnObject));

    // Another key with the same kid is still a mismatch, never a pass.
    let impostor = DecisionKey::from_jwk(
        &json!({ "kty": "OKP", "crv": "Ed25519", "kid": key.kid(),
                 "d": private_member(&DecisionKey::from_seed(&[9u8; 32]), "d"),
                 "x": private_member(&DecisionKey::from_seed(&[9u8; 32]), "x") })
        .to_string(),
    )
    .unwrap();
    let forged = impostor.signed(golden_decision()).unwrap();
    assert_eq!(keys.verify(&forged), Err(SignatureError::Mismatch));
}

fn private_member(key: &DecisionKey, member: &str) -> String {
    key.private_jwk()[member].as_str().unwrap().to_owned()
}

#[test]
fn keys_load_from_jwks_and_refuse_what_is_not_an_ed25519_key() {
    let key = golden_key();
    let round = DecisionKey::from_jwk(&key.private_jwk().to_string()).unwrap();
    assert_eq!(round.kid(), key.kid());
    let set = json!({ "keys": [
        { "kty": "EC", "crv": "P-256", "x": "skipped", "y": "skipped" },
        key.public_jwk(),
    ] });
    let keys = PublicKeys::from_jwks(&set).unwrap();
    assert_eq!(keys.verify(&key.signed(golden_decision()).unwrap()), Ok(()));

    let public_only = key.public_jwk().to_string();
    assert!(matches!(
        DecisionKey::from_jwk(&public_only),
        Err(KeyError::NotAJwk(_))
    ));
    let mut mismatched = key.private_jwk();
    mismatched["x"] = json!(private_member(&DecisionKey::from_seed(&[9u8; 32]), "x"));
    assert_eq!(
        DecisionKey::from_jwk(&mismatched.to_string()).err(),
        Some(KeyError::PublicMismatch)
    );
    let mut bad_kid = key.private_jwk();
    bad_kid["kid"] = json!("mine");
    assert_eq!(
        DecisionKey::from_jwk(&bad_kid.to_string()).err(),
        Some(KeyError::BadKid("mine".into()))
    );
    let ec = json!({ "kty": "EC", "crv": "P-256", "x": "a", "d": "b" }).to_string();
    assert!(matches!(
        DecisionKey::from_jwk(&ec),
        Err(KeyError::NotAJwk(_))
    ));
    assert!(PublicKeys::from_jwks(&json!({ "nokeys": [] })).is_err());
}

#[test]
fn the_digest_is_sha256_of_the_jcs_form() {
    // SHA-256 of `{"a":1,"b":[true]}` (the JCS form of both spellings below).
    let expected = "sha256:90eddf64b875cb5fa184bb12503cc7309b6ce21b175521a80bd8d83082bae604";
    assert_eq!(digest(&json!({ "b": [true], "a": 1.0 })).unwrap(), expected);
    assert_eq!(digest(&json!({ "a": 1, "b": [true] })).unwrap(), expected);
}

#[test]
fn integers_past_two_to_the_53_print_as_the_double_a_reader_sees() {
    assert_eq!(jcs(&json!(9007199254740992u64)), "9007199254740992");
    assert_eq!(jcs(&json!(9007199254740993u64)), "9007199254740992");
    assert_eq!(jcs(&json!(-9007199254740993i64)), "-9007199254740992");
    assert_eq!(jcs(&json!(u64::MAX)), "18446744073709552000");
}

proptest::proptest! {
    /// The canonical form is JSON that reads back as the same value, and canonicalizing it again
    /// changes nothing.
    #[test]
    fn canonical_form_round_trips(value in arbitrary_json()) {
        let text = jcs(&value);
        let read: Value = serde_json::from_str(&text).unwrap();
        proptest::prop_assert_eq!(jcs(&read), text);
    }
}

fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC*".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map("\\PC{0,6}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn signing_elsewhere_gives_the_same_decision() {
    let key = golden_key();
    let mut prepared = golden_decision().as_object().unwrap().clone();
    let input = key.signing_input(&mut prepared).unwrap();
    assert_eq!(String::from_utf8(input).unwrap(), GOLDEN_JCS);
    let signature = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        GOLDEN_SIGNATURE.trim_start_matches("ed25519:"),
    )
    .unwrap();
    attach_signature(&mut prepared, &signature.try_into().unwrap());
    assert_eq!(
        Value::Object(prepared),
        key.signed(golden_decision()).unwrap()
    );
    let import = key.private_jwk_for_import();
    assert_eq!(import["d"], key.private_jwk()["d"]);
    assert!(import.get("kid").is_none() && import.get("alg").is_none());
}
