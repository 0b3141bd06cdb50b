//! What the network commands of `provider-node` and `market` share: merged
//! settings, the identity, and a client connected through ic-agent.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use candid::Principal;

use crate::client::{CanisterIds, MarketClient};
use crate::config::{self, GlobalArgs, Settings};
use crate::identity::{self, LoadedIdentity};
use crate::transport::{AgentTransport, AgentTransportConfig};

/// Settings merged from the file, the process environment and the flags.
pub fn settings(global: &GlobalArgs) -> anyhow::Result<Settings> {
    Ok(config::load(global, &|name| std::env::var(name).ok())?)
}

/// The configured identity, with a hint when it does not exist yet.
pub fn load_identity(settings: &Settings) -> anyhow::Result<LoadedIdentity> {
    if !settings.identity.exists() {
        anyhow::bail!(
            "no identity at {}: create one with `provider-node identity new` (or `market identity \
             new`), or point --identity at a PEM file (e.g. from `dfx identity export <name>`)",
            settings.identity.display()
        );
    }
    Ok(identity::load_pem_file(&settings.identity)?)
}

/// A connected client, its identity, and the canister ids.
pub struct Session {
    /// The typed client.
    pub client: MarketClient<Arc<AgentTransport>>,
    /// The identity calls are made as.
    pub identity: LoadedIdentity,
    /// The provider the identity works for (the identity itself unless the
    /// settings name another principal).
    pub provider: Principal,
    /// The merged settings.
    pub settings: Settings,
}

impl Session {
    /// The canister ids.
    pub fn ids(&self) -> &CanisterIds {
        self.client.ids()
    }
}

/// Loads settings and identity and connects to the configured network.
pub async fn connect(global: &GlobalArgs) -> anyhow::Result<Session> {
    let settings = settings(global)?;
    let ids = settings.canister_ids()?;
    let identity = load_identity(&settings)?;
    let transport = AgentTransport::connect(
        &AgentTransportConfig {
            url: settings.network.clone(),
            fetch_root_key: settings.fetch_root_key,
            verify_query_signatures: settings.verify_query_signatures,
            ingress_expiry: Duration::from_secs(180),
            time_canister: ids.matcher,
        },
        Arc::clone(&identity.identity),
    )
    .await
    .with_context(|| format!("connecting to {}", settings.network))?;
    Ok(Session {
        client: MarketClient::new(Arc::new(transport), ids),
        provider: settings.provider.unwrap_or(identity.principal),
        identity,
        settings,
    })
}

/// A multi-threaded tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
