//! The registry file of `vouch apply` (docs/registry-as-code.md): read from YAML or JSON,
//! checked whole before anything is sent, every error naming its path (`agents[2].regions[0]`).
//!
//! Agents are keyed by `name` (unique in an org, fixed at registration), delegations by
//! (delegator, delegatee, the set of scopes), webhooks by their URL as the origin normalizes
//! it. Everything the API would refuse on its own terms is refused here first, with the
//! core's own rules (`NewAgent`, `Passport::register`, `delegation::validate_new`).

use serde::Deserialize;
use serde_json::{Map, Value};
use vouch_core::delegation;
use vouch_core::passport::{deserialize_field, MutableFields, NewAgent, Owner};
use vouch_core::{AgentId, CoreError, OrgId, Passport, Status, Timestamp};

/// What the file asks the registry to hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub org_id: Option<OrgId>,
    pub agents: Vec<DesiredAgent>,
    pub delegations: Vec<DesiredDelegation>,
    pub webhooks: Vec<DesiredWebhook>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredAgent {
    pub name: String,
    pub owner: Owner,
    /// `draft` when the file leaves it out, as `POST /v1/agents` does.
    pub status: Status,
    pub fields: MutableFields,
    /// Where the entry is in the file (`agents[2]`), for messages.
    pub at: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredDelegation {
    /// Agent names, each one of the file's agents.
    pub delegator: String,
    pub delegatee: String,
    /// Capability ids of the delegator, each once, in the file's order.
    pub scopes: Vec<String>,
    pub ttl_seconds: i64,
    pub max_depth: i64,
    pub at: String,
}

impl DesiredDelegation {
    /// The scopes as a sorted set: two grants with the same parties and set are one.
    pub fn scope_set(&self) -> Vec<String> {
        sorted_set(&self.scopes)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredWebhook {
    /// As the origin stores it (parsed and serialized by the WHATWG URL rules).
    pub url: String,
    /// `["*"]` when the file leaves them out; each once, in the file's order.
    pub events: Vec<String>,
    /// `""` when the file leaves it out, as the origin stores it.
    pub description: String,
    /// `true` when the file leaves it out.
    pub enabled: bool,
    pub at: String,
}

/// A file that cannot be applied as written: the path in the file and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    /// `agents[2].capabilities[0].id`, or empty for the whole file.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn error(path: impl Into<String>, message: impl Into<String>) -> FileError {
    FileError {
        path: path.into(),
        message: message.into(),
    }
}

/// How the file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// JSON for a `.json` file, YAML for `.yaml` / `.yml`; otherwise JSON when the text starts
    /// with `{`, else YAML.
    pub fn detect(path: &str, text: &str) -> Format {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".json") {
            Format::Json
        } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Format::Yaml
        } else if text.trim_start().starts_with('{') {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// The default lifetime of a grant the file declares without `ttl_seconds` (as
/// `vouch delegations create`).
pub const DEFAULT_TTL_SECONDS: i64 = 3_600;
/// The default `max_depth` of a grant (as `vouch delegations create`).
pub const DEFAULT_MAX_DEPTH: i64 = 1;
/// The events of a webhook the file declares without `events`: all of them.
pub const ALL_EVENTS: &str = "*";

const TOP_LEVEL: [&str; 5] = ["$schema", "org_id", "agents", "delegations", "webhooks"];

/// Reads and checks a registry file.
pub fn parse(text: &str, format: Format) -> Result<Desired, FileError> {
    let Strict(document) = match format {
        Format::Json => {
            serde_json::from_str(text).map_err(|e| error("", format!("not valid JSON: {e}")))?
        }
        Format::Yaml => {
            yaml_serde::from_str(text).map_err(|e| error("", format!("not valid YAML: {e}")))?
        }
    };
    from_value(document)
}

/// A JSON value read strictly: a key given twice in one mapping is an error (both readers
/// would otherwise keep the last one and drop the first without a word).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON-compatible value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} is not a JSON number")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if object.insert(key.clone(), value).is_some() {
                return Err(serde::de::Error::custom(format!(
                    "duplicate key `{key}` in one mapping"
                )));
            }
        }
        Ok(Value::Object(object))
    }
}

