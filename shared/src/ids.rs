//! Prefixed identifiers: `ap_`, `org_`, `evt_`, `tok_`, `pt_` … followed by a UUIDv7 as 32 lowercase hex
//! digits. Time-ordered, so keyset pagination by id is stable under concurrent inserts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `{prefix}` followed by 32 lowercase hex digits")]
pub struct IdError {
    pub prefix: &'static str,
}

fn is_lower_hex_32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $example:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = $example))]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Wraps a UUID (the origin passes `Uuid::now_v7()`).
            pub fn from_uuid(uuid: Uuid) -> Self {
                $name(format!("{}{}", $prefix, uuid.simple()))
            }

            /// Checks the shape and wraps the string.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                match s.strip_prefix($prefix) {
                    Some(rest) if is_lower_hex_32(rest) => Ok($name(s.to_owned())),
                    _ => Err(IdError { prefix: $prefix }),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                $name::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// An agent (its passport): `ap_…`.
    AgentId, "ap_", "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70"
);
prefixed_id!(
    /// An organization: `org_…`.
    OrgId, "org_", "org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71"
);
prefixed_id!(
    /// An audit or webhook event: `evt_…`.
    EventId, "evt_", "evt_0192f2a4c3b87d9e8f1a2b3c4d5e6f72"
);
prefixed_id!(
    /// An admin token (the public half; the secret is `vk_admin_…`): `tok_…`.
    TokenId, "tok_", "tok_0192f2a4c3b87d9e8f1a2b3c4d5e6f73"
);
prefixed_id!(
    /// A delegation grant (SPEC §6): `dlg_…`.
    DelegationId, "dlg_", "dlg_0192f2a4c3b87d9e8f1a2b3c4d5e6f74"
);
prefixed_id!(
    /// A webhook subscription (SPEC §7): `wh_…`.
    WebhookId, "wh_", "wh_0192f2a4c3b87d9e8f1a2b3c4d5e6f75"
);
prefixed_id!(
    /// A partner, a verifier calling the edge for its own business (SPEC §14): `pt_…`.
    PartnerId, "pt_", "pt_0192f2a4c3b87d9e8f1a2b3c4d5e6f76"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_seed_ids() {
        assert!(AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70").is_ok());
        assert!(OrgId::parse("org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71").is_ok());
        assert!(PartnerId::parse("pt_0192f2a4c3b87d9e8f1a2b3c4d5e6f76").is_ok());
        assert!(PartnerId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f76").is_err());
    }

    #[test]
    fn rejects_wrong_shapes() {
        for bad in [
            "",
            "ap_",
            "ap_0192F2A4C3B87D9E8F1A2B3C4D5E6F70",
            "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f7",
            "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f700",
            "ap_0192f2a4-c3b8-7d9e-8f1a-2b3c4d5e6f70",
            "org_0192f2a4c3b87d9e8f1a2b3c4d5e6f70",
            "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6fzz",
            " ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70",
        ] {
            assert!(AgentId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn uuid_v7_ids_sort_by_creation() {
        let a = AgentId::from_uuid(Uuid::now_v7());
        let b = AgentId::from_uuid(Uuid::now_v7());
        assert!(a < b);
        assert_eq!(AgentId::parse(a.as_str()), Ok(a));
    }

    #[test]
    fn serde_validates() {
        let ok: Result<OrgId, _> = serde_json::from_str("\"org_0192f2a4c3b87d9e8f1a2b3c4d5e6f71\"");
        assert!(ok.is_ok());
        let bad: Result<OrgId, _> = serde_json::from_str("\"org_nope\"");
        assert!(bad.is_err());
    }

    proptest! {
        #[test]
        fn any_uuid_round_trips(bytes in any::<[u8; 16]>()) {
            let id = AgentId::from_uuid(Uuid::from_bytes(bytes));
            prop_assert_eq!(AgentId::parse(id.as_str()), Ok(id.clone()));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".*") {
            let _ = AgentId::parse(&s);
        }
    }
}
