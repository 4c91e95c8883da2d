//! The origin's `/openapi.json`: what utoipa derives from the handlers, made true to what the
//! server answers.
//!
//! Two things the derived document gets wrong are put right here, once for every operation:
//!
//! - A flattened struct (`#[serde(flatten)]`) comes out as an `allOf` of its parts, and a part
//!   with `additionalProperties: false` (the passport's `MutableFields`, which refuses unknown
//!   fields) then forbids every property of the other parts: no passport satisfies `Passport`
//!   and no body satisfies `NewAgent`. Such `allOf`s are merged into one object schema.
//! - Errors that come from the shared extractors and layers, not from the handler, are not
//!   listed by the handlers: `400` for a malformed path id, query or header, `415` and `413`
//!   for a body, `401` for a missing credential, `404` for an unknown id, `429` from the rate
//!   limits. They are added where they can happen, in the operation's own error shape.

use serde_json::{json, Map, Value};
use vouch_core::ids::{AgentId, DelegationId, EventId, OrgId, PartnerId, TokenId, WebhookId};

/// Each prefixed id: its schema, the parameter names that carry it, and its prefix. The
/// document gives each the exact pattern the server parses.
const IDS: [(&str, &[&str], &str); 7] = [
    ("AgentId", &["agent_id"], AgentId::PREFIX),
    ("OrgId", &["org_id"], OrgId::PREFIX),
    ("EventId", &["event_id"], EventId::PREFIX),
    ("TokenId", &["token_id"], TokenId::PREFIX),
    ("DelegationId", &["delegation_id"], DelegationId::PREFIX),
    ("WebhookId", &["webhook_id"], WebhookId::PREFIX),
    ("PartnerId", &["partner_id"], PartnerId::PREFIX),
];

fn id_pattern(prefix: &str) -> Value {
    Value::String(format!("^{prefix}[0-9a-f]{{32}}$"))
}

/// The document to serve, from the one utoipa derived.
pub fn document(derived: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(derived).unwrap_or_else(|_| json!({}));
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    merge_everywhere(&mut doc, &schemas);
    open_free_form(&mut doc);
    unique_operation_ids(&mut doc);
    for (schema, _, prefix) in IDS {
        if let Some(id) = doc
            .pointer_mut(&format!("/components/schemas/{schema}"))
            .and_then(Value::as_object_mut)
        {
            id.insert("pattern".into(), id_pattern(prefix));
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut() {
                if let Some(operation) = operation.as_object_mut() {
                    complete_errors(path, operation);
                }
            }
        }
    }
    doc
}

/// Says `additionalProperties: true` on every object schema that names no properties (a
/// passport's `limits`, a capability's `params`): generators read a bare `type: object` as an
/// object that must stay empty.
fn open_free_form(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let free_form = map.get("type").is_some_and(|t| {
                t == "object" || t.as_array().is_some_and(|ts| ts.contains(&json!("object")))
            }) && !map.contains_key("properties")
                && !map.contains_key("additionalProperties");
            if free_form {
                map.insert("additionalProperties".into(), Value::Bool(true));
            }
            map.values_mut().for_each(open_free_form);
        }
        Value::Array(items) => items.iter_mut().for_each(open_free_form),
        _ => {}
    }
}

