//! Vouch core: everything the origin and the edge must agree on, as plain types and pure
//! functions. No I/O, no clocks, no randomness: callers pass `now` and fresh ids in, so the
//! same code runs natively and on `wasm32-unknown-unknown`.

pub mod a2a;
pub mod agent_event;
pub mod audit;
pub mod caps;
pub mod decision;
pub mod delegation;
pub mod edge_view;
pub mod error;
pub mod etag;
pub mod event_type;
pub mod ids;
pub mod journal;
pub mod jwk;
pub mod jws;
pub mod kv;
pub mod lifecycle;
pub mod oap;
pub mod packs;
pub mod partner;
pub mod passport;
pub mod patch;
pub mod policy;
pub mod public_page;
pub mod signing;
pub mod status_list;
pub mod timestamp;
pub mod token;
pub mod validate;

pub use error::CoreError;
pub use event_type::EventType;
pub use ids::{AgentId, EventId, OrgId, PartnerId, TokenId};
pub use passport::{
    AssuranceLevel, Capability, CapabilityId, Health, NewAgent, Owner, Passport, Region, Status,
    Tier,
};
pub use timestamp::Timestamp;
