//! `vouch-origin serve | migrate | kv resync`.

use clap::Parser;
use vouch_origin::config::{Cli, Command, KvCommand};
use vouch_origin::journal::{JournalClient, JournalPublisher};
use vouch_origin::keys::{MasterKey, TokenSettings};
use vouch_origin::kv::{KvClient, Publisher};
use vouch_origin::webhooks::Dispatcher;
use vouch_origin::{app, store, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate(db) => {
            telemetry::init_tracing(false);
            let store = store::connect(&db.database_url).await?;
            tracing::info!(backend = store.backend(), "database schema is up to date");
            Ok(())
        }
        Command::Kv(KvCommand::Resync { database, kv }) => {
            telemetry::init_tracing(false);
            let target = kv.target().ok_or_else(|| {
                anyhow::anyhow!(
                    "set VOUCH_KV_ACCOUNT_ID, VOUCH_KV_NAMESPACE_ID and VOUCH_KV_API_TOKEN"
                )
            })?;
            let store = store::connect(&database.database_url).await?;
            let started = std::time::Instant::now();
            let marked = store.mark_all_kv_dirty(vouch_origin::clock::now()).await?;
            let publisher = Publisher::new(store, KvClient::new(&target)?);
            let written = publisher.drain().await?;
            println!(
                "resynced {marked} keys ({written} written) in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Serve(args) => {
            telemetry::init_tracing(args.log_json);
            let store = store::connect(&args.database.database_url).await?;
            let data_dir = args.data_dir();
            let (master_key, dev_key) =
                MasterKey::load_or_generate(args.master_key.as_deref(), &data_dir)?;
            if dev_key {
                tracing::warn!(
                    file = %data_dir.join(vouch_origin::keys::master::DEV_KEY_FILE).display(),
                    "VOUCH_MASTER_KEY is not set: signing keys are sealed with a development key kept in the data directory"
                );
            }
            let issuer = args
                .issuer
                .clone()
                .unwrap_or_else(|| format!("http://{}", args.listen));
            let jwks_base = args.edge_url.clone().unwrap_or_else(|| issuer.clone());
            let boot = app::Boot {
                admin_token: args.admin_token.clone(),
                master_key,
                tokens: TokenSettings {
                    jwks_uri: format!("{}/.well-known/jwks.json", jwks_base.trim_end_matches('/')),
                    // The lists are served where the JWKS is: the edge, else the origin's URL.
                    status_lists: vouch_origin::status_lists::StatusListSettings {
                        ttl_seconds: args.status_list_ttl_seconds,
                        ..vouch_origin::status_lists::StatusListSettings::new(jwks_base.clone())
                    },
                    issuer,
                    publish_ahead: std::time::Duration::from_secs(args.key_publish_ahead_seconds),
                },
            };
            let (mut state, platform) = app::bootstrap(store, boot).await?;
            state.webhooks = args.webhooks.settings();
            state.edge_url = args.edge_url.clone();
            state.streams = std::sync::Arc::new(vouch_origin::routes::events::StreamSlots::new(
                args.streams_per_org,
            ));
            let rates = args.rates.settings();
            tracing::info!(?rates, "rate limits (requests per second; 0 is off)");
            state.limits = std::sync::Arc::new(vouch_origin::rate_limit::RateLimits::new(rates));
            match platform {
                app::PlatformToken::Generated(token) => {
                    tracing::warn!("first start of this database: a platform admin token was generated and is printed once, below; no later start prints it");
                    println!("Platform admin token (shown once, at this first start only; store it now): {token}");
                }
                app::PlatformToken::Stored => tracing::info!(
                    "a platform admin token exists (it was printed at the first start and is never printed again); set VOUCH_ADMIN_TOKEN to use your own"
                ),
                app::PlatformToken::Missing => tracing::warn!(
                    "no platform admin token works: this database's first start was configured with VOUCH_ADMIN_TOKEN, which is no longer set (tokens are generated at the first start only); set VOUCH_ADMIN_TOKEN"
                ),
                app::PlatformToken::Configured => {}
            }
            match args.kv.target() {
                Some(target) => {
                    tracing::info!(api = %target.api_base, namespace = %target.namespace_id, "KV publisher on");
                    let publisher = Publisher::new(state.store.clone(), KvClient::new(&target)?);
                    tokio::spawn(publisher.run());
                    state.kv = true;
                }
                None => tracing::warn!(
                    "KV publisher off: set VOUCH_KV_ACCOUNT_ID, VOUCH_KV_NAMESPACE_ID and VOUCH_KV_API_TOKEN; changes wait in the outbox"
                ),
            }
            match (&args.edge_url, &args.edge_secret) {
                (Some(edge), Some(secret)) => {
                    tracing::info!(edge = %edge, "status journal publisher on");
                    let publisher =
                        JournalPublisher::new(state.store.clone(), JournalClient::new(edge, secret)?)
                            .with_settle(std::time::Duration::from_secs(args.journal_settle_seconds));
                    tokio::spawn(publisher.run());
                    let collector =
                        vouch_origin::receipts::ReceiptCollector::new(state.store.clone(), edge, secret)?;
                    tokio::spawn(collector.run());
                    state.journal = true;
                }
                _ => tracing::warn!(
                    "status journal publisher and receipt collector off: set VOUCH_EDGE_URL and VOUCH_EDGE_SECRET; edges learn of suspensions only through KV (60 s or more), and no receipts are collected"
                ),
            }
            if state.webhooks.allow_private {
                tracing::warn!("VOUCH_WEBHOOK_ALLOW_PRIVATE is on: webhooks may reach loopback and private addresses");
            }
            let lists = vouch_origin::status_lists::StatusListBuilder::new(
                state.store.clone(),
                state.keys.clone(),
            );
            tokio::spawn(lists.run(state.stopping.subscribe()));
            let sealer = vouch_origin::audit::Sealer::new(state.store.clone(), state.audit.clone());
            tokio::spawn(sealer.run(state.stopping.subscribe()));
            let sender = Dispatcher::new(
                state.store.clone(),
                state.keys.clone(),
                state.webhooks.clone(),
            )?;
            let sending = tokio::spawn(sender.run(state.stopping.subscribe()));
            let listener = tokio::net::TcpListener::bind(args.listen).await?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, backend = state.store.backend(), "origin listening");
            println!("Vouch origin listening on http://{addr}");
            let drain = state.webhooks.timeout + std::time::Duration::from_secs(1);
            let served = app::serve(listener, state).await;
            // Let attempts in flight finish and be recorded (a lease covers any that do not).
            let _ = tokio::time::timeout(drain, sending).await;
            served
        }
    }
}
