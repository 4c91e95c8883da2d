//! ES256 signature checks and Ed25519 decision signatures through the runtime's WebCrypto
//! (`crypto.subtle`), which workerd runs natively: measured ≈ 10× cheaper than P-256 compiled
//! to wasm, and Ed25519 signing several times cheaper than in wasm (docs/benchmarks.md).
//! Imported keys are cached per `kid` for the isolate's life (a JWKS holds a handful of keys).

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{json, Value};
use worker::js_sys::{self, Array, Object, Reflect};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{CryptoKey, EcKeyImportParams, EcdsaParams, SubtleCrypto};

use crate::respond::EdgeError;

/// More keys than any JWKS should hold: the cache is dropped rather than grown past it.
const MAX_KEYS: usize = 32;

thread_local! {
    /// Imported keys: public token keys by `verify {kid}`, private decision keys by
    /// `sign {kid} {x}` (a new key under a reused kid is a new entry, never the old key).
    static KEYS: RefCell<HashMap<String, CryptoKey>> = RefCell::new(HashMap::new());
}

fn cached(name: &str) -> Option<CryptoKey> {
    KEYS.with(|keys| keys.borrow().get(name).cloned())
}

fn remember(name: String, key: &CryptoKey) {
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(name, key.clone());
    });
}

/// A JWK as the JavaScript object `importKey` takes.
fn jwk_object(jwk: &Value) -> Result<Object, EdgeError> {
    js_sys::JSON::parse(&jwk.to_string())
        .map_err(|e| js_error("key", e))?
        .dyn_into()
        .map_err(|e| js_error("key", e))
}

/// The key an `importKey` promise resolves to.
async fn imported(promise: js_sys::Promise) -> Result<CryptoKey, EdgeError> {
    JsFuture::from(promise)
        .await
        .map_err(|e| js_error("importKey", e))?
        .dyn_into()
        .map_err(|e| js_error("importKey", e))
}

fn js_error(what: &str, e: JsValue) -> EdgeError {
    EdgeError::Internal(format!("WebCrypto {what}: {e:?}"))
}

fn subtle() -> Result<SubtleCrypto, EdgeError> {
    let crypto =
        Reflect::get(&js_sys::global(), &"crypto".into()).map_err(|e| js_error("crypto", e))?;
    Reflect::get(&crypto, &"subtle".into())
        .map_err(|e| js_error("subtle", e))?
        .dyn_into::<SubtleCrypto>()
        .map_err(|e| js_error("subtle", e))
}

/// The `CryptoKey` of a public P-256 JWK (only `x` and `y` are taken from it).
async fn key(kid: &str, jwk: &Value) -> Result<CryptoKey, EdgeError> {
    let name = format!("verify {kid}");
    if let Some(key) = cached(&name) {
        return Ok(key);
    }
    let public = json!({ "kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"], "ext": true });
    let data = jwk_object(&public)?;
    let params = EcKeyImportParams::new("ECDSA");
    params.set_named_curve("P-256");
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = subtle()?
        .import_key_with_object("jwk", &data, &params, false, &usages)
        .map_err(|e| js_error("importKey", e))?;
    let key = imported(promise).await?;
    remember(name, &key);
    Ok(key)
}

/// Whether `signature` (raw r‖s, as JWS and WebCrypto both use) signs `data` under the key.
pub async fn verify_es256(
    kid: &str,
    jwk: &Value,
    data: &[u8],
    signature: &[u8],
) -> Result<bool, EdgeError> {
    let key = key(kid, jwk).await?;
    let params = EcdsaParams::new_with_str("ECDSA", "SHA-256");
    let promise = subtle()?
        .verify_with_object_and_u8_array_and_u8_array(&params, &key, signature, data)
        .map_err(|e| js_error("verify", e))?;
    let verdict = JsFuture::from(promise)
        .await
        .map_err(|e| js_error("verify", e))?;
    Ok(verdict.as_bool().unwrap_or(false))
}

/// The `CryptoKey` of an Ed25519 private JWK (`{kty, crv, x, d}`), for signing.
async fn signing_key(kid: &str, jwk: &Value) -> Result<CryptoKey, EdgeError> {
    let name = format!("sign {kid} {}", jwk["x"].as_str().unwrap_or_default());
    if let Some(key) = cached(&name) {
        return Ok(key);
    }
    let data = jwk_object(jwk)?;
    let usages = Array::of1(&JsValue::from_str("sign"));
    let promise = subtle()?
        .import_key_with_str("jwk", &data, "Ed25519", false, &usages)
        .map_err(|e| js_error("importKey", e))?;
    let key = imported(promise).await?;
    remember(name, &key);
    Ok(key)
}

/// The Ed25519 signature of `data` by the private key `jwk` (named `kid`).
pub async fn sign_ed25519(kid: &str, jwk: &Value, data: &[u8]) -> Result<[u8; 64], EdgeError> {
    let key = signing_key(kid, jwk).await?;
    let promise = subtle()?
        .sign_with_str_and_u8_array("Ed25519", &key, data)
        .map_err(|e| js_error("sign", e))?;
    let signature = JsFuture::from(promise)
        .await
        .map_err(|e| js_error("sign", e))?;
    js_sys::Uint8Array::new(&signature)
        .to_vec()
        .try_into()
        .map_err(|_| EdgeError::Internal("WebCrypto sign: not a 64-byte Ed25519 signature".into()))
}
