//! Daily caps, committed (SPEC §11): the ledger rule behind `"commit": true`.
//!
//! A decision with `commit: true` carries an `idempotency_key` (and a token: see
//! [`crate::decision::VerifyRequest`]). The ledger (one per agent, at the edge a Durable Object)
//! holds what the agent spent per UTC day against each daily cap (by the cap's passport path, so
//! two capabilities sharing a flat `refund_usd_daily_cap` share its row), and the decision
//! answered for every key. [`commit`] decides what a commit does, given what the ledger holds:
//!
//! * the same key for the same request replays the first decision — unless the decision made
//!   now is a denial (the agent was suspended since, the token expired, …): then that denial is
//!   answered, and nothing is recorded, so a retry never revives a refused agent;
//! * the same key for another request is a conflict;
//! * a new key records its amount against every cap when it fits under each, and otherwise turns
//!   the decision into an `oap.limit_exceeded` denial.
//!
//! The caller applies the outcome atomically with its read of the ledger.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ids::AgentId;
use crate::policy::Spend;

/// The longest `idempotency_key` accepted.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;

/// What the edge asks the agent's ledger to commit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommitRequest {
    pub agent_id: AgentId,
    pub idempotency_key: String,
    /// [`crate::decision::VerifyRequest::fingerprint`] of the request.
    pub fingerprint: String,
    /// The UTC day the decision was made (`2026-11-22`).
    pub day: String,
    /// The amount to record and the caps it counts against, when the decision allows.
    pub spend: Option<Spend>,
    /// The decision as made now, without the ledger.
    pub decision: Value,
}

impl CommitRequest {
    /// The ledger rows (caps' passport paths) the spend counts in, today.
    pub fn caps(&self) -> Vec<String> {
        self.spend
            .iter()
            .flat_map(|s| s.daily_caps.iter().map(|c| c.limit.clone()))
            .collect()
    }

    fn allows(&self) -> bool {
        self.decision.get("allow") == Some(&Value::Bool(true))
    }
}

/// A decision the ledger answered for a key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredCommit {
    pub fingerprint: String,
    pub decision: Value,
}

/// What a commit does.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The key was answered before for the same request: answer the same decision again.
    Replay(Value),
    /// The key was answered before for the same request, but the decision made now is a denial:
    /// answer it, record nothing.
    Refused(Value),
    /// The key was used before for a different request.
    Conflict,
    /// Store `decision` under the key and add `add` (minor units) to each of the request's
    /// ledger rows ([`CommitRequest::caps`]).
    Record { decision: Value, add: u64 },
}

/// Decides a commit from the stored answer for its key (if any) and what the agent already spent
/// today against each cap (`spent(cap path)`, minor units).
pub fn commit(
    request: &CommitRequest,
    prior: Option<&StoredCommit>,
    spent: &dyn Fn(&str) -> u64,
) -> Outcome {
    let allowed = request.allows();
    if let Some(prior) = prior {
        return if prior.fingerprint != request.fingerprint {
            Outcome::Conflict
        } else if allowed {
            Outcome::Replay(prior.decision.clone())
        } else {
            Outcome::Refused(request.decision.clone())
        };
    }
    let Some(spend) = request.spend.as_ref().filter(|_| allowed) else {
        return Outcome::Record {
            decision: request.decision.clone(),
            add: 0,
        };
    };
    let over = spend.over_caps(spent);
    if over.is_empty() {
        return Outcome::Record {
            decision: request.decision.clone(),
            add: spend.amount_minor,
        };
    }
    let mut decision = request.decision.clone();
    decision["allow"] = Value::Bool(false);
    decision["reasons"] = json!(over);
    Outcome::Record { decision, add: 0 }
}

