//! The router, its state, bootstrap of the platform admin token, and the server loop.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::get;
use axum::{middleware, Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vouch_core::EventType;

use crate::audit::AuditLog;
use crate::error::Error;
use crate::extract::BODY_LIMIT;
use crate::keys::{Keys, MasterKey, TokenSettings};
use crate::rate_limit;
use crate::routes::{
    agent_events, agents, audit, delegations, events, oap, oauth, ops, orgs, partners, receipts,
    status_lists, webhooks, wellknown,
};
use crate::secrets;
use crate::store::{ChangeEvent, Role, Store};
use crate::telemetry;
use crate::webhooks::WebhookSettings;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// SHA-256 of `VOUCH_ADMIN_TOKEN`, when configured.
    pub platform_token_hash: Option<String>,
    pub metrics: PrometheusHandle,
    pub keys: Arc<Keys>,
    /// The audit log's key; audit reads seal what is pending first.
    pub audit: Arc<AuditLog>,
    /// A journal publisher runs: `?wait=propagated` can be honoured.
    pub journal: bool,
    /// How webhooks are checked and delivered.
    pub webhooks: WebhookSettings,
    /// Turns true when the origin shuts down: live streams end so the server can drain.
    pub stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Live event streams open on this origin, per credential.
    pub streams: Arc<crate::routes::events::StreamSlots>,
    /// Rate limits of the token endpoint and the admin API (off unless `serve` sets them).
    pub limits: Arc<crate::rate_limit::RateLimits>,
    /// The public edge (`VOUCH_EDGE_URL`), for the console's links to public pages.
    pub edge_url: Option<String>,
    /// A KV publisher runs (the console waits for it after a status change).
    pub kv: bool,
}

/// What the origin needs besides its database to start.
pub struct Boot {
    /// `VOUCH_ADMIN_TOKEN`; `None`: generate one at first start.
    pub admin_token: Option<String>,
    pub master_key: MasterKey,
    pub tokens: TokenSettings,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Vouch origin API", description = "The admin API of the Vouch agent registry (SPEC §4)."),
    modifiers(&SecuritySchemes),
    tags(
        (name = "orgs", description = "Organizations and admin tokens"),
        (name = "agents", description = "Agent passports and their lifecycle"),
        (name = "audit", description = "The audit log: a Merkle log per org, signed checkpoints, proofs"),
        (name = "tokens", description = "Token endpoint, signing keys, discovery"),
        (name = "delegations", description = "Agent-to-agent delegation grants"),
        (name = "webhooks", description = "Webhook subscriptions, deliveries and the live event stream"),
        (name = "partners", description = "Partners: the verifiers calling the edge, and their keys (platform admin)"),
        (name = "operations", description = "Health and metrics"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, about) in [
            ("admin_token", "vk_admin_… (platform or org token)"),
            ("agent_key", "vk_agent_… (the agent's API key)"),
            (
                "agent_token",
                "JWT (an access token of the agent, from /oauth/token)",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format(about)
                        .build(),
                ),
            );
        }
    }
}

/// The whole HTTP surface of the origin.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(orgs::create_org))
        .routes(routes!(orgs::get_org))
        .routes(routes!(orgs::create_token))
        .routes(routes!(orgs::revoke_token))
        .routes(routes!(orgs::freeze))
        .routes(routes!(orgs::unfreeze))
        .routes(routes!(orgs::whoami))
        .routes(routes!(agents::register_agent, agents::list_agents))
        .routes(routes!(agents::get_agent, agents::patch_agent))
        .routes(routes!(agents::set_status))
        .routes(routes!(agents::rotate_key))
        .routes(routes!(agents::revoke_tokens))
        .routes(routes!(agents::agent_events, agent_events::emit))
        .routes(routes!(agents::heartbeat))
        .routes(routes!(receipts::list))
        .routes(routes!(oap::import_oap))
        .routes(routes!(oap::export_oap))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::verify_audit))
        .routes(routes!(audit::checkpoint))
        .routes(routes!(audit::event_proof))
        .routes(routes!(audit::consistency))
        .routes(routes!(delegations::create, delegations::list))
        .routes(routes!(delegations::get, delegations::revoke))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(partners::create, partners::list))
        .routes(routes!(partners::get, partners::revoke))
        .routes(routes!(partners::rotate_key))
        .routes(routes!(events::stream))
        .routes(routes!(oauth::token))
        .routes(routes!(wellknown::jwks))
        .routes(routes!(wellknown::discovery))
        .routes(routes!(status_lists::get))
        .routes(routes!(wellknown::rotate))
        .routes(routes!(wellknown::list))
        .routes(routes!(wellknown::withdraw))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .split_for_parts();
    let openapi = Arc::new(crate::openapi::document(&openapi));
    let request_id = HeaderName::from_static("x-request-id");
    api.merge(crate::console::router())
        .route(
        "/openapi.json",
        get(move || {
            let doc = openapi.clone();
            async move { Json(doc) }
        }),
    )
    .route_layer(middleware::from_fn(telemetry::track_requests))
    .layer(middleware::from_fn_with_state(state.clone(), rate_limit::layer))
    .fallback(|| async {
        Error::NotFound {
            code: "not_found",
            message: "no such endpoint".into(),
        }
    })
    .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
    .layer(DefaultBodyLimit::max(BODY_LIMIT))
    .layer(
        TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
        }),
    )
    .layer(PropagateRequestIdLayer::new(request_id.clone()))
    .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
    .with_state(state)
}

