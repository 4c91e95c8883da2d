//! Delegation chains (`delegation::check_links`, `check_chain`, `exchange`, `validate_new`) on
//! arbitrary claim sets over a universe of 8 agents, 8 grants and 4 capabilities, checked
//! against an independent statement of SPEC §6's rules.
//!
//! Input: bytes read front to back by `Scenario::read` (past the end every byte is 0). A zero
//! byte always means "the consistent choice", so mutations are departures from a chain that
//! stands:
//!
//! | bytes | meaning |
//! |---|---|
//! | 1 | the capability asked for: `CAPABILITIES[b % 4]` |
//! | 1 + k | a mask of agents that are not active; per set bit, one byte: draft, suspended, revoked or unknown (`b % 4`) |
//! | 1 | the number of actors, `b % 8` (more than 5 is too deep) |
//! | 1 + n | the subject, then each actor innermost first: agent `(previous + 1 + b) % 8` |
//! | 1 | the token's scope: every capability whose bit is clear |
//! | 1 | the length of `dlg`: the number of actors when 0, else `b % 8` |
//! | per grant | its id: grant `(i + b) % 8`; then the grant found for it (see `read_grant`) |
//! | rest | the exchange: the actor token and the grant under it (see `read_exchange`) |
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_core::delegation::{
    check_chain, check_links, codes, exchange, validate_new, Grant, MAX_DEPTH,
};
use vouch_core::ids::DelegationId;
use vouch_core::policy::Reason;
use vouch_core::token::{self, Actor, Claims};
use vouch_core::{AgentId, Capability, CapabilityId, Status, Timestamp};
use vouch_core_fuzz::{agent, grant_id, org, Reader, AUDIENCE, ISSUER};

const CAPABILITIES: [&str; 4] = ["payments.refund", "data.export", "a", "a.b"];
const AGENTS: u8 = 8;
const NOW_MS: i64 = 1_795_000_010_000;
const NOW: Timestamp = Timestamp::from_unix_millis(NOW_MS);

struct Scenario {
    capability: &'static str,
    /// Per agent number: its status, `None` when the agent does not exist.
    statuses: [Option<Status>; AGENTS as usize],
    claims: Claims,
    grants: Vec<Option<Grant>>,
    exchange: Option<Exchange>,
    new_grant: NewGrant,
}

/// A `POST /v1/delegations` body's terms, for `validate_new`.
struct NewGrant {
    held: Vec<Capability>,
    asked: Vec<String>,
    ttl_seconds: i64,
    max_depth: i64,
}

struct Exchange {
    actor: Claims,
    grant: Grant,
    scope: Option<String>,
    ttl_seconds: i64,
}

fn scopes_of(mask: u8) -> Vec<&'static str> {
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) == 0)
        .map(|(_, c)| *c)
        .collect()
}

/// An agent's own token issued at `NOW`, living `300 − 5·b` seconds (so `b ≥ 60` has expired).
fn own_token(sub: AgentId, scope: String, lifetime: u8) -> Claims {
    let now = NOW_MS / 1000;
    Claims {
        iss: ISSUER.to_owned(),
        sub,
        aud: vec![AUDIENCE.to_owned()],
        iat: now,
        nbf: now,
        exp: now + 300 - 5 * i64::from(lifetime),
        jti: "jti-fuzz".to_owned(),
        org: org(),
        scope,
        ver: 1,
        act: None,
        dlg: Vec::new(),
        status: None,
    }
}

/// A grant: one flag byte, then one byte per flag set. Flag 0x01: none found (the rest is not
/// read); 0x02: another id; 0x04: another delegator; 0x08: another delegatee; 0x10: scopes (a
/// mask of capabilities left out); 0x20: expiry `NOW + (b − 128) s`; 0x40: `max_depth = b % 7`;
/// 0x80: revoked. Otherwise it joins `from` to `to` under `id` for every capability, for an
/// hour, with `max_depth` 5.
fn read_grant(
    input: &mut Reader<'_>,
    id: &DelegationId,
    from: &AgentId,
    to: &AgentId,
) -> Option<Grant> {
    let flags = input.byte();
    if flags & 0x01 != 0 {
        return None;
    }
    let mut grant = Grant {
        delegation_id: id.clone(),
        delegator: from.clone(),
        delegatee: to.clone(),
        scopes: CAPABILITIES
            .iter()
            .map(|c| CapabilityId::parse(c).expect("a capability id"))
            .collect(),
        expires_at: Timestamp::from_unix_millis(NOW_MS + 3_600_000),
        max_depth: MAX_DEPTH,
        revoked: false,
    };
    if flags & 0x02 != 0 {
        grant.delegation_id = grant_id(input.byte() % AGENTS);
    }
    if flags & 0x04 != 0 {
        grant.delegator = agent(input.byte() % AGENTS);
    }
    if flags & 0x08 != 0 {
        grant.delegatee = agent(input.byte() % AGENTS);
    }
    if flags & 0x10 != 0 {
        grant.scopes = scopes_of(input.byte())
            .into_iter()
            .map(|c| CapabilityId::parse(c).expect("a capability id"))
            .collect();
    }
    if flags & 0x20 != 0 {
        let offset = i64::from(input.byte()) - 128;
        grant.expires_at = Timestamp::from_unix_millis(NOW_MS + offset * 1000);
    }
    if flags & 0x40 != 0 {
        grant.max_depth = u32::from(input.byte() % 7);
    }
    grant.revoked = flags & 0x80 != 0;
    Some(grant)
}

