//! The token exchange as the origin runs it, in its one safe order: neither token may predate
//! its agents' token revocation ([`token::revoked`]: an old token must not buy a fresh one),
//! the subject token's chain must still stand ([`check_links`]), then [`exchange`], then the new chain must stand too
//! (which catches an *earlier* grant whose `max_depth` the new hop exceeds, and an actor that is
//! not active). Callers verify both tokens first and look up what this needs: the grants the
//! subject token rests on, the grant for the new hop, and the statuses of
//! [`agents_to_check`].

use core::fmt;

use super::{check_links, exchange, DelegationError, Grant};
use crate::ids::AgentId;
use crate::passport::Status;
use crate::policy::Reason;
use crate::timestamp::Timestamp;
use crate::token::{self, Claims};

/// What the caller asks for: two verified tokens and the terms of the new one.
#[derive(Clone, Copy, Debug)]
pub struct ExchangeRequest<'a> {
    /// The delegator's token (possibly itself delegated).
    pub subject: &'a Claims,
    /// The delegatee's own token.
    pub actor: &'a Claims,
    /// The scope asked for (`None`: every scope of the subject that the grant delegates).
    pub requested_scope: Option<&'a str>,
    /// The lifetime of a new token when nothing shorter bounds it.
    pub default_ttl_seconds: i64,
    /// A fresh token id.
    pub jti: &'a str,
}

/// What the caller found for it.
pub struct ExchangeFacts<'a> {
    /// `subject.dlg[i]`'s grant as found (`None`: unknown or deleted), in `dlg` order.
    pub subject_grants: &'a [Option<Grant>],
    /// The grant from the subject token's current actor to the actor token's agent.
    pub grant: &'a Grant,
    /// An agent's status (`None`: no such agent), for every agent of [`agents_to_check`].
    pub status: &'a dyn Fn(&AgentId) -> Option<Status>,
    /// An agent's token cut-off (`tokens_not_before`), for the same agents.
    pub tokens_not_before: &'a dyn Fn(&AgentId) -> Option<Timestamp>,
    pub now: Timestamp,
}

/// Why an exchange is refused, by the step that refused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExchangeError {
    /// A token was issued before one of its agents' tokens were revoked (`subject_token` or
    /// `actor_token`).
    Revoked { token: &'static str, reason: Reason },
    /// The subject token's chain no longer stands (its first reason).
    SubjectChain(Reason),
    /// [`exchange`] refused.
    Exchange(DelegationError),
    /// The new chain would not stand (its first reason).
    NewChain(Reason),
}

impl ExchangeError {
    /// The OAuth 2.0 error of the token endpoint (RFC 6749 §5.2, RFC 8693 §2.2.2).
    pub fn oauth_error(&self) -> &'static str {
        match self {
            ExchangeError::Exchange(e) => e.oauth_error(),
            ExchangeError::Revoked { .. }
            | ExchangeError::SubjectChain(_)
            | ExchangeError::NewChain(_) => "invalid_grant",
        }
    }

    /// The stable snake_case code of the refusal (`delegation_revoked`, `chain_too_deep`, …).
    pub fn code(&self) -> &str {
        match self {
            ExchangeError::Exchange(e) => e.code(),
            ExchangeError::Revoked { reason: r, .. }
            | ExchangeError::SubjectChain(r)
            | ExchangeError::NewChain(r) => &r.code,
        }
    }
}

/// `<code>: <sentence>` (the subject's chain says `subject_token`), the token endpoint's
/// `error_description`.
impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::Revoked { token, reason: r } => {
                write!(f, "{token}: {}: {}", r.code, r.message)
            }
            ExchangeError::SubjectChain(r) => {
                write!(f, "{}: subject_token: {}", r.code, r.message)
            }
            ExchangeError::Exchange(e) => write!(f, "{}: {e}", e.code()),
            ExchangeError::NewChain(r) => write!(f, "{}: {}", r.code, r.message),
        }
    }
}

/// The agents whose statuses an exchange of `subject` for `actor` checks: the subject token's
/// chain, then the actor.
pub fn agents_to_check(subject: &Claims, actor: &Claims) -> Vec<AgentId> {
    let mut agents = token::chain(subject);
    if !agents.contains(&actor.sub) {
        agents.push(actor.sub.clone());
    }
    agents
}

