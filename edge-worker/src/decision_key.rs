//! The edge's decision keys (SPEC §12): the Worker secret `VOUCH_DECISION_KEY` (an Ed25519
//! private JWK) signs every decision; `VOUCH_DECISION_KEY_PREVIOUS`, while a rotation settles,
//! is still published so decisions it signed keep verifying. Both are parsed once per isolate
//! (again only when a secret's text changes).
//!
//! Without a decision key the edge answers no decision (`503 signing_unavailable`): a partner
//! relying on signatures must never get an unsigned answer.
//!
//! For benchmarks only, with the test controls on (`VOUCH_TEST_CONTROLS = "1"`, never set in
//! wrangler.toml), `VOUCH_DECISION_SIGNING = "off"` answers decisions unsigned, so
//! scripts/bench-edge.sh can measure the same build with and without signing.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::Value;
use vouch_core::signing::DecisionKey;
use worker::Env;

use crate::respond::EdgeError;

pub const CURRENT: &str = "VOUCH_DECISION_KEY";
pub const PREVIOUS: &str = "VOUCH_DECISION_KEY_PREVIOUS";

struct Loaded {
    text: String,
    key: Rc<DecisionKey>,
}

thread_local! {
    static KEYS: RefCell<[Option<Loaded>; 2]> = const { RefCell::new([None, None]) };
    /// Whether signing is off for a benchmark, read once per isolate.
    static SIGNING_OFF: std::cell::OnceCell<bool> = const { std::cell::OnceCell::new() };
}

fn signing_off(env: &Env) -> bool {
    let is = |name: &str, value: &str| env.var(name).is_ok_and(|v| v.to_string() == value);
    SIGNING_OFF.with(|off| {
        *off.get_or_init(|| is("VOUCH_TEST_CONTROLS", "1") && is("VOUCH_DECISION_SIGNING", "off"))
    })
}

fn secret_text(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|text| !text.trim().is_empty())
}

/// The key under secret `name` (slot 0: current, 1: previous), if it is set.
fn load(env: &Env, name: &str, slot: usize) -> Result<Option<Rc<DecisionKey>>, EdgeError> {
    let Some(text) = secret_text(env, name) else {
        return Ok(None);
    };
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if let Some(loaded) = keys[slot].as_ref().filter(|l| l.text == text) {
            return Ok(Some(loaded.key.clone()));
        }
        let key = Rc::new(DecisionKey::from_jwk(&text).map_err(|e| {
            EdgeError::SigningUnavailable(format!("the secret {name} is not a decision key: {e}"))
        })?);
        keys[slot] = Some(Loaded {
            text,
            key: key.clone(),
        });
        Ok(Some(key))
    })
}

/// The key decisions are signed with now.
pub fn current(env: &Env) -> Result<Rc<DecisionKey>, EdgeError> {
    load(env, CURRENT, 0)?
        .ok_or_else(|| EdgeError::SigningUnavailable(format!("the secret {CURRENT} is not set")))
}

/// `decision` (an object) signed with the current key: the last step before it is answered or
/// recorded (sign last: nothing may change it after). The core prepares the bytes and writes
/// the signature member; the runtime's WebCrypto signs (the same signature the core's Ed25519
/// would make: it is deterministic, and the tests check the two agree).
pub async fn sign(env: &Env, mut decision: Value) -> Result<Value, EdgeError> {
    if signing_off(env) {
        return Ok(decision);
    }
    let key = current(env)?;
    let members = decision
        .as_object_mut()
        .ok_or_else(|| EdgeError::Internal("signing a decision that is not an object".into()))?;
    let input = key
        .signing_input(members)
        .map_err(|e| EdgeError::Internal(format!("signing a decision: {e}")))?;
    let signature =
        crate::webcrypto::sign_ed25519(key.kid(), &key.private_jwk_for_import(), &input).await?;
    vouch_core::signing::attach_signature(members, &signature);
    Ok(decision)
}

/// Whether a stored decision still needs its signature (recorded, then signed: see the ledger).
pub fn is_signed(decision: &Value) -> bool {
    decision
        .get(vouch_core::signing::SIGNATURE_MEMBER)
        .is_some()
}

/// Every key a verifier should trust now: the current one and, during a rotation, the
/// previous one. A previous key that does not parse is left out (and logged).
pub fn published(env: &Env) -> Result<Vec<Rc<DecisionKey>>, EdgeError> {
    let mut keys = vec![current(env)?];
    match load(env, PREVIOUS, 1) {
        Ok(Some(previous)) if previous.kid() != keys[0].kid() => keys.push(previous),
        Ok(_) => {}
        Err(e) => worker::console_error!("{PREVIOUS}: {e:?}"),
    }
    Ok(keys)
}

/// `GET /.well-known/oap/jwks.json`: the public decision keys as a JWK Set.
pub fn jwks(env: &Env) -> Result<Value, EdgeError> {
    let keys = published(env)?;
    Ok(serde_json::json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() }))
}
