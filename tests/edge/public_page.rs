//! The public passport page and badge (SPEC §17) from the built worker: the same truth as
//! `/verify` (a suspension shows within the bound, a stale journal fails closed), strong ETags
//! with `304`, a bounded `Cache-Control`, a strict CSP, and HTML only for clients that ask.

use std::time::{Duration, Instant};

use reqwest::{header, StatusCode};

use crate::stack::Stack;
use crate::PATIENCE;

const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

struct Page {
    status: StatusCode,
    headers: header::HeaderMap,
    body: String,
}

async fn get(stack: &Stack, path: &str, accept: &str, etag: Option<&str>) -> Page {
    let mut req = stack
        .client
        .get(format!("{}{path}", stack.edge))
        .header(header::ACCEPT, accept);
    if let Some(etag) = etag {
        req = req.header(header::IF_NONE_MATCH, etag);
    }
    let resp = req.send().await.unwrap();
    Page {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

/// Polls the page until `done` holds (at most `within`).
async fn page_until(
    stack: &Stack,
    agent: &str,
    within: Duration,
    done: impl Fn(&Page) -> bool,
) -> Page {
    let started = Instant::now();
    loop {
        let page = get(stack, &format!("/agents/{agent}"), BROWSER_ACCEPT, None).await;
        if done(&page) || started.elapsed() > within {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_page_follows_the_status() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let agent = stack.seed_agent("Page Bot").await;
    stack.set_status(&agent, "active").await;
    let page = page_until(&stack, &agent, PATIENCE, |p| {
        p.body.contains("Status: Active")
    })
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(page.header("vary"), "Accept");
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    let csp = page.header("content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "{csp}");
    assert_eq!(page.header("cache-control"), "public, max-age=1");
    for words in [
        "<h1>Page Bot</h1>",
        "Acme Support Team",
        "security@acme.com",
        "US-NY and US-CA",
        "at most 100.00 USD per transaction",
        "at most 1,000 rows per export",
    ] {
        assert!(page.body.contains(words), "{words}: {}", page.body);
    }

    // A strong ETag of its own (not the JSON's), answered with a bodyless 304.
    let etag = page.header("etag").to_owned();
    assert!(
        etag.starts_with("\"page") && !etag.starts_with("W/"),
        "{etag}"
    );
    let again = get(
        &stack,
        &format!("/agents/{agent}"),
        BROWSER_ACCEPT,
        Some(&etag),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header("vary"), "Accept");

    // Software gets the `/verify` answer; the badge is an SVG.
    let json = get(
        &stack,
        &format!("/agents/{agent}"),
        "application/json",
        None,
    )
    .await;
    assert_eq!(json.header("content-type"), "application/json");
    assert!(json.body.contains("\"status\":\"active\""), "{}", json.body);
    assert_ne!(json.header("etag"), etag);
    let badge = get(
        &stack,
        &format!("/agents/{agent}/badge.svg"),
        "image/*",
        None,
    )
    .await;
    assert_eq!(badge.status, StatusCode::OK);
    assert_eq!(badge.header("content-type"), "image/svg+xml");
    assert!(badge.body.contains("vouch: active"), "{}", badge.body);
    let badge_etag = badge.header("etag").to_owned();
    let badge_again = get(
        &stack,
        &format!("/agents/{agent}/badge.svg"),
        "image/*",
        Some(&badge_etag),
    )
    .await;
    assert_eq!(badge_again.status, StatusCode::NOT_MODIFIED);

    // A suspension reaches the page, with its reason, within the bound.
    stack.set_status_propagated(&agent, "suspended").await;
    let started = Instant::now();
    let page = page_until(&stack, &agent, PATIENCE, |p| {
        p.body.contains("Status: Suspended")
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the page flipped after {:?}",
        started.elapsed()
    );
    assert!(
        page.body.contains("Reason: test: suspended"),
        "{}",
        page.body
    );
    assert_ne!(page.header("etag"), etag, "a new version is a new body");
    let badge = get(
        &stack,
        &format!("/agents/{agent}/badge.svg"),
        "image/*",
        None,
    )
    .await;
    assert!(badge.body.contains(">suspended</text>"), "{}", badge.body);
    let json = get(&stack, &format!("/agents/{agent}"), "*/*", None).await;
    assert_eq!(json.status, StatusCode::FORBIDDEN);
    assert!(json.body.contains("agent_suspended"));

    stack.set_status_propagated(&agent, "revoked").await;
    let page = page_until(&stack, &agent, PATIENCE, |p| {
        p.body.contains("Status: Revoked")
    })
    .await;
    assert!(page.body.contains("revoked for good"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_pages_and_a_stale_journal_fails_closed() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let missing = "ap_0192f2a4c3b87d9e8f1a2b3c4d5e6f70";
    let page = get(&stack, &format!("/agents/{missing}"), BROWSER_ACCEPT, None).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(
        page.body.contains("<h1>No such agent</h1>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("\"error\""), "no JSON in a page");
    let page = get(&stack, "/agents/not-an-id", BROWSER_ACCEPT, None).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("<h1>Not an agent id</h1>"));
    let json = get(&stack, "/agents/not-an-id", "application/json", None).await;
    assert!(json.body.contains("\"invalid_request\""), "{}", json.body);
    let badge = get(&stack, &format!("/agents/{missing}/badge.svg"), "*/*", None).await;
    assert_eq!(badge.status, StatusCode::NOT_FOUND);
    assert!(badge.body.contains("vouch: unknown"));

    // While the isolate cannot refresh the journal past the bound, neither the page nor the
    // badge shows a status: 503, not cached.
    let agent = stack.active_agent("Stale Bot").await;
    page_until(&stack, &agent, PATIENCE, |p| {
        p.body.contains("Status: Active")
    })
    .await;
    stack.journal_outage(8_000).await;
    let page = page_until(&stack, &agent, PATIENCE, |p| p.status != StatusCode::OK).await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<h1>Status unavailable</h1>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("Status: Active"));
    assert_eq!(page.header("cache-control"), "no-store");
    let badge = get(&stack, &format!("/agents/{agent}/badge.svg"), "*/*", None).await;
    assert_eq!(badge.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(badge.body.contains("vouch: unknown"));
    assert_eq!(badge.header("cache-control"), "no-store");
}
