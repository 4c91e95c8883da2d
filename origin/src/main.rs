//! `vouch-origin serve | migrate`.

use clap::Parser;
use vouch_origin::config::{Cli, Command};
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
        Command::Serve(args) => {
            telemetry::init_tracing(args.log_json);
            let store = store::connect(&args.database.database_url).await?;
            let (state, generated) = app::bootstrap(store, args.admin_token.as_deref()).await?;
            if let Some(token) = generated {
                println!("Platform admin token (shown once, store it now): {token}");
            } else if args.admin_token.is_none() {
                tracing::info!("platform admin token exists (it was printed at first start); set VOUCH_ADMIN_TOKEN to use your own");
            }
            let listener = tokio::net::TcpListener::bind(args.listen).await?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, backend = state.store.backend(), "origin listening");
            println!("Vouch origin listening on http://{addr}");
            app::serve(listener, state).await
        }
    }
}
