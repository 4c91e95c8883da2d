//! `POST /verify` and `POST /verify/batch` bodies as the edge reads them: JSON, then
//! `VerifyRequest::from_json` / `batch_from_json`, then the decision on the seed passport.
//!
//! Input: the request body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use vouch_core::decision::{self, Subject, VerifyRequest, BATCH_MAX};
use vouch_core::policy::{codes, Evaluation};
use vouch_core::{AgentId, CoreError};
use vouch_core_fuzz::views;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let single = VerifyRequest::from_json(body.clone(), "");
    match &single {
        Ok(request) => check_request(request),
        Err(error) => check_error(error, ""),
    }
    // The same request as the only item of a batch reads the same, its errors named inside.
    let batch = VerifyRequest::batch_from_json(json!({ "requests": [body.clone()] }));
    match (&single, &batch) {
        (Ok(request), Ok(requests)) => {
            assert_eq!(requests.len(), 1);
            let mut item = requests[0].clone();
            // An unreadable context's reason names its field inside the batch.
            if let Err(reason) = &mut item.context {
                if let Some(field) = &reason.field {
                    let inner = field
                        .strip_prefix("requests[0].")
                        .expect("named in the batch");
                    reason.field = Some(inner.to_owned());
                }
            }
            assert_eq!(&item, request);
        }
        (Err(_), Err(error)) => check_error(error, "requests[0]"),
        (single, batch) => panic!("alone {single:?}, in a batch {batch:?}"),
    }
    // The body itself as a batch.
    match VerifyRequest::batch_from_json(body) {
        Ok(requests) => {
            assert!((1..=BATCH_MAX).contains(&requests.len()));
            requests.iter().for_each(check_request);
        }
        Err(error) => check_error(&error, ""),
    }
});

/// A refusal is a 400 with a message, naming a field under `prefix` when it names one inside
/// the request.
fn check_error(error: &CoreError, prefix: &str) {
    assert_eq!(error.code(), "invalid_request");
    assert!(!error.to_string().is_empty());
    if !prefix.is_empty() {
        let field = error.field_name().unwrap_or_default();
        assert!(field.starts_with(prefix), "{field:?} is not under {prefix}");
    }
}

fn check_request(request: &VerifyRequest) {
    // What from_json promises of an accepted request.
    assert!(!request.capability.is_empty());
    // Only a token's request commits, and a commit always carries its idempotency key.
    if request.commit.is_some() {
        assert!(matches!(request.subject, Subject::Token(_)));
    }
    if let Subject::Agent(id) = &request.subject {
        assert_eq!(AgentId::parse(id.as_str()).as_ref(), Ok(id));
    }
    if let Err(reason) = &request.context {
        assert_eq!(reason.code, codes::INVALID_CONTEXT);
    }
    // The fingerprint is a SHA-256, and the same for the same request.
    let chain = [vouch_core_fuzz::agent(0)];
    let fingerprint = request.fingerprint(&chain);
    assert_eq!(fingerprint.len(), 64);
    assert!(fingerprint
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(request.fingerprint(&chain), fingerprint);
    if let Ok(context) = &request.context {
        // The canonical context is what the fingerprint hashes: it must be a JSON object.
        assert!(context.canonical().is_object());
    }

    // The decision on each fixed passport, and on no passport.
    for view in &views()[1..] {
        check_evaluation(&request.evaluate(Some(view)));
    }
    let view = &views()[0];
    let evaluation = request.evaluate(Some(view));
    check_evaluation(&evaluation);
    let missing = request.evaluate(None);
    assert!(!missing.allow);
    assert_eq!(missing.codes(), [codes::AGENT_NOT_FOUND]);
    // A token refused before its claims are read denies with that one reason.
    let refused = decision::token_unverifiable("no keys");
    let by_token = request.evaluate_token(Err(refused.clone()), &[], &|_| None, view.updated_at);
    assert!(!by_token.allow);
    assert_eq!(by_token.reasons, [refused]);
    // Merging nothing from the chain changes nothing of an allow, and keeps every denial.
    let merged = decision::merge_token_checks(Vec::new(), evaluation.clone(), None);
    check_evaluation(&merged);
    assert_eq!(merged.allow, evaluation.allow);
    if evaluation.allow {
        assert_eq!(merged, evaluation);
    }
    // The decision body serializes.
    let body = decision::Decision::new(
        "dec_fuzz".into(),
        request,
        chain.to_vec(),
        Some(view),
        evaluation,
        view.updated_at,
        60,
    );
    assert!(serde_json::to_value(&body).is_ok());
}

/// `allow` exactly when the only reason is `oap.allowed`; a denial says why; spending is in
/// minor units of an upper-case ISO 4217 code.
fn check_evaluation(evaluation: &Evaluation) {
    if evaluation.allow {
        assert_eq!(evaluation.codes(), [codes::ALLOWED]);
    } else {
        assert!(!evaluation.reasons.is_empty());
        assert!(!evaluation.has(codes::ALLOWED));
    }
    for reason in &evaluation.reasons {
        assert!(!reason.code.is_empty() && !reason.message.is_empty());
    }
    if let Some(spend) = &evaluation.spend {
        assert_eq!(spend.currency.len(), 3);
        assert!(spend.currency.bytes().all(|b| b.is_ascii_uppercase()));
        let caps = spend
            .daily_caps
            .iter()
            .map(|c| c.cap_minor)
            .collect::<Vec<_>>();
        assert!(
            caps.windows(2).all(|w| w[0] <= w[1]),
            "tightest first: {caps:?}"
        );
    }
}
