//! Matching the conditional request headers against an ETag (RFC 9110 §13.1), for the origin
//! and the edge alike. The tags themselves come from their owners: [`crate::edge_view::etag`]
//! at the edge, [`crate::Passport::etag`] at the origin; both are strong.
//!
//! * `If-None-Match` uses the **weak** comparison (§13.1.2): `W/"7"` matches `"7"`, so a cache
//!   that kept a weakened tag still gets its `304`.
//! * `If-Match` uses the **strong** comparison (§13.1.1): a weak tag never matches, so a write
//!   guarded by it fails (`412`) rather than overwrite a version the client may not have.
//!
//! Either header is `*` or a comma-separated list of entity tags (`"…"` or `W/"…"`; a quoted
//! tag may itself hold a comma). A malformed list matches nothing.

/// One entity tag of a header: its opaque tag (with the quotes) and whether it is weak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a str,
}

/// The tags of a header, or `None` for `*`; `Some(Err(()))` when it is malformed.
fn parse(header: &str) -> Option<Result<Vec<EntityTag<'_>>, ()>> {
    let trimmed = header.trim();
    if trimmed == "*" {
        return None;
    }
    let mut tags = Vec::new();
    let mut rest = trimmed;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (weak, tail) = match rest.strip_prefix("W/") {
            Some(tail) => (true, tail),
            None => (false, rest),
        };
        let Some(body) = tail.strip_prefix('"') else {
            return Some(Err(()));
        };
        let Some(end) = body.find('"') else {
            return Some(Err(()));
        };
        // etagc: %x21 / %x23-7E / obs-text (no space, no control character).
        let etagc = |b: u8| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80;
        if !body[..end].bytes().all(etagc) {
            return Some(Err(()));
        }
        let opaque = &tail[..end + 2];
        tags.push(EntityTag { weak, opaque });
        rest = &tail[end + 2..];
        let next = rest.trim_start_matches([' ', '\t']);
        if !next.is_empty() && !next.starts_with(',') {
            return Some(Err(()));
        }
        rest = next;
    }
    if tags.is_empty() {
        return Some(Err(()));
    }
    Some(Ok(tags))
}

/// Whether an `If-None-Match` header names `current` (a strong tag with its quotes), or is
/// `*`: then a GET answers `304 Not Modified`.
pub fn not_modified(header: &str, current: &str) -> bool {
    match parse(header) {
        None => true,
        Some(Ok(tags)) => tags.iter().any(|t| t.opaque == current),
        Some(Err(())) => false,
    }
}

/// Whether an `If-Match` header lets a write of the representation tagged `current` (strong,
/// with its quotes) go ahead: `*`, or a strong tag equal to it. Otherwise `412`.
pub fn precondition_holds(header: &str, current: &str) -> bool {
    match parse(header) {
        None => true,
        Some(Ok(tags)) => tags.iter().any(|t| !t.weak && t.opaque == current),
        Some(Err(())) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V7: &str = "\"7\"";

    #[test]
    fn if_none_match_compares_weakly() {
        for hit in [
            "\"7\"",
            "W/\"7\"",
            "*",
            " * ",
            "\"6\", \"7\"",
            "\"6\",W/\"7\"",
            "\"6\" ,\t\"7\"",
            "\"6\",,\"7\"",
        ] {
            assert!(not_modified(hit, V7), "{hit}");
        }
        for miss in [
            "\"8\"",
            "7",
            "W/7",
            "\"7",
            "w/\"7\"",
            "\"6\" \"7\"",
            "",
            " , ",
            "\"7\"x",
            "\"7,8\"",
        ] {
            assert!(!not_modified(miss, V7), "{miss}");
        }
    }

    #[test]
    fn if_match_compares_strongly() {
        for holds in ["\"7\"", "*", "\"6\", \"7\"", "W/\"6\", \"7\""] {
            assert!(precondition_holds(holds, V7), "{holds}");
        }
        for fails in ["W/\"7\"", "\"8\"", "7", "", "\"7", "W/\"6\", W/\"7\""] {
            assert!(!precondition_holds(fails, V7), "{fails}");
        }
    }

    #[test]
    fn a_quoted_tag_may_hold_a_comma() {
        let tag = "\"passport-r1,v7\"";
        assert!(not_modified(tag, tag));
        assert!(precondition_holds(&format!("\"x\", {tag}"), tag));
        assert!(!not_modified("\"passport-r1\"", tag));
    }

    #[test]
    fn the_edges_tags_match() {
        let tag = crate::edge_view::etag("passport", 7);
        assert!(not_modified(&format!("W/{tag}"), &tag));
        assert!(not_modified(&tag, &tag));
        assert!(!not_modified(&crate::edge_view::etag("passport", 8), &tag));
    }
}
