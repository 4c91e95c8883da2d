use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::*;
use crate::edge_view::EdgePassport;
use crate::passport::tests::seed_passport;
use crate::passport::Status;
use crate::signing::{canonical, PublicKeys};

const EDGE: &str = "https://edge.example.com";

fn golden_key() -> DecisionKey {
    DecisionKey::from_seed(&[7u8; 32])
}

/// The seed passport (SPEC §3), active at version 2, with a description that is not ASCII (the
/// payload is UTF-8, never `\u` escapes).
fn golden_view() -> EdgePassport {
    let mut view = EdgePassport::from(&seed_passport());
    view.status = Status::Active;
    view.version = 2;
    view.description = Some("Answers Tier-2 tickets and refunds — up to €100".into());
    view
}

fn jcs(value: &impl serde::Serialize) -> String {
    String::from_utf8(canonical(value).unwrap()).unwrap()
}

fn signed(view: &EdgePassport, key: &DecisionKey) -> Value {
    card_to_sign(view, EDGE, key).unwrap().sign()
}

/// Fixed key, fixed passport → fixed card bytes, protected header and signature. The signature
/// was computed independently (Python: `rfc8785` for the payload, `jwcrypto` signing the JWS
/// with the same Ed25519 JWK), so this pins the card's canonical form and the JWS construction.
#[test]
fn golden_vector_fixed_key_fixed_card() {
    let key = golden_key();
    let card = signed(&golden_view(), &key);
    let mut unsigned = card.clone();
    unsigned.as_object_mut().unwrap().remove("signatures");
    assert_eq!(jcs(&unsigned), GOLDEN_CARD_JCS);
    let signature = &card["signatures"][0];
    assert_eq!(signature["protected"], GOLDEN_PROTECTED);
    assert_eq!(signature["signature"], GOLDEN_SIGNATURE);
    assert_eq!(card["signatures"].as_array().map(Vec::len), Some(1));
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(GOLDEN_PROTECTED).unwrap()).unwrap();
    assert_eq!(
        header,
        json!({ "alg": "EdDSA", "typ": "JOSE", "kid": key.kid(),
                "jku": "https://edge.example.com/.well-known/oap/jwks.json" })
    );
    assert_eq!(
        card_to_sign(&golden_view(), EDGE, &key).unwrap().etag(),
        GOLDEN_ETAG
    );
}

const GOLDEN_CARD_JCS: &str = r#"{"capabilities":{"extensions":[{"description":"Vouch, the registry that vouches for this agent, answers whether one use of a capability is allowed right now (amount, currency, region): POST `verify_url` with `agent_id` and `capability` for a decision signed with the keys at `jwks_url`; GET `status_url` for the live status. This card is issued only while the agent is active.","params":{"agent_id":"ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70","assurance_level":"L2","jwks_url":"https://edge.example.com/.well-known/oap/jwks.json","passport_digest":"sha256:19e93b217330edd61d3aa53ffcef7958a90f091919a8117760dbfe0f64751306","passport_version":2,"status":"active","status_url":"https://edge.example.com/verify?agent_id=ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70","verify_url":"https://edge.example.com/verify"},"uri":"https://edge.example.com/a2a/extensions/vouch-verify/v1"}]},"defaultInputModes":["text/plain","application/json"],"defaultOutputModes":["text/plain","application/json"],"description":"Answers Tier-2 tickets and refunds — up to €100","documentationUrl":"https://edge.example.com/agents/ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70","name":"Acme Support Bot","provider":{"organization":"Acme Support Team","url":"mailto:security@acme.com"},"skills":[{"description":"May use `payments.refund`: at most 100.00 USD per transaction; at most 1,000.00 USD per day; amounts only in USD; never with personal data; where: US-NY and US-CA.","id":"payments.refund","name":"Refund (payments)","tags":["payments.refund","payments","refund"]},{"description":"May use `data.export`: at most 1,000 rows per export; never with personal data; where: US-NY and US-CA.","id":"data.export","name":"Export (data)","tags":["data.export","data","export"]}],"supportedInterfaces":[{"protocolBinding":"https://edge.example.com/a2a/bindings/vouch-registry/v1","protocolVersion":"1.0","url":"https://edge.example.com/agents/ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"}],"version":"2"}"#;
const GOLDEN_PROTECTED: &str = "eyJhbGciOiJFZERTQSIsImprdSI6Imh0dHBzOi8vZWRnZS5leGFtcGxlLmNvbS8ud2VsbC1rbm93bi9vYXAvandrcy5qc29uIiwia2lkIjoib2FwOnJlZ2lzdHJ5Oi0tNklNNWwwT29zTGo5eVdza0lTWWhVQTNuXzNDVVJRa21yWU1TaGFfY2siLCJ0eXAiOiJKT1NFIn0";
const GOLDEN_SIGNATURE: &str =
    "Moe_ekM7zDpvUpV8F7-oo0cNve45h6p8nshJcMH6-2e0Rl7bcLhJwD6a4ZIxcagNKjp-7N2iyhcORjBO2vXsCQ";
