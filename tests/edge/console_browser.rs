//! The admin console and the public passport page in a real browser: this test starts the
//! stack (origin + local edge in workerd), makes an org with a viewer token, and runs
//! `scripts/browser/console.test.mjs` (playwright-core driving Debian's chromium, axe on every
//! page) against it with the project's Node 22. Screenshots land in `tests/browser-artifacts/`.
//! `scripts/test.sh` installs the tools and sets `VOUCH_REQUIRE_BROWSER=1`; elsewhere the test
//! skips when they are missing.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::stack::{Stack, ADMIN};

/// The whole browser run is bounded (it takes ~20 s here).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(150);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `(node, chromium)` when the browser test can run; `None` to skip (only when not required).
fn browser_prerequisites() -> Option<(PathBuf, PathBuf)> {
    let required = std::env::var("VOUCH_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let node = std::env::var_os("VOUCH_NODE").map(PathBuf::from);
    let chromium = PathBuf::from(
        std::env::var_os("VOUCH_CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()),
    );
    let modules = repo().join("scripts/browser/node_modules/playwright-core");
    match node {
        Some(node) if node.exists() && chromium.exists() && modules.exists() => {
            Some((node, chromium))
        }
        _ if required => panic!(
            "VOUCH_REQUIRE_BROWSER=1 but the browser test cannot run: VOUCH_NODE={:?}, chromium at {} exists: {}, playwright-core installed: {}",
            std::env::var_os("VOUCH_NODE"),
            chromium.display(),
            chromium.exists(),
            modules.exists()
        ),
        _ => {
            eprintln!("skipped: run scripts/test.sh (it installs chromium and the browser test's npm packages)");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_browser() {
    let Some((node, chromium)) = browser_prerequisites() else {
        return;
    };
    let Some(stack) = Stack::start().await else {
        return;
    };
    let org = stack.org("Browser Org").await;
    let viewer = stack
        .admin(
            reqwest::Method::POST,
            &format!("/v1/orgs/{org}/tokens"),
            Some(json!({ "role": "viewer", "name": "browser viewer" })),
        )
        .await;
    // Something for the viewer to look at.
    stack.register(&org, "Viewer's Bot").await;
    let artifacts = repo().join("tests/browser-artifacts");
    let run = tokio::process::Command::new(node)
        .arg(repo().join("scripts/browser/console.test.mjs"))
        .env("VOUCH_ORIGIN", &stack.origin)
        .env("VOUCH_EDGE", &stack.edge)
        .env("VOUCH_ADMIN_TOKEN", ADMIN)
        .env(
            "VOUCH_VIEWER_TOKEN",
            viewer["token"].as_str().expect("token"),
        )
        .env("VOUCH_ORG_ID", &org)
        .env("VOUCH_CHROMIUM", chromium)
        .env("VOUCH_ARTIFACTS", &artifacts)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BROWSER_TIMEOUT, run)
        .await
        .expect("the browser test finished in time")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
}
