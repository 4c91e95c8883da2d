//! The command line of `vouch`: global flags and every subcommand.

use clap::{Args, Parser, Subcommand, ValueEnum};
use vouch_core::Status;

/// Admin CLI for the Vouch agent registry.
///
/// Talks to a Vouch origin (`vouch-origin serve`) over its REST API with an admin token:
/// the platform token or an org token (`vk_admin_…`).
///
/// Exit codes: 0 success, 1 the API refused the request, 2 usage error (bad flags, unreadable
/// input file, no token), 3 the origin cannot be reached, 4 `audit verify` found a broken chain,
/// 5 `apply --detect-changes` found changes to make.
#[derive(Debug, Parser)]
#[command(name = "vouch", version, propagate_version = true)]
pub struct Cli {
    /// Base URL of the Vouch origin.
    #[arg(
        long,
        global = true,
        env = "VOUCH_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub url: String,

    /// Admin token (`vk_admin_…`): the platform admin token or an org token.
    #[arg(
        long,
        global = true,
        env = "VOUCH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// Print the raw JSON response body (pretty-printed) instead of tables, for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Organizations (platform admin).
    #[command(subcommand)]
    Orgs(OrgsCommand),
    /// An organization's admin tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Agent passports and their lifecycle.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Delegation grants between agents.
    #[command(subcommand)]
    Delegations(DelegationsCommand),
    /// Token-signing keys (platform admin).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Webhook subscriptions and their deliveries.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Partners: the verifiers calling the edge with their own keys (platform admin).
    #[command(subcommand)]
    Partners(PartnersCommand),
    /// The live event stream.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Exchange an agent's API key for a short-lived access token (for scripts and demos).
    Token(TokenArgs),
    /// Make the registry match a file of agents, delegations and webhooks (registry as code).
    Apply(ApplyArgs),
    /// Receipts: committed decisions, signed by the edge (SPEC §12).
    #[command(subcommand)]
    Receipts(ReceiptsCommand),
    /// Print a new Ed25519 decision key (a private JWK) for the edge's `VOUCH_DECISION_KEY`
    /// secret: `vouch decision-key | npx wrangler secret put VOUCH_DECISION_KEY`.
    DecisionKey,
}

