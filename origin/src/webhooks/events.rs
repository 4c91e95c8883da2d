//! Which events webhooks and the live stream deliver, and how subscriptions name them.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::ChangeEvent;

/// The types a webhook delivers (SPEC §7, plus `webhook.disabled`).
pub const DELIVERED: [&str; 11] = [
    "passport.created",
    "passport.updated",
    "passport.status_changed",
    "agent.tokens_revoked",
    "delegation.created",
    "delegation.revoked",
    "org.frozen",
    "org.unfrozen",
    "signing_key.rotated",
    "signing_key.withdrawn",
    "webhook.disabled",
];

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

/// Platform-wide events that every org's subscriptions may receive.
const PLATFORM_WIDE: [&str; 2] = ["signing_key.rotated", "signing_key.withdrawn"];

/// A subscription's event filter, checked: each entry is a delivered type, a typed name or
/// `*`; duplicates dropped, order kept. An empty or absent filter is `["*"]`.
pub fn checked_filter(events: Option<Vec<String>>) -> Result<Vec<String>> {
    let events = events.unwrap_or_default();
    if events.is_empty() {
        return Ok(vec![ALL.to_owned()]);
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for (i, name) in events.into_iter().enumerate() {
        let known =
            name == ALL || DELIVERED.contains(&name.as_str()) || TYPED.contains(&name.as_str());
        if !known {
            return Err(Error::field(
                format!("events[{i}]"),
                format!(
                    "`{name}` is not an event type; use `*` or one of {}, {}",
                    DELIVERED.join(", "),
                    TYPED.join(", ")
                ),
            ));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Every type the outbox (and so the live stream) carries.
pub const STREAMED: [&str; 21] = [
    "org.created",
    "org.frozen",
    "org.unfrozen",
    "token.created",
    "token.revoked",
    "passport.created",
    "passport.updated",
    "passport.status_changed",
    "agent.api_key_rotated",
    "agent.tokens_revoked",
    "delegation.created",
    "delegation.revoked",
    "signing_key.rotated",
    "signing_key.withdrawn",
    "discovery.updated",
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "webhook.secret_rotated",
    "webhook.disabled",
    "webhook.redelivery_requested",
];

/// The `types` of a stream request, checked: comma-separated, each a streamed type, a typed
/// name or `*`; empty or absent: every event.
pub fn checked_stream_types(raw: Option<&str>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for name in raw.unwrap_or_default().split(',').map(str::trim) {
        if name.is_empty() {
            continue;
        }
        let known = name == ALL || STREAMED.contains(&name) || TYPED.contains(&name);
        if !known {
            return Err(Error::field(
                "types",
                format!(
                    "`{name}` is not an event type; use `*` or some of {}, {}",
                    STREAMED.join(", "),
                    TYPED.join(", ")
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
pub fn filter_names(event: &ChangeEvent) -> Option<(&str, Option<&str>)> {
    let kind = event.event_type.as_str();
    if !DELIVERED.contains(&kind) {
        return None;
    }
    if event.org_id.is_none() && !PLATFORM_WIDE.contains(&kind) {
        return None;
    }
    Some((kind, typed_name(kind, &event.data)))
}

/// `agent.suspended` etc. for a status change whose `data.typed_event` is in [`TYPED`].
fn typed_name<'a>(kind: &str, data: &'a Value) -> Option<&'a str> {
    if kind != "passport.status_changed" {
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
    if event_type != "passport.status_changed" {
        return false;
    }
    let parsed: Value = serde_json::from_str(envelope).unwrap_or(Value::Null);
    typed_name(event_type, &parsed["data"]).is_some_and(|t| wanted.iter().any(|w| w == t))
}

/// The platform-wide event types an org's stream shows besides its own events.
pub fn platform_wide() -> &'static [&'static str] {
    &PLATFORM_WIDE
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(kind: &str, org: bool, data: Value) -> ChangeEvent {
        crate::routes::change_event(
            "t",
            org.then(|| vouch_core::OrgId::from_uuid(uuid::Uuid::now_v7()))
                .as_ref(),
            kind,
            "agent",
            "x",
            1,
            data,
            crate::routes::now(),
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
            "passport.status_changed",
            true,
            json!({ "typed_event": "agent.suspended" }),
        );
        assert_eq!(
            filter_names(&suspended),
            Some(("passport.status_changed", Some("agent.suspended")))
        );
        let drafted = event(
            "passport.status_changed",
            true,
            json!({ "typed_event": "agent.drafted" }),
        );
        assert_eq!(
            filter_names(&drafted),
            Some(("passport.status_changed", Some("agent.drafted")))
        );
        assert_eq!(filter_names(&event("token.created", true, json!({}))), None);
        assert_eq!(
            filter_names(&event("passport.created", false, json!({}))),
            None
        );
        assert!(filter_names(&event("signing_key.rotated", false, json!({}))).is_some());
    }

    #[test]
    fn stream_types_are_checked() {
        assert!(checked_stream_types(None).unwrap().is_empty());
        assert_eq!(
            checked_stream_types(Some(" agent.revoked, token.created,agent.revoked")).unwrap(),
            vec!["agent.revoked", "token.created"]
        );
        for kind in DELIVERED {
            assert!(STREAMED.contains(&kind), "{kind}");
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
