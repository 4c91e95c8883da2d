//! Registration (`NewAgent::from_json`, `Passport::register`, field validation) and PATCH
//! (`patch::apply_merge_patch`), with what the origin then stores and publishes: the passport's
//! JSON and its edge view in KV.
//!
//! Input: `registration` `\0` `patch` (JSON text cannot hold a raw NUL). Without a NUL the
//! input is a registration alone; an empty registration is the seed passport's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vouch_core::edge_view::EdgePassport;
use vouch_core::passport::MutableFields;
use vouch_core::patch::apply_merge_patch;
use vouch_core::{Passport, Status, Timestamp};
use vouch_core_fuzz::{register, seed_passport};

const PATCHED_AT: Timestamp = Timestamp::from_unix_millis(1_795_000_100_000);

fuzz_target!(|data: &[u8]| {
    let (registration, patch) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let passport = if registration.is_empty() {
        seed_passport().clone()
    } else {
        let Ok(request) = serde_json::from_slice::<Value>(registration) else {
            return;
        };
        match register(request) {
            Ok(passport) => passport,
            Err(error) => {
                assert!(!error.to_string().is_empty());
                return;
            }
        }
    };
    check_registered(&passport);
    let Some(Ok(patch)) = patch.map(serde_json::from_slice::<Value>) else {
        return;
    };
    match apply_merge_patch(&passport, &patch, PATCHED_AT) {
        Ok(outcome) => {
            let after = &outcome.passport;
            check_stored(after);
            // Only the mutable fields change, and the version moves exactly when one did.
            let mut same = after.clone();
            same.fields = passport.fields.clone();
            same.version = passport.version;
            same.updated_at = passport.updated_at;
            assert_eq!(
                same, passport,
                "a patch changed more than the mutable fields"
            );
            if outcome.changed() {
                assert_eq!(after.version, passport.version + 1);
                assert_eq!(after.updated_at, PATCHED_AT);
                assert_ne!(after.fields, passport.fields);
            } else {
                assert_eq!(after, &passport);
            }
            let fields = serde_json::to_value(&after.fields).expect("fields serialize");
            for (name, change) in &outcome.changes {
                assert!(MutableFields::NAMES.contains(&name.as_str()), "{name}");
                assert_eq!(change["new"], fields[name]);
                assert_ne!(change["old"], change["new"]);
            }
            // A merge patch applied twice changes nothing the second time.
            let again = apply_merge_patch(after, &patch, PATCHED_AT).expect("applies again");
            assert!(!again.changed(), "not idempotent: {:?}", again.changes);
        }
        Err(error) => {
            assert!(!error.to_string().is_empty());
            assert!(matches!(
                error.code(),
                "invalid_request" | "immutable_field"
            ));
        }
    }
});

/// A freshly registered passport: valid, version 1, draft or active, and stored and published
/// faithfully.
fn check_registered(passport: &Passport) {
    assert_eq!(passport.version, 1);
    assert!(matches!(passport.status, Status::Draft | Status::Active));
    check_stored(passport);
}

/// A passport the origin would store: its fields validate, its JSON (the database document)
/// reads back to the same passport, and so does its edge view (the KV value).
fn check_stored(passport: &Passport) {
    assert_eq!(passport.fields.validate(), Ok(()));
    let text = serde_json::to_string(passport).expect("a passport serializes");
    let back: Passport = serde_json::from_str(&text).expect("the stored passport reads back");
    assert_eq!(&back, passport);
    let view = EdgePassport::from(passport);
    let text = serde_json::to_string(&view).expect("a view serializes");
    let back: EdgePassport = serde_json::from_str(&text).expect("the KV view reads back");
    assert_eq!(back, view);
    let answer = view.verify_answer();
    assert!(matches!(answer.status, 200 | 403));
    assert!(view.did_document("edge.example:8787").is_object());
}
