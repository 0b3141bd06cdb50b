//! `provider-node identity new|show`.

use std::process::ExitCode;

use clap::Subcommand;
use provider_node::config::GlobalArgs;
use provider_node::identity;

use super::context;

/// Identity subcommands.
#[derive(Subcommand, Debug)]
pub enum IdentityCommand {
    /// Write a fresh Ed25519 identity (PEM, mode 0600) to the configured
    /// identity path; never overwrites a file.
    New,
    /// Print the principal of the configured identity and its key type.
    Show,
}

pub fn run(global: &GlobalArgs, command: IdentityCommand) -> anyhow::Result<ExitCode> {
    let settings = context::settings(global)?;
    match command {
        IdentityCommand::New => {
            let id = identity::create_ed25519_pem_file(&settings.identity)?;
            eprintln!(
                "wrote a new Ed25519 identity to {}",
                settings.identity.display()
            );
            eprintln!("keep a backup of it: the key controls the provider's stake and earnings");
            println!("{}", id.principal);
        }
        IdentityCommand::Show => {
            let id = context::load_identity(&settings)?;
            eprintln!("{} ({:?} key)", settings.identity.display(), id.key_type);
            println!("{}", id.principal);
        }
    }
    Ok(ExitCode::SUCCESS)
}