/// OpenAPI wants every `operationId` unique, and utoipa takes the handler's name (`create` is
/// both the delegations' and the webhooks'): a name used more than once gets its tag in front.
fn unique_operation_ids(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for item in paths.values() {
        for operation in item.as_object().into_iter().flat_map(|o| o.values()) {
            if let Some(id) = operation.get("operationId").and_then(Value::as_str) {
                *seen.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
    for item in paths.values_mut() {
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            let Some(id) = operation.get("operationId").and_then(Value::as_str) else {
                continue;
            };
            if seen.get(id).is_some_and(|n| *n > 1) {
                let tag = operation
                    .pointer("/tags/0")
                    .and_then(Value::as_str)
                    .unwrap_or("op");
                let renamed = format!("{tag}_{id}");
                operation["operationId"] = Value::String(renamed);
            }
        }
    }
}

/// Merges every mergeable `allOf` in `value`, at any depth (a generic list inlines its items).
fn merge_everywhere(value: &mut Value, schemas: &Map<String, Value>) {
    if let Some(merged) = merge_all_of(value, schemas) {
        *value = merged;
    }
    match value {
        Value::Object(map) => map.values_mut().for_each(|v| merge_everywhere(v, schemas)),
        Value::Array(items) => items.iter_mut().for_each(|v| merge_everywhere(v, schemas)),
        _ => {}
    }
}

/// `schema` as one object schema when it is an `allOf` of object schemas (or references to
/// them): the parts' properties and required names together, closed to other properties when
/// a part was.
fn merge_all_of(schema: &Value, schemas: &Map<String, Value>) -> Option<Value> {
    let parts = schema.get("allOf")?.as_array()?;
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    let mut closed = false;
    for part in parts {
        let part = match part.get("$ref").and_then(Value::as_str) {
            Some(reference) => schemas.get(reference.strip_prefix("#/components/schemas/")?)?,
            None => part,
        };
        if part.get("type").and_then(Value::as_str) != Some("object") || part.get("allOf").is_some()
        {
            return None;
        }
        if let Some(props) = part.get("properties").and_then(Value::as_object) {
            properties.extend(props.clone());
        }
        if let Some(names) = part.get("required").and_then(Value::as_array) {
            required.extend(names.iter().cloned());
        }
        closed |= part.get("additionalProperties") == Some(&Value::Bool(false));
    }
    let mut merged = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        merged["required"] = Value::Array(required);
    }
    if closed {
        merged["additionalProperties"] = Value::Bool(false);
    }
    for key in ["description", "example", "title"] {
        if let Some(value) = schema.get(key) {
            merged[key] = value.clone();
        }
    }
    Some(merged)
}

/// Adds the error statuses the shared extractors and layers answer for this operation.
fn complete_errors(path: &str, operation: &mut Map<String, Value>) {
    for parameter in operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let name = parameter
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some((_, _, prefix)) = IDS.iter().find(|(_, names, _)| names.contains(&name)) else {
            continue;
        };
        if let Some(schema) = parameter.get_mut("schema").and_then(Value::as_object_mut) {
            if schema.get("type") == Some(&json!("string")) {
                schema.insert("pattern".into(), id_pattern(prefix));
            }
        }
    }
    let has_path_params = path.contains('{');
    let has_params = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    let has_body = operation.contains_key("requestBody");
    let secured = operation.contains_key("security");
    let limited = path.starts_with("/v1/") || path == "/oauth/token";
    let mut wanted: Vec<(&str, &str)> = Vec::new();
    if has_path_params || has_params || has_body {
        wanted.push(("400", "The request is malformed: a path id, query parameter, header or body field (named in `field`)."));
    }
    if secured {
        wanted.push(("401", "No valid credential."));
    }
    if has_path_params {
        wanted.push((
            "404",
            "No such resource (or not visible to this credential).",
        ));
    }
    if has_body {
        wanted.push(("413", "The body is larger than the limit."));
        wanted.push((
            "415",
            "The body is not of the content type this operation reads.",
        ));
    }
    if limited {
        wanted.push(("429", "Rate limited: retry after `retry-after` seconds."));
    }
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let shape = error_content(responses, path);
    for (status, description) in wanted {
        if !responses.contains_key(status) {
            responses.insert(
                status.to_owned(),
                json!({ "description": description, "content": shape.clone() }),
            );
        }
    }
    // Every status in ascending order (utoipa keeps the handler's order).
    let mut sorted: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    responses.extend(sorted);
}

/// The error body of this operation: the token endpoint's RFC 6749 shape, else `ErrorBody`.
fn error_content(responses: &Map<String, Value>, path: &str) -> Value {
    if path == "/oauth/token" {
        if let Some(content) = responses.get("400").and_then(|r| r.get("content")) {
            return content.clone();
        }
    }
    json!({ "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_parts_merge_into_one_object() {
        let schemas = json!({
            "Fields": { "type": "object", "properties": { "role": { "type": "string" } },
                        "additionalProperties": false },
        });
        let schemas = schemas.as_object().unwrap();
        let merged = merge_all_of(
            &json!({ "allOf": [ { "$ref": "#/components/schemas/Fields" },
                                { "type": "object", "required": ["name"],
                                  "properties": { "name": { "type": "string" } } } ],
                     "description": "d" }),
            schemas,
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({ "type": "object", "required": ["name"], "additionalProperties": false,
                    "properties": { "role": { "type": "string" }, "name": { "type": "string" } },
                    "description": "d" })
        );
        // Not every allOf is a flattened struct.
        assert_eq!(
            merge_all_of(&json!({ "allOf": [ { "type": "string" } ] }), schemas),
            None
        );
    }

    #[test]
    fn operation_ids_are_unique_and_free_form_objects_open() {
        let mut doc = json!({ "paths": {
            "/a": { "post": { "operationId": "create", "tags": ["delegations"] } },
            "/b": { "post": { "operationId": "create", "tags": ["webhooks"] },
                    "get": { "operationId": "list", "tags": ["webhooks"],
                             "x": { "type": "object" } } }
        }});
        unique_operation_ids(&mut doc);
        open_free_form(&mut doc);
        assert_eq!(
            doc["paths"]["/a"]["post"]["operationId"],
            "delegations_create"
        );
        assert_eq!(doc["paths"]["/b"]["post"]["operationId"], "webhooks_create");
        assert_eq!(doc["paths"]["/b"]["get"]["operationId"], "list");
        assert_eq!(doc["paths"]["/b"]["get"]["x"]["additionalProperties"], true);
    }

    #[test]
    fn shared_errors_are_listed_once() {
        let mut operation = json!({
            "parameters": [ { "name": "agent_id", "in": "path" } ],
            "requestBody": {},
            "security": [ { "admin_token": [] } ],
            "responses": { "200": {}, "404": { "description": "mine" } }
        });
        complete_errors("/v1/agents/{agent_id}", operation.as_object_mut().unwrap());
        let responses = operation["responses"].as_object().unwrap();
        assert_eq!(
            responses.keys().collect::<Vec<_>>(),
            ["200", "400", "401", "404", "413", "415", "429"]
        );
        assert_eq!(responses["404"]["description"], "mine");
    }
}
