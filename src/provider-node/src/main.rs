//! `provider-node`: the provider's command-line tool and daemon.
//!
//! Each subcommand lives in its own module under `cli/`; the logic they
//! call (config, daemon, sandbox) lives in the library, and the network
//! side in the client library (`market_client`).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use market_client::config;
use provider_node::config::APP;

#[derive(Parser, Debug)]
#[command(
    name = "provider-node",
    version,
    about = "Provider node of the ICP compute marketplace"
)]
struct Cli {
    #[command(flatten)]
    global: provider_node::config::GlobalArgs,
    #[command(subcommand)]
    command: cli::Command,
}

fn main() -> ExitCode {
    let args = match config::parse::<Cli>(&APP, std::env::args_os(), |cli| {
        &mut cli.global.common.sources
    }) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    match cli::run(args.global, args.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
