//! Open Agent Passport 1.0 documents in and out (SPEC §13): [`import`] reads one as a
//! registration, [`export`] writes any passport as one that validates against OAP's
//! `passport-schema.json`.
//!
//! What does not fit OAP's schema travels in `metadata` under `vouch_*` keys, and comes back on
//! import, so import → export → import decides the same (see `docs/api.md`, "OAP passports"):
//! capability ids outside OAP's grammar (`[a-z0-9]` segments: ours also allow `_` and `-`),
//! regions outside `^[A-Z]{2}(-[A-Z]{2})?$` (`*`, `FR-75`, `GB-ENG`), our own `metadata`, the
//! agent's `public_jwk`. Capability `params.max_amount` is in OAP's minor units outside and in
//! major units inside (SPEC §2).

use serde_json::{json, Map, Number, Value};

use crate::error::CoreError;
use crate::packs::request::{canonical_uuid, passport_id_of};
use crate::passport::{AssuranceLevel, NewAgent, Passport, Status};
use crate::policy::{minor_unit_digits, to_minor_units};

/// The `spec_version` of the documents read and written.
pub const SPEC_VERSION: &str = "oap/1.0";

/// The top-level members OAP's passport schema defines.
const MEMBERS: [&str; 18] = [
    "passport_id",
    "kind",
    "spec_version",
    "template_id",
    "parent_agent_id",
    "owner_id",
    "owner_type",
    "assurance_level",
    "status",
    "capabilities",
    "limits",
    "regions",
    "metadata",
    "created_at",
    "updated_at",
    "version",
    "did",
    "never_expires",
];

/// `metadata` keys this registry reads on import (and writes on export).
const RESERVED: [&str; 13] = [
    "name",
    "description",
    "contact",
    "owner_display",
    "role",
    "tier",
    "require_act_as",
    "oap_assurance_level",
    "vouch_agent_id",
    "vouch_metadata",
    "vouch_capabilities",
    "vouch_regions",
    "public_jwk",
];

/// An OAP passport read as a registration.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    pub new: NewAgent,
    /// Its `passport_id`, lower-case.
    pub passport_id: String,
    /// Its status: a suspended or revoked passport stays so (`reason` says it was imported so).
    pub status: Status,
}

fn field(name: &str, message: impl Into<String>) -> CoreError {
    CoreError::field(name, message)
}