impl Scenario {
    fn read(input: &mut Reader<'_>) -> Scenario {
        let capability = CAPABILITIES[usize::from(input.byte() % 4)];
        let mut statuses = [Some(Status::Active); AGENTS as usize];
        let inactive = input.byte();
        for (n, status) in statuses.iter_mut().enumerate() {
            if inactive & (1 << n) != 0 {
                *status = [
                    Some(Status::Draft),
                    Some(Status::Suspended),
                    Some(Status::Revoked),
                    None,
                ][usize::from(input.byte() % 4)];
            }
        }
        let depth = usize::from(input.byte() % AGENTS);
        // Subject first, then the actors innermost first.
        let mut agents = Vec::with_capacity(depth + 1);
        let mut previous = input.byte() % AGENTS;
        agents.push(previous);
        for _ in 0..depth {
            previous = (previous + 1 + input.byte() % AGENTS) % AGENTS;
            agents.push(previous);
        }
        let hops: Vec<AgentId> = agents.iter().map(|n| agent(*n)).collect();
        let scope = token::join_scopes(&scopes_of(input.byte()));
        let mut claims = own_token(hops[0].clone(), scope, 0);
        for actor in &hops[1..] {
            claims.act = Some(Actor::nest(actor.clone(), claims.act.take()));
        }
        let dlg_len = match input.byte() {
            0 => depth,
            b => usize::from(b % AGENTS),
        };
        let mut grants = Vec::with_capacity(dlg_len);
        for i in 0..dlg_len {
            let id = grant_id((i as u8).wrapping_add(input.byte()) % AGENTS);
            let from = hops.get(i).cloned().unwrap_or_else(|| agent(0));
            let to = hops.get(i + 1).cloned().unwrap_or_else(|| agent(1));
            grants.push(read_grant(input, &id, &from, &to));
            claims.dlg.push(id);
        }
        let exchange = read_exchange(input, &claims);
        let new_grant = read_new_grant(input);
        Scenario {
            capability,
            statuses,
            claims,
            grants,
            exchange,
            new_grant,
        }
    }

    fn status(&self, agent: &AgentId) -> Option<Status> {
        number(agent).and_then(|n| self.statuses[usize::from(n)])
    }
}

/// The number of an agent of the universe.
fn number(id: &AgentId) -> Option<u8> {
    (0..AGENTS).find(|n| agent(*n) == *id)
}

/// The exchange: a flag byte (0x01: no exchange), the actor (agent `(current + 1 + b) % 8`),
/// its token's lifetime byte (see `own_token`), a byte whose 0x01 bit makes the actor token a
/// delegated one, the grant under it (`read_grant`, from the current actor to the actor, id
/// grant 7), the requested scope (0: none asked; else the capabilities whose bit of `b − 1` is
/// clear, twice when bit 0x80 is set) and the default lifetime `300 − 2·b` seconds.
fn read_exchange(input: &mut Reader<'_>, subject: &Claims) -> Option<Exchange> {
    if input.byte() & 0x01 != 0 {
        return None;
    }
    let current = subject.current_actor();
    let current_n = number(current).unwrap_or(0);
    let actor_agent = agent((current_n + 1 + input.byte() % AGENTS) % AGENTS);
    let mut actor = own_token(
        actor_agent.clone(),
        token::join_scopes(&CAPABILITIES),
        input.byte(),
    );
    if input.byte() & 0x01 != 0 {
        actor.act = Some(Actor::nest(agent(0), None));
        actor.dlg = vec![grant_id(0)];
    }
    let grant = read_grant(input, &grant_id(7), current, &actor_agent)?;
    let scope = match input.byte() {
        0 => None,
        b => {
            let mut scopes = scopes_of(b.wrapping_sub(1) & 0x0f);
            if b & 0x80 != 0 {
                scopes.extend(scopes.clone());
            }
            Some(token::join_scopes(&scopes))
        }
    };
    let ttl_seconds = 300 - 2 * i64::from(input.byte());
    Some(Exchange {
        actor,
        grant,
        scope,
        ttl_seconds,
    })
}