const GOLDEN_ETAG: &str = "\"card-5fc0b284ec648a5a994a628af0b779cb\"";

#[test]
fn a_signed_card_verifies_and_any_change_breaks_it() {
    let key = golden_key();
    let keys = PublicKeys::of([&key]);
    let card = signed(&golden_view(), &key);
    assert_eq!(verify_card(&card, &keys), Ok(key.kid().to_owned()));
    // Member order and whitespace do not matter.
    let reordered: Value =
        serde_json::from_str(&serde_json::to_string_pretty(&card).unwrap()).unwrap();
    assert_eq!(verify_card(&reordered, &keys), Ok(key.kid().to_owned()));

    let mismatch = Err(CardSignatureError::Invalid {
        index: 0,
        source: SignatureError::Mismatch,
    });
    for (pointer, value) in [
        ("/name", json!("Someone Else")),
        ("/provider/organization", json!("Mallory Ltd")),
        ("/skills/0/description", json!("May do anything")),
        (
            "/capabilities/extensions/0/params/status",
            json!("suspended"),
        ),
    ] {
        let mut tampered = card.clone();
        *tampered.pointer_mut(pointer).unwrap() = value;
        assert_eq!(verify_card(&tampered, &keys), mismatch, "{pointer}");
    }
    let mut added = card.clone();
    added["iconUrl"] = json!("https://evil.example/icon.png");
    assert_eq!(verify_card(&added, &keys), mismatch);

    // Another key, a header that names another algorithm or none, and no signature at all.
    let other = PublicKeys::of([&DecisionKey::from_seed(&[9u8; 32])]);
    assert!(matches!(
        verify_card(&card, &other),
        Err(CardSignatureError::Invalid {
            source: SignatureError::UnknownKid(_),
            ..
        })
    ));
    for alg in [json!("none"), json!("ES256"), json!("HS256"), Value::Null] {
        let mut header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(card["signatures"][0]["protected"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        header["alg"] = alg.clone();
        let mut forged = card.clone();
        forged["signatures"][0]["protected"] = json!(URL_SAFE_NO_PAD.encode(jcs(&header)));
        assert!(
            matches!(
                verify_card(&forged, &keys),
                Err(CardSignatureError::Algorithm { .. })
            ),
            "{alg}"
        );
    }
    let mut unsigned = card.clone();
    unsigned["signatures"] = json!([]);
    assert_eq!(
        verify_card(&unsigned, &keys),
        Err(CardSignatureError::Unsigned)
    );
    // One good signature among bad ones is enough (A2A: verify at least one).
    let mut rotated = card.clone();
    let good = card["signatures"][0].clone();
    rotated["signatures"] = json!([{ "protected": "e30", "signature": "AA" }, good]);
    assert_eq!(verify_card(&rotated, &keys), Ok(key.kid().to_owned()));
}

/// Only members A2A 1.0's `AgentCard` defines, and nothing an SDK's protobuf round trip would
/// drop (an empty string, array or object, or a `false` at its default): the signature must
/// survive that round trip.
#[test]
fn the_card_holds_only_a2a_members_and_nothing_empty() {
    let card = signed(&golden_view(), &golden_key());
    let top: Vec<&str> = card
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for member in &top {
        assert!(
            [
                "name",
                "description",
                "supportedInterfaces",
                "provider",
                "version",
                "documentationUrl",
                "capabilities",
                "defaultInputModes",
                "defaultOutputModes",
                "skills",
                "signatures",
            ]
            .contains(member),
            "{member}"
        );
    }
    fn nothing_empty(path: &str, value: &Value) {
        match value {
            Value::String(s) => assert!(!s.is_empty(), "{path}"),
            Value::Array(items) => {
                assert!(!items.is_empty(), "{path}");
                for (i, item) in items.iter().enumerate() {
                    nothing_empty(&format!("{path}/{i}"), item);
                }
            }
            Value::Object(members) => {
                assert!(!members.is_empty(), "{path}");
                for (name, member) in members {
                    nothing_empty(&format!("{path}/{name}"), member);
                }
            }
            Value::Bool(b) => assert!(*b, "{path}: a false is a default and is omitted"),
            _ => {}
        }
    }
    nothing_empty("", &card);
    let interface = &card["supportedInterfaces"][0];
    assert_eq!(interface["protocolVersion"], "1.0");
    assert_eq!(
        interface["url"],
        "https://edge.example.com/agents/ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"
    );
    assert_eq!(
        interface["protocolBinding"],
        "https://edge.example.com/a2a/bindings/vouch-registry/v1"
    );
    let extension = &card["capabilities"]["extensions"][0];
    assert_eq!(
        extension["uri"],
        "https://edge.example.com/a2a/extensions/vouch-verify/v1"
    );
    assert_eq!(
        extension["params"]["verify_url"],
        "https://edge.example.com/verify"
    );
    assert_eq!(
        extension["params"]["agent_id"],
        "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"
    );
    assert_eq!(extension["params"]["status"], "active");
    assert_eq!(
        extension["params"]["passport_digest"],
        golden_view().digest()
    );
}

#[test]
fn the_passport_reads_as_a_card() {
    let card = signed(&golden_view(), &golden_key());
    assert_eq!(card["name"], "Acme Support Bot");
    assert_eq!(
        card["description"],
        "Answers Tier-2 tickets and refunds — up to €100"
    );
    assert_eq!(card["version"], "2");
    assert_eq!(
        card["provider"],
        json!({ "organization": "Acme Support Team", "url": "mailto:security@acme.com" })
    );
    assert_eq!(card["defaultInputModes"], json!(DEFAULT_MODES));
    let skills = card["skills"].as_array().unwrap();
    assert_eq!(skills.len(), 2);
    assert_eq!(skills[0]["id"], "payments.refund");
    assert_eq!(skills[0]["name"], "Refund (payments)");
    assert_eq!(
        skills[0]["tags"],
        json!(["payments.refund", "payments", "refund"])
    );
    let refund = skills[0]["description"].as_str().unwrap();
    for words in [
        "`payments.refund`",
        "at most 100.00 USD per transaction",
        "at most 1,000.00 USD per day",
        "US-NY and US-CA",
    ] {
        assert!(refund.contains(words), "{words}: {refund}");
    }
    assert_eq!(skills[1]["name"], "Export (data)");
    assert!(skills[1]["description"]
        .as_str()
        .unwrap()
        .contains("at most 1,000 rows per export"));

    // Without a description the card says what the registry knows; without a usable contact
    // URL the provider is named alone.
    let mut plain = golden_view();
    plain.description = None;
    plain.contact = "call the front desk".into();
    let card = signed(&plain, &golden_key());
    assert_eq!(
        card["description"],
        "Acme Support Bot (Tier-2 Support), operated by Acme Support Team."
    );
    assert_eq!(
        card["provider"],
        json!({ "organization": "Acme Support Team" })
    );
    plain.role = None;
    plain.contact = "https://acme.example/security".into();
    let card = signed(&plain, &golden_key());
    assert_eq!(
        card["description"],
        "Acme Support Bot, operated by Acme Support Team."
    );
    assert_eq!(card["provider"]["url"], "https://acme.example/security");
}

#[test]
fn an_agent_without_capabilities_has_an_empty_skill_list() {
    // A2A 1.0 §8.4.1: `skills` is required and stays in the canonical form even when empty.
    let mut view = golden_view();
    view.capabilities.clear();
    let card = signed(&view, &golden_key());
    assert_eq!(card["skills"], json!([]));
    let keys = PublicKeys::of([&golden_key()]);
    assert!(verify_card(&card, &keys).is_ok());
}

#[test]
fn the_etag_follows_the_card_the_key_and_the_edge() {
    let key = golden_key();
    let view = golden_view();
    let etag = |view: &EdgePassport, edge: &str, key: &DecisionKey| {
        card_to_sign(view, edge, key).unwrap().etag()
    };
    let base = etag(&view, EDGE, &key);
    assert!(base.starts_with("\"card-") && base.ends_with('"'), "{base}");
    assert_eq!(base, etag(&view, EDGE, &key));
    let mut newer = view.clone();
    newer.version = 3;
    assert_ne!(base, etag(&newer, EDGE, &key));
    assert_ne!(base, etag(&view, "https://other.example.com", &key));
    assert_ne!(base, etag(&view, EDGE, &DecisionKey::from_seed(&[9u8; 32])));
}

#[test]
fn skill_names_and_contact_urls() {
    assert_eq!(card::skill_name("audit"), "Audit");
    assert_eq!(
        card::skill_name("code.repository.merge"),
        "Merge (code repository)"
    );
    assert_eq!(card::skill_name("data.bulk_export"), "Bulk export (data)");
    assert_eq!(
        card::contact_url("ops+agents@acme.co.uk").as_deref(),
        Some("mailto:ops+agents@acme.co.uk")
    );
    for none in [
        "",
        "acme",
        "@acme.com",
        "a@b",
        "a b@acme.com",
        "a@acme.com?subject=x",
        "http://acme.com",
        "https://acme.com/a b",
        "javascript:alert(1)",
    ] {
        assert_eq!(card::contact_url(none), None, "{none}");
    }
}
