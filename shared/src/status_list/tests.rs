use super::*;
use crate::jwk::kid;
use crate::jwk::tests::test_key;
use proptest::prelude::*;

const NOW: i64 = 1_795_000_000;
const URI: &str = "https://edge.example/status/0";

/// The draft's 2-bit example (draft-ietf-oauth-status-list, "Status List Encoding"): the bytes
/// `c9 44 f9` hold the statuses 1 2 0 3 0 1 0 1 1 2 3 3 and encode as `eNo76fITAAPfAgc`.
const DRAFT_BYTES: [u8; 3] = [0xc9, 0x44, 0xf9];
const DRAFT_STATUSES: [u8; 12] = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3];
const DRAFT_LST: &str = "eNo76fITAAPfAgc";

#[test]
fn the_drafts_two_bit_example_decodes_to_its_statuses() {
    let list = StatusList::decode(
        &EncodedList {
            bits: 2,
            lst: DRAFT_LST.into(),
        },
        1024,
    )
    .unwrap();
    assert_eq!(list.as_bytes(), DRAFT_BYTES);
    assert_eq!(list.len(), 12);
    let read: Vec<u8> = (0..12).map(|i| list.get(i).unwrap()).collect();
    assert_eq!(read, DRAFT_STATUSES);
}

#[test]
fn setting_the_drafts_statuses_gives_its_bytes_and_its_encoding() {
    let mut list = StatusList::new(2, 12).unwrap();
    for (i, value) in DRAFT_STATUSES.iter().enumerate() {
        list.set(i as u64, *value).unwrap();
    }
    assert_eq!(list.as_bytes(), DRAFT_BYTES);
    // zlib at the best level, as the draft's example was made: the same bytes exactly.
    assert_eq!(
        list.encode(),
        EncodedList {
            bits: 2,
            lst: DRAFT_LST.into()
        }
    );
}

#[test]
fn the_drafts_one_bit_example_decodes() {
    // "eNrbuRgAAhcBXQ" is b9 a3: 1 0 0 1 1 1 0 1, 1 1 0 0 0 1 0 1.
    let list = StatusList::decode(
        &EncodedList {
            bits: 1,
            lst: "eNrbuRgAAhcBXQ".into(),
        },
        1024,
    )
    .unwrap();
    assert_eq!(list.as_bytes(), [0xb9, 0xa3]);
    let read: Vec<u8> = (0..16).map(|i| list.get(i).unwrap()).collect();
    assert_eq!(read, [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]);
}

#[test]
fn every_value_at_every_position_of_a_byte_and_at_the_ends_of_a_list() {
    let mut list = StatusList::registry();
    assert_eq!(list.len(), LIST_SIZE);
    let last = LIST_SIZE - 1;
    let places = [
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        last - 4,
        last - 3,
        last - 1,
        last,
    ];
    for place in places {
        for value in 0..=3u8 {
            list.set(place, value).unwrap();
            assert_eq!(list.get(place).unwrap(), value, "entry {place}");
            // Its neighbours are untouched.
            for other in places.iter().filter(|p| **p != place) {
                assert_eq!(list.get(*other).unwrap(), 0, "entry {other} after {place}");
            }
        }
        list.set(place, 0).unwrap();
    }
    assert!(list.as_bytes().iter().all(|b| *b == 0));
}

#[test]
fn out_of_range_and_oversized_values_are_refused() {
    let mut list = StatusList::registry();
    assert_eq!(
        list.get(LIST_SIZE),
        Err(StatusListError::OutOfRange {
            index: LIST_SIZE,
            len: LIST_SIZE
        })
    );
    assert!(list.set(LIST_SIZE, 1).is_err());
    assert!(list.set(u64::MAX, 1).is_err());
    assert_eq!(
        list.set(0, 4),
        Err(StatusListError::ValueTooLarge { value: 4, bits: 2 })
    );
    assert_eq!(StatusList::new(3, 8), Err(StatusListError::BadBits(3)));
    assert_eq!(StatusList::new(0, 8), Err(StatusListError::BadBits(0)));
}

