//! Latency of calls over HTTP with the real ic-agent, against the same
//! calls made directly on the devnet: what the HTTP layer, CBOR,
//! signatures and certificates add. Prints a table; run with
//! `cargo bench -p local-replica --bench http`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use candid::{Encode, Principal};
use common::*;
use devnet::Devnet;
use local_replica::{Server, ServerConfig};

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    let mean = samples.iter().sum::<Duration>().as_secs_f64() * 1e6 / samples.len() as f64;
    println!(
        "{name:<44} n={:<5} mean {mean:>8.0} µs  p50 {:>8.0} µs  p90 {:>8.0} µs  p99 {:>8.0} µs",
        samples.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99)
    );
}

async fn time_n<F, Fut>(n: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        out.push(t.elapsed());
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let wasm = probe_wasm();
    let empty = Encode!().unwrap();

    // The devnet alone.
    let mut dn = Devnet::new();
    let admin = Principal::anonymous();
    let id = dn.create_canister(vec![admin]);
    dn.install_canister(id, &wasm, Encode!().unwrap(), admin)
        .unwrap();
    let mut direct_update = Vec::new();
    let mut direct_query = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        dn.update_call(id, admin, "inc", empty.clone()).unwrap();
        direct_update.push(t.elapsed());
        let t = Instant::now();
        dn.query_call(id, admin, "get", empty.clone()).unwrap();
        direct_query.push(t.elapsed());
    }
    report("devnet direct: update inc", direct_update);
    report("devnet direct: query get", direct_query);

    // Over HTTP.
    let server = Server::start(
        ServerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            key_seed: Some([1; 32]),
            ..ServerConfig::default()
        },
        Devnet::new(),
    )
    .await
    .unwrap();
    let agent = agent(&server, ed25519_identity(2)).await;
    let id = create_canister(&agent).await;
    let t = Instant::now();
    install_code(&agent, id, &wasm, no_args()).await;
    println!(
        "install_code over HTTP ({} KiB): {:.1} ms",
        wasm.len() / 1024,
        t.elapsed().as_secs_f64() * 1e3
    );

    let updates = time_n(300, || async {
        update(&agent, id, "inc", empty.clone()).await.unwrap();
    })
    .await;
    report("HTTP v4 update inc (signed, certified)", updates);
    let queries = time_n(500, || async {
        query(&agent, id, "get", empty.clone()).await.unwrap();
    })
    .await;
    report("HTTP v3 query get (signature verified)", queries);
    let unverified = time_n(500, || async {
        agent
            .query(&id, "get")
            .with_arg(empty.clone())
            .call_without_verification()
            .await
            .unwrap();
    })
    .await;
    report("HTTP v3 query get (no verification)", unverified);
    let read_state = time_n(300, || async {
        agent.read_state_canister_module_hash(id).await.unwrap();
    })
    .await;
    report("HTTP v3 read_state module_hash", read_state);
    server.shutdown().await.unwrap();
}
