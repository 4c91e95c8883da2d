//! The public passport page and status badge of SPEC §17: what a person who meets an agent can
//! read about it, rendered from the same edge view `/verify` answers from. Pure functions; the
//! worker only picks the representation, checks the journal's freshness and sets the headers.
//!
//! The page is self-contained: one inline style block (allowed by its hash in [`PAGE_CSP`]),
//! no script, no font, no third-party resource; the only image is the agent's own badge.

use crate::edge_view::EdgePassport;
use crate::passport::Status;
use crate::policy::words;

/// Bumped whenever the page or badge markup changes, so an ETag never names two bodies.
pub const PAGE_REVISION: u32 = 1;

/// The page's stylesheet, inline; [`PAGE_CSP`] allows exactly this text by its SHA-256.
pub const STYLE: &str =
    "body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1f2328;background:#fff}\
main{max-width:40rem;margin:0 auto;padding:1rem}\
h1{font-size:1.6rem;margin:.2rem 0 1rem;overflow-wrap:anywhere}\
h2{font-size:1.15rem;margin:1.4rem 0 .4rem}\
.kicker{margin:0;color:#59636e;font-size:.9rem;text-transform:uppercase;letter-spacing:.05em}\
.status{border-left:.4rem solid #59636e;padding:.4rem .9rem;background:#f6f8fa}\
.status h2{margin:.2rem 0}\
.status-active{border-color:#1a7f37}\
.status-suspended{border-color:#9a6700;background:#fff8c5}\
.status-revoked{border-color:#cf222e;background:#ffebe9}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}\
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}\
code{font-size:.9em;overflow-wrap:anywhere}\
a{color:#0550ae}a:focus-visible{outline:3px solid #0550ae;outline-offset:2px}\
footer{margin-top:2rem;color:#59636e;font-size:.9rem}\
@media (max-width:30rem){dl{grid-template-columns:1fr}dd{margin-bottom:.4rem}}";

/// The page's Content-Security-Policy: nothing loads but its own style and same-origin images.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'sha256-MiofZocZdoJ9annLd+dQKKqFedabd9Zf+mpSOwjYT+E='; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The badge's Content-Security-Policy (an SVG opened on its own runs nothing).
pub const BADGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

/// The strong ETag of a representation (`page`, `badge`) derived from a passport body whose own
/// ETag is `etag` (with its quotes): a different body, so a different tag.
pub fn representation_etag(kind: &str, etag: &str) -> String {
    format!("\"{kind}{PAGE_REVISION}-{}\"", etag.trim_matches('"'))
}

/// Whether an `Accept` header asks for HTML before JSON: `text/html` (or XHTML) with a higher
/// quality than `application/json` (or the wildcard that would cover it). A browser's header
/// does; `*/*`, none at all, or `application/json` do not.
pub fn prefers_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let (mut html, mut json, mut wildcard) = (0.0_f32, None::<f32>, 0.0_f32);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html = html.max(q),
            "application/json" => json = Some(json.map_or(q, |j: f32| j.max(q))),
            "*/*" | "application/*" => wildcard = wildcard.max(q),
            _ => {}
        }
    }
    html > 0.0 && html > json.unwrap_or(wildcard)
}

/// The status as a person reads it: a label and what it means for them.
pub fn status_in_words(status: Status) -> (&'static str, &'static str) {
    match status {
        Status::Active => (
            "Active",
            "The registry vouches for this agent, within the limits below.",
        ),
        Status::Suspended => (
            "Suspended",
            "Do not let this agent act for now: its operator or the registry has suspended it.",
        ),
        Status::Revoked => (
            "Revoked",
            "Do not let this agent act: it has been revoked for good.",
        ),
        Status::Draft => (
            "Not active yet",
            "This agent is registered but not activated: do not let it act yet.",
        ),
    }
}

