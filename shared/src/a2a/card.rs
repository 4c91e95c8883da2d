//! The A2A 1.0 `AgentCard` of a passport: what the registry knows about the agent, in the shape
//! A2A clients parse (the JSON form of `a2a.proto`'s `AgentCard`, lowerCamelCase members).
//!
//! The card holds only members A2A defines and never an empty string, array or object, nor a
//! member at its default: A2A's own SDKs rebuild a card through its protobuf form (which drops
//! unknown members and defaults) before they check a signature, so anything else would make a
//! true signature fail there.

use serde_json::{json, Map, Value};

use crate::edge_view::EdgePassport;
use crate::policy::words;

/// The A2A protocol version the card is written for.
pub const PROTOCOL_VERSION: &str = "1.0";

/// Where, under the edge, the registry's own binding is named (see [`binding_uri`]).
pub const BINDING_PATH: &str = "/a2a/bindings/vouch-registry/v1";

/// Where, under the edge, the registry's verification extension is named.
pub const EXTENSION_PATH: &str = "/a2a/extensions/vouch-verify/v1";

/// The edge's decision keys, which sign cards as they sign decisions (SPEC §12).
pub const JWKS_PATH: &str = "/.well-known/oap/jwks.json";

/// The media types the card offers by default. The registry does not record an agent's media
/// types; A2A requires at least one, and these are its own examples' defaults.
pub const DEFAULT_MODES: [&str; 2] = ["text/plain", "application/json"];

/// The custom protocol binding (A2A §5.8) of the card's one interface. The registry does not know
/// where the agent itself listens, so the card names no A2A transport (`JSONRPC`, `GRPC`,
/// `HTTP+JSON`) a client could mistake for the agent: its interface is the agent's record at the
/// registry (`GET` answers the live status), under a binding URI no A2A client will select for
/// messages.
pub fn binding_uri(edge: &str) -> String {
    format!("{edge}{BINDING_PATH}")
}

/// The URI of the registry's verification extension.
pub fn extension_uri(edge: &str) -> String {
    format!("{edge}{EXTENSION_PATH}")
}

/// The JWK Set the card's signatures name in `jku`.
pub fn jwks_url(edge: &str) -> String {
    format!("{edge}{JWKS_PATH}")
}

/// The agent's record at the edge: JSON (the `/verify` answer) for software, the public
/// passport page for people (SPEC §17).
pub fn record_url(edge: &str, view: &EdgePassport) -> String {
    format!("{edge}/agents/{}", view.agent_id)
}

/// The unsigned card of `view` as served by the edge at `edge` (its origin, e.g.
/// `https://edge.example.com`, without a trailing `/`).
pub fn unsigned_card(view: &EdgePassport, edge: &str) -> Map<String, Value> {
    let record = record_url(edge, view);
    let mut provider = Map::new();
    provider.insert("organization".into(), json!(view.owner_display));
    if let Some(url) = contact_url(&view.contact) {
        provider.insert("url".into(), json!(url));
    }
    let card = json!({
        "name": view.name,
        "description": description(view),
        "supportedInterfaces": [{
            "url": record,
            "protocolBinding": binding_uri(edge),
            "protocolVersion": PROTOCOL_VERSION,
        }],
        "provider": provider,
        "version": view.version.to_string(),
        "documentationUrl": record,
        "capabilities": { "extensions": [verify_extension(view, edge)] },
        "defaultInputModes": DEFAULT_MODES,
        "defaultOutputModes": DEFAULT_MODES,
        "skills": skills(view),
    });
    match card {
        Value::Object(members) => members,
        _ => Map::new(),
    }
}

/// The passport's description, or a sentence of what the registry knows when it has none (A2A
/// requires one, and an empty one would not survive an SDK's canonical form).
fn description(view: &EdgePassport) -> String {
    if let Some(text) = view.description.as_deref().filter(|d| !d.trim().is_empty()) {
        return text.to_owned();
    }
    match view.role.as_deref().filter(|r| !r.trim().is_empty()) {
        Some(role) => format!(
            "{} ({role}), operated by {}.",
            view.name, view.owner_display
        ),
        None => format!("{}, operated by {}.", view.name, view.owner_display),
    }
}

/// The owner's contact as a URL, when it is one (`https://…`) or an e-mail address
/// (`mailto:…`); anything else gives none (the provider is then named without a URL).
pub(super) fn contact_url(contact: &str) -> Option<String> {
    let contact = contact.trim();
    if contact.starts_with("https://") && !contact.contains(char::is_whitespace) {
        return Some(contact.to_owned());
    }
    let (local, domain) = contact.split_once('@')?;
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
    (local_ok && domain_ok).then(|| format!("mailto:{contact}"))
}

/// The registry's `/verify` as an A2A extension: where to ask, about which agent, and the
/// passport the card was made from.
fn verify_extension(view: &EdgePassport, edge: &str) -> Value {
    json!({
        "uri": extension_uri(edge),
        "description": "Vouch, the registry that vouches for this agent, answers whether one \
            use of a capability is allowed right now (amount, currency, region): POST \
            `verify_url` with `agent_id` and `capability` for a decision signed with the \
            keys at `jwks_url`; GET `status_url` for the live status. This card is issued only \
            while the agent is active.",
        "params": {
            "verify_url": format!("{edge}/verify"),
            "status_url": format!("{edge}/verify?agent_id={}", view.agent_id),
            "jwks_url": jwks_url(edge),
            "agent_id": view.agent_id,
            "status": view.status,
            "passport_version": view.version,
            "passport_digest": view.digest(),
            "assurance_level": view.assurance_level,
        },
    })
}

/// One skill per capability: its id, a name and its limits in words (from the same reading
/// of the limits the decisions use), the id's segments as tags.
fn skills(view: &EdgePassport) -> Vec<Value> {
    let regions = words::regions_in_words(&view.regions);
    words::capabilities_in_words(view)
        .into_iter()
        .map(|capability| {
            let limits = capability.limits.join("; ");
            json!({
                "id": capability.id,
                "name": skill_name(&capability.id),
                "description": format!(
                    "May use `{}`: {limits}; where: {regions}.",
                    capability.id
                ),
                "tags": tags(&capability.id),
            })
        })
        .collect()
}

/// `payments.refund` → `Refund (payments)`; `code.repository.merge` → `Merge (code
/// repository)`; `audit` → `Audit`.
pub(super) fn skill_name(id: &str) -> String {
    let words = |segment: &str| segment.replace(['_', '-'], " ");
    let mut segments: Vec<&str> = id.split('.').collect();
    let action = segments.pop().unwrap_or(id);
    let mut name = capitalized(&words(action));
    if !segments.is_empty() {
        let scope: Vec<String> = segments.iter().map(|s| words(s)).collect();
        name = format!("{name} ({})", scope.join(" "));
    }
    name
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The id itself, then each of its segments once.
fn tags(id: &str) -> Vec<String> {
    let mut tags = vec![id.to_owned()];
    for segment in id.split('.') {
        if !tags.iter().any(|t| t == segment) {
            tags.push(segment.to_owned());
        }
    }
    tags
}
