//! Subcommands of `provider-node`.

mod exec;

use std::process::ExitCode;

use clap::Subcommand;

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a WASI job locally in exactly the providers' sandbox and report
    /// its outcome, fuel, peak memory and time.
    Exec(exec::ExecArgs),
}

/// Runs `command`; the exit code is the process's.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Exec(args) => exec::run(args),
    }
}
