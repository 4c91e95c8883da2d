//! Tokens from their bytes to their claims: `jws::parse`, `jws::verify` (ES256 against a fixed
//! key set), `token::claims_of`/`token::verify` (the claim checks) and `JwkSet::from_json`.
//!
//! Input: a mode byte, a parameter byte, then the data. The parameter byte sets the verifier's
//! clock skew (its low 7 bits, so values above the 60 s the core allows are tried) and whether
//! it expects an audience (high bit clear). Modes (byte % 8; `0`–`4` in ASCII):
//!
//! * `0` parse: the data is a compact token; checks everything but the signature, then the
//!   claims as the edge does after WebCrypto verified the signature (no ECDSA).
//! * `1` verify: the data is a compact token verified with p256 against the fixed key set.
//! * `2` claims: the data is a payload, put in a token under a valid header, then read as `0`
//!   does (so the claims' JSON is fuzzed directly, without ECDSA).
//! * `3` jwks: the data is a JWK Set document.
//! * `4` sign: the data is a payload, signed with fixed key 1, then verified with p256.
//! * `5`–`7`: as `0`.
//!
//! The ECDSA modes cost about 1 ms an input in this build; the others tens of microseconds, and
//! they reach the same claim checks.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vouch_core::jwk::{self, JwkSet};
use vouch_core::jws::{self, TokenError};
use vouch_core::token::{self, Claims, Expectations, MAX_SKEW_SECONDS};
use vouch_core_fuzz::{expectations, key_set, kid, signing_key, Reader, NOW_SECONDS};

fuzz_target!(|data: &[u8]| {
    let mut input = Reader::new(data);
    let mode = input.byte() % 8;
    let params = input.byte();
    let expect = expectations(params & 0x80 == 0, u32::from(params & 0x7f));
    let data = input.rest();
    match mode {
        1 => {
            if let Ok(token) = std::str::from_utf8(data) {
                verify(token, &expect);
            }
        }
        2 => parse(&unsigned_token(data), &expect),
        3 => jwks(data),
        4 => sign_and_verify(data, &expect),
        _ => {
            if let Ok(token) = std::str::from_utf8(data) {
                parse(token, &expect);
            }
        }
    }
});

/// `payload` under the header `jws::sign` writes for fixed key 1, with a signature of zeros
/// (never checked on this path: the edge checks signatures with WebCrypto, then reads claims).
fn unsigned_token(payload: &[u8]) -> String {
    let header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, kid(1));
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode([0u8; jws::SIGNATURE_LEN])
    )
}

/// What every refusal must look like: a stable `token_*` code, a decision reason about the
/// request's `token`, `token_expired` only for expiry.
fn check_refusal(error: &TokenError) {
    assert!(error.code().starts_with("token_"), "{error:?}");
    let reason = error.to_reason();
    assert_eq!(reason.field.as_deref(), Some("token"));
    let expected = if *error == TokenError::Expired {
        "token_expired"
    } else {
        "token_invalid"
    };
    assert_eq!(reason.code, expected);
    assert!(!reason.message.is_empty());
}

/// An independent statement of the claim checks (`token::validate`'s docs), in wide integers.
fn expected_validity(claims: &Claims, expect: &Expectations<'_>) -> Result<(), TokenError> {
    let skew = i128::from(expect.skew_seconds.min(MAX_SKEW_SECONDS));
    let now = i128::from(NOW_SECONDS);
    // The core saturates at the ends of i64; so does the oracle.
    let clamp = |t: i128| t.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
    if claims.iss != expect.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if let Some(aud) = expect.audience {
        if !claims.aud.iter().any(|a| a == aud) {
            return Err(TokenError::WrongAudience);
        }
    }
    if now >= clamp(i128::from(claims.exp) + skew) {
        return Err(TokenError::Expired);
    }
    if now < clamp(i128::from(claims.nbf) - skew) {
        return Err(TokenError::NotYetValid);
    }
    if i128::from(claims.iat) > clamp(now + skew) {
        return Err(TokenError::IssuedInFuture);
    }
    Ok(())
}

/// The claim checks of a payload the signature covers, against the oracle: `Ok` exactly when
/// the payload is our claims and they pass, with the same claims, which survive a round trip
/// through the JSON the origin signs.
fn check_claims(payload: &[u8], result: &Result<Claims, TokenError>, expect: &Expectations<'_>) {
    let expected = Claims::from_json(payload).and_then(|claims| {
        expected_validity(&claims, expect)?;
        Ok(claims)
    });
    match (result, &expected) {
        (Ok(claims), Ok(oracle)) => {
            assert_eq!(claims, oracle);
            assert_eq!(Claims::from_json(&claims.to_json()).as_ref(), Ok(claims));
            // The chain has one agent per actor plus the subject, the subject last.
            let chain = token::chain(claims);
            assert_eq!(chain.len(), claims.depth() + 1);
            assert_eq!(chain.last(), Some(&claims.sub));
            assert_eq!(chain.first(), Some(claims.current_actor()));
        }
        (Err(TokenError::BadClaims(_)), Err(TokenError::BadClaims(_))) => {}
        (Err(error), Err(oracle)) => assert_eq!(error, oracle),
        (result, oracle) => panic!("claims checked as {result:?}, expected {oracle:?}"),
    }
    if let Err(error) = result {
        check_refusal(error);
    }
}

