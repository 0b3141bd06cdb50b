//! The devnet behind the Internet Computer's HTTP interface.
//!
//! [`Server::start`] serves a [`devnet::Devnet`] on a loopback port the way a
//! local replica does: `GET /api/v2/status` with the root key,
//! `POST /api/v{2,3,4}/canister/<id>/call` (v3/v4 answer synchronously with a
//! certificate, or 202 after a short wait), `/api/v{2,3}/canister/<id>/query`
//! (responses signed by a node key that read_state serves, so agents may keep
//! query-signature verification on), and `/api/v{2,3}/{canister,subnet}/<id>/read_state`.
//! Requests are CBOR envelopes; sender signatures (Ed25519, secp256k1,
//! P-256, delegations) and ingress expiry are checked; certificates are hash
//! trees signed with a BLS key generated at start. A background round loop
//! advances the devnet's clock (in real time or faster) and runs timers and
//! queued messages. See the crate's README for what is and is not served.

#![deny(missing_docs)]

pub mod auth;
pub mod gateway;
pub mod http;
pub mod ingress;
pub mod keys;
pub mod management;
pub mod metadata;
pub mod node;
pub mod persist;
pub mod state_tree;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use devnet::Devnet;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use keys::NodeKeys;
pub use node::Node;

/// How a [`Server`] runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free port).
    pub addr: SocketAddr,
    /// How many devnet seconds pass per real second.
    pub time_speed: f64,
    /// Time between rounds of the background loop.
    pub round_interval: Duration,
    /// How long a v3/v4 call waits for its answer before answering 202.
    pub sync_call_wait: Duration,
    /// Seed of the root and node keys; random if `None`. A loaded state
    /// keeps the seed it was saved with (a different one is refused).
    pub key_seed: Option<[u8; 32]>,
    /// Directory the state is loaded from at start (if it holds one) and
    /// saved to every `checkpoint_interval` and at shutdown.
    pub state_dir: Option<PathBuf>,
    /// How often the state is saved to `state_dir` while serving.
    pub checkpoint_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 4943)),
            time_speed: 1.0,
            round_interval: Duration::from_millis(100),
            sync_call_wait: Duration::from_secs(5),
            key_seed: None,
            state_dir: None,
            checkpoint_interval: Duration::from_secs(30),
        }
    }
}

/// A running devnet HTTP server.
pub struct Server {
    node: Arc<Node>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
    rounds: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds `config.addr` and serves `devnet` until [`shutdown`](Self::shutdown).
    /// With a `state_dir` that holds a saved state, that state is served
    /// instead (run with `devnet`'s configuration). Must be called within a
    /// Tokio runtime.
    pub async fn start(config: ServerConfig, devnet: Devnet) -> std::io::Result<Server> {
        let node = Arc::new(node_for(&config, devnet).map_err(std::io::Error::other)?);
        let listener = TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let rounds = {
            let node = node.clone();
            let interval = config.round_interval;
            std::thread::Builder::new()
                .name("devnet-rounds".into())
                .spawn(move || {
                    while !node.is_stopped() {
                        std::thread::sleep(interval);
                        node.run_round();
                    }
                })?
        };
        let app = http::router(
            node.clone(),
            http::HttpConfig {
                sync_call_wait: config.sync_call_wait,
            },
        );
        let (shutdown, stop) = oneshot::channel::<()>();
        let serve = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await
        });
        tracing::info!(%addr, subnet = %node.keys().subnet_id(), "devnet serving the IC HTTP interface");
        Ok(Server {
            node,
            addr,
            shutdown: Some(shutdown),
            serve,
            rounds: Some(rounds),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, for `Agent::builder().with_url(..)`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The node (keys, direct devnet access).
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The root key clients fetch from `/api/v2/status` (DER).
    pub fn root_key(&self) -> Vec<u8> {
        self.node.keys().root_key_der().to_vec()
    }

    /// Stops accepting requests, waits for those in flight, stops the
    /// rounds and saves the state to the state directory, if there is one.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let served = (&mut self.serve)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        self.node.stop();
        if let Some(rounds) = self.rounds.take() {
            let _ = tokio::task::spawn_blocking(move || rounds.join()).await;
        }
        let node = self.node.clone();
        match tokio::task::spawn_blocking(move || node.checkpoint()).await {
            Ok(Ok(true)) => tracing::info!("state saved"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => return Err(std::io::Error::other(e)),
            Err(e) => return Err(std::io::Error::other(e)),
        }
        served
    }
}

/// The node `config` asks for: `devnet` with new keys, or the state saved in
/// `config.state_dir`.
fn node_for(config: &ServerConfig, devnet: Devnet) -> Result<Node, persist::PersistError> {
    let Some(path) = &config.state_dir else {
        let keys = match config.key_seed {
            Some(seed) => NodeKeys::from_seed(seed),
            None => NodeKeys::generate(),
        };
        return Ok(Node::new(devnet, keys, config.time_speed));
    };
    let dir = persist::StateDir::open(path)?;
    let (devnet, keys, extras) = match dir.load(devnet.config().clone())? {
        Some(loaded) => {
            if config.key_seed.is_some_and(|seed| seed != loaded.key_seed) {
                return Err(persist::PersistError::Corrupt(
                    path.clone(),
                    "it was saved with another key seed; start without --key-seed or with the same one"
                        .into(),
                ));
            }
            tracing::info!(dir = %path.display(), "devnet state loaded");
            (
                loaded.devnet,
                NodeKeys::from_seed(loaded.key_seed),
                loaded.extras,
            )
        }
        None => {
            let keys = match config.key_seed {
                Some(seed) => NodeKeys::from_seed(seed),
                None => NodeKeys::generate(),
            };
            (devnet, keys, persist::NodeExtras::default())
        }
    };
    let node = Node::with_state(
        devnet,
        keys,
        config.time_speed,
        extras,
        Some((dir, config.checkpoint_interval)),
    );
    // The directory holds a state from the start, so a kill before the first
    // checkpoint still restarts with the same root key.
    node.checkpoint()?;
    Ok(node)
}

impl Drop for Server {
    fn drop(&mut self) {
        // Dropped without `shutdown`: stop the loop and the server anyway.
        self.node.stop();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