/// Reads an OAP 1.0 passport as a registration for an org named `org_name` (the owner's
/// display name when `metadata.owner_display` is absent). Every error names the OAP field.
pub fn import(document: Value, org_name: &str) -> Result<Imported, CoreError> {
    let Value::Object(mut doc) = document else {
        return Err(CoreError::invalid("an OAP passport must be a JSON object"));
    };
    if let Some(unknown) = doc.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
        let why = if unknown == "expires_at" {
            "passports that expire are not supported: import one without `expires_at`".to_owned()
        } else {
            format!("unknown field `{unknown}` (OAP 1.0's passport schema has no such member)")
        };
        return Err(field(unknown, why));
    }
    match doc.get("spec_version") {
        None => {}
        Some(Value::String(v)) if v == SPEC_VERSION => {}
        Some(other) => {
            return Err(field(
                "spec_version",
                format!("`spec_version` must be \"{SPEC_VERSION}\", not {other}"),
            ))
        }
    }
    let passport_id = match doc.get("passport_id") {
        Some(Value::String(id)) => canonical_uuid(id)
            .ok_or_else(|| field("passport_id", "`passport_id` must be a UUID"))?,
        Some(_) => return Err(field("passport_id", "`passport_id` must be a UUID")),
        None => return Err(field("passport_id", "`passport_id` is required")),
    };
    let mut metadata = match doc.remove("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(field("metadata", "`metadata` must be a JSON object")),
    };
    let mut text = |key: &str| -> Result<Option<String>, CoreError> {
        match metadata.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(field(
                &format!("metadata.{key}"),
                format!("`metadata.{key}` must be a string"),
            )),
        }
    };
    let name = text("name")?.ok_or_else(|| {
        field(
            "metadata.name",
            "`metadata.name` is required: it becomes the agent's name",
        )
    })?;
    let contact = text("contact")?.ok_or_else(|| {
        field(
            "metadata.contact",
            "`metadata.contact` is required: it is where to reach the owner about this agent",
        )
    })?;
    let owner_display = text("owner_display")?.unwrap_or_else(|| org_name.to_owned());
    let description = text("description")?;
    let role = text("role")?;
    let tier = text("tier")?;
    // The document's own level is the truth; an exported one's copy is dropped.
    let _ = text("oap_assurance_level")?;
    metadata.remove("vouch_agent_id");
    let require_act_as = match metadata.remove("require_act_as") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(field(
                "metadata.require_act_as",
                "`metadata.require_act_as` must be true or false",
            ))
        }
    };
    let public_jwk = metadata.remove("public_jwk").filter(|v| !v.is_null());
    let extra_capabilities = list(
        metadata.remove("vouch_capabilities"),
        "metadata.vouch_capabilities",
    )?;
    let extra_regions = list(metadata.remove("vouch_regions"), "metadata.vouch_regions")?;
    let ours = match metadata.remove("vouch_metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(field(
                "metadata.vouch_metadata",
                "`metadata.vouch_metadata` must be a JSON object",
            ))
        }
    };
    // Foreign metadata (not ours, not reserved) is kept as strings.
    let mut kept = ours;
    for (key, value) in metadata {
        let value = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        kept.insert(key, Value::String(value));
    }

    let original_level = doc
        .get("assurance_level")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let assurance = match doc.remove("assurance_level") {
        Some(Value::String(level)) => match level.as_str() {
            "L0" | "L1" | "L2" | "L3" => level,
            // Our highest level; the original comes back on export.
            "L4KYC" | "L4FIN" => "L3".to_owned(),
            _ => {
                return Err(field(
                    "assurance_level",
                    "`assurance_level` must be one of L0, L1, L2, L3, L4KYC, L4FIN",
                ))
            }
        },
        None => "L0".to_owned(),
        Some(_) => {
            return Err(field(
                "assurance_level",
                "`assurance_level` must be a string",
            ))
        }
    };
    let status = match doc.remove("status") {
        None => Status::Draft,
        Some(Value::String(s)) => match s.as_str() {
            "draft" => Status::Draft,
            "active" => Status::Active,
            "suspended" => Status::Suspended,
            "revoked" => Status::Revoked,
            _ => {
                return Err(field(
                    "status",
                    "`status` must be draft, active, suspended or revoked",
                ))
            }
        },
        Some(_) => return Err(field("status", "`status` must be a string")),
    };

    let mut capabilities = list(doc.remove("capabilities"), "capabilities")?;
    capabilities.extend(extra_capabilities);
    for (i, capability) in capabilities.iter_mut().enumerate() {
        params_to_major(capability, &format!("capabilities[{i}].params.max_amount"))?;
    }
    let mut regions = list(doc.remove("regions"), "regions")?;
    regions.extend(extra_regions);

    let mut body = json!({
        "name": name,
        "owner": { "display_name": owner_display, "contact": contact },
        "capabilities": capabilities,
        "limits": doc.remove("limits").unwrap_or_else(|| json!({})),
        "regions": regions,
        "assurance_level": assurance,
        "require_act_as": require_act_as,
        "metadata": kept,
        "status": if status == Status::Active { "active" } else { "draft" },
    });
    if let Value::Object(fields) = &mut body {
        if let Some(d) = description {
            fields.insert("description".into(), Value::String(d));
        }
        if let Some(r) = role {
            fields.insert("role".into(), Value::String(r));
        }
        if let Some(t) = tier {
            fields.insert("tier".into(), Value::String(t));
        }
        if let Some(jwk) = public_jwk {
            fields.insert("public_jwk".into(), jwk);
        }
        if let Some(level) = original_level.filter(|l| l.starts_with("L4")) {
            if let Some(Value::Object(m)) = fields.get_mut("metadata") {
                m.insert("oap_assurance_level".into(), Value::String(level));
            }
        }
    }
    let new = NewAgent::from_json(body).map_err(rename_fields)?;
    Ok(Imported {
        new,
        passport_id,
        status,
    })
}

/// Our registration's field names → the OAP document's, in errors.
fn rename_fields(error: CoreError) -> CoreError {
    match error {
        CoreError::InvalidRequest {
            field: Some(f),
            message,
        } => {
            let renamed = match f.as_str() {
                "name" => "metadata.name".to_owned(),
                "owner.contact" => "metadata.contact".to_owned(),
                "owner.display_name" => "metadata.owner_display".to_owned(),
                "description" | "role" | "tier" | "require_act_as" | "public_jwk" => {
                    format!("metadata.{f}")
                }
                other if other.starts_with("metadata.") => {
                    format!("metadata.vouch_metadata.{}", &other["metadata.".len()..])
                }
                _ => f,
            };
            CoreError::InvalidRequest {
                field: Some(renamed),
                message,
            }
        }
        other => other,
    }
}

fn list(value: Option<Value>, name: &str) -> Result<Vec<Value>, CoreError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(field(name, format!("`{name}` must be an array"))),
    }
}

/// The largest minor amount a JSON number in major units carries exactly (2^53 − 1).
const EXACT_MAX: u64 = 9_007_199_254_740_991;

/// `params.max_amount` from OAP minor units to our major units (SPEC §2).
fn params_to_major(capability: &mut Value, name: &str) -> Result<(), CoreError> {
    let Some(params) = capability.get_mut("params").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let Some(currency) = params.get("currency").and_then(Value::as_str) else {
        return Ok(());
    };
    let digits = minor_unit_digits(currency);
    let Some(minor) = params.get("max_amount").and_then(Value::as_u64) else {
        return Ok(());
    };
    if minor > EXACT_MAX {
        return Err(field(name, "`max_amount` is too large"));
    }
    let major = if digits == 0 {
        Number::from(minor)
    } else {
        let scale = 10u64.pow(digits);
        let text = format!(
            "{}.{:0width$}",
            minor / scale,
            minor % scale,
            width = digits as usize
        );
        serde_json::from_str::<Number>(&text).map_err(|e| field(name, e.to_string()))?
    };
    params.insert("max_amount".into(), Value::Number(major));
    Ok(())
}

