//! Command line and environment of `vouch-origin` (flags win over environment variables).

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vouch-origin",
    version,
    about = "The Vouch origin: admin API over SQLite or PostgreSQL"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API.
    Serve(Box<ServeArgs>),
    /// Create or upgrade the database schema, then exit.
    Migrate(DatabaseArgs),
    /// Workers KV maintenance.
    #[command(subcommand)]
    Kv(KvCommand),
}

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Rewrite every key in KV from the database, then exit.
    Resync {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        kv: KvArgs,
    },
}

/// Where the KV publisher writes (the Cloudflare KV REST API, or the local edge's).
#[derive(Debug, Clone, Args)]
pub struct KvArgs {
    #[arg(
        long,
        env = "VOUCH_KV_API_BASE",
        default_value = "https://api.cloudflare.com/client/v4"
    )]
    pub kv_api_base: String,
    #[arg(long, env = "VOUCH_KV_ACCOUNT_ID")]
    pub kv_account_id: Option<String>,
    #[arg(long, env = "VOUCH_KV_NAMESPACE_ID")]
    pub kv_namespace_id: Option<String>,
    #[arg(long, env = "VOUCH_KV_API_TOKEN", hide_env_values = true)]
    pub kv_api_token: Option<String>,
}

impl KvArgs {
    /// The target, when account, namespace and token are all set.
    pub fn target(&self) -> Option<crate::kv::KvTarget> {
        Some(crate::kv::KvTarget {
            api_base: self.kv_api_base.clone(),
            account_id: self.kv_account_id.clone()?,
            namespace_id: self.kv_namespace_id.clone()?,
            api_token: self.kv_api_token.clone()?,
        })
    }
}

/// How webhooks are delivered.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Allow webhook URLs on loopback, private, link-local and other non-public addresses, and
    /// plain http (development and tests; never on a shared network).
    #[arg(long, env = "VOUCH_WEBHOOK_ALLOW_PRIVATE", default_value_t = false)]
    pub webhook_allow_private: bool,
    /// How long one delivery attempt may take, in milliseconds.
    #[arg(long, env = "VOUCH_WEBHOOK_TIMEOUT_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub webhook_timeout_ms: u64,
    /// The first retry delay in milliseconds; each retry doubles it (up to 2880 times it).
    /// The default (10 s, 18 attempts) retries for more than a day; tests shorten it.
    #[arg(long, env = "VOUCH_WEBHOOK_RETRY_BASE_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub webhook_retry_base_ms: u64,
    /// Attempts per delivery before it fails (and, if nothing got through meanwhile, the
    /// subscription is disabled).
    #[arg(long, env = "VOUCH_WEBHOOK_MAX_ATTEMPTS", default_value_t = 18,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub webhook_max_attempts: u32,
    /// Days that settled deliveries and their attempts are kept in the delivery log.
    #[arg(long, env = "VOUCH_WEBHOOK_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3_650))]
    pub webhook_retention_days: u64,
}

impl WebhookArgs {
    pub fn settings(&self) -> crate::webhooks::WebhookSettings {
        crate::webhooks::WebhookSettings {
            allow_private: self.webhook_allow_private,
            timeout: std::time::Duration::from_millis(self.webhook_timeout_ms),
            retry_base: std::time::Duration::from_millis(self.webhook_retry_base_ms),
            max_attempts: self.webhook_max_attempts,
            retention: std::time::Duration::from_secs(self.webhook_retention_days * 24 * 3_600),
        }
    }
}

/// Rate limits, in requests per second per key (bursts of twice the rate; `0` turns one off).
#[derive(Debug, Clone, Args)]
pub struct RateArgs {
    /// `POST /oauth/token`, per credential presented (client secret or actor token).
    #[arg(long, env = "VOUCH_RATE_TOKEN_PER_CREDENTIAL",
          default_value_t = crate::rate_limit::RateSettings::TOKEN_PER_CREDENTIAL)]
    pub rate_token_per_credential: u32,
    /// `POST /oauth/token`, per client address.
    #[arg(long, env = "VOUCH_RATE_TOKEN_PER_ADDRESS",
          default_value_t = crate::rate_limit::RateSettings::TOKEN_PER_ADDRESS)]
    pub rate_token_per_address: u32,
    /// The admin API (`/v1/…`), per credential (admin token or agent key).
    #[arg(long, env = "VOUCH_RATE_ADMIN_PER_CREDENTIAL",
          default_value_t = crate::rate_limit::RateSettings::ADMIN_PER_CREDENTIAL)]
    pub rate_admin_per_credential: u32,
    /// The admin API (`/v1/…`), per client address.
    #[arg(long, env = "VOUCH_RATE_ADMIN_PER_ADDRESS",
          default_value_t = crate::rate_limit::RateSettings::ADMIN_PER_ADDRESS)]
    pub rate_admin_per_address: u32,
    /// Count the rightmost `X-Forwarded-For` address instead of the TCP peer (only behind a
    /// proxy that sets the header).
    #[arg(long, env = "VOUCH_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,
}

