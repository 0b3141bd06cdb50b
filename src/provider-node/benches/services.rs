//! Services benchmark: requests per second and p50/p99 latency through the
//! provider's ingress (routing, limits, metrics, egress hooks) against the
//! same component hosted directly by wasmtime-wasi-http (a minimal host:
//! one `ProxyPre`, a fresh instance per request, no limits), in one run;
//! and the instance start per request.
//!
//! Run: `scripts/build-workloads.sh && cargo bench -p provider-node --bench services`
//! (`-- quick` for shorter runs). The load generator runs on the same
//! machine: N keep-alive HTTP/1.1 connections, GET in a loop.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use market_api::matcher::ServiceLimits;
use provider_node::service::{
    IngressSettings, ServiceHost, ServiceHostConfig, ServiceMetrics, ServiceSettings,
};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

struct Direct {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: NoEgress,
}

struct NoEgress;

impl WasiHttpHooks for NoEgress {
    fn send_request(
        &mut self,
        _: http::Request<wasmtime_wasi_http::WasiBody>,
        _: Option<wasmtime_wasi_http::RequestOptions>,
        _: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

impl WasiView for Direct {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Direct {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

fn direct_store(engine: &Engine) -> Store<Direct> {
    Store::new(
        engine,
        Direct {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: NoEgress,
        },
    )
}

/// The proxy world and `wasi:cli/environment` (hello-service reads its env).
fn link(linker: &mut Linker<Direct>) {
    wasmtime_wasi_http::p2::add_to_linker_async(linker).unwrap();
    wasmtime_wasi::p2::bindings::cli::environment::add_to_linker::<
        Direct,
        wasmtime_wasi::cli::WasiCli,
    >(linker, wasmtime_wasi::cli::WasiCliView::cli)
    .unwrap();
}

/// The same component served by wasmtime-wasi-http with nothing of ours:
/// default engine (on-demand allocation, no fuel), no routing or limits.
async fn direct_host(bytes: &[u8]) -> (SocketAddr, ProxyPre<Direct>) {
    let engine = Engine::new(Config::new().wasm_component_model(true)).unwrap();
    let component = Component::new(&engine, bytes).unwrap();
    let mut linker = Linker::new(&engine);
    link(&mut linker);
    let pre = ProxyPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = pre.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            let pre = served.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let pre = pre.clone();
                        async move {
                            let mut store = direct_store(pre.engine());
                            let (tx, rx) = tokio::sync::oneshot::channel();
                            let req = store
                                .data_mut()
                                .http()
                                .new_incoming_request(Scheme::Http, req)?;
                            let out = store.data_mut().http().new_response_outparam(tx)?;
                            tokio::spawn(async move {
                                let proxy = pre.instantiate_async(&mut store).await?;
                                proxy
                                    .wasi_http_incoming_handler()
                                    .call_handle(&mut store, req, out)
                                    .await
                            });
                            match rx.await {
                                Ok(Ok(resp)) => Ok(resp),
                                _ => Err(wasmtime::format_err!("no response")),
                            }
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, pre)
}

async fn our_host(bytes: &[u8]) -> SocketAddr {
    let host = ServiceHost::new(
        ServiceHostConfig {
            max_instances: 256,
            ..ServiceHostConfig::default()
        },
        ServiceMetrics::default(),
    )
    .unwrap();
    let hash: [u8; 32] = Sha256::digest(bytes).into();
    let settings = ServiceSettings {
        env: Vec::new(),
        allowed_hosts: Vec::new(),
        limits: ServiceLimits {
            max_concurrent: 256,
            ..ServiceLimits::default()
        },
        memory_bytes: 64 << 20,
    };
    host.start(1, bytes, &hash, settings).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(provider_node::service::serve(
        host,
        listener,
        IngressSettings::default(),
        std::future::pending(),
    ));
    addr
}

/// `conns` keep-alive connections GETting `path` for `secs`: requests per
/// second and sorted latencies.
async fn load(
    addr: SocketAddr,
    path: &'static str,
    conns: usize,
    run: Duration,
) -> (f64, Vec<Duration>) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(async move {
                let stream = TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                let mut latencies = Vec::new();
                while started.elapsed() < run {
                    let t = Instant::now();
                    let req = hyper::Request::get(path)
                        .header("host", "bench")
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    let resp = sender.send_request(req).await.unwrap();
                    assert!(resp.status().is_success(), "{}", resp.status());
                    resp.into_body().collect().await.unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / elapsed, all)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let run = Duration::from_secs(if quick { 2 } else { 5 });
    let path = market_artifacts::workload_dir().join("hello-service.wasm");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): run scripts/build-workloads.sh",
            path.display()
        )
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ours = our_host(&bytes).await;
        let (direct, pre) = direct_host(&bytes).await;
        println!("hello-service GET /healthz, {run:?} per row, load generator on the same machine");
        println!("| host | conns | req/s | p50 | p99 |");
        println!("|---|---|---|---|---|");
        for conns in [1, 4, 16] {
            for (name, addr, path) in [
                ("ingress", ours, "/1/healthz"),
                ("direct", direct, "/healthz"),
            ] {
                let (rps, lat) = load(addr, path, conns, run).await;
                println!(
                    "| {name} | {conns} | {rps:.0} | {} | {} |",
                    ms(pct(&lat, 0.5)),
                    ms(pct(&lat, 0.99))
                );
            }
        }
        // Instance start: a fresh store and instantiation, as each request
        // does, with the direct host's engine and with the services' engine
        // (pooling allocator, fuel).
        let services_engine = ServiceHostConfig::default().engine().unwrap();
        let component = Component::new(&services_engine, &bytes).unwrap();
        let mut linker = Linker::new(&services_engine);
        link(&mut linker);
        let pooled = ProxyPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        for (name, pre) in [
            ("direct engine, on-demand", &pre),
            ("services engine, pooling", &pooled),
        ] {
            let mut samples = Vec::new();
            for _ in 0..2_000 {
                let mut store = direct_store(pre.engine());
                let _ = store.set_fuel(1_000_000_000);
                let t = Instant::now();
                let _proxy = pre.instantiate_async(&mut store).await.unwrap();
                samples.push(t.elapsed());
            }
            samples.sort();
            println!(
                "instance start ({name}): p50 {} p99 {}",
                ms(pct(&samples, 0.5)),
                ms(pct(&samples, 0.99))
            );
        }
    });
}
