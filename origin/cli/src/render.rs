//! Human output: key/value tables for single objects, column tables for lists.
//!
//! Rendering works on the JSON the API answers (not on typed structs), so a field the origin
//! adds later still shows up, after the known ones.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde_json::{Map, Value};

/// The fields of a passport, in the order of SPEC §3.
const PASSPORT_FIELDS: [&str; 24] = [
    "agent_id",
    "org_id",
    "name",
    "owner",
    "role",
    "description",
    "status",
    "status_reason",
    "version",
    "capabilities",
    "limits",
    "regions",
    "assurance_level",
    "tier",
    "require_act_as",
    "public_jwk",
    "metadata",
    "created_at",
    "updated_at",
    "activated_at",
    "suspended_at",
    "revoked_at",
    "last_seen_at",
    "health",
];

fn table() -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    table
}

/// A value as one cell: strings bare, `null` as `-`, arrays of scalars joined, objects as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            items.iter().map(cell).collect::<Vec<_>>().join(", ")
        }
        Value::Object(map) if map.is_empty() => "-".to_owned(),
        other => other.to_string(),
    }
}

/// An object's entries one per line (`key: value`), for nested maps such as `limits`.
fn lines_of(map: &Map<String, Value>) -> String {
    if map.is_empty() {
        return "-".to_owned();
    }
    map.iter()
        .map(|(k, v)| format!("{k}: {}", cell(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A passport field as a cell, with readable forms for the nested ones.
fn passport_cell(key: &str, value: &Value) -> String {
    match (key, value) {
        ("owner", Value::Object(owner)) => {
            let name = owner.get("display_name").map(cell).unwrap_or_default();
            match owner.get("contact").and_then(Value::as_str) {
                Some(contact) if !contact.is_empty() => format!("{name} <{contact}>"),
                _ => name,
            }
        }
        ("capabilities", Value::Array(caps)) if !caps.is_empty() => caps
            .iter()
            .map(|cap| {
                let id = cap.get("id").map(cell).unwrap_or_else(|| cell(cap));
                match cap.get("params") {
                    Some(Value::Object(p)) if !p.is_empty() => {
                        format!("{id} {}", Value::Object(p.clone()))
                    }
                    _ => id,
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
        ("limits" | "metadata", Value::Object(map)) => lines_of(map),
        _ => cell(value),
    }
}

/// Rows of `object`: the `known` keys first, in that order, then any others.
fn ordered<'a>(object: &'a Map<String, Value>, known: &[&str]) -> Vec<(&'a str, &'a Value)> {
    let mut rows: Vec<(&str, &Value)> = known
        .iter()
        .filter_map(|k| object.get_key_value(*k).map(|(k, v)| (k.as_str(), v)))
        .collect();
    rows.extend(
        object
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v)),
    );
    rows
}

/// A key/value table of an object, `known` keys first.
pub fn object(value: &Value, known: &[&str]) -> String {
    let Some(map) = value.as_object() else {
        return cell(value);
    };
    let mut t = table();
    for (key, v) in ordered(map, known) {
        t.add_row(vec![key.to_owned(), cell(v)]);
    }
    t.to_string()
}

/// A key/value table of a passport.
pub fn passport(value: &Value) -> String {
    let Some(map) = value.as_object() else {
        return cell(value);
    };
    let mut t = table();
    for (key, v) in ordered(map, &PASSPORT_FIELDS) {
        t.add_row(vec![key.to_owned(), passport_cell(key, v)]);
    }
    t.to_string()
}

fn field(item: &Value, key: &str) -> String {
    item.get(key).map(cell).unwrap_or_else(|| "-".to_owned())
}

/// The agent list as a table.
pub fn agents(items: &[Value]) -> String {
    let mut t = table();
    t.set_header(vec![
        "AGENT ID",
        "NAME",
        "STATUS",
        "VER",
        "CAPABILITIES",
        "REGIONS",
        "UPDATED",
    ]);
    for item in items {
        let caps = item
            .get("capabilities")
            .and_then(Value::as_array)
            .map(|caps| {
                caps.iter()
                    .filter_map(|c| c.get("id").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "-".to_owned());
        t.add_row(vec![
            field(item, "agent_id"),
            field(item, "name"),
            field(item, "status"),
            field(item, "version"),
            caps,
            field(item, "regions"),
            field(item, "updated_at"),
        ]);
    }
    t.to_string()
}

/// Items as a table with these `(header, field)` columns.
pub fn columns(items: &[Value], columns: &[(&str, &str)]) -> String {
    let mut t = table();
    t.set_header(
        columns
            .iter()
            .map(|(header, _)| *header)
            .collect::<Vec<_>>(),
    );
    for item in items {
        t.add_row(
            columns
                .iter()
                .map(|(_, key)| field(item, key))
                .collect::<Vec<_>>(),
        );
    }
    t.to_string()
}

/// Webhook deliveries as a table, one row per delivery with its last attempt.
pub fn deliveries(items: &[Value]) -> String {
    let mut t = table();
    t.set_header(vec![
        "EVENT ID",
        "TYPE",
        "STATUS",
        "ATTEMPTS",
        "LAST RESULT",
        "NEXT ATTEMPT",
        "CREATED",
    ]);
    for item in items {
        let last = item
            .get("attempts")
            .and_then(Value::as_array)
            .and_then(|a| a.last())
            .map(|a| {
                match (
                    a.get("status_code").and_then(Value::as_u64),
                    a.get("error").and_then(Value::as_str),
                ) {
                    (Some(code), _) => format!("HTTP {code} ({} ms)", field(a, "duration_ms")),
                    (None, Some(error)) => error.to_owned(),
                    (None, None) => "-".to_owned(),
                }
            })
            .unwrap_or_else(|| "-".to_owned());
        t.add_row(vec![
            field(item, "event_id"),
            field(item, "event_type"),
            field(item, "status"),
            field(item, "attempt_count"),
            last,
            field(item, "next_attempt_at"),
            field(item, "created_at"),
        ]);
    }
    t.to_string()
}

/// Audit events as a table.
pub fn events(items: &[Value]) -> String {
    let mut t = table();
    t.set_header(vec!["SEQ", "TIME", "ACTION", "ACTOR", "TARGET", "EVENT ID"]);
    for item in items {
        let target = match (
            item.get("target_type").and_then(Value::as_str),
            item.get("target_id").and_then(Value::as_str),
        ) {
            (Some(kind), Some(id)) => format!("{kind} {id}"),
            (None, Some(id)) => id.to_owned(),
            _ => "-".to_owned(),
        };
        t.add_row(vec![
            field(item, "seq"),
            field(item, "created_at"),
            field(item, "action"),
            field(item, "actor"),
            target,
            field(item, "event_id"),
        ]);
    }
    t.to_string()
}

/// Receipts (signed committed decisions) as a table.
pub fn receipts(items: &[Value]) -> String {
    let mut t = table();
    t.set_header(vec![
        "TIME",
        "ALLOW",
        "CAPABILITY",
        "PARTNER",
        "KID",
        "DECISION ID",
    ]);
    for item in items {
        let capability = match item.get("policy_id") {
            Some(Value::String(pack)) => pack.clone(),
            _ => field(item, "capability"),
        };
        t.add_row(vec![
            field(item, "created_at"),
            field(item, "allow"),
            capability,
            field(item, "partner_id"),
            field(item, "kid"),
            field(item, "decision_id"),
        ]);
    }
    t.to_string()
}

/// A secret shown once, set apart so that it is hard to miss.
pub fn secret(label: &str, value: &str) -> String {
    format!("{label} (shown once: store it now, it cannot be retrieved again):\n\n    {value}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_are_readable() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(["US-NY", "US-CA"])), "US-NY, US-CA");
        assert_eq!(cell(&json!(true)), "yes");
        assert_eq!(cell(&json!({})), "-");
        assert_eq!(cell(&json!({"a": 1})), "{\"a\":1}");
    }

    #[test]
    fn passports_show_known_fields_first_and_keep_unknown_ones() {
        let p = json!({
            "zz_new": "kept",
            "name": "Bot",
            "agent_id": "ap_1",
            "owner": { "display_name": "Team", "contact": "a@b.c" },
            "capabilities": [{ "id": "payments.refund", "params": { "max_amount": 100 } }, { "id": "data.export" }],
            "limits": { "allow_pii": false }
        });
        let out = passport(&p);
        let agent = out.find("ap_1").unwrap();
        let name = out.find("Bot").unwrap();
        let extra = out.find("zz_new").unwrap();
        assert!(agent < name && name < extra, "{out}");
        assert!(out.contains("Team <a@b.c>"), "{out}");
        assert!(
            out.contains("payments.refund {\"max_amount\":100}"),
            "{out}"
        );
        assert!(out.contains("allow_pii: no"), "{out}");
    }

    #[test]
    fn lists_have_headers() {
        let out = agents(&[
            json!({ "agent_id": "ap_1", "name": "Bot", "status": "active",
            "capabilities": [{ "id": "a.b" }], "regions": ["US"] }),
        ]);
        assert!(
            out.contains("AGENT ID") && out.contains("a.b") && out.contains("active"),
            "{out}"
        );
    }
}
