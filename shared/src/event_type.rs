//! The kinds of change the origin records (SPEC §7): each change's audit `action`, the `type`
//! of its outbox envelope, what webhooks and the live stream deliver, and what the status
//! journal must carry. One closed list, so a misspelt type cannot compile.

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a change event reports, written `noun.verb` on the wire (`passport.updated`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    OrgCreated,
    TokenCreated,
    TokenRevoked,
    PassportCreated,
    PassportUpdated,
    PassportStatusChanged,
    AgentApiKeyRotated,
    AgentTokensRevoked,
    DelegationCreated,
    DelegationRevoked,
    OrgFrozen,
    OrgUnfrozen,
    SigningKeyCreated,
    SigningKeyRotated,
    SigningKeyWithdrawn,
    DiscoveryUpdated,
    WebhookCreated,
    WebhookUpdated,
    WebhookDeleted,
    WebhookSecretRotated,
    WebhookDisabled,
    WebhookRedeliveryRequested,
    PartnerCreated,
    PartnerKeyRotated,
    PartnerRevoked,
    /// An agent's own signal (SPEC §20); the event's full type is `agent.custom.<name>`.
    AgentCustom,
}

impl EventType {
    /// Every type, in the order the docs list them.
    pub const ALL: [EventType; 26] = [
        EventType::OrgCreated,
        EventType::TokenCreated,
        EventType::TokenRevoked,
        EventType::PassportCreated,
        EventType::PassportUpdated,
        EventType::PassportStatusChanged,
        EventType::AgentApiKeyRotated,
        EventType::AgentTokensRevoked,
        EventType::DelegationCreated,
        EventType::DelegationRevoked,
        EventType::OrgFrozen,
        EventType::OrgUnfrozen,
        EventType::SigningKeyCreated,
        EventType::SigningKeyRotated,
        EventType::SigningKeyWithdrawn,
        EventType::DiscoveryUpdated,
        EventType::WebhookCreated,
        EventType::WebhookUpdated,
        EventType::WebhookDeleted,
        EventType::WebhookSecretRotated,
        EventType::WebhookDisabled,
        EventType::WebhookRedeliveryRequested,
        EventType::PartnerCreated,
        EventType::PartnerKeyRotated,
        EventType::PartnerRevoked,
        EventType::AgentCustom,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::OrgCreated => "org.created",
            EventType::TokenCreated => "token.created",
            EventType::TokenRevoked => "token.revoked",
            EventType::PassportCreated => "passport.created",
            EventType::PassportUpdated => "passport.updated",
            EventType::PassportStatusChanged => "passport.status_changed",
            EventType::AgentApiKeyRotated => "agent.api_key_rotated",
            EventType::AgentTokensRevoked => "agent.tokens_revoked",
            EventType::OrgFrozen => "org.frozen",
            EventType::OrgUnfrozen => "org.unfrozen",
            EventType::SigningKeyWithdrawn => "signing_key.withdrawn",
            EventType::DelegationCreated => "delegation.created",
            EventType::DelegationRevoked => "delegation.revoked",
            EventType::SigningKeyCreated => "signing_key.created",
            EventType::SigningKeyRotated => "signing_key.rotated",
            EventType::DiscoveryUpdated => "discovery.updated",
            EventType::WebhookCreated => "webhook.created",
            EventType::WebhookUpdated => "webhook.updated",
            EventType::WebhookDeleted => "webhook.deleted",
            EventType::WebhookSecretRotated => "webhook.secret_rotated",
            EventType::WebhookDisabled => "webhook.disabled",
            EventType::WebhookRedeliveryRequested => "webhook.redelivery_requested",
            EventType::PartnerCreated => "partner.created",
            EventType::PartnerKeyRotated => "partner.key_rotated",
            EventType::PartnerRevoked => "partner.revoked",
            EventType::AgentCustom => "agent.custom",
        }
    }

    /// The type with this wire name, if any.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether webhook subscriptions receive it (SPEC §7, plus `webhook.disabled`, which tells a
    /// subscriber why its deliveries stopped).
    pub const fn is_delivered(self) -> bool {
        matches!(
            self,
            EventType::PassportCreated
                | EventType::PassportUpdated
                | EventType::PassportStatusChanged
                | EventType::AgentTokensRevoked
                | EventType::DelegationCreated
                | EventType::DelegationRevoked
                | EventType::OrgFrozen
                | EventType::OrgUnfrozen
                | EventType::SigningKeyRotated
                | EventType::SigningKeyWithdrawn
                | EventType::WebhookDisabled
                | EventType::AgentCustom
        )
    }

    /// Whether a platform-wide event of this type reaches every org's subscriptions and streams
    /// (a new or withdrawn signing key concerns every verifier).
    pub const fn is_platform_wide(self) -> bool {
        matches!(
            self,
            EventType::SigningKeyRotated | EventType::SigningKeyWithdrawn
        )
    }

    /// Whether the status journal must carry it within seconds (SPEC §10): status changes,
    /// delegation revocations, and the emergency brake (an agent's tokens revoked, an org frozen
    /// or unfrozen, a signing key withdrawn). Partner key changes reach it too, but per key (the
    /// store queues each key's hash itself, like documents queue their own KV writes), so they
    /// are not derived from the event.
    pub const fn reaches_journal(self) -> bool {
        matches!(
            self,
            EventType::PassportStatusChanged
                | EventType::AgentTokensRevoked
                | EventType::DelegationRevoked
                | EventType::OrgFrozen
                | EventType::OrgUnfrozen
                | EventType::SigningKeyWithdrawn
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        EventType::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("`{name}` is not an event type")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for t in EventType::ALL {
            assert!(seen.insert(t.as_str()), "{t} twice");
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{t}\""));
            assert_eq!(serde_json::from_str::<EventType>(&json).unwrap(), t);
        }
        assert_eq!(EventType::parse("passport.deleted"), None);
        assert!(serde_json::from_str::<EventType>("\"passport.deleted\"").is_err());
    }

    #[test]
    fn wire_names_are_the_documented_ones() {
        // Subscribers and the audit log store these strings: they never change.
        assert_eq!(
            EventType::PassportStatusChanged.as_str(),
            "passport.status_changed"
        );
        assert_eq!(
            EventType::WebhookRedeliveryRequested.as_str(),
            "webhook.redelivery_requested"
        );
        assert_eq!(
            EventType::AgentApiKeyRotated.as_str(),
            "agent.api_key_rotated"
        );
    }

    #[test]
    fn only_status_changes_revocations_and_the_brake_reach_the_journal() {
        let journaled: Vec<_> = EventType::ALL
            .into_iter()
            .filter(|t| t.reaches_journal())
            .collect();
        assert_eq!(
            journaled,
            [
                EventType::PassportStatusChanged,
                EventType::AgentTokensRevoked,
                EventType::DelegationRevoked,
                EventType::OrgFrozen,
                EventType::OrgUnfrozen,
                EventType::SigningKeyWithdrawn,
            ]
        );
    }

    #[test]
    fn webhooks_deliver_the_spec_list() {
        let delivered: Vec<_> = EventType::ALL
            .into_iter()
            .filter(|t| t.is_delivered())
            .map(EventType::as_str)
            .collect();
        assert_eq!(
            delivered,
            [
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
                "agent.custom",
            ]
        );
        assert!(EventType::ALL
            .into_iter()
            .filter(|t| t.is_platform_wide())
            .all(EventType::is_delivered));
    }
}
