//! PATCH as a JSON merge patch (RFC 7396) over the mutable fields of a passport.
//!
//! Immutable fields (`name`, `org_id`, `owner`, `created_at`) and read-only ones (status,
//! version, timestamps, telemetry) may appear only with their current value, so a client can
//! send back what it read; any other value is refused and names the field.

use serde_json::{Map, Value};

use crate::error::CoreError;
use crate::passport::{deserialize_field, MutableFields, Passport};
use crate::timestamp::Timestamp;

const IMMUTABLE: [&str; 4] = ["name", "org_id", "owner", "created_at"];
const READ_ONLY: [&str; 10] = [
    "agent_id",
    "status",
    "status_reason",
    "version",
    "updated_at",
    "activated_at",
    "suspended_at",
    "revoked_at",
    "last_seen_at",
    "health",
];

/// The result of a patch: the new passport and, per changed field, `{ "old", "new" }`.
/// When nothing changed, `passport` is the current one, untouched (same version).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOutcome {
    pub passport: Passport,
    pub changes: Map<String, Value>,
}

impl PatchOutcome {
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// Applies `patch` to `current`. The version is bumped only if a field actually changed. A
/// revoked agent's passport takes no patch at all (`agent_revoked`), not even an empty one.
pub fn apply_merge_patch(
    current: &Passport,
    patch: &Value,
    now: Timestamp,
) -> Result<PatchOutcome, CoreError> {
    crate::lifecycle::ensure_not_revoked(current, "its passport can no longer be changed")?;
    let Value::Object(patch) = patch else {
        return Err(CoreError::invalid("a merge patch must be a JSON object"));
    };
    let current_json = serde_json::to_value(current)
        .map_err(|e| CoreError::invalid(format!("cannot read the passport: {e}")))?;
    let mut mutable_patch = Map::new();
    for (key, value) in patch {
        let unchanged = current_json.get(key) == Some(value);
        if IMMUTABLE.contains(&key.as_str()) {
            if !unchanged {
                return Err(CoreError::ImmutableField { field: key.clone() });
            }
        } else if READ_ONLY.contains(&key.as_str()) {
            if !unchanged {
                let hint = if key == "status" {
                    "`status` changes through PUT /v1/agents/{id}/status".to_owned()
                } else {
                    format!("`{key}` is read-only")
                };
                return Err(CoreError::field(key.clone(), hint));
            }
        } else if MutableFields::NAMES.contains(&key.as_str()) {
            mutable_patch.insert(key.clone(), value.clone());
        } else {
            return Err(CoreError::field(
                key.clone(),
                format!("unknown field `{key}`"),
            ));
        }
    }

    let old_fields = serde_json::to_value(&current.fields)
        .map_err(|e| CoreError::invalid(format!("cannot read the passport: {e}")))?;
    let mut merged = old_fields.clone();
    json_patch::merge(&mut merged, &Value::Object(mutable_patch));
    let fields: MutableFields = deserialize_field(merged, "")?;
    fields.validate()?;
    let new_fields = serde_json::to_value(&fields)
        .map_err(|e| CoreError::invalid(format!("cannot write the passport: {e}")))?;

    let mut changes = Map::new();
    for name in MutableFields::NAMES {
        let old = old_fields.get(name).cloned().unwrap_or(Value::Null);
        let new = new_fields.get(name).cloned().unwrap_or(Value::Null);
        if old != new {
            let mut change = Map::new();
            change.insert("old".into(), old);
            change.insert("new".into(), new);
            changes.insert(name.to_owned(), Value::Object(change));
        }
    }
    let mut passport = current.clone();
    if !changes.is_empty() {
        passport.fields = fields;
        passport.version = current.version + 1;
        passport.updated_at = now;
    }
    Ok(PatchOutcome { passport, changes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passport::tests::seed_passport;
    use serde_json::json;

    const NOW: Timestamp = Timestamp::from_unix_millis(1_795_000_100_000);

    #[test]
    fn a_revoked_passport_takes_no_patch() {
        let mut p = seed_passport();
        p.status = crate::Status::Revoked;
        for patch in [json!({ "role": "x" }), json!({}), json!({ "name": p.name })] {
            let err = apply_merge_patch(&p, &patch, NOW).unwrap_err();
            assert_eq!(err.code(), "agent_revoked", "{patch}");
        }
        p.status = crate::Status::Suspended;
        assert!(apply_merge_patch(&p, &json!({ "role": "x" }), NOW).is_ok());
    }

    #[test]
    fn merges_objects_and_replaces_arrays() {
        let p = seed_passport();
        let out = apply_merge_patch(
            &p,
            &json!({
                "limits": { "refund_usd_max_per_tx": 250, "allow_pii": null },
                "regions": ["US-CA"],
                "description": "handles refunds"
            }),
            NOW,
        )
        .unwrap();
        let limits = &out.passport.fields.limits;
        assert_eq!(limits.get("refund_usd_max_per_tx"), Some(&json!(250)));
        assert_eq!(limits.get("allow_pii"), None);
        assert_eq!(limits.get("max_export_rows"), Some(&json!(1000)));
        assert_eq!(out.passport.fields.regions.len(), 1);
        assert_eq!(out.passport.version, p.version + 1);
        assert_eq!(out.passport.updated_at, NOW);
        assert_eq!(
            out.changes.get("regions"),
            Some(&json!({"old": ["US-NY", "US-CA"], "new": ["US-CA"]}))
        );
        assert_eq!(
            out.changes.keys().cloned().collect::<Vec<_>>(),
            vec!["description", "limits", "regions"]
        );
    }

    #[test]
    fn a_no_op_keeps_the_version() {
        let p = seed_passport();
        let out =
            apply_merge_patch(&p, &json!({"role": "Tier-2 Support", "name": p.name}), NOW).unwrap();
        assert!(!out.changed());
        assert_eq!(out.passport, p);
    }

    #[test]
    fn null_resets_a_field_to_its_default() {
        let mut p = seed_passport();
        p.fields.tier = crate::Tier::Privileged;
        let out = apply_merge_patch(
            &p,
            &json!({"role": null, "capabilities": null, "tier": null}),
            NOW,
        )
        .unwrap();
        assert_eq!(out.passport.fields.role, None);
        assert!(out.passport.fields.capabilities.is_empty());
        assert_eq!(out.passport.fields.tier, crate::Tier::Standard);
    }

    #[test]
    fn immutable_fields_are_refused() {
        let p = seed_passport();
        for (field, value) in [
            ("name", json!("Other")),
            ("org_id", json!("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f99")),
            (
                "owner",
                json!({"display_name": "Mallory", "contact": "m@evil.test"}),
            ),
            ("created_at", json!("2020-01-01T00:00:00.000Z")),
        ] {
            let err = apply_merge_patch(&p, &json!({ field: value }), NOW).unwrap_err();
            assert_eq!(
                err,
                CoreError::ImmutableField {
                    field: field.into()
                }
            );
            assert_eq!(err.code(), "immutable_field");
        }
    }

    #[test]
    fn read_only_unknown_and_invalid_fields_are_named() {
        let p = seed_passport();
        for (patch, field) in [
            (json!({"status": "active"}), "status"),
            (json!({"version": 99}), "version"),
            (json!({"colour": "red"}), "colour"),
            (json!({"tier": "gold"}), "tier"),
            (json!({"regions": ["US", "US"]}), "regions[1]"),
            (json!({"metadata": {"k": 1}}), "metadata.k"),
        ] {
            let err = apply_merge_patch(&p, &patch, NOW).unwrap_err();
            assert_eq!(err.field_name(), Some(field), "{patch}");
            assert_eq!(err.code(), "invalid_request");
        }
        assert!(apply_merge_patch(&p, &json!([1]), NOW).is_err());
    }
}
