//! `vouch`: the admin CLI of the Vouch agent registry, over the origin's REST API (SPEC §4).
//!
//! ```text
//! export VOUCH_URL=http://127.0.0.1:8080 VOUCH_TOKEN=vk_admin_…
//! vouch orgs create --name "Acme Corp" --slug acme
//! vouch tokens create --org org_… --role owner --name ops
//! vouch agents register --name "Acme Support Bot" --owner-name "Acme Support Team" \
//!     --owner-contact security@acme.com --capability payments.refund --region US-CA
//! vouch agents suspend ap_… --reason "fraud investigation"
//! vouch audit verify
//! ```
//!
//! Human tables by default; `--json` prints the API's JSON body as is. Errors go to standard
//! error as `error: <message> (<code>[, field <field>])`; exit codes are listed in `--help`.

mod apply;
mod args;
mod audit;
mod client;
mod commands;
mod error;
mod partners;
mod receipts;
mod render;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let out = commands::Output::new(cli.json);
    match commands::run(&cli, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if cli.json {
                if let Some(body) = err.json_body() {
                    out.json(body);
                }
            }
            let prefix = match err {
                error::CliError::ChangesPending(_) => "changes",
                _ => "error",
            };
            let _ = writeln!(std::io::stderr().lock(), "{prefix}: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
