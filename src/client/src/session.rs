//! What the network commands of `provider-node` and `market` share: the
//! identity, a client connected through ic-agent, and a runtime.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::client::{CanisterIds, MarketClient};
use crate::config::Settings;
use crate::identity::{self, LoadedIdentity};
use crate::transport::{AgentTransport, AgentTransportConfig};

/// The configured identity, with a hint when it does not exist yet.
pub fn load_identity(settings: &Settings) -> anyhow::Result<LoadedIdentity> {
    if !settings.identity.exists() {
        anyhow::bail!(
            "no identity at {}: create one with `{} identity new`, or point --identity at a PEM \
             file (e.g. from `dfx identity export <name>`)",
            settings.identity.display(),
            settings.app.name,
        );
    }
    Ok(identity::load_pem_file(&settings.identity)?)
}

/// A connected client and its identity.
pub struct Session {
    /// The typed client.
    pub client: MarketClient<Arc<AgentTransport>>,
    /// The identity calls are made as.
    pub identity: LoadedIdentity,
}

impl Session {
    /// The canister ids.
    pub fn ids(&self) -> &CanisterIds {
        self.client.ids()
    }
}

/// Loads the identity and connects to the configured network.
pub async fn connect(settings: &Settings) -> anyhow::Result<Session> {
    let ids = settings.canister_ids()?;
    let identity = load_identity(settings)?;
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
        identity,
    })
}

/// A multi-threaded tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