#[derive(Debug, Subcommand)]
pub enum ReceiptsCommand {
    /// An agent's receipts (its committed decisions, signed), newest first.
    List {
        /// `ap_…`
        agent_id: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Check signed decisions offline against the edge's published decision keys; exits 4 when
    /// one does not verify. FILE holds one decision, an array of them, a `receipts list
    /// --json` page or a batch answer (`-`: standard input).
    #[command(after_help = "Examples:
  vouch receipts verify receipt.json --edge https://edge.example.com
  vouch receipts list ap_… --json | vouch receipts verify - --jwks jwks.json")]
    Verify {
        #[arg(value_name = "FILE")]
        file: String,
        /// The decision keys: a JWK Set file, or an http(s) URL. Default: the edge's
        /// `/.well-known/oap/jwks.json` (`--edge`).
        #[arg(long, value_name = "FILE_OR_URL")]
        jwks: Option<String>,
        /// The edge whose published decision keys to use.
        #[arg(long, env = "VOUCH_EDGE_URL", value_name = "URL")]
        edge: Option<String>,
    },
}

/// `vouch apply`: the file's format, the plan and the exit codes are in
/// docs/registry-as-code.md.
///
/// Plans the difference between the file and the org, prints it (`+` create, `~` change, `-`
/// revoke or delete) and applies it: only the differences, each update under `If-Match` with
/// the version the plan read. A second run finds nothing to do. Exit codes: 0 no change or
/// applied, 1 the API refused a change (412: someone changed an agent since the plan), 2 a bad
/// file, 5 changes found with `--detect-changes`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vouch apply -f agents.yaml --plan               # print the plan, change nothing
  vouch apply -f agents.yaml --secrets-out keys.jsonl
  vouch apply -f agents.yaml --detect-changes     # CI drift check: exit 5 on changes
  vouch apply -f agents.yaml --plan --out plan.json && vouch apply --from-plan plan.json")]
pub struct ApplyArgs {
    /// The registry file (YAML or JSON; `-` reads standard input).
    #[arg(
        short = 'f',
        long,
        value_name = "FILE",
        required_unless_present = "from_plan",
        conflicts_with = "from_plan"
    )]
    pub file: Option<String>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub plan: bool,
    /// With `--plan`: also save the plan to this file, for `--from-plan`.
    #[arg(long, value_name = "PLAN_FILE", requires = "plan")]
    pub out: Option<String>,
    /// Apply a plan saved with `--plan --out` exactly as it is (each agent change still under
    /// `If-Match`: a change made since is refused, not overwritten).
    #[arg(long, value_name = "PLAN_FILE")]
    pub from_plan: Option<String>,
    /// Also revoke the agents and grants, and delete the webhooks, that the file no longer
    /// names (without it they are left as they are, and the plan lists them).
    #[arg(long, conflicts_with = "from_plan")]
    pub prune: bool,
    /// Plan only, and exit 5 when there is anything to change (drift detection in CI).
    #[arg(long)]
    pub detect_changes: bool,
    /// Append the secrets of created agents and webhooks to this file (created 0600, one JSON
    /// object per line) instead of printing them once.
    #[arg(long, value_name = "FILE")]
    pub secrets_out: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DelegationsCommand {
    /// Let one agent act for another within some of its capabilities.
    Create {
        /// The agent granting its authority (`ap_…`).
        #[arg(long)]
        delegator: String,
        /// The agent receiving it (`ap_…`).
        #[arg(long)]
        delegatee: String,
        /// A capability id of the delegator; repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime in seconds (60 to 86400).
        #[arg(long, default_value_t = 3600)]
        ttl_seconds: i64,
        /// How many hops the chain may take from this grant on.
        #[arg(long, default_value_t = 1)]
        max_depth: i64,
    },
    /// Show one grant.
    Show {
        #[arg(value_name = "DELEGATION_ID")]
        delegation_id: String,
    },
    /// Revoke a grant: tokens resting on it stop working at the edge.
    Revoke {
        #[arg(value_name = "DELEGATION_ID")]
        delegation_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PartnersCommand {
    /// Register a partner; its key (`vk_partner_…`) is shown once.
    Create {
        /// Display name, e.g. "Acme Payments".
        #[arg(long)]
        name: String,
        /// Who answers for the partner's use of the edge, e.g. security@acme-payments.example.
        #[arg(long)]
        contact: String,
    },
    /// List partners, newest first.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one partner.
    Show {
        /// `pt_…`
        #[arg(value_name = "PARTNER_ID")]
        partner_id: String,
    },
    /// Revoke a partner: its key is refused at every edge within seconds, for good.
    Revoke {
        /// `pt_…`
        #[arg(value_name = "PARTNER_ID")]
        partner_id: String,
    },
    /// Give a partner a new key (shown once); the old one is refused within seconds.
    Rotate {
        /// `pt_…`
        #[arg(value_name = "PARTNER_ID")]
        partner_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Subscribe a URL to events; the signing secret (`whsec_…`) is shown once.
    Create {
        /// Where to POST events (https; http and private addresses only if the origin allows
        /// them). A positional argument: `--url` is the origin's address.
        #[arg(value_name = "URL")]
        endpoint: String,
        /// An event type to receive, e.g. `agent.suspended` (repeat for several; default: all).
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// A note for humans.
        #[arg(long)]
        description: Option<String>,
        /// The organization (`org_…`); required with the platform token, implied by an org token.
        #[arg(long, value_name = "ORG_ID")]
        org: Option<String>,
    },
    /// List subscriptions, newest first.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one subscription.
    Show {
        #[arg(value_name = "WEBHOOK_ID")]
        webhook_id: String,
    },
    /// Delete a subscription: nothing more is sent to it.
    Delete {
        #[arg(value_name = "WEBHOOK_ID")]
        webhook_id: String,
    },
    /// Enable a subscription again (after it was disabled for failing, or by hand).
    Enable {
        #[arg(value_name = "WEBHOOK_ID")]
        webhook_id: String,
    },
    /// Pause a subscription: events are not queued for it until it is enabled.
    Disable {
        #[arg(value_name = "WEBHOOK_ID")]
        webhook_id: String,
    },
    /// Rotate the signing secret; the old one keeps signing beside it for the grace period.
    RotateSecret {
        #[arg(value_name = "WEBHOOK_ID")]
        webhook_id: String,
        /// Seconds the previous secret stays valid (0 to 604800; the API's default is 86400).
        #[arg(long, value_name = "SECONDS")]
        grace_period_seconds: Option<i64>,
    },
    /// A subscription's deliveries and their attempts, newest first.
    Deliveries {
        #[arg(value_name = "WEBHOOK_ID")]
        webhook_id: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Send an event to a subscription again, now (same `webhook-id`).
    Redeliver {
        #[arg(value_name = "WEBHOOK_ID")]
        webhook_id: String,
        /// The event (`evt_…`), as listed by `deliveries`.
        #[arg(value_name = "EVENT_ID")]
        event_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Follow events as they happen (Server-Sent Events), reconnecting where it left off.
    Tail {
        /// Only this event type, e.g. `agent.suspended` (repeat for several).
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
        /// Start after this event id (`0`: from the first event); default: from now on.
        #[arg(long, value_name = "ID")]
        last_event_id: Option<String>,
        /// Stop after this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make the standby key sign (every edge already has it) and publish a new standby; the old
    /// key stays published until its tokens expire.
    Rotate,
    /// The signing keys and where each stands (standby, scheduled, signing, retired, withdrawn).
    List,
    /// Withdraw a key at once (a leak): out of the JWKS, its tokens refused everywhere within
    /// seconds; if it was signing, a key every edge knows takes over.
    Withdraw {
        /// The key's `kid`.
        #[arg(value_name = "KID")]
        kid: String,
        /// Why (for the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The agent (`ap_…`).
    #[arg(long, env = "VOUCH_AGENT_ID", value_name = "AGENT_ID")]
    pub agent: String,
    /// The agent's API key (`vk_agent_…`).
    #[arg(
        long,
        env = "VOUCH_AGENT_KEY",
        hide_env_values = true,
        value_name = "API_KEY"
    )]
    pub api_key: String,
    /// Space-separated capability ids (default: all of the agent's).
    #[arg(long)]
    pub scope: Option<String>,
    /// The token's audience.
    #[arg(long)]
    pub audience: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Create an organization (needs the platform admin token).
    Create {
        /// Display name, e.g. "Acme Corp".
        #[arg(long)]
        name: String,
        /// Lowercase letters, digits and dashes, 2 to 63 characters; fixed once created.
        #[arg(long)]
        slug: String,
    },
    /// Show one organization.
    Show {
        /// `org_…`
        #[arg(value_name = "ORG_ID")]
        org_id: String,
    },
    /// Freeze the whole org (the emergency brake): every active agent suspended and its grants
    /// revoked in one call; every edge refuses them within seconds.
    Freeze {
        /// `org_…`
        #[arg(value_name = "ORG_ID")]
        org_id: String,
        /// Why (shown by the edge as each agent's reason).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a freeze: the agents it suspended are active again (their grants stay revoked).
    Unfreeze {
        /// `org_…`
        #[arg(value_name = "ORG_ID")]
        org_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an admin token for an organization; its secret is shown once.
    Create {
        /// The organization (`org_…`).
        #[arg(long, value_name = "ORG_ID")]
        org: String,
        /// What the token may do.
        #[arg(long, value_enum)]
        role: TokenRole,
        /// A label for the token, e.g. "ci deploys".
        #[arg(long)]
        name: String,
    },
    /// Revoke an organization's admin token: it stops working at once.
    Revoke {
        /// The organization (`org_…`).
        #[arg(long, value_name = "ORG_ID")]
        org: String,
        /// The token (`tok_…`).
        #[arg(value_name = "TOKEN_ID")]
        token_id: String,
    },
}

/// The role of a new org token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokenRole {
    /// Everything in the org, including creating tokens.
    Owner,
    /// The org's agents.
    Admin,
    /// Read only.
    Viewer,
}

impl TokenRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Owner => "owner",
            TokenRole::Admin => "admin",
            TokenRole::Viewer => "viewer",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Register an agent from a passport file or from flags; its API key is shown once.
    Register(RegisterArgs),
    /// List agents, newest first.
    List(ListArgs),
    /// Show one passport.
    Show {
        /// `ap_…`
        #[arg(value_name = "AGENT_ID")]
        agent_id: String,
    },
    /// Change mutable fields with a JSON merge patch (RFC 7396).
    Update {
        /// `ap_…`
        #[arg(value_name = "AGENT_ID")]
        agent_id: String,
        /// The merge patch (`-` reads standard input).
        #[arg(long, value_name = "PATH")]
        file: String,
        /// Apply only if the agent is still at this version (sends `If-Match: "VERSION"`).
        #[arg(long, value_name = "VERSION")]
        if_match: Option<String>,
    },
    /// Activate an agent (draft or suspended → active).
    Activate(StatusArgs),
    /// Suspend an active agent: every edge refuses it within seconds.
    Suspend(StatusArgs),
    /// Revoke an agent for good (terminal; its keys, tokens and delegations stop working).
    Revoke(StatusArgs),
    /// Kill every token the agent holds now (a leak): edges refuse them within seconds, and
    /// every delegated token naming the agent. Rotate its API key too if that leaked.
    RevokeTokens {
        /// `ap_…`
        #[arg(value_name = "AGENT_ID")]
        agent_id: String,
        /// Why (for the audit log and webhooks).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Rotate the agent's API key: the new one is shown once, the old one dies at once.
    RotateKey {
        /// `ap_…`
        #[arg(value_name = "AGENT_ID")]
        agent_id: String,
    },
    /// Import an Open Agent Passport 1.0 document (its `passport_id` is kept); the API key is
    /// shown once.
    Import {
        /// The OAP passport JSON (`-` reads standard input).
        #[arg(long, value_name = "FILE")]
        oap: String,
        /// The organization (`org_…`); required with the platform token.
        #[arg(long, value_name = "ORG_ID")]
        org: Option<String>,
    },
    /// Print a passport as an Open Agent Passport 1.0 document.
    Export {
        /// Export in OAP 1.0 (the only format).
        #[arg(long, required = true)]
        oap: bool,
        /// `ap_…`
        #[arg(value_name = "AGENT_ID")]
        agent_id: String,
    },
    /// The agent's audit events, newest first.
    Events {
        /// `ap_…`
        #[arg(value_name = "AGENT_ID")]
        agent_id: String,
        #[command(flatten)]
        page: PageArgs,
    },
}

/// `agents register`: a passport file, or the passport built from flags.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Read the passport JSON from this file (`-` reads standard input). `--org` and
    /// `--status` may be given with it and override the file's values.
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with_all = [
            "name", "owner_name", "owner_contact", "role", "description", "capabilities",
            "regions", "assurance_level", "tier",
        ]
    )]
    pub file: Option<String>,
    /// The organization (`org_…`); required with the platform token, implied by an org token.
    #[arg(long, value_name = "ORG_ID")]
    pub org: Option<String>,
    /// The agent's name, unique in its org (immutable).
    #[arg(long, required_unless_present = "file")]
    pub name: Option<String>,
    /// Who answers for the agent (immutable), e.g. "Acme Support Team".
    #[arg(long, value_name = "NAME", required_unless_present = "file")]
    pub owner_name: Option<String>,
    /// How to reach the owner (immutable): an email address or URL.
    #[arg(long, value_name = "CONTACT", required_unless_present = "file")]
    pub owner_contact: Option<String>,
    /// The agent's job, e.g. "Tier-2 Support".
    #[arg(long)]
    pub role: Option<String>,
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
    /// A capability id such as `payments.refund` (repeat for several).
    #[arg(long = "capability", value_name = "ID")]
    pub capabilities: Vec<String>,
    /// A region: ISO 3166-1 alpha-2 or 3166-2 code, or `*` (repeat for several).
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// How strongly the operator was verified.
    #[arg(long, value_name = "LEVEL", value_parser = ["L0", "L1", "L2", "L3"])]
    pub assurance_level: Option<String>,
    /// Service tier.
    #[arg(long, value_parser = ["sandbox", "standard", "privileged"])]
    pub tier: Option<String>,
    /// Starting status: `draft` (the API's default) or `active`.
    #[arg(long, value_parser = parse_initial_status)]
    pub status: Option<Status>,
}

/// `agents list` filters.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only agents in this status.
    #[arg(long, value_parser = parse_status)]
    pub status: Option<Status>,
    /// Only agents holding this capability id.
    #[arg(long, value_name = "ID")]
    pub capability: Option<String>,
    /// Only agents allowed in this region.
    #[arg(long)]
    pub region: Option<String>,
    /// Only agents whose name contains this text (case-insensitive).
    #[arg(long)]
    pub q: Option<String>,
    /// Only this organization's agents (platform admin).
    #[arg(long, value_name = "ORG_ID")]
    pub org: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

/// `?limit=` and `?cursor=` of a list.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Page size, 1 to 500 (the API's default is 50).
    #[arg(long)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

/// `agents activate|suspend|revoke`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// `ap_…`
    #[arg(value_name = "AGENT_ID")]
    pub agent_id: String,
    /// Why (kept as `status_reason`, shown by the edge to partners).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log against its last published checkpoint; exits 4 when it does not
    /// verify. Every event's leaf is recomputed, the Merkle tree rebuilt, its root compared with
    /// the published checkpoint and the origin's newest one, and the origin's consistency proof
    /// between the two checked.
    Verify {
        /// The org whose chain to check (platform admin; absent: the platform's own chain,
        /// or the token's org for an org token).
        #[arg(long, value_name = "ORG_ID")]
        org: Option<String>,
        /// The published checkpoint to check against: a file, or an http(s) URL. Default: the
        /// edge's (`--edge`).
        #[arg(long, value_name = "FILE_OR_URL")]
        checkpoint: Option<String>,
        /// The edge that serves published checkpoints (`GET /audit/{chain_id}/checkpoint`).
        #[arg(long, env = "VOUCH_EDGE_URL", value_name = "URL")]
        edge: Option<String>,
        /// The log's verifier key (`<name>+<id>+<key>`), pinned. Default: the one the origin
        /// names, which proves less (an origin that lies can name another).
        #[arg(long, env = "VOUCH_AUDIT_KEY", value_name = "VERIFIER_KEY")]
        key: Option<String>,
    },
    /// Audit events, newest first.
    List {
        /// The org whose log to read (platform admin; absent: the platform's own log, or the
        /// token's org for an org token).
        #[arg(long, value_name = "ORG_ID")]
        org: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
}

fn parse_status(raw: &str) -> Result<Status, String> {
    Status::parse(raw).ok_or_else(|| {
        let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        format!("`{raw}` is not a status; use one of {}", all.join(", "))
    })
}

fn parse_initial_status(raw: &str) -> Result<Status, String> {
    match Status::parse(raw) {
        Some(status @ (Status::Draft | Status::Active)) => Ok(status),
        _ => Err(format!(
            "a new agent starts as `draft` or `active`, not `{raw}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn register_needs_a_file_or_the_identity_flags() {
        assert!(Cli::try_parse_from(["vouch", "agents", "register", "--name", "x"]).is_err());
        assert!(Cli::try_parse_from(["vouch", "agents", "register", "--file", "-"]).is_ok());
        assert!(
            Cli::try_parse_from(["vouch", "agents", "register", "--file", "-", "--name", "x"])
                .is_err()
        );
        assert!(Cli::try_parse_from([
            "vouch", "agents", "register", "--file", "-", "--status", "active", "--org", "o"
        ])
        .is_ok());
        assert!(Cli::try_parse_from([
            "vouch",
            "agents",
            "register",
            "--name",
            "x",
            "--owner-name",
            "y",
            "--owner-contact",
            "z",
            "--status",
            "suspended"
        ])
        .is_err());
    }

    #[test]
    fn a_webhook_url_is_not_the_origin_url() {
        let cli = Cli::try_parse_from([
            "vouch",
            "--url",
            "http://origin",
            "webhooks",
            "create",
            "https://hooks.example/x",
            "--event",
            "agent.suspended",
        ])
        .unwrap();
        assert_eq!(cli.url, "http://origin");
        let Command::Webhooks(WebhooksCommand::Create {
            endpoint, events, ..
        }) = cli.command
        else {
            panic!("not webhooks create");
        };
        assert_eq!(endpoint, "https://hooks.example/x");
        assert_eq!(events, ["agent.suspended"]);
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "vouch", "agents", "show", "ap_1", "--json", "--url", "http://x",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.url, "http://x");
    }
}