/// `&`, `<`, `>`, `"` and `'` escaped: text safe in HTML content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page of one passport. `max_age_seconds` is how stale a cache may make it (said on the
/// page). The page holds no time of its own, so one version always renders to one body.
pub fn page(view: &EdgePassport, max_age_seconds: u32) -> String {
    let e = |s: &str| escape(s);
    let id = view.agent_id.as_str();
    let (label, meaning) = status_in_words(view.status);
    let mut status = format!(
        "<h2 id=\"status\">Status: {label}</h2><p>{meaning}</p>",
        label = e(label),
        meaning = e(meaning)
    );
    if matches!(view.status, Status::Suspended | Status::Revoked) {
        let reason = view.status_reason.as_deref().unwrap_or("none given");
        status.push_str(&format!("<p>Reason: {}</p>", e(reason)));
    }
    let since = match view.status {
        Status::Suspended => view.suspended_at,
        Status::Revoked => view.revoked_at,
        _ => None,
    };
    if let Some(at) = since {
        let at = at.to_rfc3339();
        status.push_str(&format!("<p>Since <time datetime=\"{at}\">{at}</time></p>"));
    }
    let role = view.role.as_deref().unwrap_or("not stated");
    let capabilities = words::capabilities_in_words(view);
    let may_do = if capabilities.is_empty() {
        "<p>Nothing: it holds no capabilities.</p>".to_owned()
    } else {
        let items: String = capabilities
            .iter()
            .map(|c| {
                format!(
                    "<li><code>{}</code>: {}</li>",
                    e(&c.id),
                    e(&c.limits.join("; "))
                )
            })
            .collect();
        format!("<ul>{items}</ul>")
    };
    let updated = view.updated_at.to_rfc3339();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{name} · About this agent</title><style>{STYLE}</style></head><body><main>\
<p class=\"kicker\">About this agent</p><h1>{name}</h1>\
<section class=\"status status-{status_class}\" aria-labelledby=\"status\">{status}</section>\
<h2>Who answers for it</h2><dl>\
<dt>Operated by</dt><dd>{owner}</dd><dt>Contact</dt><dd>{contact}</dd><dt>Role</dt><dd>{role}</dd>\
<dt>Where it may act</dt><dd>{regions}</dd><dt>Assurance</dt><dd>{assurance}</dd><dt>Tier</dt><dd>{tier}</dd></dl>\
<h2>What it may do</h2>{may_do}\
<p><img src=\"/agents/{id}/badge.svg\" alt=\"Status badge: {label}\" width=\"{badge_width}\" height=\"20\"></p>\
<footer><p>Agent <code>{id}</code>, passport version {version}, updated <time datetime=\"{updated}\">{updated}</time>. \
This page shows the registry's live status; a cache may keep it for at most {max_age_seconds} s. \
Software can ask <a href=\"/verify?agent_id={id}\">/verify</a>.</p></footer>\
</main></body></html>\n",
        name = e(&view.name),
        status_class = view.status.as_str(),
        owner = e(&view.owner_display),
        contact = e(&view.contact),
        role = e(role),
        regions = e(&words::regions_in_words(&view.regions)),
        assurance = e(words::assurance_in_words(view.assurance_level)),
        tier = e(words::tier_in_words(view.tier)),
        label = e(label),
        badge_width = Badge::of(Some(view.status)).width(),
        version = view.version,
    )
}

/// A page for a failure (no such agent, a malformed id, the status cannot be confirmed):
/// a title and one sentence, never the JSON of the API.
pub fn error_page(title: &str, message: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · About this agent</title><style>{STYLE}</style></head><body><main>\
<p class=\"kicker\">About this agent</p><h1>{title}</h1><p>{message}</p></main></body></html>\n",
        title = escape(title),
        message = escape(message),
    )
}

/// The status badge: `vouch | <status>`, coloured by status.
struct Badge {
    value: &'static str,
    colour: &'static str,
}

impl Badge {
    const LABEL: &'static str = "vouch";

    /// `None`: the status is not known (no such agent, or it cannot be confirmed now).
    fn of(status: Option<Status>) -> Badge {
        let (value, colour) = match status {
            Some(Status::Active) => ("active", "#1a7f37"),
            Some(Status::Suspended) => ("suspended", "#9a6700"),
            Some(Status::Revoked) => ("revoked", "#cf222e"),
            Some(Status::Draft) => ("not active", "#59636e"),
            None => ("unknown", "#59636e"),
        };
        Badge { value, colour }
    }

    /// Text widths at 11 px Verdana, about 7 px a character, plus padding.
    fn part_width(text: &str) -> usize {
        text.chars().count() * 7 + 12
    }

    fn width(&self) -> usize {
        Badge::part_width(Badge::LABEL) + Badge::part_width(self.value)
    }

    fn svg(&self) -> String {
        let left = Badge::part_width(Badge::LABEL);
        let right = Badge::part_width(self.value);
        let width = left + right;
        let title = format!("{}: {}", Badge::LABEL, self.value);
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"20\" role=\"img\" aria-label=\"{title}\">\
<title>{title}</title><rect width=\"{left}\" height=\"20\" fill=\"#32383f\"/>\
<rect x=\"{left}\" width=\"{right}\" height=\"20\" fill=\"{colour}\"/>\
<g fill=\"#fff\" font-family=\"Verdana,DejaVu Sans,sans-serif\" font-size=\"11\" text-anchor=\"middle\">\
<text x=\"{lx}\" y=\"14\">{label}</text><text x=\"{rx}\" y=\"14\">{value}</text></g></svg>\n",
            colour = self.colour,
            lx = left / 2,
            rx = left + right / 2,
            label = Badge::LABEL,
            value = self.value,
        )
    }
}