fn parse(token: &str, expect: &Expectations<'_>) {
    let parsed = match jws::parse(token, expect.max_len) {
        Ok(parsed) => parsed,
        Err(error) => {
            check_refusal(&error);
            if token.len() > expect.max_len {
                assert_eq!(
                    error,
                    TokenError::TooLong {
                        max: expect.max_len
                    }
                );
            }
            return;
        }
    };
    // What parse promises: the length, ES256, a JWT type, a kid, and a raw 64-byte signature
    // whose base64url is canonical (the token is exactly `signing_input.signature`).
    assert!(token.len() <= expect.max_len);
    assert_eq!(parsed.header.alg, "ES256");
    assert!(parsed.header.typ.eq_ignore_ascii_case("JWT"));
    let rebuilt = format!(
        "{}.{}",
        parsed.signing_input,
        URL_SAFE_NO_PAD.encode(parsed.signature)
    );
    assert_eq!(rebuilt, token);
    let (header_b64, payload_b64) = parsed.signing_input.split_once('.').expect("two segments");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).expect("parsed header"))
            .expect("a JSON header");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"].as_str(), Some(parsed.header.kid.as_str()));
    assert!(header.get("crit").is_none());

    let payload = parsed.payload();
    if let Ok(payload) = &payload {
        assert_eq!(URL_SAFE_NO_PAD.decode(payload_b64).as_ref(), Ok(payload));
        // A JSON object in UTF-8 by the grammar. RFC 8259 lets a parser refuse what the grammar
        // allows in two places, and serde_json does where the object check does not: numbers
        // beyond f64 (§9) and `\u` escapes of unpaired surrogates (§8.2). Both then fail as bad
        // claims, like any payload the claims cannot be read from (check_claims below).
        assert!(std::str::from_utf8(payload).is_ok());
        match serde_json::from_slice::<Value>(payload) {
            Ok(value) => assert!(value.is_object()),
            Err(error) => {
                let error = error.to_string();
                assert!(
                    ["number out of range", "hex escape", "surrogate"]
                        .iter()
                        .any(|allowed| error.contains(allowed)),
                    "{error}"
                );
            }
        }
    }
    let claims = token::claims_of(&parsed, expect, NOW_SECONDS);
    match &payload {
        Ok(payload) => check_claims(payload, &claims, expect),
        Err(error) => assert_eq!(claims.as_ref(), Err(error)),
    }
}

/// Whether the error is about the claims, which only a verified signature lets anyone read.
fn is_claims_error(error: &TokenError) -> bool {
    matches!(
        error,
        TokenError::BadClaims(_)
            | TokenError::Expired
            | TokenError::NotYetValid
            | TokenError::IssuedInFuture
            | TokenError::WrongIssuer
            | TokenError::WrongAudience
    )
}

fn verify(token: &str, expect: &Expectations<'_>) {
    let set = key_set();
    let keys = |kid: &str| set.get(kid);
    // One ECDSA check per input: `token::verify` is `jws::verify` then the claim checks.
    let full = token::verify(token, &keys, expect, NOW_SECONDS);
    if let Err(error) = &full {
        check_refusal(error);
    }
    let parsed = match jws::parse(token, expect.max_len) {
        Ok(parsed) => parsed,
        Err(error) => {
            assert_eq!(full.map(|_| ()), Err(error));
            return;
        }
    };
    match &full {
        Ok((header, claims)) => {
            // Only a key of the set verifies, and what verified is what parse read.
            assert_eq!(&parsed.header, header);
            assert!(set.get(&header.kid).is_some());
            let payload = parsed.payload().expect("a verified payload");
            check_claims(&payload, &Ok(claims.clone()), expect);
        }
        Err(TokenError::UnknownKid(kid)) => {
            assert_eq!(kid, &parsed.header.kid);
            assert!(set.get(kid).is_none());
        }
        Err(TokenError::BadSignature) => {}
        Err(error @ (TokenError::BadBase64(_) | TokenError::BadJson(_))) => {
            assert_eq!(parsed.payload().err().as_ref(), Some(error));
        }
        Err(error) if is_claims_error(error) => {
            let payload = parsed.payload().expect("claims are read from a payload");
            check_claims(&payload, &Err(error.clone()), expect);
        }
        Err(error) => panic!("{error:?} after the token parsed"),
    }
}

fn sign_and_verify(payload: &[u8], expect: &Expectations<'_>) {
    let token = jws::sign(payload, signing_key(1), kid(1));
    let set = key_set();
    // Our own signature over any payload verifies: a refusal is about the length, the
    // payload or the claims, never the signature.
    match token::verify(&token, &|kid| set.get(kid), expect, NOW_SECONDS) {
        Ok((header, claims)) => {
            assert_eq!(header.kid, kid(1));
            check_claims(payload, &Ok(claims), expect);
        }
        Err(TokenError::TooLong { max }) => assert!(token.len() > max),
        Err(TokenError::BadJson(jws::Segment::Payload)) => {
            let object = serde_json::from_slice::<Value>(payload).is_ok_and(|v| v.is_object());
            assert!(!object);
        }
        Err(error) if is_claims_error(&error) => check_claims(payload, &Err(error), expect),
        Err(error) => panic!("our own token refused: {error:?}"),
    }
}

fn jwks(document: &[u8]) {
    let Ok(set) = JwkSet::from_json(document) else {
        return;
    };
    // A set that parses holds P-256 keys named by their own thumbprints, once each, and its
    // published form reads back to the same set.
    let mut kids: Vec<&str> = set.kids().collect();
    for kid in &kids {
        let key = set.get(kid).expect("a listed kid names a key");
        assert_eq!(jwk::kid(&key), *kid);
        let published = jwk::public_jwk(&key);
        assert_eq!(jwk::verifying_key(&published), Ok((kid.to_string(), key)));
    }
    let count = kids.len();
    kids.sort_unstable();
    kids.dedup();
    assert_eq!(kids.len(), count);
    assert_eq!(set.len(), count);
    let back = JwkSet::from_json(set.to_json().to_string().as_bytes()).expect("reads back");
    assert_eq!(back, set);
}