/// Checks a registry document already read as JSON.
pub fn from_value(document: Value) -> Result<Desired, FileError> {
    let Value::Object(mut top) = document else {
        return Err(error(
            "",
            "the file must be a mapping with `agents:` (and optionally `org_id:`, `delegations:`, `webhooks:`)",
        ));
    };
    if let Some(unknown) = top.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
        return Err(error(
            unknown.clone(),
            format!(
                "unknown field `{unknown}`; the top level holds {}",
                TOP_LEVEL[1..].join(", ")
            ),
        ));
    }
    if let Some(schema) = top.remove("$schema") {
        if !schema.is_string() {
            return Err(error("$schema", "`$schema` is the URL of a JSON Schema"));
        }
    }
    let org_id = match top.remove("org_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(raw)) => Some(
            OrgId::parse(&raw)
                .map_err(|_| error("org_id", format!("`{raw}` is not an org id (org_…)")))?,
        ),
        Some(_) => return Err(error("org_id", "`org_id` is an org id (org_…)")),
    };
    let agents = list(top.remove("agents"), "agents")?
        .into_iter()
        .enumerate()
        .map(|(i, entry)| agent(entry, &format!("agents[{i}]"), org_id.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, agent) in agents.iter().enumerate() {
        if let Some(first) = agents[..i].iter().find(|a| a.name == agent.name) {
            return Err(error(
                format!("{}.name", agent.at),
                format!(
                    "agent `{}` is already declared at {}; names are unique in an org",
                    agent.name, first.at
                ),
            ));
        }
    }
    let delegations = list(top.remove("delegations"), "delegations")?
        .into_iter()
        .enumerate()
        .map(|(i, entry)| grant(entry, &format!("delegations[{i}]"), &agents))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, grant) in delegations.iter().enumerate() {
        let same = |other: &DesiredDelegation| {
            other.delegator == grant.delegator
                && other.delegatee == grant.delegatee
                && other.scope_set() == grant.scope_set()
        };
        if let Some(first) = delegations[..i].iter().find(|g| same(g)) {
            return Err(error(
                grant.at.clone(),
                format!(
                    "the same grant (delegator, delegatee and scopes) is already declared at {}",
                    first.at
                ),
            ));
        }
    }
    let webhooks = list(top.remove("webhooks"), "webhooks")?
        .into_iter()
        .enumerate()
        .map(|(i, entry)| webhook(entry, &format!("webhooks[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, hook) in webhooks.iter().enumerate() {
        if let Some(first) = webhooks[..i].iter().find(|w| w.url == hook.url) {
            return Err(error(
                format!("{}.url", hook.at),
                format!(
                    "{} is already declared at {}; a URL is one subscription",
                    hook.url, first.at
                ),
            ));
        }
    }
    Ok(Desired {
        org_id,
        agents,
        delegations,
        webhooks,
    })
}

/// The entries of a top-level list (absent or `null`: none).
fn list(value: Option<Value>, name: &str) -> Result<Vec<Value>, FileError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(error(name, format!("`{name}` is a list"))),
    }
}

/// A path inside an entry: `agents[2]` + `regions[0]` → `agents[2].regions[0]`.
fn join(at: &str, field: &str) -> String {
    match field {
        "" => at.to_owned(),
        f if f.starts_with('[') => format!("{at}{f}"),
        f => format!("{at}.{f}"),
    }
}

fn core_error(at: &str, e: CoreError) -> FileError {
    let field = e.field_name().unwrap_or_default().to_owned();
    let message = e.to_string();
    // The core's messages often start with the field they name; do not say it twice.
    let message = message
        .strip_prefix(&format!("`{field}`: "))
        .map(str::to_owned)
        .unwrap_or(message);
    error(join(at, &field), message)
}