/// The badge of an agent in `status`, or of an unknown status (`None`).
pub fn badge(status: Option<Status>) -> String {
    Badge::of(status).svg()
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::passport::tests::seed_passport;
    use crate::timestamp::Timestamp;

    fn view(status: Status) -> EdgePassport {
        let mut view = EdgePassport::from(&seed_passport());
        view.status = status;
        view
    }

    #[test]
    fn the_csp_allows_exactly_the_inline_style() {
        let digest = Sha256::digest(STYLE.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest);
        assert!(
            PAGE_CSP.contains(&format!("'sha256-{hash}'")),
            "update PAGE_CSP to 'sha256-{hash}'"
        );
        for directive in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(PAGE_CSP.contains(directive), "{directive}");
        }
        assert!(!PAGE_CSP.contains("script-src"));
    }

    #[test]
    fn browsers_get_html_and_software_gets_json() {
        let chrome =
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
        assert!(prefers_html(Some(chrome)));
        assert!(prefers_html(Some("text/html")));
        assert!(prefers_html(Some("application/json;q=0.5, text/html")));
        assert!(prefers_html(Some("TEXT/HTML; charset=utf-8")));
        for software in [
            None,
            Some("*/*"),
            Some("application/json"),
            Some("text/html;q=0.5, application/json"),
            Some("text/html, application/json"),
            Some("text/html;q=0"),
            Some("text/html;q=0.5, */*"),
            Some(""),
        ] {
            assert!(!prefers_html(software), "{software:?}");
        }
    }

    #[test]
    fn the_page_says_the_passport_in_words() {
        let page = page(&view(Status::Active), 1);
        for words in [
            "<title>Acme Support Bot · About this agent</title>",
            "Status: Active",
            "Acme Support Team",
            "security@acme.com",
            "Tier-2 Support",
            "US-NY and US-CA",
            "L2 of L0–L3",
            "<code>payments.refund</code>: at most 100.00 USD per transaction; at most 1,000.00 USD per day",
            "<code>data.export</code>: at most 1,000 rows per export; never with personal data",
            "/agents/ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70/badge.svg",
            "at most 1 s",
        ] {
            assert!(page.contains(words), "{words} in {page}");
        }
        assert!(!page.contains("Reason:"));
        assert!(!page.contains("<script"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no third-party resource"
        );
    }

    #[test]
    fn a_suspension_shows_its_reason_and_time() {
        let mut v = view(Status::Suspended);
        v.status_reason = Some("fraud <review> & \"audit\"".into());
        v.suspended_at = Some(Timestamp::from_unix_millis(1_795_000_000_000));
        let page = page(&v, 1);
        assert!(page.contains("Status: Suspended"));
        assert!(page.contains("status-suspended"));
        assert!(page.contains("Reason: fraud &lt;review&gt; &amp; &quot;audit&quot;"));
        assert!(page.contains("Since <time datetime=\"2026-11-18T"));
        let mut v = view(Status::Revoked);
        v.status_reason = None;
        assert!(page_of(&v).contains("Reason: none given"));
        assert!(page_of(&view(Status::Draft)).contains("Status: Not active yet"));
    }

    fn page_of(v: &EdgePassport) -> String {
        page(v, 1)
    }

    #[test]
    fn names_are_escaped() {
        let mut v = view(Status::Active);
        v.name = "<script>alert('x')</script>".into();
        v.contact = "\"><img src=x>".into();
        let page = page(&v, 1);
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(!page.contains("\"><img src=x>"));
        assert!(error_page("<b>", "a & b").contains("<h1>&lt;b&gt;</h1><p>a &amp; b</p>"));
    }

    #[test]
    fn badges_per_status() {
        let active = badge(Some(Status::Active));
        assert!(active.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(active.contains("<title>vouch: active</title>"));
        assert!(active.contains("#1a7f37"));
        assert!(badge(Some(Status::Suspended)).contains(">suspended</text>"));
        assert!(badge(Some(Status::Revoked)).contains("#cf222e"));
        assert!(badge(None).contains("vouch: unknown"));
        // Golden: the size an embedding page reserves does not change by accident.
        assert!(active.contains("width=\"101\" height=\"20\""), "{active}");
    }

    #[test]
    fn representations_have_their_own_tags() {
        let tag = view(Status::Active).etag();
        assert_eq!(
            representation_etag("page", &tag),
            "\"page1-passport-r1-v1\""
        );
        assert_ne!(
            representation_etag("badge", &tag),
            representation_etag("page", &tag)
        );
    }
}
