//! Rate limits of the token endpoint and the admin API: past a limit `429 rate_limited` with
//! `retry-after`; another credential or address is unaffected. Each case runs a second origin
//! over the test's database with a limit of 1 request per second (bursts of 2), so setup through
//! the unlimited first origin costs no budget. Other addresses: the client binds 127.0.0.2.

use std::net::IpAddr;

use reqwest::{Client, StatusCode};
use serde_json::Value;
use vouch_origin::rate_limit::{RateLimits, RateSettings};

use crate::harness::{TestApp, ADMIN};

/// A second origin with these limits (requests per second; bursts of twice that).
async fn limited(app: &TestApp, settings: RateSettings) -> crate::harness::Served {
    app.serve_again(move |state| state.limits = std::sync::Arc::new(RateLimits::new(settings)))
        .await
}

fn client_from(address: &str) -> Client {
    Client::builder()
        .local_address(address.parse::<IpAddr>().ok())
        .build()
        .unwrap()
}

async fn list(client: &Client, base: &str, token: &str) -> (StatusCode, Option<String>, Value) {
    let resp = client
        .get(format!("{base}/v1/agents"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

async fn token(
    client: &Client,
    base: &str,
    agent: &str,
    secret: &str,
) -> (StatusCode, Option<String>, Value) {
    let resp = client
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", agent),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.json().await.unwrap())
}

#[track_caller]
fn assert_limited(answer: &(StatusCode, Option<String>, Value), code_field: &str) {
    let (status, retry, body) = answer;
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body[code_field], "rate_limited", "{body}");
    let seconds: u64 = retry.as_deref().expect("retry-after").parse().unwrap();
    assert!((1..=2).contains(&seconds), "retry-after {seconds}");
}

pub async fn admin_api_per_credential(app: &TestApp) {
    let org = app.org("limited-admin").await;
    let (first, second) = (
        app.token(&org, "viewer").await,
        app.token(&org, "viewer").await,
    );
    let served = limited(
        app,
        RateSettings {
            admin_per_credential: 1,
            ..RateSettings::OFF
        },
    )
    .await;
    let client = Client::new();
    for _ in 0..2 {
        assert_eq!(list(&client, &served.base, &first).await.0, StatusCode::OK);
    }
    let refused = list(&client, &served.base, &first).await;
    assert_limited(&refused, "error");
    assert!(refused.2["message"].is_string(), "{}", refused.2);
    // Another credential from the same address is unaffected.
    assert_eq!(list(&client, &served.base, &second).await.0, StatusCode::OK);
    assert_eq!(list(&client, &served.base, ADMIN).await.0, StatusCode::OK);
}

pub async fn admin_api_per_address(app: &TestApp) {
    let served = limited(
        app,
        RateSettings {
            admin_per_address: 1,
            ..RateSettings::OFF
        },
    )
    .await;
    let here = client_from("127.0.0.1");
    for _ in 0..2 {
        assert_eq!(list(&here, &served.base, ADMIN).await.0, StatusCode::OK);
    }
    assert_limited(&list(&here, &served.base, ADMIN).await, "error");
    // The address is counted before authentication: bad credentials are refused as early.
    assert_limited(&list(&here, &served.base, "vk_admin_guess").await, "error");
    // Another address is unaffected; paths outside the admin API are not limited.
    let there = client_from("127.0.0.2");
    assert_eq!(list(&there, &served.base, ADMIN).await.0, StatusCode::OK);
    let health = here
        .get(format!("{}/healthz", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

pub async fn token_endpoint_per_credential(app: &TestApp) {
    let org = app.org("limited-tokens").await;
    let mut agents = Vec::new();
    for name in ["first", "second", "victim"] {
        let (id, key) = app.agent(&org, name).await;
        app.set_status(&id, "active").await.assert_status(200);
        agents.push((id, key));
    }
    let served = limited(
        app,
        RateSettings {
            token_per_credential: 1,
            ..RateSettings::OFF
        },
    )
    .await;
    let client = Client::new();
    let (first, second, victim) = (&agents[0], &agents[1], &agents[2]);
    for _ in 0..2 {
        let ok = token(&client, &served.base, &first.0, &first.1).await;
        assert_eq!(ok.0, StatusCode::OK, "{}", ok.2);
    }
    let refused = token(&client, &served.base, &first.0, &first.1).await;
    assert_limited(&refused, "error");
    assert!(refused.2["error_description"].is_string(), "{}", refused.2);
    assert_eq!(
        token(&client, &served.base, &second.0, &second.1).await.0,
        StatusCode::OK
    );
    // Wrong secrets naming the victim's id draw on their own keys, not the victim's budget.
    for i in 0..5 {
        let guess = format!("vk_agent_wrong-{i}");
        let answer = token(&client, &served.base, &victim.0, &guess).await;
        assert_eq!(answer.0, StatusCode::UNAUTHORIZED, "{}", answer.2);
    }
    assert_eq!(
        token(&client, &served.base, &victim.0, &victim.1).await.0,
        StatusCode::OK
    );
}

pub async fn token_endpoint_per_address(app: &TestApp) {
    let org = app.org("limited-token-address").await;
    let (id, key) = app.agent(&org, "busy host").await;
    app.set_status(&id, "active").await.assert_status(200);
    let served = limited(
        app,
        RateSettings {
            token_per_address: 1,
            ..RateSettings::OFF
        },
    )
    .await;
    let here = client_from("127.0.0.1");
    for _ in 0..2 {
        assert_eq!(
            token(&here, &served.base, &id, &key).await.0,
            StatusCode::OK
        );
    }
    assert_limited(&token(&here, &served.base, &id, &key).await, "error");
    // The admin API's budget is its own, and another address is unaffected.
    assert_eq!(list(&here, &served.base, ADMIN).await.0, StatusCode::OK);
    let there = client_from("127.0.0.2");
    assert_eq!(
        token(&there, &served.base, &id, &key).await.0,
        StatusCode::OK
    );
}

/// The console's pages (sign-in included) count against the admin API's address limit, and a
/// refusal is a page, not JSON; its static files do not count.
pub async fn console_per_address(app: &TestApp) {
    let served = limited(
        app,
        RateSettings {
            admin_per_address: 1,
            ..RateSettings::OFF
        },
    )
    .await;
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..3 {
        let asset = client
            .get(format!("{}/console/static/console.css", served.base))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), StatusCode::OK);
    }
    for _ in 0..2 {
        let page = client
            .get(format!("{}/console/sign-in", served.base))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
    }
    let refused = client
        .post(format!("{}/console/sign-in", served.base))
        .form(&[("csrf", "x"), ("token", ADMIN)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(refused.text().await.unwrap().contains("Too many requests"));
}