/// An agent entry: a registration body of `POST /v1/agents`, any status.
fn agent(entry: Value, at: &str, org_id: Option<&OrgId>) -> Result<DesiredAgent, FileError> {
    let Value::Object(mut object) = entry else {
        return Err(error(at, "an agent is a mapping (a passport document)"));
    };
    let known = |key: &str| {
        ["name", "owner", "status", "org_id"].contains(&key) || MutableFields::NAMES.contains(&key)
    };
    if let Some(unknown) = object.keys().find(|k| !known(k)) {
        return Err(error(
            join(at, unknown),
            format!(
                "unknown field `{unknown}`; a passport document holds name, owner, status, {}",
                MutableFields::NAMES.join(", ")
            ),
        ));
    }
    match object.remove("org_id") {
        None | Some(Value::Null) => {}
        Some(value) => {
            let same = org_id.is_some_and(|org| value.as_str() == Some(org.as_str()));
            if !same {
                return Err(error(
                    join(at, "org_id"),
                    "set `org_id` once, at the top of the file; an entry may only repeat it",
                ));
            }
        }
    }
    let status = match object.remove("status") {
        None | Some(Value::Null) => Status::Draft,
        Some(value) => {
            let raw = value.as_str().unwrap_or_default();
            Status::parse(raw).ok_or_else(|| {
                error(
                    join(at, "status"),
                    "`status` is draft, active, suspended or revoked",
                )
            })?
        }
    };
    for field in ["limits", "metadata", "public_jwk"] {
        if let Some(value) = object.get(field) {
            refuse_inner_nulls(value, &join(at, field), true)?;
        }
    }
    let new = NewAgent::from_json(Value::Object(object)).map_err(|e| core_error(at, e))?;
    let desired = DesiredAgent {
        name: new.name.clone(),
        owner: new.owner.clone(),
        status,
        fields: new.fields.clone(),
        at: at.to_owned(),
    };
    // Every rule a registration is held to, by the core's own check (the ids are
    // placeholders: only the fields are looked at).
    let placeholder_agent = AgentId::parse("ap_00000000000000000000000000000000");
    let placeholder_org = OrgId::parse("org_00000000000000000000000000000000");
    if let (Ok(agent_id), Ok(org)) = (placeholder_agent, placeholder_org) {
        let mut check = new;
        check.status = None;
        Passport::register(check, agent_id, org, Timestamp::from_unix_millis(0))
            .map_err(|e| core_error(at, e))?;
    }
    Ok(desired)
}

