//! Which events webhooks and the live stream deliver, and how subscriptions name them.

use serde_json::Value;
use vouch_core::agent_event::{is_custom_type, GENERAL_TYPE};
use vouch_core::EventType;

use crate::error::{Error, Result};
use crate::store::ChangeEvent;

/// Typed names of `passport.status_changed` (its `data.typed_event`), which a subscription
/// may name instead of the general type.
/// (`agent.drafted` too: the status route names it, though no transition leads there today.)
pub const TYPED: [&str; 4] = [
    "agent.suspended",
    "agent.activated",
    "agent.revoked",
    "agent.drafted",
];

/// Subscribes to every delivered type.
pub const ALL: &str = "*";

/// The types a webhook delivers (SPEC §7, plus `webhook.disabled`).
pub fn delivered() -> impl Iterator<Item = EventType> {
    EventType::ALL.into_iter().filter(|t| t.is_delivered())
}

/// Every type the outbox (and so the live stream) carries.
pub fn streamed() -> impl Iterator<Item = EventType> {
    EventType::ALL.into_iter()
}

/// `a, b, c`: the names, for an error message.
fn listed(types: impl Iterator<Item = EventType>) -> String {
    types
        .map(EventType::as_str)
        .chain(TYPED)
        .chain(["agent.custom.<name>"])
        .collect::<Vec<_>>()
        .join(", ")
}

