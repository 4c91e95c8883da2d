//! The console's forms and how they become the API's JSON bodies. A value that cannot be read
//! is refused with a sentence naming the field, shown above the form with what was typed kept.

use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The register and edit form of a passport (edit ignores the immutable fields).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AgentForm {
    pub csrf: String,
    pub org_id: String,
    pub name: String,
    pub owner_display_name: String,
    pub owner_contact: String,
    pub role: String,
    pub description: String,
    /// One capability per line: its id, optionally followed by its params as a JSON object.
    pub capabilities: String,
    /// A JSON object (docs/policy.md).
    pub limits: String,
    /// Region codes separated by commas or spaces.
    pub regions: String,
    pub assurance_level: String,
    pub tier: String,
    /// `draft` or `active` (registration only).
    pub status: String,
    /// The version the edit form was opened at (sent as `If-Match`).
    pub version: Option<i64>,
}

impl AgentForm {
    /// The form prefilled from a passport (to edit it).
    pub fn of(passport: &vouch_core::Passport) -> AgentForm {
        let f = &passport.fields;
        AgentForm {
            role: f.role.clone().unwrap_or_default(),
            description: f.description.clone().unwrap_or_default(),
            capabilities: f
                .capabilities
                .iter()
                .map(|c| {
                    if c.params.is_empty() {
                        c.id.as_str().to_owned()
                    } else {
                        format!("{} {}", c.id.as_str(), Value::Object(c.params.clone()))
                    }
                })
                .collect::<Vec<_>>()
                .join("\n"),
            limits: serde_json::to_string_pretty(&f.limits).unwrap_or_default(),
            regions: f
                .regions
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            assurance_level: format!("{:?}", f.assurance_level),
            tier: json!(f.tier).as_str().unwrap_or("standard").to_owned(),
            version: Some(passport.version),
            ..AgentForm::default()
        }
    }

    /// The fields an edit may change, as JSON (an empty role or description is removed).
    pub fn mutable(&self) -> Result<Map<String, Value>, String> {
        let text = |s: &str| {
            let s = s.trim();
            if s.is_empty() {
                Value::Null
            } else {
                Value::String(s.to_owned())
            }
        };
        let mut body = Map::new();
        body.insert("role".into(), text(&self.role));
        body.insert("description".into(), text(&self.description));
        body.insert("capabilities".into(), capabilities(&self.capabilities)?);
        let limits = self.limits.trim();
        let limits: Value = if limits.is_empty() {
            json!({})
        } else {
            serde_json::from_str(limits)
                .map_err(|e| format!("Limits must be a JSON object: {e}."))?
        };
        if !limits.is_object() {
            return Err("Limits must be a JSON object, such as {\"allow_pii\": false}.".into());
        }
        body.insert("limits".into(), limits);
        let regions: Vec<&str> = self
            .regions
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect();
        body.insert("regions".into(), json!(regions));
        if !self.assurance_level.is_empty() {
            body.insert("assurance_level".into(), json!(self.assurance_level));
        }
        if !self.tier.is_empty() {
            body.insert("tier".into(), json!(self.tier));
        }
        Ok(body)
    }

    /// The body of `POST /v1/agents`.
    pub fn registration(&self) -> Result<Value, String> {
        let mut body = self.mutable()?;
        for key in ["role", "description"] {
            if body.get(key) == Some(&Value::Null) {
                body.remove(key);
            }
        }
        body.insert("name".into(), json!(self.name.trim()));
        body.insert(
            "owner".into(),
            json!({ "display_name": self.owner_display_name.trim(), "contact": self.owner_contact.trim() }),
        );
        if !self.org_id.trim().is_empty() {
            body.insert("org_id".into(), json!(self.org_id.trim()));
        }
        if !self.status.is_empty() {
            body.insert("status".into(), json!(self.status));
        }
        Ok(Value::Object(body))
    }
}

/// `payments.refund {"max_amount": 100}` lines → the capabilities array.
fn capabilities(text: &str) -> Result<Value, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (id, params) = match line.split_once(char::is_whitespace) {
            Some((id, rest)) => {
                let params: Value = serde_json::from_str(rest.trim()).map_err(|e| {
                    format!("Capabilities, line {}: the params after `{id}` must be a JSON object: {e}.", n + 1)
                })?;
                (id, params)
            }
            None => (line, json!({})),
        };
        out.push(json!({ "id": id, "params": params }));
    }
    Ok(Value::Array(out))
}

/// A status change from the console.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StatusForm {
    pub csrf: String,
    pub status: String,
    pub reason: String,
    /// `revoke` on the revoke confirmation.
    pub confirm: String,
}

/// A form whose only field is its CSRF token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsrfForm {
    pub csrf: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SignInForm {
    pub csrf: String,
    pub token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WebhookForm {
    pub csrf: String,
    pub org_id: String,
    pub url: String,
    pub description: String,
    /// Event types separated by commas or spaces; empty: every event.
    pub events: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenForm {
    pub csrf: String,
    pub org_id: String,
    pub role: String,
    pub name: String,
    pub token_id: String,
}

/// The form that adds a partner.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PartnerForm {
    pub csrf: String,
    pub name: String,
    pub contact: String,
}

/// A partner's revocation, from its confirmation page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RevokePartnerForm {
    pub csrf: String,
    /// `revoke` on the confirmation page.
    pub confirm: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_form_becomes_the_api_body() {
        let form = AgentForm {
            name: " Bot ".into(),
            owner_display_name: "Team".into(),
            owner_contact: "a@b.c".into(),
            capabilities:
                "payments.refund {\"max_amount\": 100, \"currency\": \"USD\"}\n\ndata.export".into(),
            limits: "".into(),
            regions: "US-NY, US-CA  DE".into(),
            assurance_level: "L2".into(),
            tier: "standard".into(),
            status: "active".into(),
            ..AgentForm::default()
        };
        let body = form.registration().unwrap();
        assert_eq!(body["name"], "Bot");
        assert_eq!(body["owner"]["contact"], "a@b.c");
        assert_eq!(body["capabilities"][0]["params"]["max_amount"], 100);
        assert_eq!(
            body["capabilities"][1],
            json!({ "id": "data.export", "params": {} })
        );
        assert_eq!(body["regions"], json!(["US-NY", "US-CA", "DE"]));
        assert_eq!(body["limits"], json!({}));
        assert!(body.get("role").is_none() && body.get("org_id").is_none());
    }

    #[test]
    fn unreadable_values_name_their_field() {
        let form = AgentForm {
            capabilities: "a.b {nope".into(),
            ..AgentForm::default()
        };
        assert!(form
            .mutable()
            .unwrap_err()
            .starts_with("Capabilities, line 1"));
        let form = AgentForm {
            limits: "[1]".into(),
            ..AgentForm::default()
        };
        assert!(form
            .mutable()
            .unwrap_err()
            .starts_with("Limits must be a JSON object"));
    }
}