/// A new grant's terms: the delegator's capabilities (a mask of those it lacks), the scopes asked
/// (a mask of those left out; 0x10 adds a malformed id, 0x20 asks each twice), the lifetime
/// `60 + 400·(b − 1)` seconds and `max_depth` `1 + b` (wrapping, so both leave their ranges).
fn read_new_grant(input: &mut Reader<'_>) -> NewGrant {
    let held = scopes_of(input.byte())
        .into_iter()
        .map(|c| Capability {
            id: CapabilityId::parse(c).expect("a capability id"),
            params: Default::default(),
        })
        .collect();
    let ask = input.byte();
    let mut asked: Vec<String> = scopes_of(ask & 0x0f)
        .into_iter()
        .map(str::to_owned)
        .collect();
    if ask & 0x10 != 0 {
        asked.push("Not An Id".to_owned());
    }
    if ask & 0x20 != 0 {
        asked.extend(asked.clone());
    }
    let ttl_seconds = 60 + 400 * (i64::from(input.byte()) - 1);
    let max_depth = i64::from(input.byte().wrapping_add(1) as i8);
    NewGrant {
        held,
        asked,
        ttl_seconds,
        max_depth,
    }
}

fuzz_target!(|data: &[u8]| {
    let scenario = Scenario::read(&mut Reader::new(data));
    let status = |agent: &AgentId| scenario.status(agent);
    let claims = &scenario.claims;

    let links = check_links(claims, &scenario.grants, &status, NOW);
    check_reasons(&links);
    let stands = chain_stands(&scenario);
    assert_eq!(links.is_empty(), stands, "links {links:?}");

    let chain = check_chain(claims, &scenario.grants, &status, scenario.capability, NOW);
    check_reasons(&chain);
    let allowed = stands
        && claims.has_scope(scenario.capability)
        && scenario
            .grants
            .iter()
            .flatten()
            .all(|g| g.allows(scenario.capability));
    assert_eq!(chain.is_empty(), allowed, "chain {chain:?}");
    // check_chain lists everything check_links does, first.
    assert_eq!(&chain[..links.len()], &links[..]);

    if let Some(exchange) = &scenario.exchange {
        check_exchange(&scenario, exchange, stands);
    }
    check_new_grant(&scenario);
});

/// Every reason is about the request's `token` and has one of the codes SPEC §6 and §11 list.
fn check_reasons(reasons: &[Reason]) {
    for reason in reasons {
        assert_eq!(reason.field.as_deref(), Some("token"));
        assert!(!reason.message.is_empty());
        assert!(
            [
                codes::CHAIN_TOO_DEEP,
                codes::DELEGATION_REVOKED,
                codes::SCOPE_NOT_DELEGATED,
                "token_invalid",
                "agent_not_found",
                "oap.passport_suspended",
            ]
            .contains(&reason.code.as_str()),
            "{reason:?}"
        );
    }
}

/// SPEC §6, stated independently: the chain stands when it is at most `MAX_DEPTH` actors of
/// distinct, active agents, and `dlg` names one live grant per hop that joins exactly that
/// hop's agents, between active parties, allowing at least the hops that follow it.
fn chain_stands(scenario: &Scenario) -> bool {
    let claims = &scenario.claims;
    let status = |agent: &AgentId| scenario.status(agent);
    let mut subject_first: Vec<&AgentId> = vec![&claims.sub];
    let mut actors = claims.actors();
    actors.reverse();
    subject_first.extend(actors);
    let depth = subject_first.len() - 1;
    let distinct = subject_first
        .iter()
        .enumerate()
        .all(|(i, a)| !subject_first[..i].contains(a));
    let active = |agent: &AgentId| status(agent) == Some(Status::Active);
    depth <= MAX_DEPTH as usize
        && distinct
        && claims.dlg.len() == depth
        && subject_first.iter().all(|a| active(a))
        && claims.dlg.iter().enumerate().all(|(i, id)| {
            let Some(Some(grant)) = scenario.grants.get(i) else {
                return false;
            };
            grant.delegation_id == *id
                && grant.delegator == *subject_first[i]
                && grant.delegatee == *subject_first[i + 1]
                && !grant.revoked
                && NOW < grant.expires_at
                && active(&grant.delegator)
                && active(&grant.delegatee)
                && (depth - i) as u64 <= u64::from(grant.max_depth)
        })
}