/// Whether OAP's schema accepts the capability id (`^[a-z0-9]+(\.[a-z0-9]+)*$`).
fn oap_capability_id(id: &str) -> bool {
    id.split('.').all(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Whether OAP's schema accepts the region (`^[A-Z]{2}(-[A-Z]{2})?$`).
fn oap_region(region: &str) -> bool {
    let upper2 = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase());
    match region.split_once('-') {
        Some((country, sub)) => upper2(country) && upper2(sub),
        None => upper2(region),
    }
}

/// Writes `passport` as an OAP 1.0 passport (`kind: template`, owned by its org).
pub fn export(passport: &Passport) -> Value {
    let fields = &passport.fields;
    let mut capabilities = Vec::new();
    let mut outside = Vec::new();
    for capability in &fields.capabilities {
        let mut params = capability.params.clone();
        if let (Some(currency), Some(Value::Number(major))) = (
            params
                .get("currency")
                .and_then(Value::as_str)
                .map(str::to_owned),
            params.get("max_amount"),
        ) {
            if let Ok(minor) = to_minor_units(major, &currency) {
                params.insert("max_amount".into(), Value::from(minor));
            }
        }
        let mut entry = json!({ "id": capability.id.as_str() });
        if !params.is_empty() {
            entry["params"] = Value::Object(params);
        }
        if oap_capability_id(capability.id.as_str()) {
            capabilities.push(entry);
        } else {
            outside.push(entry);
        }
    }
    let (regions, odd_regions): (Vec<&str>, Vec<&str>) = fields
        .regions
        .iter()
        .map(|r| r.as_str())
        .partition(|r| oap_region(r));
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(passport.name));
    metadata.insert("contact".into(), json!(passport.owner.contact));
    metadata.insert("owner_display".into(), json!(passport.owner.display_name));
    if let Some(d) = &fields.description {
        metadata.insert("description".into(), json!(d));
    }
    if let Some(r) = &fields.role {
        metadata.insert("role".into(), json!(r));
    }
    metadata.insert("tier".into(), json!(fields.tier));
    metadata.insert("require_act_as".into(), json!(fields.require_act_as));
    metadata.insert("vouch_agent_id".into(), json!(passport.agent_id));
    let mut ours = fields.metadata.clone();
    let l4 = ours
        .remove("oap_assurance_level")
        .filter(|_| fields.assurance_level == AssuranceLevel::L3);
    if !ours.is_empty() {
        metadata.insert("vouch_metadata".into(), Value::Object(ours));
    }
    if !outside.is_empty() {
        metadata.insert("vouch_capabilities".into(), Value::Array(outside));
    }
    if !odd_regions.is_empty() {
        metadata.insert("vouch_regions".into(), json!(odd_regions));
    }
    if let Some(jwk) = &fields.public_jwk {
        metadata.insert("public_jwk".into(), Value::Object(jwk.clone()));
    }
    let level = match &l4 {
        Some(Value::String(l)) if l == "L4KYC" || l == "L4FIN" => json!(l),
        _ => json!(fields.assurance_level),
    };
    if let Some(original) = l4 {
        metadata.insert("oap_assurance_level".into(), original);
    }
    json!({
        "passport_id": passport
            .oap_passport_id
            .clone()
            .unwrap_or_else(|| passport_id_of(&passport.agent_id)),
        "kind": "template",
        "spec_version": SPEC_VERSION,
        "owner_id": passport.org_id,
        "owner_type": "org",
        "assurance_level": level,
        "status": passport.status,
        "capabilities": capabilities,
        "limits": fields.limits,
        "regions": regions,
        "metadata": metadata,
        "created_at": passport.created_at,
        "updated_at": passport.updated_at,
        "version": format!("{}.0.0", passport.version),
    })
}

/// The reserved `metadata` keys (for docs and tests).
pub fn reserved_metadata() -> &'static [&'static str] {
    &RESERVED
}

impl Imported {
    /// The passport to store: registered as usual, keeping the `passport_id`, and suspended or
    /// revoked from the start when the document says so (one record, one transaction).
    pub fn into_passport(
        self,
        agent_id: crate::AgentId,
        org_id: crate::OrgId,
        now: crate::Timestamp,
    ) -> Result<Passport, CoreError> {
        let mut passport = Passport::register(self.new, agent_id, org_id, now)?;
        passport.oap_passport_id = Some(self.passport_id);
        match self.status {
            Status::Suspended => {
                passport.status = Status::Suspended;
                passport.suspended_at = Some(now);
                passport.status_reason = Some("imported as suspended".to_owned());
            }
            Status::Revoked => {
                passport.status = Status::Revoked;
                passport.revoked_at = Some(now);
                passport.status_reason = Some("imported as revoked".to_owned());
            }
            Status::Draft | Status::Active => {}
        }
        Ok(passport)
    }
}

#[cfg(test)]
mod tests;