/// A checked `idempotency_key`: 1 to [`IDEMPOTENCY_KEY_MAX`] visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key, if it is well formed; else why not (a sentence naming `idempotency_key`).
    pub fn parse(key: impl Into<String>) -> Result<IdempotencyKey, String> {
        let key = key.into();
        check_idempotency_key(&key)?;
        Ok(IdempotencyKey(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as `partner`'s own (SPEC §14): `{partner_id}/{key}`
    /// ([`crate::partner::scoped_idempotency_key`]), what its commits are recorded under, so
    /// two partners using the same key never meet. (It may be longer than a key a caller may
    /// send: the prefix is the registry's.)
    pub fn scoped_to(&self, partner: &crate::ids::PartnerId) -> IdempotencyKey {
        IdempotencyKey(crate::partner::scoped_idempotency_key(partner, &self.0))
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks an `idempotency_key`: 1 to [`IDEMPOTENCY_KEY_MAX`] visible ASCII characters.
pub fn check_idempotency_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX {
        return Err(format!(
            "`idempotency_key` must be 1 to {IDEMPOTENCY_KEY_MAX} characters"
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("`idempotency_key` must be visible ASCII characters, without spaces".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{codes, DailyCap};

    fn request(key: &str, amount: u64, allow: bool) -> CommitRequest {
        CommitRequest {
            agent_id: AgentId::parse("ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70").expect("id"),
            idempotency_key: key.into(),
            fingerprint: format!("fp-{key}-{amount}"),
            day: "2026-11-22".into(),
            spend: Some(Spend {
                currency: "USD".into(),
                amount_minor: amount,
                daily_caps: vec![DailyCap {
                    limit: "limits.refund_usd_daily_cap".into(),
                    cap_minor: 100_000,
                }],
            }),
            decision: json!({ "decision_id": format!("dec_{key}"), "allow": allow,
                              "reasons": [{ "code": "oap.allowed", "message": "ok" }] }),
        }
    }

    fn recorded(outcome: Outcome) -> (Value, u64) {
        match outcome {
            Outcome::Record { decision, add } => (decision, add),
            other => panic!("expected a record, got {other:?}"),
        }
    }

    #[test]
    fn a_fitting_amount_is_recorded_as_allowed() {
        let (decision, add) = recorded(commit(&request("a", 25_000, true), None, &|_| 75_000));
        assert_eq!(add, 25_000);
        assert_eq!(decision["allow"], true);
    }

    #[test]
    fn an_amount_above_what_is_left_is_denied_and_not_counted() {
        let (decision, add) = recorded(commit(&request("a", 25_000, true), None, &|_| 75_001));
        assert_eq!(add, 0);
        assert_eq!(decision["allow"], false);
        assert_eq!(decision["reasons"][0]["code"], codes::LIMIT_EXCEEDED);
        assert_eq!(
            decision["reasons"][0]["limit"],
            "limits.refund_usd_daily_cap"
        );
        let message = decision["reasons"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("750.01 USD already spent"), "{message}");
        assert_eq!(decision["decision_id"], "dec_a");
    }

    #[test]
    fn a_denied_decision_is_recorded_without_spending() {
        let (decision, add) = recorded(commit(&request("a", 25_000, false), None, &|_| 0));
        assert_eq!((decision["allow"].clone(), add), (json!(false), 0));
    }

    #[test]
    fn the_same_key_replays_and_a_changed_request_conflicts() {
        let first = request("k", 100, true);
        let stored = StoredCommit {
            fingerprint: first.fingerprint.clone(),
            decision: json!({ "decision_id": "dec_first", "allow": true }),
        };
        assert_eq!(
            commit(&first, Some(&stored), &|_| 99_999_999),
            Outcome::Replay(stored.decision.clone())
        );
        assert_eq!(
            commit(&request("k", 200, true), Some(&stored), &|_| 0),
            Outcome::Conflict
        );
    }

    #[test]
    fn a_replay_never_revives_a_refused_agent() {
        let stored = StoredCommit {
            fingerprint: request("k", 100, true).fingerprint,
            decision: json!({ "decision_id": "dec_first", "allow": true }),
        };
        let now_denied = request("k", 100, false);
        assert_eq!(
            commit(&now_denied, Some(&stored), &|_| 0),
            Outcome::Refused(now_denied.decision.clone())
        );
    }

    #[test]
    fn each_cap_counts_its_own_row() {
        let mut r = request("a", 10_000, true);
        if let Some(spend) = r.spend.as_mut() {
            spend.daily_caps.push(DailyCap {
                limit: "limits.payments.refund.currency_limits.USD.daily_cap".into(),
                cap_minor: 50_000,
            });
        }
        assert_eq!(r.caps().len(), 2);
        // The first cap has room, the second is nearly full: denied by the second only.
        let spent = |cap: &str| {
            if cap.contains("currency_limits") {
                45_000
            } else {
                0
            }
        };
        let (decision, add) = recorded(commit(&r, None, &spent));
        assert_eq!(add, 0);
        assert_eq!(decision["reasons"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            decision["reasons"][0]["limit"],
            "limits.payments.refund.currency_limits.USD.daily_cap"
        );
    }

    #[test]
    fn the_sum_recorded_never_passes_the_cap() {
        let mut spent = 0u64;
        let mut allowed = 0u64;
        for i in 0..50 {
            let (decision, add) =
                recorded(commit(&request(&i.to_string(), 7_000, true), None, &|_| {
                    spent
                }));
            spent += add;
            if decision["allow"] == true {
                allowed += 7_000;
            }
        }
        assert_eq!(spent, allowed);
        assert_eq!(spent, 98_000);
    }

    #[test]
    fn idempotency_keys_are_checked() {
        assert!(check_idempotency_key("order-42/refund").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("has space").is_err());
        assert!(check_idempotency_key(&"k".repeat(256)).is_err());
        assert!(check_idempotency_key(&"k".repeat(255)).is_ok());
        assert_eq!(
            IdempotencyKey::parse("order-42").map(|k| k.to_string()),
            Ok("order-42".to_owned())
        );
        assert!(IdempotencyKey::parse("tab\there").is_err());
    }
}