#[test]
fn other_widths_place_entries_least_significant_bits_first() {
    let mut four = StatusList::new(4, 4).unwrap();
    four.set(0, 0xa).unwrap();
    four.set(1, 0x5).unwrap();
    four.set(3, 0xf).unwrap();
    assert_eq!(four.as_bytes(), [0x5a, 0xf0]);
    let mut eight = StatusList::new(8, 2).unwrap();
    eight.set(1, 0xff).unwrap();
    assert_eq!(eight.as_bytes(), [0x00, 0xff]);
    let mut one = StatusList::new(1, 9).unwrap();
    one.set(8, 1).unwrap();
    assert_eq!(one.as_bytes(), [0x00, 0x01]);
}

#[test]
fn statuses_map_to_the_documented_values() {
    assert_eq!(ListStatus::from(Status::Active).value(), 0);
    assert_eq!(ListStatus::from(Status::Revoked).value(), 1);
    assert_eq!(ListStatus::from(Status::Suspended).value(), 2);
    assert_eq!(ListStatus::from(Status::Draft).value(), 3);
    for value in 0..=3 {
        assert_eq!(ListStatus::from_value(value).unwrap().value(), value);
    }
    assert_eq!(ListStatus::from_value(4), None);
}

#[test]
fn an_empty_registry_list_is_small_on_the_wire() {
    let encoded = StatusList::registry().encode();
    assert!(encoded.lst.len() < 100, "{} bytes", encoded.lst.len());
    let back = StatusList::decode(&encoded, LIST_SIZE as usize).unwrap();
    assert_eq!(back, StatusList::registry());
}

#[test]
fn decoding_refuses_bombs_and_garbage() {
    let big = StatusList::registry().encode();
    assert_eq!(
        StatusList::decode(&big, 1000),
        Err(StatusListError::TooLarge { max: 1000 })
    );
    let bad_b64 = EncodedList {
        bits: 2,
        lst: "eNo+".into(),
    };
    assert_eq!(
        StatusList::decode(&bad_b64, 1000),
        Err(StatusListError::BadBase64)
    );
    let not_zlib = EncodedList {
        bits: 2,
        lst: URL_SAFE_NO_PAD.encode(b"plain bytes"),
    };
    assert_eq!(
        StatusList::decode(&not_zlib, 1000),
        Err(StatusListError::BadCompression)
    );
    let bad_bits = EncodedList {
        bits: 5,
        lst: DRAFT_LST.into(),
    };
    assert_eq!(
        StatusList::decode(&bad_bits, 1000),
        Err(StatusListError::BadBits(5))
    );
}

#[test]
fn places_lists_and_uris() {
    assert_eq!(locate(0), (0, 0));
    assert_eq!(locate(LIST_SIZE - 1), (0, LIST_SIZE - 1));
    assert_eq!(locate(LIST_SIZE), (1, 0));
    assert_eq!(locate(3 * LIST_SIZE + 7), (3, 7));
    assert_eq!(places_of(2), (2 * LIST_SIZE, 3 * LIST_SIZE));
    assert_eq!(
        list_uri("https://edge.example/", 3),
        "https://edge.example/status/3"
    );
    assert_eq!(
        serde_json::to_value(claim("https://edge.example", LIST_SIZE + 5)).unwrap(),
        serde_json::json!({ "status_list": { "idx": 5, "uri": "https://edge.example/status/1" } })
    );
    assert_eq!(kv_key(12), "status:12");
    assert_eq!(list_of_key("status:12"), Some(12));
    for bad in [
        "status:",
        "status:012",
        "status:-1",
        "status:1x",
        "jwks",
        "status:+1",
    ] {
        assert_eq!(list_of_key(bad), None, "{bad}");
    }
    assert_eq!(parse_list_id("0"), Some(0));
    assert_eq!(parse_list_id("00"), None);
    assert_eq!(parse_list_id("99999999999999999999999"), None);
}

fn signed(claims: &ListClaims) -> String {
    claims.sign(&test_key(1), &kid(test_key(1).verifying_key()))
}

