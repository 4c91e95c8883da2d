//! A real webhook receiver for tests: an HTTP server on loopback that checks every delivery's
//! signature with the `standardwebhooks` crate against the secrets it was given, records what
//! arrived, and answers as planned (fail N times, ask to retry later, hang).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// How the receiver answers one request.
#[derive(Clone, Debug)]
#[allow(dead_code)]
pub enum Answer {
    Status(u16),
    /// A status with `retry-after: <seconds>`.
    RetryAfter(u16, u64),
    /// Wait this long, then 200.
    Hang(Duration),
}

/// One request as it arrived.
#[derive(Clone, Debug)]
#[allow(dead_code)]
pub struct Delivery {
    pub webhook_id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Value,
    /// For each known secret (in order), whether the request verifies with it.
    pub verified: Vec<bool>,
    pub at: Instant,
}

#[allow(dead_code)]
impl Delivery {
    pub fn event_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }
}

#[derive(Default)]
struct Shared {
    secrets: Mutex<Vec<String>>,
    received: Mutex<Vec<Delivery>>,
    plan: Mutex<VecDeque<Answer>>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[allow(dead_code)]
impl Receiver {
    /// Listens on 127.0.0.1 (any port); `url` ends in `/hook`.
    pub async fn start() -> Receiver {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            shared,
            server,
        }
    }

    /// The secrets to verify with, in order (`verified[i]` is about `secrets[i]`).
    pub fn set_secrets(&self, secrets: &[&str]) {
        *self.shared.secrets.lock().unwrap() = secrets.iter().map(|s| s.to_string()).collect();
    }

    /// How to answer the next requests (then 200).
    pub fn plan(&self, answers: impl IntoIterator<Item = Answer>) {
        self.shared.plan.lock().unwrap().extend(answers);
    }

    pub fn received(&self) -> Vec<Delivery> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} deliveries within {within:?}, got {}: {:#?}",
                got.len(),
                got.iter()
                    .map(|d| (d.event_type().to_owned(), d.webhook_id.clone()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let secrets = shared.secrets.lock().unwrap().clone();
    let verified = secrets
        .iter()
        .map(|secret| {
            standardwebhooks::Webhook::new(secret)
                .unwrap()
                .verify(&body, &headers)
                .is_ok()
        })
        .collect();
    shared.received.lock().unwrap().push(Delivery {
        webhook_id: header("webhook-id"),
        timestamp: header("webhook-timestamp").parse().unwrap_or_default(),
        signature: header("webhook-signature"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        verified,
        at: Instant::now(),
    });
    let answer = shared.plan.lock().unwrap().pop_front();
    match answer {
        None => (StatusCode::OK, "ok").into_response(),
        Some(Answer::Status(code)) => {
            (StatusCode::from_u16(code).unwrap(), "planned failure").into_response()
        }
        Some(Answer::RetryAfter(code, seconds)) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", seconds.to_string())],
            "come back later",
        )
            .into_response(),
        Some(Answer::Hang(wait)) => {
            tokio::time::sleep(wait).await;
            (StatusCode::OK, "late").into_response()
        }
    }
}