/// A subscription's event filter, checked: each entry is a delivered type, a typed name or
/// `*`; duplicates dropped, order kept. An empty or absent filter is `["*"]`.
pub fn checked_filter(events: Option<Vec<String>>) -> Result<Vec<String>> {
    let events = events.unwrap_or_default();
    if events.is_empty() {
        return Ok(vec![ALL.to_owned()]);
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for (i, name) in events.into_iter().enumerate() {
        let known = name == ALL
            || EventType::parse(&name).is_some_and(EventType::is_delivered)
            || TYPED.contains(&name.as_str())
            || is_custom_type(&name);
        if !known {
            return Err(Error::field(
                format!("events[{i}]"),
                format!(
                    "`{name}` is not an event type; use `*` or one of {}",
                    listed(delivered())
                ),
            ));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// The `types` of a stream request, checked: comma-separated, each a streamed type, a typed
/// name or `*`; empty or absent: every event.
pub fn checked_stream_types(raw: Option<&str>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for name in raw.unwrap_or_default().split(',').map(str::trim) {
        if name.is_empty() {
            continue;
        }
        let known = name == ALL
            || EventType::parse(name).is_some()
            || TYPED.contains(&name)
            || is_custom_type(name);
        if !known {
            return Err(Error::field(
                "types",
                format!(
                    "`{name}` is not an event type; use `*` or some of {}",
                    listed(streamed())
                ),
            ));
        }
        if !out.iter().any(|t| t == name) {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// The names `event` answers to in a filter — its type, and its typed name if it has one — or
/// `None` when webhooks do not deliver it.
pub fn filter_names(event: &ChangeEvent) -> Option<(&'static str, Option<&str>)> {
    let kind = event.event_type;
    if !kind.is_delivered() {
        return None;
    }
    if event.org_id.is_none() && !kind.is_platform_wide() {
        return None;
    }
    if kind == EventType::AgentCustom {
        return Some((kind.as_str(), event.subtype.as_deref()));
    }
    Some((kind.as_str(), typed_name(kind.as_str(), &event.data)))
}

/// `agent.suspended` etc. for a status change whose `data.typed_event` is in [`TYPED`].
fn typed_name<'a>(kind: &str, data: &'a Value) -> Option<&'a str> {
    if kind != EventType::PassportStatusChanged.as_str() {
        return None;
    }
    data.get("typed_event")
        .and_then(Value::as_str)
        .filter(|t| TYPED.contains(t))
}

/// Whether an outbox row (its type and envelope) is one of `wanted` (empty: any), matching a
/// status change by its typed name too.
pub fn wanted(wanted: &[String], event_type: &str, envelope: &str) -> bool {
    if wanted.is_empty() || wanted.iter().any(|w| w == ALL || w == event_type) {
        return true;
    }
    // An agent's own event (its column holds the full `agent.custom.<name>`) answers to
    // `agent.custom` too.
    if is_custom_type(event_type) {
        return wanted.iter().any(|w| w == GENERAL_TYPE);
    }
    if event_type != EventType::PassportStatusChanged.as_str() {
        return false;
    }
    let parsed: Value = serde_json::from_str(envelope).unwrap_or(Value::Null);
    typed_name(event_type, &parsed["data"]).is_some_and(|t| wanted.iter().any(|w| w == t))
}

/// The platform-wide event types an org's stream shows besides its own events.
pub fn platform_wide() -> impl Iterator<Item = &'static str> {
    EventType::ALL
        .into_iter()
        .filter(|t| t.is_platform_wide())
        .map(EventType::as_str)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(kind: EventType, org: bool, data: Value) -> ChangeEvent {
        ChangeEvent::new(
            "t",
            org.then(|| vouch_core::OrgId::from_uuid(uuid::Uuid::now_v7()))
                .as_ref(),
            kind,
            "agent",
            "x",
            1,
            data,
            crate::clock::now(),
        )
    }

    #[test]
    fn filters_are_checked() {
        assert_eq!(checked_filter(None).unwrap(), vec!["*"]);
        assert_eq!(
            checked_filter(Some(vec![
                "agent.suspended".into(),
                "agent.suspended".into()
            ]))
            .unwrap(),
            vec!["agent.suspended"]
        );
        let err = checked_filter(Some(vec!["*".into(), "passport.deleted".into()])).unwrap_err();
        assert!(format!("{err:?}").contains("events[1]"), "{err:?}");
    }

    #[test]
    fn names_of_events() {
        let suspended = event(
            EventType::PassportStatusChanged,
            true,
            json!({ "typed_event": "agent.suspended" }),
        );
        assert_eq!(
            filter_names(&suspended),
            Some(("passport.status_changed", Some("agent.suspended")))
        );
        let drafted = event(
            EventType::PassportStatusChanged,
            true,
            json!({ "typed_event": "agent.drafted" }),
        );
        assert_eq!(
            filter_names(&drafted),
            Some(("passport.status_changed", Some("agent.drafted")))
        );
        assert_eq!(
            filter_names(&event(EventType::TokenCreated, true, json!({}))),
            None
        );
        assert_eq!(
            filter_names(&event(EventType::PassportCreated, false, json!({}))),
            None
        );
        assert!(filter_names(&event(EventType::SigningKeyRotated, false, json!({}))).is_some());
    }

    #[test]
    fn stream_types_are_checked() {
        assert!(checked_stream_types(None).unwrap().is_empty());
        assert_eq!(
            checked_stream_types(Some(" agent.revoked, token.created,agent.revoked")).unwrap(),
            vec!["agent.revoked", "token.created"]
        );
        for kind in delivered() {
            assert_eq!(
                checked_stream_types(Some(kind.as_str())).unwrap(),
                [kind.as_str()]
            );
        }
        assert_eq!(
            checked_stream_types(Some("agent.drafted")).unwrap(),
            vec!["agent.drafted"]
        );
        let err = checked_stream_types(Some("passport.created,passport.deleted")).unwrap_err();
        assert!(format!("{err:?}").contains("passport.deleted"), "{err:?}");
    }

    #[test]
    fn stream_filters() {
        let envelope = json!({ "data": { "typed_event": "agent.revoked" } }).to_string();
        assert!(wanted(&[], "token.created", "{}"));
        assert!(wanted(
            &["agent.revoked".into()],
            "passport.status_changed",
            &envelope
        ));
        assert!(!wanted(
            &["agent.suspended".into()],
            "passport.status_changed",
            &envelope
        ));
        assert!(wanted(
            &["passport.status_changed".into()],
            "passport.status_changed",
            "{}"
        ));
        assert!(!wanted(&["passport.created".into()], "token.created", "{}"));
    }
}
