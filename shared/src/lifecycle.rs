//! The lifecycle of SPEC §3: `draft → active ⇄ suspended`, any state `→ revoked` (terminal).

use crate::error::CoreError;
use crate::passport::{Passport, Status};
use crate::timestamp::Timestamp;
use crate::validate;

/// Whether `from → to` is a move the lifecycle allows. Staying in the same state is not a move.
pub fn allowed(from: Status, to: Status) -> bool {
    use Status::*;
    matches!(
        (from, to),
        (Draft, Active)
            | (Active, Suspended)
            | (Suspended, Active)
            | (Draft, Revoked)
            | (Active, Revoked)
            | (Suspended, Revoked)
    )
}

/// Refuses any change but a status move to a revoked agent's record (SPEC §3: revocation is
/// terminal and the record is kept for compliance): `agent_revoked`, saying what was refused.
pub fn ensure_not_revoked(current: &Passport, action: &'static str) -> Result<(), CoreError> {
    if current.status == Status::Revoked {
        return Err(CoreError::AgentRevoked { action });
    }
    Ok(())
}

/// The passport after moving to `to`, with `version` bumped and the timestamps set.
/// `reason` is kept as `status_reason` (cleared when none is given).
pub fn change_status(
    current: &Passport,
    to: Status,
    reason: Option<String>,
    now: Timestamp,
) -> Result<Passport, CoreError> {
    if let Some(reason) = &reason {
        validate::optional_text("reason", reason, validate::MAX_REASON)?;
    }
    if !allowed(current.status, to) {
        return Err(CoreError::InvalidTransition {
            from: current.status,
            to,
        });
    }
    let mut next = current.clone();
    next.status = to;
    next.status_reason = reason;
    next.version = current.version + 1;
    next.updated_at = now;
    match to {
        Status::Active => {
            next.activated_at = Some(now);
            next.suspended_at = None;
        }
        Status::Suspended => next.suspended_at = Some(now),
        Status::Revoked => next.revoked_at = Some(now),
        Status::Draft => {}
    }
    Ok(next)
}

/// The passport after its tokens were revoked at `now`: every token issued before the next whole
/// second is dead (`iat` counts seconds, so a token issued earlier in this second cannot be told
/// apart from one issued before the call), `version` bumped. A later cut-off never moves back.
pub fn revoke_tokens(current: &Passport, now: Timestamp) -> Passport {
    let next_second = now.unix_millis().div_euclid(1_000).saturating_add(1) * 1_000;
    let cut = current
        .tokens_not_before
        .map_or(next_second, |known| known.unix_millis().max(next_second));
    let mut next = current.clone();
    next.tokens_not_before = Some(Timestamp::from_unix_millis(cut));
    next.version = current.version + 1;
    next.updated_at = now;
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passport::tests::seed_passport;

    #[test]
    fn revoking_tokens_cuts_at_the_next_second_and_never_moves_back() {
        let p = in_state(Status::Active);
        let next = revoke_tokens(&p, Timestamp::from_unix_millis(1_795_000_000_250));
        assert_eq!(
            next.tokens_not_before,
            Some(Timestamp::from_unix_millis(1_795_000_001_000))
        );
        assert_eq!(next.version, p.version + 1);
        assert_eq!(next.status, Status::Active);
        // On a whole second: tokens issued in it (iat = that second) die too.
        let again = revoke_tokens(&next, Timestamp::from_unix_millis(1_795_000_001_000));
        assert_eq!(
            again.tokens_not_before,
            Some(Timestamp::from_unix_millis(1_795_000_002_000))
        );
        let mut later = next.clone();
        later.tokens_not_before = Some(Timestamp::from_unix_millis(1_795_000_009_000));
        let kept = revoke_tokens(&later, Timestamp::from_unix_millis(1_795_000_001_000));
        assert_eq!(kept.tokens_not_before, later.tokens_not_before);
    }

    fn in_state(status: Status) -> Passport {
        let mut p = seed_passport();
        p.status = status;
        p
    }

    #[test]
    fn the_whole_table() {
        use Status::*;
        let expected = [
            (Draft, Draft, false),
            (Draft, Active, true),
            (Draft, Suspended, false),
            (Draft, Revoked, true),
            (Active, Draft, false),
            (Active, Active, false),
            (Active, Suspended, true),
            (Active, Revoked, true),
            (Suspended, Draft, false),
            (Suspended, Active, true),
            (Suspended, Suspended, false),
            (Suspended, Revoked, true),
            (Revoked, Draft, false),
            (Revoked, Active, false),
            (Revoked, Suspended, false),
            (Revoked, Revoked, false),
        ];
        assert_eq!(expected.len(), Status::ALL.len() * Status::ALL.len());
        for (from, to, ok) in expected {
            assert_eq!(allowed(from, to), ok, "{from} -> {to}");
            let result = change_status(&in_state(from), to, None, Timestamp::from_unix_millis(9));
            match result {
                Ok(next) => {
                    assert!(ok, "{from} -> {to} should be refused");
                    assert_eq!(next.status, to);
                    assert_eq!(next.version, 2);
                    assert_eq!(next.updated_at, Timestamp::from_unix_millis(9));
                }
                Err(err) => {
                    assert!(!ok, "{from} -> {to} should be allowed");
                    assert_eq!(err.code(), "invalid_transition");
                }
            }
        }
    }

    #[test]
    fn revoked_is_terminal() {
        for to in Status::ALL {
            assert!(!allowed(Status::Revoked, to));
        }
    }

    #[test]
    fn timestamps_and_reason() {
        let active = change_status(
            &in_state(Status::Draft),
            Status::Active,
            None,
            Timestamp::from_unix_millis(1),
        )
        .unwrap();
        assert_eq!(active.activated_at, Some(Timestamp::from_unix_millis(1)));
        let suspended = change_status(
            &active,
            Status::Suspended,
            Some("fraud review".into()),
            Timestamp::from_unix_millis(2),
        )
        .unwrap();
        assert_eq!(suspended.suspended_at, Some(Timestamp::from_unix_millis(2)));
        assert_eq!(suspended.status_reason.as_deref(), Some("fraud review"));
        let back = change_status(
            &suspended,
            Status::Active,
            None,
            Timestamp::from_unix_millis(3),
        )
        .unwrap();
        assert_eq!(back.suspended_at, None);
        assert_eq!(back.status_reason, None);
        assert_eq!(back.version, 4);
        let revoked = change_status(
            &back,
            Status::Revoked,
            Some("retired".into()),
            Timestamp::from_unix_millis(4),
        )
        .unwrap();
        assert_eq!(revoked.revoked_at, Some(Timestamp::from_unix_millis(4)));
        let too_long = change_status(
            &back,
            Status::Suspended,
            Some("x".repeat(501)),
            Timestamp::from_unix_millis(4),
        );
        assert_eq!(too_long.unwrap_err().field_name(), Some("reason"));
    }
}
