//! Shared helpers of the HTTP tests: a server on an ephemeral loopback
//! port, identities written as PEM files like dfx writes them, the probe
//! canister installed through the management canister over HTTP.

#![allow(dead_code, unused_imports)]

use std::path::PathBuf;
use std::time::Duration;

use candid::{CandidType, Encode, Principal};
use devnet::Devnet;
use ic_agent::identity::{BasicIdentity, Secp256k1Identity};
use ic_agent::{Agent, AgentError, Identity};
use ic_utils::interfaces::ManagementCanister;
use local_replica::{Server, ServerConfig};
use serde::de::DeserializeOwned;

/// The probe canister's .wasm.
pub fn probe_wasm() -> Vec<u8> {
    market_artifacts::canister_wasm("probe-canister")
}

pub use probe_canister::{CallOutcome, ProbeArg};

/// Fixed keys, fast rounds, an ephemeral loopback port.
pub fn test_config() -> ServerConfig {
    ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        time_speed: 1.0,
        round_interval: Duration::from_millis(20),
        sync_call_wait: Duration::from_secs(5),
        key_seed: Some([42; 32]),
        ..ServerConfig::default()
    }
}

/// A server with [`test_config`] and the given clock speed and
/// synchronous-call wait.
pub async fn start_server(time_speed: f64, sync_call_wait: Duration) -> Server {
    let config = ServerConfig {
        time_speed,
        sync_call_wait,
        ..test_config()
    };
    Server::start(config, Devnet::new())
        .await
        .expect("server starts")
}

/// A fresh file path under Cargo's per-test temporary directory.
pub fn temp_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("local-replica");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{}-{name}", std::process::id()))
}

/// An Ed25519 identity written as PKCS#8 PEM (dfx's default) and read back.
pub fn ed25519_identity(seed: u8) -> BasicIdentity {
    let key = ic_ed25519::PrivateKey::generate_from_seed(&[seed; 32]);
    let pem = key.serialize_pkcs8_pem(ic_ed25519::PrivateKeyFormat::Pkcs8v2);
    let path = temp_path(&format!("ed25519-{seed}.pem"));
    std::fs::write(&path, pem).unwrap();
    BasicIdentity::from_pem_file(&path).expect("ed25519 PEM")
}

/// A secp256k1 identity written as dfx writes one (EC PARAMETERS plus SEC1
/// EC PRIVATE KEY) and read back.
pub fn secp256k1_identity(seed: u8) -> Secp256k1Identity {
    let key = k256::SecretKey::from_slice(&[seed; 32]).unwrap();
    let mut pem =
        String::from("-----BEGIN EC PARAMETERS-----\nBgUrgQQACg==\n-----END EC PARAMETERS-----\n");
    pem.push_str(&key.to_sec1_pem(k256::pkcs8::LineEnding::LF).unwrap());
    let path = temp_path(&format!("secp256k1-{seed}.pem"));
    std::fs::write(&path, pem).unwrap();
    Secp256k1Identity::from_pem_file(&path).expect("secp256k1 PEM")
}

/// An agent for `server` that fetched the root key, as for a local replica.
/// Query signature verification stays on (the default).
pub async fn agent(server: &Server, identity: impl Identity + 'static) -> Agent {
    let agent = Agent::builder()
        .with_url(server.url())
        .with_identity(identity)
        .with_max_polling_time(Duration::from_secs(30))
        .build()
        .expect("agent");
    agent.fetch_root_key().await.expect("fetch_root_key");
    agent
}

/// The wall clock in nanoseconds since the epoch, as ingress expiries count.
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Creates an empty canister through the management canister over HTTP,
/// controlled by the agent's identity.
pub async fn create_canister(agent: &Agent) -> Principal {
    let (id,) = ManagementCanister::create(agent)
        .create_canister()
        .as_provisional_create_with_amount(None)
        .call_and_wait()
        .await
        .expect("create_canister");
    id
}

/// Installs `wasm` in the empty canister `id` with the raw init `arg`,
/// through the management canister over HTTP.
pub async fn install_code(agent: &Agent, id: Principal, wasm: &[u8], arg: Vec<u8>) {
    ManagementCanister::create(agent)
        .install_code(&id, wasm)
        .with_raw_arg(arg)
        .call_and_wait()
        .await
        .expect("install_code");
}

/// Creates a canister and installs the probe through the management
/// canister over HTTP, controlled by the agent's identity.
pub async fn install_probe(agent: &Agent, label: &str) -> Principal {
    let id = create_canister(agent).await;
    let arg = Some(ProbeArg {
        label: label.into(),
    });
    install_code(agent, id, &probe_wasm(), Encode!(&arg).unwrap()).await;
    id
}

/// A server with [`test_config`] at normal speed, an agent for the
/// Ed25519 identity of `seed`, and a probe labelled `label` it installed.
pub async fn server_with_probe(seed: u8, label: &str) -> (Server, Agent, Principal) {
    let server = start_server(1.0, Duration::from_secs(5)).await;
    let agent = agent(&server, ed25519_identity(seed)).await;
    let id = install_probe(&agent, label).await;
    (server, agent, id)
}

/// Candid encoding of no arguments.
pub fn no_args() -> Vec<u8> {
    Encode!().unwrap()
}

/// Calls `method` of `canister` as a query with the Candid-encoded `arg`.
pub async fn query(
    agent: &Agent,
    canister: Principal,
    method: &str,
    arg: Vec<u8>,
) -> Result<Vec<u8>, AgentError> {
    agent.query(&canister, method).with_arg(arg).call().await
}

/// Calls `method` of `canister` as an update with the Candid-encoded `arg`.
pub async fn update(
    agent: &Agent,
    canister: Principal,
    method: &str,
    arg: Vec<u8>,
) -> Result<Vec<u8>, AgentError> {
    agent.update(&canister, method).with_arg(arg).await
}

/// The one result of the query `method`, called with no arguments.
pub async fn query_as<T: CandidType + DeserializeOwned>(
    agent: &Agent,
    id: Principal,
    method: &str,
) -> T {
    decoded(query(agent, id, method, no_args()).await, method)
}

/// The one result of the update `method`, called with no arguments.
pub async fn update_as<T: CandidType + DeserializeOwned>(
    agent: &Agent,
    id: Principal,
    method: &str,
) -> T {
    decoded(update(agent, id, method, no_args()).await, method)
}

fn decoded<T: CandidType + DeserializeOwned>(
    reply: Result<Vec<u8>, AgentError>,
    method: &str,
) -> T {
    candid::decode_one(&reply.expect(method)).unwrap()
}