fn check_exchange(scenario: &Scenario, ex: &Exchange, subject_stands: bool) {
    let subject = &scenario.claims;
    let now_s = NOW_MS / 1000;
    let result = exchange(
        subject,
        &ex.actor,
        &ex.grant,
        ex.scope.as_deref(),
        NOW,
        ex.ttl_seconds,
        "jti-new",
    );
    let new = match result {
        Ok(new) => new,
        Err(error) => {
            assert!(!error.code().is_empty() && !error.to_string().is_empty());
            assert!(["invalid_request", "invalid_scope", "invalid_grant"]
                .contains(&error.oauth_error()));
            return;
        }
    };
    // What exchange promises of the new token (SPEC §5, §6).
    assert!(ex.actor.act.is_none() && ex.actor.dlg.is_empty());
    assert_eq!(ex.grant.delegator, *subject.current_actor());
    assert_eq!(ex.grant.delegatee, ex.actor.sub);
    assert!(!token::chain(subject).contains(&ex.actor.sub));
    assert!(ex.grant.is_live(NOW));
    assert_eq!(new.sub, subject.sub);
    assert_eq!(new.current_actor(), &ex.actor.sub);
    assert_eq!(new.actors()[1..], subject.actors()[..]);
    assert!(new.depth() <= MAX_DEPTH as usize);
    let mut dlg = subject.dlg.clone();
    dlg.push(ex.grant.delegation_id.clone());
    assert_eq!(new.dlg, dlg);
    let scopes: Vec<&str> = new.scopes().collect();
    assert!(!scopes.is_empty());
    for (i, scope) in scopes.iter().enumerate() {
        assert!(!scopes[..i].contains(scope), "scope listed twice");
        assert!(
            subject.has_scope(scope) && ex.grant.allows(scope),
            "{scope} escalates"
        );
    }
    assert!(new.exp > now_s);
    assert!(new.exp <= subject.exp && new.exp <= ex.grant.expires_at.unix_seconds());
    assert!(new.exp <= now_s + ex.ttl_seconds);
    assert_eq!((new.iat, new.nbf), (now_s, now_s));
    assert_eq!(
        (&new.iss, &new.aud, &new.org, new.ver),
        (&subject.iss, &subject.aud, &subject.org, subject.ver)
    );
    // The claims survive the JSON they are signed as.
    assert_eq!(Claims::from_json(&new.to_json()), Ok(new.clone()));

    // On a chain that stood, with an active actor, the new chain stands too — except where
    // the new hop takes an earlier grant beyond its `max_depth`, which the origin's second
    // `check_links` catches.
    if subject_stands && scenario.status(&ex.actor.sub) == Some(Status::Active) {
        let mut grants = scenario.grants.clone();
        grants.push(Some(ex.grant.clone()));
        let status = |agent: &AgentId| scenario.status(agent);
        let reasons = check_links(&new, &grants, &status, NOW);
        for reason in &reasons {
            assert_eq!(reason.code, codes::CHAIN_TOO_DEEP, "{reasons:?}");
        }
        let too_deep = scenario
            .grants
            .iter()
            .flatten()
            .enumerate()
            .any(|(i, g)| (new.depth() - i) as u64 > u64::from(g.max_depth));
        assert_eq!(reasons.is_empty(), !too_deep, "{reasons:?}");
    }
}

/// `validate_new`: accepted scopes are held by the delegator, asked for, deduplicated, and the
/// terms are in range; a request with scopes it lacks is `scope_escalation` naming them.
fn check_new_grant(scenario: &Scenario) {
    let NewGrant {
        held,
        asked,
        ttl_seconds,
        max_depth,
    } = &scenario.new_grant;
    let is_held = |s: &str| held.iter().any(|c| c.id.as_str() == s);
    match validate_new(held, asked, *ttl_seconds, *max_depth) {
        Ok(scopes) => {
            assert!(!scopes.is_empty());
            for (i, scope) in scopes.iter().enumerate() {
                assert!(is_held(scope.as_str()));
                assert!(!scopes[..i].contains(scope));
            }
            let mut expected: Vec<&str> = Vec::new();
            for a in asked {
                if !expected.contains(&a.as_str()) {
                    expected.push(a);
                }
            }
            assert_eq!(
                scopes.iter().map(CapabilityId::as_str).collect::<Vec<_>>(),
                expected
            );
            assert!((60..=86_400).contains(ttl_seconds));
            assert!((1..=i64::from(MAX_DEPTH)).contains(max_depth));
        }
        Err(vouch_core::delegation::DelegationError::ScopeEscalation { scopes }) => {
            assert!(!scopes.is_empty());
            assert!(scopes.iter().all(|s| !is_held(s) && asked.contains(s)));
        }
        Err(error) => {
            assert_eq!(error.code(), "invalid_request");
            assert!(error.field().is_some());
        }
    }
}
