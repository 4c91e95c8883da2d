//! RFC 8785, the JSON Canonicalization Scheme: the one byte string a JSON value signs as.
//!
//! Members sort by their names' UTF-16 code units; no whitespace; strings escaped as
//! ECMAScript's `JSON.stringify` escapes them (which serde_json's string writer matches: `\"`,
//! `\\`, `\b \f \n \r \t`, other controls as lowercase `\u00xx`, everything else as is); numbers
//! as ECMAScript's `Number.prototype.toString` prints them (`ryu-js`).
//!
//! Written here rather than taken from a crate: the one on crates.io that does this
//! (`canon-json` 0.2.1) prints RFC 8785 Appendix B's `0x43143ff3c1cb0959` as
//! `1424953923781206.3` where ECMAScript prints `…206.2`; the tests hold this one to the
//! RFC's own vectors.

use serde_json::{Map, Number, Value};

/// The largest integer every JSON reader holds exactly (2^53); beyond it a number is printed as
/// the double ECMAScript would read it as.
const EXACT_INTEGER: u64 = 1 << 53;

/// Appends the canonical form of `value` to `out`.
pub fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(number, out),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => write_object(members, out),
    }
}

fn write_object(members: &Map<String, Value>, out: &mut String) {
    let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
    sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    out.push('{');
    for (i, (name, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(name, out);
        out.push(':');
        write(value, out);
    }
    out.push('}');
}

fn write_string(text: &str, out: &mut String) {
    // Serializing a `str` cannot fail; its escapes are JSON.stringify's (see the module docs).
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

fn write_number(number: &Number, out: &mut String) {
    if let Some(n) = number.as_u64().filter(|n| *n <= EXACT_INTEGER) {
        out.push_str(&n.to_string());
    } else if let Some(n) = number
        .as_i64()
        .filter(|n| n.unsigned_abs() <= EXACT_INTEGER)
    {
        out.push_str(&n.to_string());
    } else {
        // serde_json holds only finite numbers, so this is never `NaN` or `Infinity`.
        let double = number.as_f64().unwrap_or_default();
        out.push_str(ryu_js::Buffer::new().format(double));
    }
}