/// The claims of the exchanged token, or the first step that refuses it (see the module docs).
pub fn exchange_checked(
    request: &ExchangeRequest<'_>,
    facts: &ExchangeFacts<'_>,
) -> Result<Claims, ExchangeError> {
    let first = |reasons: Vec<Reason>| reasons.into_iter().next();
    for (token, claims) in [
        ("subject_token", request.subject),
        ("actor_token", request.actor),
    ] {
        if let Some(reason) = token::revoked(claims, facts.tokens_not_before) {
            return Err(ExchangeError::Revoked { token, reason });
        }
    }
    if let Some(reason) = first(check_links(
        request.subject,
        facts.subject_grants,
        facts.status,
        facts.now,
    )) {
        return Err(ExchangeError::SubjectChain(reason));
    }
    let claims = exchange(
        request.subject,
        request.actor,
        facts.grant,
        request.requested_scope,
        facts.now,
        request.default_ttl_seconds,
        request.jti,
    )
    .map_err(ExchangeError::Exchange)?;
    let mut grants: Vec<Option<Grant>> = facts.subject_grants.to_vec();
    grants.resize(request.subject.dlg.len(), None);
    grants.push(Some(facts.grant.clone()));
    if let Some(reason) = first(check_links(&claims, &grants, facts.status, facts.now)) {
        return Err(ExchangeError::NewChain(reason));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passport::CapabilityId;
    use crate::token::tests::{agent, grant_id, own_token, NOW};

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_millis(seconds * 1000)
    }

    /// A grant `n` from agent `from` to `to` of `payments.refund`, live for an hour.
    fn grant(n: u8, from: u8, to: u8, max_depth: u32) -> Grant {
        Grant::issue(
            grant_id(n),
            agent(from),
            agent(to),
            vec![CapabilityId::parse("payments.refund").unwrap()],
            at(NOW),
            3600,
            max_depth,
        )
    }

    fn active(_: &AgentId) -> Option<Status> {
        Some(Status::Active)
    }

    fn request<'a>(
        subject: &'a Claims,
        actor: &'a Claims,
        scope: Option<&'a str>,
    ) -> ExchangeRequest<'a> {
        ExchangeRequest {
            subject,
            actor,
            requested_scope: scope,
            default_ttl_seconds: 300,
            jti: "j",
        }
    }

    fn facts<'a>(
        subject_grants: &'a [Option<Grant>],
        grant: &'a Grant,
        status: &'a dyn Fn(&AgentId) -> Option<Status>,
    ) -> ExchangeFacts<'a> {
        ExchangeFacts {
            subject_grants,
            grant,
            status,
            tokens_not_before: &|_| None,
            now: at(NOW),
        }
    }

    /// Subject 1 acted on by 2, under grant 1 (`max_depth` as given).
    fn one_hop(max_depth: u32) -> (Claims, Grant) {
        let g1 = grant(1, 1, 2, max_depth);
        let own = own_token(agent(1), "payments.refund");
        let actor = own_token(agent(2), "x");
        let one =
            exchange_checked(&request(&own, &actor, None), &facts(&[], &g1, &active)).unwrap();
        (one, g1)
    }

    #[test]
    fn a_sound_exchange_is_the_plain_exchange() {
        let g1 = grant(1, 1, 2, 2);
        let own = own_token(agent(1), "payments.refund data.export");
        let actor = own_token(agent(2), "x");
        let checked =
            exchange_checked(&request(&own, &actor, None), &facts(&[], &g1, &active)).unwrap();
        let plain = exchange(&own, &actor, &g1, None, at(NOW), 300, "j").unwrap();
        assert_eq!(checked, plain);
        assert_eq!(checked.scope, "payments.refund");
        assert_eq!(checked.dlg, [grant_id(1)]);
    }

    #[test]
    fn a_broken_subject_chain_is_refused_first() {
        let (one, mut g1) = one_hop(2);
        g1.revoked = true;
        // The new hop would also fail (scope escalation): the subject's chain is reported.
        let g2 = grant(2, 2, 3, 2);
        let actor = own_token(agent(3), "x");
        let err = exchange_checked(
            &request(&one, &actor, Some("admin.all")),
            &facts(&[Some(g1)], &g2, &active),
        )
        .unwrap_err();
        assert!(matches!(err, ExchangeError::SubjectChain(_)), "{err:?}");
        assert_eq!(err.code(), "delegation_revoked");
        assert_eq!(err.oauth_error(), "invalid_grant");
        assert!(
            err.to_string()
                .starts_with("delegation_revoked: subject_token: "),
            "{err}"
        );
    }

    #[test]
    fn a_subject_grant_not_found_is_refused() {
        let (one, _) = one_hop(2);
        let g2 = grant(2, 2, 3, 2);
        let actor = own_token(agent(3), "x");
        for found in [&[][..], &[None][..]] {
            let err = exchange_checked(&request(&one, &actor, None), &facts(found, &g2, &active))
                .unwrap_err();
            assert_eq!(err.code(), "delegation_revoked", "{found:?}");
        }
    }

    #[test]
    fn exchange_refusals_keep_their_oauth_error() {
        let (one, g1) = one_hop(2);
        let g2 = grant(2, 2, 3, 2);
        let actor = own_token(agent(3), "x");
        let err = exchange_checked(
            &request(&one, &actor, Some("payments.refund admin.all")),
            &facts(&[Some(g1)], &g2, &active),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ExchangeError::Exchange(DelegationError::ScopeEscalation {
                scopes: vec!["admin.all".into()]
            })
        );
        assert_eq!(err.oauth_error(), "invalid_scope");
        assert_eq!(
            err.to_string(),
            "scope_escalation: not delegable: admin.all"
        );
    }

    #[test]
    fn an_earlier_grants_depth_is_checked_after_the_exchange() {
        // Grant 1 allows one hop only; the exchange sees grant 2 alone and would succeed.
        let (one, g1) = one_hop(1);
        let g2 = grant(2, 2, 3, 5);
        let actor = own_token(agent(3), "x");
        assert!(exchange(&one, &actor, &g2, None, at(NOW), 300, "j").is_ok());
        let err = exchange_checked(
            &request(&one, &actor, None),
            &facts(&[Some(g1)], &g2, &active),
        )
        .unwrap_err();
        assert!(matches!(err, ExchangeError::NewChain(_)), "{err:?}");
        assert_eq!(err.code(), "chain_too_deep");
        assert!(err.to_string().contains(grant_id(1).as_str()), "{err}");
    }

    #[test]
    fn an_actor_that_is_not_active_is_refused() {
        let g1 = grant(1, 1, 2, 2);
        let own = own_token(agent(1), "payments.refund");
        let actor = own_token(agent(2), "x");
        let suspended_actor = |a: &AgentId| {
            Some(if *a == agent(2) {
                Status::Suspended
            } else {
                Status::Active
            })
        };
        let err = exchange_checked(
            &request(&own, &actor, None),
            &facts(&[], &g1, &suspended_actor),
        )
        .unwrap_err();
        assert!(matches!(err, ExchangeError::NewChain(_)), "{err:?}");
        assert_eq!(err.code(), "oap.passport_suspended");
    }

    #[test]
    fn tokens_older_than_their_agents_cut_off_are_refused_first() {
        let g1 = grant(1, 1, 2, 2);
        let own = own_token(agent(1), "payments.refund");
        let actor = own_token(agent(2), "x");
        for (revoked, token) in [(1, "subject_token"), (2, "actor_token")] {
            let cut_off = |a: &AgentId| {
                (*a == agent(revoked)).then(|| Timestamp::from_unix_millis((NOW + 1) * 1000))
            };
            // The new hop would also fail (scope escalation): the revocation is reported.
            let err = exchange_checked(
                &request(&own, &actor, Some("admin.all")),
                &ExchangeFacts {
                    tokens_not_before: &cut_off,
                    ..facts(&[], &g1, &active)
                },
            )
            .unwrap_err();
            assert!(matches!(err, ExchangeError::Revoked { .. }), "{err:?}");
            assert_eq!(err.code(), "token_revoked");
            assert_eq!(err.oauth_error(), "invalid_grant");
            assert!(
                err.to_string()
                    .starts_with(&format!("{token}: token_revoked: ")),
                "{err}"
            );
        }
        // A cut-off at the second the tokens were issued leaves them alone.
        let at_issue = |_: &AgentId| Some(Timestamp::from_unix_millis(NOW * 1000));
        assert!(exchange_checked(
            &request(&own, &actor, None),
            &ExchangeFacts {
                tokens_not_before: &at_issue,
                ..facts(&[], &g1, &active)
            },
        )
        .is_ok());
    }

    #[test]
    fn the_agents_to_check_are_the_chain_and_the_actor() {
        let (one, _) = one_hop(2);
        assert_eq!(
            agents_to_check(&one, &own_token(agent(3), "x")),
            [agent(2), agent(1), agent(3)]
        );
        assert_eq!(
            agents_to_check(&one, &own_token(agent(2), "x")),
            [agent(2), agent(1)],
            "no agent twice"
        );
    }
}