/// `null` inside an object field cannot be applied: a merge patch (RFC 7396) reads it as
/// "remove this key". Leaving the key out says the same thing.
fn refuse_inner_nulls(value: &Value, at: &str, top: bool) -> Result<(), FileError> {
    match value {
        Value::Null if !top => Err(error(
            at,
            "`null` cannot be stored inside an object; leave the key out instead",
        )),
        Value::Object(map) => {
            for (key, inner) in map {
                refuse_inner_nulls(inner, &format!("{at}.{key}"), false)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantEntry {
    delegator: String,
    delegatee: String,
    scopes: Vec<String>,
    #[serde(default)]
    ttl_seconds: Option<i64>,
    #[serde(default)]
    max_depth: Option<i64>,
}

fn grant(entry: Value, at: &str, agents: &[DesiredAgent]) -> Result<DesiredDelegation, FileError> {
    let entry: GrantEntry = deserialize_field(entry, "").map_err(|e| core_error(at, e))?;
    let party = |name: &str, field: &str| {
        let agent = agents.iter().find(|a| a.name == name).ok_or_else(|| {
            error(
                join(at, field),
                format!("`{name}` is not one of the file's agents (a grant names agents by name)"),
            )
        })?;
        if agent.status != Status::Active {
            return Err(error(
                join(at, field),
                format!(
                    "agent `{name}` is {} in the file; a grant needs both parties active",
                    agent.status
                ),
            ));
        }
        Ok(agent)
    };
    let delegator = party(&entry.delegator, "delegator")?;
    party(&entry.delegatee, "delegatee")?;
    if entry.delegator == entry.delegatee {
        return Err(error(
            join(at, "delegatee"),
            "an agent cannot delegate to itself",
        ));
    }
    let ttl_seconds = entry.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    let max_depth = entry.max_depth.unwrap_or(DEFAULT_MAX_DEPTH);
    let scopes = delegation::validate_new(
        &delegator.fields.capabilities,
        &entry.scopes,
        ttl_seconds,
        max_depth,
    )
    .map_err(|e| match e {
        delegation::DelegationError::InvalidRequest { field, message } => {
            error(join(at, &field), message)
        }
        delegation::DelegationError::ScopeEscalation { scopes } => error(
            join(at, "scopes"),
            format!(
                "agent `{}` does not hold {} (a grant delegates the delegator's own capabilities)",
                entry.delegator,
                scopes.join(", ")
            ),
        ),
        other => error(at, other.to_string()),
    })?;
    Ok(DesiredDelegation {
        delegator: entry.delegator,
        delegatee: entry.delegatee,
        scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        ttl_seconds,
        max_depth,
        at: at.to_owned(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookEntry {
    url: String,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

fn webhook(entry: Value, at: &str) -> Result<DesiredWebhook, FileError> {
    let entry: WebhookEntry = deserialize_field(entry, "").map_err(|e| core_error(at, e))?;
    let url = normalize_url(&entry.url).map_err(|message| error(join(at, "url"), message))?;
    let mut events: Vec<String> = Vec::new();
    for event in entry.events.unwrap_or_default() {
        if !events.contains(&event) {
            events.push(event);
        }
    }
    if events.is_empty() {
        events.push(ALL_EVENTS.to_owned());
    }
    Ok(DesiredWebhook {
        url,
        events,
        description: entry.description.unwrap_or_default(),
        enabled: entry.enabled.unwrap_or(true),
        at: at.to_owned(),
    })
}

/// The URL as the origin stores it: parsed and written back (lower-case host, a `/` path
/// when there is none), so the file's spelling and the registry's compare equal.
pub fn normalize_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{}` URLs cannot receive webhooks; use https",
            url.scheme()
        ));
    }
    Ok(url.to_string())
}

/// `items` sorted, each once.
pub fn sorted_set(items: &[String]) -> Vec<String> {
    let mut set = items.to_vec();
    set.sort();
    set.dedup();
    set
}

/// The registration body of a new agent: its passport document as `POST /v1/agents` takes it.
pub fn registration(agent: &DesiredAgent, org_id: Option<&OrgId>) -> Value {
    let mut body = Map::new();
    if let Some(org) = org_id {
        body.insert("org_id".into(), Value::String(org.as_str().to_owned()));
    }
    body.insert("name".into(), Value::String(agent.name.clone()));
    body.insert(
        "owner".into(),
        serde_json::to_value(&agent.owner).unwrap_or(Value::Null),
    );
    if let Ok(Value::Object(fields)) = serde_json::to_value(&agent.fields) {
        body.extend(fields);
    }
    body.insert(
        "status".into(),
        Value::String(agent.status.as_str().to_owned()),
    );
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(text: &str) -> Result<Desired, FileError> {
        parse(text, Format::Yaml)
    }

    fn path_of(text: &str) -> String {
        yaml(text).expect_err("the file should be refused").path
    }

    const BOT: &str = "
agents:
  - name: Support Bot
    owner: { display_name: Support, contact: sec@acme.example }
    status: active
    capabilities:
      - id: payments.refund
        params: { max_amount: 100 }
      - id: tickets.read
    regions: [US-CA, 'NO']
  - name: Refund Worker
    owner: { display_name: Support, contact: sec@acme.example }
    status: active
    capabilities: [{ id: payments.refund }]
";

    #[test]
    fn a_full_file_reads_with_its_defaults() {
        let text = format!(
            "org_id: org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71\n{BOT}
delegations:
  - delegator: Support Bot
    delegatee: Refund Worker
    scopes: [payments.refund, payments.refund]
webhooks:
  - url: HTTPS://Hooks.Acme.Example
    events: [agent.suspended, agent.suspended]
  - url: https://hooks.acme.example/all
    description: everything
    enabled: false
"
        );
        let desired = yaml(&text).unwrap();
        assert_eq!(
            desired.org_id.as_ref().map(OrgId::as_str),
            Some("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71")
        );
        let bot = &desired.agents[0];
        assert_eq!(bot.status, Status::Active);
        assert_eq!(bot.fields.capabilities.len(), 2);
        // YAML 1.2: `NO` (Norway) stays a string when quoted, and the region list keeps order.
        let regions: Vec<&str> = bot.fields.regions.iter().map(|r| r.as_str()).collect();
        assert_eq!(regions, ["US-CA", "NO"]);
        let grant = &desired.delegations[0];
        assert_eq!(grant.scopes, ["payments.refund"]);
        assert_eq!(
            (grant.ttl_seconds, grant.max_depth),
            (DEFAULT_TTL_SECONDS, DEFAULT_MAX_DEPTH)
        );
        let hooks = &desired.webhooks;
        assert_eq!(hooks[0].url, "https://hooks.acme.example/");
        assert_eq!(hooks[0].events, ["agent.suspended"]);
        assert_eq!(
            (hooks[0].description.as_str(), hooks[0].enabled),
            ("", true)
        );
        assert_eq!(hooks[1].events, [ALL_EVENTS]);
        assert!(!hooks[1].enabled);
    }

    #[test]
    fn the_documented_example_reads() {
        let desired = yaml(include_str!("../../../../docs/examples/agents.yaml")).unwrap();
        let names: Vec<&str> = desired.agents.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Acme Support Bot",
                "Acme Refund Worker",
                "Acme Triage Bot (staging)"
            ]
        );
        assert_eq!((desired.delegations.len(), desired.webhooks.len()), (1, 1));
    }

    #[test]
    fn yaml_1_2_keeps_country_codes_strings() {
        // YAML 1.1 read `NO` (Norway) and `ON` as booleans; YAML 1.2 (this reader) does not.
        let text = "agents:\n  - name: a\n    owner: { display_name: a, contact: a }\n    regions: [NO, ON, US-CA]";
        let desired = yaml(text).unwrap();
        let regions: Vec<&str> = desired.agents[0]
            .fields
            .regions
            .iter()
            .map(|r| r.as_str())
            .collect();
        assert_eq!(regions, ["NO", "ON", "US-CA"]);
    }

    #[test]
    fn json_reads_the_same_as_yaml() {
        let from_yaml = yaml(BOT).unwrap();
        let document: Value = yaml_serde::from_str(BOT).unwrap();
        let text = serde_json::to_string(&document).unwrap();
        assert_eq!(parse(&text, Format::Json).unwrap(), from_yaml);
        assert_eq!(Format::detect("x.json", ""), Format::Json);
        assert_eq!(Format::detect("x.YML", "{"), Format::Yaml);
        assert_eq!(Format::detect("-", "  {\"agents\": []}"), Format::Json);
        assert_eq!(Format::detect("-", "agents: []"), Format::Yaml);
    }

    #[test]
    fn an_empty_file_declares_nothing() {
        for text in ["{}", "agents: []", "agents:\ndelegations: null"] {
            let desired = yaml(text).unwrap();
            assert!(desired.agents.is_empty() && desired.webhooks.is_empty());
        }
        assert_eq!(yaml("").unwrap_err().path, "");
        assert_eq!(yaml("- a\n- b").unwrap_err().path, "");
        // A key given twice is refused, not silently the last one.
        let twice = yaml("agents: []\nagents: []").unwrap_err();
        assert!(twice.message.contains("duplicate"), "{twice}");
        let twice = parse(r#"{"agents": [{"name": "a", "name": "b"}]}"#, Format::Json).unwrap_err();
        assert!(twice.message.contains("duplicate key `name`"), "{twice}");
    }

    #[test]
    fn unknown_fields_are_named_by_their_path() {
        assert_eq!(path_of("agent: []"), "agent");
        assert_eq!(
            path_of(
                "agents:\n  - name: a\n    owner: { display_name: a, contact: a }\n    colour: red"
            ),
            "agents[0].colour"
        );
        assert_eq!(
            path_of("agents:\n  - name: a\n    owner: { display_name: a, contact: a, phone: 1 }"),
            "agents[0].owner.phone"
        );
        assert_eq!(
            path_of("agents:\n  - name: a\n    owner: { display_name: a, contact: a }\n    capabilities: [{ id: x, limit: 1 }]"),
            "agents[0].capabilities[0].limit"
        );
        assert_eq!(
            path_of("webhooks:\n  - url: https://x.example\n    secret: s"),
            "webhooks[0].secret"
        );
        let err = yaml(
            "agents: []\ndelegations:\n  - { delegator: a, delegatee: b, scopes: [x], ttl: 5 }",
        )
        .unwrap_err();
        assert_eq!(err.path, "delegations[0].ttl");
        assert!(err.message.contains("unknown field"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_with_the_core_rules() {
        let agent = |extra: &str| {
            format!("agents:\n  - name: a\n    owner: {{ display_name: a, contact: a }}\n{extra}")
        };
        assert_eq!(
            path_of(&agent("    regions: [Narnia]")),
            "agents[0].regions[0]"
        );
        assert_eq!(
            path_of(&agent("    capabilities: [{ id: Bad! }]")),
            "agents[0].capabilities[0].id"
        );
        assert_eq!(path_of(&agent("    tier: gold")), "agents[0].tier");
        assert_eq!(path_of(&agent("    status: paused")), "agents[0].status");
        assert_eq!(
            path_of(&agent("    regions: [US, US]")),
            "agents[0].regions[1]"
        );
        assert_eq!(
            path_of(&agent("    limits: { cap: ~ }")),
            "agents[0].limits.cap"
        );
        assert_eq!(
            path_of(&agent("    metadata: { a: { b: null } }")),
            "agents[0].metadata.a.b"
        );
        assert_eq!(
            path_of("agents:\n  - name: ' '\n    owner: { display_name: a, contact: a }"),
            "agents[0].name"
        );
        assert_eq!(
            path_of("agents:\n  - owner: { display_name: a, contact: a }"),
            "agents[0].name"
        );
        assert_eq!(path_of("agents:\n  - name: a"), "agents[0].owner");
        assert_eq!(path_of("agents: {}"), "agents");
        assert_eq!(path_of("agents: [7]"), "agents[0]");
        assert_eq!(path_of("org_id: acme"), "org_id");
        assert_eq!(
            path_of("webhooks: [{ url: 'ftp://x.example' }]"),
            "webhooks[0].url"
        );
        assert_eq!(
            path_of("webhooks: [{ url: 'not a url' }]"),
            "webhooks[0].url"
        );
    }

    #[test]
    fn an_entry_may_repeat_the_org_but_not_name_another() {
        let top = "org_id: org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71\n";
        let entry = |org: &str| {
            format!("agents:\n  - name: a\n    org_id: {org}\n    owner: {{ display_name: a, contact: a }}\n")
        };
        assert!(yaml(&format!(
            "{top}{}",
            entry("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71")
        ))
        .is_ok());
        assert_eq!(
            yaml(&format!(
                "{top}{}",
                entry("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f72")
            ))
            .unwrap_err()
            .path,
            "agents[0].org_id"
        );
        assert_eq!(
            path_of(&entry("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71")),
            "agents[0].org_id"
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let twice = "agents:\n  - name: a\n    owner: { display_name: a, contact: a }\n  - name: a\n    owner: { display_name: b, contact: b }";
        let err = yaml(twice).unwrap_err();
        assert_eq!(err.path, "agents[1].name");
        assert!(err.message.contains("agents[0]"), "{err}");
        let hooks = "webhooks:\n  - url: https://x.example\n  - url: https://X.example/";
        assert_eq!(path_of(hooks), "webhooks[1].url");
        let grants = format!(
            "{BOT}delegations:
  - {{ delegator: Support Bot, delegatee: Refund Worker, scopes: [payments.refund, tickets.read] }}
  - {{ delegator: Support Bot, delegatee: Refund Worker, scopes: [tickets.read, payments.refund], max_depth: 2 }}
"
        );
        assert_eq!(path_of(&grants), "delegations[1]");
    }

    #[test]
    fn grants_follow_the_delegation_rules() {
        let grant = |body: &str| format!("{BOT}delegations:\n  - {{ {body} }}\n");
        let ok = grant("delegator: Support Bot, delegatee: Refund Worker, scopes: [tickets.read], ttl_seconds: 86400, max_depth: 5");
        assert!(yaml(&ok).is_ok());
        for (body, path) in [
            ("delegator: Nobody, delegatee: Refund Worker, scopes: [tickets.read]", "delegations[0].delegator"),
            ("delegator: Support Bot, delegatee: Nobody, scopes: [tickets.read]", "delegations[0].delegatee"),
            ("delegator: Support Bot, delegatee: Support Bot, scopes: [tickets.read]", "delegations[0].delegatee"),
            ("delegator: Refund Worker, delegatee: Support Bot, scopes: [tickets.read]", "delegations[0].scopes"),
            ("delegator: Support Bot, delegatee: Refund Worker, scopes: []", "delegations[0].scopes"),
            ("delegator: Support Bot, delegatee: Refund Worker, scopes: [Bad!]", "delegations[0].scopes[0]"),
            ("delegator: Support Bot, delegatee: Refund Worker, scopes: [tickets.read], ttl_seconds: 59", "delegations[0].ttl_seconds"),
            ("delegator: Support Bot, delegatee: Refund Worker, scopes: [tickets.read], max_depth: 0", "delegations[0].max_depth"),
            ("delegator: Support Bot, delegatee: Refund Worker", "delegations[0].scopes"),
        ] {
            assert_eq!(path_of(&grant(body)), path, "{body}");
        }
        // A grant between agents the file does not keep active cannot exist.
        let drafted = BOT.replacen("status: active", "status: draft", 1);
        let text = format!("{drafted}delegations:\n  - {{ delegator: Support Bot, delegatee: Refund Worker, scopes: [tickets.read] }}\n");
        let err = yaml(&text).unwrap_err();
        assert_eq!(err.path, "delegations[0].delegator");
        assert!(err.message.contains("draft"), "{err}");
    }

    #[test]
    fn the_registration_body_is_the_passport_document() {
        let desired = yaml(BOT).unwrap();
        let org = OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71").unwrap();
        let body = registration(&desired.agents[1], Some(&org));
        assert_eq!(body["org_id"], json!(org.as_str()));
        assert_eq!(body["name"], json!("Refund Worker"));
        assert_eq!(body["status"], json!("active"));
        assert_eq!(
            body["capabilities"],
            json!([{ "id": "payments.refund", "params": {} }])
        );
        // The core reads it back as the same registration.
        let again = NewAgent::from_json(body).unwrap();
        assert_eq!(again.fields, desired.agents[1].fields);
        assert!(registration(&desired.agents[1], None)
            .get("org_id")
            .is_none());
    }
}
