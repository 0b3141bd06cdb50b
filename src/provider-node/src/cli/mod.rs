//! Subcommands of `provider-node`.

mod context;
mod exec;
mod local;
mod offer;
mod provider;
mod run;
mod serve;
mod serve_tcp;

use std::process::ExitCode;

use clap::Subcommand;
use market_client::IdentityCommand;
use provider_node::config::GlobalArgs;

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create or show the node's identity (PEM files as dfx writes them).
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Register this identity as a provider (profile only; stake separately).
    Register(provider::RegisterArgs),
    /// Stake ICP: approve the registry on the ledger, then stake.
    Stake(provider::AmountArgs),
    /// Start unbonding free stake; withdraw it after the unbonding period.
    Unstake(provider::AmountArgs),
    /// Withdraw earnings from the escrow and unbonded stake from the registry.
    Withdraw(provider::WithdrawFlags),
    /// Post, change, withdraw or list standing offers.
    #[command(subcommand)]
    Offer(offer::OfferCommand),
    /// Run the daemon: take assignments, run jobs, heartbeat, submit
    /// results, serve metrics. Stops cleanly on Ctrl-C or SIGTERM.
    Run,
    /// Show stake, offers, assigned jobs and earnings.
    Status,
    /// Print an example config file.
    ConfigExample,
    /// Run a WASI job locally in exactly the providers' sandbox and report
    /// its outcome, fuel, peak memory and time.
    Exec(exec::ExecArgs),
    /// Serve a wasi:http/proxy component locally behind the providers'
    /// ingress, with the limits a lease would give it.
    Serve(serve::ServeArgs),
    /// Serve a TCP service (a wasi:cli command using wasi:sockets) locally
    /// behind the providers' TCP host, with the caps a lease would give it.
    ServeTcp(serve_tcp::ServeTcpArgs),
}

/// Runs `command`; the exit code is the process's.
pub fn run(global: GlobalArgs, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Identity(c) => {
            c.run(
                &context::settings(&global)?.common,
                "keep a backup of it: the key controls the provider's stake and earnings",
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Register(a) => provider::register(&global, a),
        Command::Stake(a) => provider::stake(&global, a),
        Command::Unstake(a) => provider::unstake(&global, a),
        Command::Withdraw(a) => provider::withdraw(&global, a),
        Command::Offer(c) => offer::run(&global, c),
        Command::Run => run::run(&global),
        Command::Status => provider::status(&global),
        Command::ConfigExample => {
            print!("{}", provider_node::config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec(args) => exec::run(args),
        Command::Serve(args) => serve::run(args),
        Command::ServeTcp(args) => serve_tcp::run(args),
    }
}