fn claims_with(list: &StatusList) -> ListClaims {
    ListClaims {
        sub: URI.into(),
        iss: Some("https://registry.example".into()),
        iat: NOW,
        exp: Some(NOW + 300),
        ttl: Some(10),
        status_list: list.encode(),
    }
}

fn keys(kid_wanted: &str) -> Option<VerifyingKey> {
    (kid_wanted == kid(test_key(1).verifying_key())).then(|| *test_key(1).verifying_key())
}

#[test]
fn a_signed_list_verifies_and_reads_back() {
    let mut list = StatusList::registry();
    list.set(5, ListStatus::Suspended.value()).unwrap();
    let token = signed(&claims_with(&list));
    let (header, claims, read) = verify(&token, &keys, URI, NOW + 1, 60).unwrap();
    assert_eq!(header.typ, TYP);
    assert_eq!(claims.ttl, Some(10));
    assert_eq!(read.status(5).unwrap(), ListStatus::Suspended);
    assert_eq!(read.status(4).unwrap(), ListStatus::Active);
    // The protected header names the type, so an access-token verifier refuses it.
    assert!(matches!(
        crate::jws::verify(&token, &keys, MAX_TOKEN_LEN),
        Err(TokenError::UnsupportedType(t)) if t == TYP
    ));
}

#[test]
fn the_claims_are_written_as_the_draft_names_them() {
    let claims = claims_with(&StatusList::new(2, 12).unwrap());
    let json = serde_json::to_value(&claims).unwrap();
    assert_eq!(json["sub"], URI);
    assert_eq!(json["iat"], NOW);
    assert_eq!(json["exp"], NOW + 300);
    assert_eq!(json["ttl"], 10);
    assert_eq!(json["status_list"]["bits"], 2);
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6, "{json}");
}

#[test]
fn a_list_for_another_uri_an_expired_one_and_an_access_token_are_refused() {
    let token = signed(&claims_with(&StatusList::registry()));
    assert!(matches!(
        verify(&token, &keys, "https://edge.example/status/1", NOW, 60),
        Err(ListTokenError::WrongList { .. })
    ));
    assert_eq!(
        verify(&token, &keys, URI, NOW + 300 + 60, 60).map(|_| ()),
        Err(ListTokenError::Expired)
    );
    assert_eq!(
        verify(&token, &keys, URI, NOW - 61, 60).map(|_| ()),
        Err(ListTokenError::IssuedInFuture)
    );
    let access = crate::jws::sign(b"{}", &test_key(1), &kid(test_key(1).verifying_key()));
    assert!(matches!(
        verify(&access, &keys, URI, NOW, 60),
        Err(ListTokenError::Token(TokenError::UnsupportedType(t))) if t == "JWT"
    ));
    let other_key = claims_with(&StatusList::registry()).sign(&test_key(2), "other");
    assert!(matches!(
        verify(&other_key, &keys, URI, NOW, 60),
        Err(ListTokenError::Token(TokenError::UnknownKid(_)))
    ));
}

proptest! {
    #[test]
    fn any_list_round_trips(values in proptest::collection::vec(0u8..4, 1..2000)) {
        let mut list = StatusList::new(2, values.len() as u64).unwrap();
        for (i, v) in values.iter().enumerate() {
            list.set(i as u64, *v).unwrap();
        }
        let back = StatusList::decode(&list.encode(), 1 << 20).unwrap();
        for (i, v) in values.iter().enumerate() {
            prop_assert_eq!(back.get(i as u64).unwrap(), *v);
        }
    }

    #[test]
    fn setting_one_entry_changes_only_that_entry(
        before in proptest::collection::vec(0u8..4, 64),
        place in 0u64..64,
        value in 0u8..4,
    ) {
        let mut list = StatusList::new(2, 64).unwrap();
        for (i, v) in before.iter().enumerate() {
            list.set(i as u64, *v).unwrap();
        }
        list.set(place, value).unwrap();
        for (i, v) in before.iter().enumerate() {
            let expected = if i as u64 == place { value } else { *v };
            prop_assert_eq!(list.get(i as u64).unwrap(), expected);
        }
    }
}
