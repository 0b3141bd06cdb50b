//! `provider-node`: the provider's command-line tool and daemon.
//!
//! Each subcommand lives in its own module under `cli/`; the logic they
//! call (client, config, identity, daemon) lives in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

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
    let args = Cli::parse();
    match cli::run(args.global, args.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
