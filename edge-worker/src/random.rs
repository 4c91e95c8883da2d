//! Randomness from the runtime's CSPRNG (`crypto.randomUUID()`; wasm has no other source here).

use worker::js_sys::{Function, Reflect};
use worker::wasm_bindgen::JsCast;

/// 32 lower-case hex digits of a random UUID (122 random bits); `None` if the runtime has none.
pub fn uuid_hex() -> Option<String> {
    let global = worker::js_sys::global();
    let crypto = Reflect::get(&global, &"crypto".into()).ok()?;
    let f: Function = Reflect::get(&crypto, &"randomUUID".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let uuid = f.call0(&crypto).ok()?.as_string()?;
    Some(uuid.replace('-', ""))
}

/// A random non-zero integer of at most 52 bits (exact in a JavaScript number).
pub fn nonzero_52_bits() -> Result<i64, String> {
    let hex = uuid_hex().ok_or("no crypto.randomUUID")?;
    // The first 13 hex digits of a v4 UUID are random (the version digit comes after).
    let bits = i64::from_str_radix(hex.get(..13).unwrap_or("1"), 16).map_err(|e| e.to_string())?;
    Ok(bits | 1)
}
