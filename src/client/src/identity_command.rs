//! `identity new|show`, the same in `provider-node` and `market`.

use clap::Subcommand;

use crate::config::Settings;
use crate::identity;
use crate::session::load_identity;

/// Identity subcommands.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum IdentityCommand {
    /// Write a fresh Ed25519 identity (PEM, mode 0600) to the configured
    /// identity path; never overwrites a file.
    New,
    /// Print the principal of the configured identity and its key type.
    Show,
}

impl IdentityCommand {
    /// Runs the command; the principal goes to stdout, everything else to
    /// stderr. `advice` follows a new identity's path: what the key
    /// controls and what to do next.
    pub fn run(&self, settings: &Settings, advice: &str) -> anyhow::Result<()> {
        match self {
            IdentityCommand::New => {
                let id = identity::create_ed25519_pem_file(&settings.identity)?;
                eprintln!(
                    "wrote a new Ed25519 identity to {}",
                    settings.identity.display()
                );
                eprintln!("{advice}");
                println!("{}", id.principal);
            }
            IdentityCommand::Show => {
                let id = load_identity(settings)?;
                eprintln!("{} ({:?} key)", settings.identity.display(), id.key_type);
                println!("{}", id.principal);
            }
        }
        Ok(())
    }
}
