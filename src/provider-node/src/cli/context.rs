//! What the network subcommands share: the provider's settings, and a
//! session of the client library that knows which provider it works for.

use candid::Principal;
use market_client::session::{self, Session};
use provider_node::config::{self, GlobalArgs, Settings};

pub use market_client::session::runtime;

/// Settings merged from the file, the process environment and the flags.
pub fn settings(global: &GlobalArgs) -> anyhow::Result<Settings> {
    Ok(config::load(global, &|name| std::env::var(name).ok())?)
}

/// A connected client, its identity, the provider it works for, and the
/// settings.
pub struct ProviderSession {
    /// The client library's session.
    pub session: Session,
    /// The provider the identity works for (the identity itself unless the
    /// settings name another principal).
    pub provider: Principal,
    /// The merged settings.
    pub settings: Settings,
}

impl std::ops::Deref for ProviderSession {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

/// Loads settings and identity and connects to the configured network.
pub async fn connect(global: &GlobalArgs) -> anyhow::Result<ProviderSession> {
    let settings = settings(global)?;
    let session = session::connect(&settings).await?;
    Ok(ProviderSession {
        provider: settings.provider.unwrap_or(session.identity.principal),
        session,
        settings,
    })
}