/// The platform admin token, as a start found it.
#[derive(Debug, PartialEq, Eq)]
pub enum PlatformToken {
    /// `VOUCH_ADMIN_TOKEN` is the platform's token.
    Configured,
    /// The database's first start generated this token: print it now, once. No later start
    /// prints one.
    Generated(String),
    /// The token generated at the first start is stored (it was printed then).
    Stored,
    /// No platform token works: the first start had `VOUCH_ADMIN_TOKEN` (or a configured one
    /// replaced the generated one), and it is no longer set.
    Missing,
}

/// Makes sure a signing key exists and settles the platform admin token: with
/// `boot.admin_token` (`VOUCH_ADMIN_TOKEN`) that token is the platform's (and a generated one
/// stops working); without it, the database's first start — and only that one — generates a
/// token, stores its hash, and returns it to print once.
pub async fn bootstrap(
    store: Arc<dyn Store>,
    boot: Boot,
) -> anyhow::Result<(AppState, PlatformToken)> {
    let metrics = telemetry::metrics_handle();
    let keys = Keys::start(store.clone(), boot.master_key, boot.tokens).await?;
    // After the token key: a new platform chain opens with `signing_key.created`.
    let audit = AuditLog::start(store.clone(), keys.master(), &keys.settings.issuer).await?;
    let at = crate::clock::now();
    let (platform_token_hash, platform) = match boot.admin_token {
        Some(token) => {
            if token.len() < 32 {
                anyhow::bail!("VOUCH_ADMIN_TOKEN must be at least 32 characters");
            }
            // The configured token replaces a generated one: that one stops working.
            let event = ChangeEvent::new(
                "platform",
                None,
                EventType::TokenRevoked,
                "token",
                "platform",
                0,
                serde_json::json!({ "reason": "VOUCH_ADMIN_TOKEN is configured" }),
                at,
            );
            if store.revoke_platform_tokens(&event).await? > 0 {
                tracing::warn!("VOUCH_ADMIN_TOKEN is set: the platform token generated at first start no longer works");
            }
            store.record_first_start(at, None).await?;
            (Some(secrets::hash(&token)), PlatformToken::Configured)
        }
        None => {
            let (token, secret, event) =
                orgs::new_token("platform", None, Role::Platform, "bootstrap".into(), at);
            let hash = secrets::hash(&secret);
            let platform = if store
                .record_first_start(at, Some((&token, &hash, &event)))
                .await?
            {
                PlatformToken::Generated(secret)
            } else if store.platform_token_exists().await? {
                PlatformToken::Stored
            } else {
                PlatformToken::Missing
            };
            (None, platform)
        }
    };
    let state = AppState {
        store,
        platform_token_hash,
        metrics,
        keys,
        audit,
        journal: false,
        webhooks: WebhookSettings::default(),
        stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
        streams: Arc::default(),
        limits: Arc::default(),
        edge_url: None,
        kv: false,
    };
    Ok((state, platform))
}

/// Serves until Ctrl-C or SIGTERM, then drains in-flight requests (live event streams end,
/// and `state.stopping` tells background workers to finish).
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> anyhow::Result<()> {
    let stopping = state.stopping.clone();
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        stopping.send_replace(true);
    })
    .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