impl RateArgs {
    pub fn settings(&self) -> crate::rate_limit::RateSettings {
        crate::rate_limit::RateSettings {
            token_per_credential: self.rate_token_per_credential,
            token_per_address: self.rate_token_per_address,
            admin_per_credential: self.rate_admin_per_credential,
            admin_per_address: self.rate_admin_per_address,
            trust_forwarded_for: self.trust_forwarded_for,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://path` (created if missing) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://vouch.db")]
    pub database_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VOUCH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Platform admin token (at least 32 characters). Unset: the first start generates one
    /// and prints it once.
    #[arg(long, env = "VOUCH_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// 32 bytes, base64, that encrypt the signing keys at rest. Unset: a development key is
    /// generated into the data directory (with a warning).
    #[arg(long, env = "VOUCH_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// Where a development master key is kept. Default: beside the SQLite file, or the
    /// working directory with Postgres.
    #[arg(long, env = "VOUCH_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// `iss` of every token and the base of the token endpoint. Default: http://<listen address>.
    #[arg(long, env = "VOUCH_ISSUER")]
    pub issuer: Option<String>,
    /// The edge's base URL; discovery points verifiers at its JWKS. Default: the origin's.
    #[arg(long, env = "VOUCH_EDGE_URL")]
    pub edge_url: Option<String>,
    /// The secret the edge's `POST /internal/journal` expects (the worker's `VOUCH_EDGE_SECRET`).
    /// With `VOUCH_EDGE_URL`, it turns the status journal publisher on.
    #[arg(long, env = "VOUCH_EDGE_SECRET", hide_env_values = true)]
    pub edge_secret: Option<String>,
    /// How long KV must have held a change before the journal may drop it (at least 120: KV
    /// takes up to a minute to reach every location, and edges cache reads for 30 s).
    #[arg(long, env = "VOUCH_JOURNAL_SETTLE_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(120..))]
    pub journal_settle_seconds: u64,
    /// How long a new signing key is in the JWKS before it may sign (at least 120, for the same
    /// reason): a rotation sooner than that after the last one is scheduled, not immediate.
    #[arg(long, env = "VOUCH_KEY_PUBLISH_AHEAD_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(120..))]
    pub key_publish_ahead_seconds: u64,
    /// The `ttl` of the token status lists (SPEC §16), in seconds: how long a verifier may keep
    /// a copy. At most 15, the deployed propagation bound; lists are rebuilt every `ttl / 2`.
    #[arg(long, env = "VOUCH_STATUS_LIST_TTL_SECONDS",
          default_value_t = crate::status_lists::StatusListSettings::DEFAULT_TTL_SECONDS,
          value_parser = clap::value_parser!(u64).range(1..=15))]
    pub status_list_ttl_seconds: u64,
    /// Live event streams all credentials of one org may hold open on this origin at a time
    /// (each credential: at most 5).
    #[arg(long, env = "VOUCH_STREAMS_PER_ORG", default_value_t = crate::routes::events::DEFAULT_STREAMS_PER_ORG,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub streams_per_org: u32,
    #[command(flatten)]
    pub rates: RateArgs,
    #[command(flatten)]
    pub kv: KvArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "VOUCH_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
}

impl ServeArgs {
    /// The data directory: as configured, else the SQLite file's folder, else `.`.
    pub fn data_dir(&self) -> std::path::PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        self.database
            .database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database.database_url.strip_prefix("sqlite:"))
            .map(|path| path.split('?').next().unwrap_or(path))
            .and_then(|path| {
                std::path::Path::new(path)
                    .parent()
                    .map(std::path::Path::to_path_buf)
            })
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or_else(|| std::path::PathBuf::from("."))
    }
}
