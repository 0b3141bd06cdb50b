//! `provider-node`: the provider's command-line tool and daemon.
//!
//! Each subcommand lives in its own module under `cli/`; the daemon's
//! subcommands (register, stake, offer, run, ...) join `Command` there.

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
    #[command(subcommand)]
    command: cli::Command,
}

fn main() -> ExitCode {
    let args = Cli::parse();
    match cli::run(args.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
