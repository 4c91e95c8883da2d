#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Retries against a real HTTP server on loopback that answers as each test plans: how many
//! attempts a call gets, how long it waits, and which calls are never repeated.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use vouch_client::{Client, Error, Request, RetryPolicy};

/// One planned answer: a status and its `retry-after`, if any.
type Planned = (u16, Option<&'static str>);

/// The planned answers, in order (then `200 {}`), and how many requests arrived.
#[derive(Clone, Default)]
struct Plan {
    answers: Arc<Mutex<VecDeque<Planned>>>,
    seen: Arc<Mutex<Vec<(Instant, HeaderMap)>>>,
}

async fn serve(plan: Vec<Planned>) -> (String, Plan) {
    let state = Plan {
        answers: Arc::new(Mutex::new(plan.into())),
        ..Plan::default()
    };
    let handler_state = state.clone();
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let state = handler_state.clone();
        async move {
            state.seen.lock().unwrap().push((Instant::now(), headers));
            let next = state.answers.lock().unwrap().pop_front();
            let Some((status, retry_after)) = next else {
                return ([("content-type", "application/json")], "{\"ok\":true}").into_response();
            };
            let mut response: Response = (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                format!("{{\"error\":\"planned\",\"message\":\"planned {status}\"}}"),
            )
                .into_response();
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", value.parse().unwrap());
            }
            response
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, state)
}

fn client(base: &str) -> Client {
    Client::builder(base)
        .token(Some("vk_admin_test".into()))
        .retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        })
        .build()
        .unwrap()
}

fn attempts(plan: &Plan) -> usize {
    plan.seen.lock().unwrap().len()
}

#[tokio::test]
async fn reads_are_retried_on_5xx_and_429_until_they_succeed() {
    let (base, plan) = serve(vec![(503, None), (429, None)]).await;
    let started = Instant::now();
    let body = client(&base)
        .json(&Request::get(&["v1", "x"]))
        .await
        .unwrap();
    assert_eq!(body["ok"], true);
    assert_eq!(attempts(&plan), 3);
    // Waits of 50–100 ms, then 100–200 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn attempts_are_bounded() {
    let (base, plan) = serve(vec![(502, None); 5]).await;
    let err = client(&base)
        .json(&Request::get(&["v1", "x"]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(502), "{err}");
    assert_eq!(attempts(&plan), 3);
}

#[tokio::test]
async fn retry_after_is_waited_out_and_a_longer_one_is_not_retried() {
    let (base, plan) = serve(vec![(429, Some("1"))]).await;
    let body = client(&base)
        .json(&Request::get(&["v1", "x"]))
        .await
        .unwrap();
    assert_eq!(body["ok"], true);
    let seen = plan.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].0 - seen[0].0 >= Duration::from_secs(1));

    // Past the policy's max_delay: the server's wish is honoured by not asking again.
    let (base, plan) = serve(vec![(503, Some("60"))]).await;
    let err = client(&base)
        .json(&Request::get(&["v1", "x"]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(attempts(&plan), 1);
}

#[tokio::test]
async fn writes_are_retried_only_with_an_idempotency_key() {
    let (base, plan) = serve(vec![(503, None)]).await;
    let err = client(&base)
        .json(&Request::post(&["v1", "orgs"]).json(serde_json::json!({})))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api { status: 503, .. }), "{err}");
    assert_eq!(attempts(&plan), 1, "a POST is never repeated on its own");

    let (base, plan) = serve(vec![(503, None)]).await;
    client(&base)
        .json(
            &Request::post(&["v1", "orgs"])
                .json(serde_json::json!({}))
                .idempotency_key(Some("k-1".into())),
        )
        .await
        .unwrap();
    let seen = plan.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|(_, h)| h["idempotency-key"] == "k-1"));
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let (base, plan) = serve(vec![(400, None), (404, None)]).await;
    let err = client(&base)
        .json(&Request::get(&["v1", "x"]))
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.status()), (Some("planned"), Some(400)));
    assert_eq!(attempts(&plan), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_retried_then_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = client(&format!("http://127.0.0.1:{port}"))
        .json(&Request::get(&["v1", "x"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "it waited between attempts"
    );
}
