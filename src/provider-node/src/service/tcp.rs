//! TCP services: a `wasi:cli` command component using `wasi:sockets` (a
//! chat relay, a game server, an MQTT or WebSocket gateway), run as **one
//! long-lived instance** per service on the services' engine.
//!
//! ```text
//! client ──► listen:port (the host's [`ingress`]: caps) ──► 127.0.0.1:internal (the instance)
//!                                                           instance ──► allowed hosts only ([`policy`])
//! ```
//!
//! | limit | where | what happens |
//! |---|---|---|
//! | bind, listen | [`policy`]: only the instance's internal address | the call fails in the guest |
//! | connect | [`policy`]: only public addresses of the allowed hosts | the call fails in the guest |
//! | UDP, name lookup | off | the call fails in the guest |
//! | `max_connections` | the ingress's semaphore | the new connection is closed |
//! | `max_bytes_per_second` | the ingress, per connection and direction | the sender is slowed |
//! | `idle_timeout` | the ingress | the connection is closed |
//! | `fuel_per_interval` | the store's fuel, refilled each `fuel_interval` | the instance traps and restarts |
//! | memory | the store's limiter and the pool | growth fails; a trap restarts it |
//!
//! **CPU**: the instance runs forever, so a fixed fuel budget can't bound
//! it. The store gets `fuel_per_interval` units, and each time the guest
//! enters or leaves the host (a call, a poll; wasmtime's call hook) after
//! the interval has passed, the fuel is set back to the budget (unused
//! fuel doesn't carry over). A guest that burns its budget within one
//! interval traps out of fuel, so the budget is a share of a core: one
//! that spins without calling the host is stopped within an interval and
//! restarted. The guest yields to the runtime every
//! [`FUEL_YIELD_INTERVAL`] units, so a spinning instance never holds a
//! runtime thread, and stopping the service drops it at once. Fuel rather
//! than epochs: the services' engine counts fuel already, and an epoch
//! deadline would have to be set on every HTTP request's store too.
//!
//! **Restarts**: a trap, an exit or a failed start restarts the instance
//! after a back-off (from [`BACKOFF_MIN`], doubling to [`BACKOFF_MAX`],
//! back to the minimum once an instance ran [`BACKOFF_RESET`]), each logged.
//! Open connections end with their instance.
//!
//! **Env**: the lease's, plus what the host sets and the lease can't
//! override: `PORT` and `LISTEN` (the internal address to listen on),
//! `PUBLIC_PORT` (the port clients use), `RESOLVED_HOSTS`
//! (`host=ip,ip;...`, the addresses of the allowed hosts the instance may
//! connect to, resolved at its start).

pub mod ingress;
pub mod policy;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{CallHook, Store, Trap};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::ServiceError;
use super::egress::EgressPolicy;
use super::engine::{FUEL_YIELD_INTERVAL, Prepared};
use super::host::ServiceHost;
use super::state::RequestLimiter;
use crate::sandbox::CodeHash;
use ingress::{IngressCounters, Upstream};
use policy::SocketPolicy;

/// First pause before restarting a failed instance.
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest pause before a restart.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// An instance that ran this long resets the back-off.
pub const BACKOFF_RESET: Duration = Duration::from_secs(60);
/// Env variables the host sets; the lease's values for them are dropped.
pub const HOST_ENV: [&str; 4] = ["PORT", "LISTEN", "PUBLIC_PORT", "RESOLVED_HOSTS"];
/// Bytes of stdout and stderr logged per instance; the rest is dropped.
pub const LOG_BYTES_PER_INSTANCE: usize = 16 * 1024;
/// Most connections one service may be allowed at once.
pub const MAX_CONNECTIONS: u32 = 4096;

/// The caps of one TCP service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Fuel the instance may burn per `fuel_interval`.
    pub fuel_per_interval: u64,
    /// The fuel interval.
    pub fuel_interval: Duration,
    /// Client connections open at once; more are closed on arrival.
    pub max_connections: u32,
    /// Bytes per second each connection may move in each direction.
    pub max_bytes_per_second: u64,
    /// A connection with no byte either way for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            fuel_per_interval: 500_000_000,
            fuel_interval: Duration::from_secs(1),
            max_connections: 64,
            max_bytes_per_second: 1 << 20,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// How one TCP service runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpServiceSettings {
    /// The component's environment (the host's [`HOST_ENV`] variables
    /// override these).
    pub env: Vec<(String, String)>,
    /// Hosts its outgoing connections may go to.
    pub allowed_hosts: Vec<String>,
    /// The port clients connect to, assigned by the provider.
    pub port: u16,
    /// The address that port is opened on.
    pub listen: IpAddr,
    /// Linear memory of the instance, bytes.
    pub memory_bytes: u64,
    /// Its caps.
    pub limits: TcpLimits,
}

impl TcpServiceSettings {
    fn check(&self, max_memory_bytes: u64) -> Result<(), ServiceError> {
        let l = &self.limits;
        if l.fuel_per_interval == 0 || l.fuel_interval.is_zero() {
            return Err(ServiceError::Limits(
                "fuel and its interval must be positive".into(),
            ));
        }
        if l.max_connections == 0 || l.max_connections > MAX_CONNECTIONS {
            return Err(ServiceError::Limits(format!(
                "max_connections must be 1 to {MAX_CONNECTIONS}"
            )));
        }
        if l.max_bytes_per_second == 0 || l.idle_timeout.is_zero() {
            return Err(ServiceError::Limits(
                "max_bytes_per_second and idle_timeout must be positive".into(),
            ));
        }
        if self.memory_bytes == 0 || self.memory_bytes > max_memory_bytes {
            return Err(ServiceError::Limits(format!(
                "memory must be 1 to {max_memory_bytes} bytes"
            )));
        }
        if self.allowed_hosts.len() > market_api::matcher::MAX_ALLOWED_HOSTS
            || self
                .allowed_hosts
                .iter()
                .any(|h| h.len() > market_api::matcher::MAX_HOST_LEN)
        {
            return Err(ServiceError::Limits(
                "too many or too long allowed hosts".into(),
            ));
        }
        super::host::check_env(&self.env)
    }
}

/// A running TCP service, as [`TcpServiceHost::list`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpServiceInfo {
    /// Its id.
    pub id: u64,
    /// Its component's sha256.
    pub code_hash: CodeHash,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Whether an instance is running now (not backing off).
    pub running: bool,
    /// Instances started so far, the first included.
    pub starts: u32,
    /// Client connections open now.
    pub connections: u64,
    /// Connections closed on arrival for the cap, in all.
    pub refused: u64,
    /// Connections closed for idleness, in all.
    pub idle_closed: u64,
    /// How the last instance ended, if one did.
    pub last_exit: Option<String>,
    /// Fuel its instances burnt, up to the last interval's end.
    pub fuel_used: u64,
}

/// What a service's supervisor shares with the host.
#[derive(Debug, Default)]
struct Status {
    running: AtomicBool,
    starts: AtomicU32,
    /// Fuel burnt by finished intervals and instances.
    fuel_used: AtomicU64,
    last_exit: Mutex<Option<String>>,
}

impl Status {
    /// An instance starts: counted, and running until it ends.
    fn begin_run(&self) {
        self.starts.fetch_add(1, Ordering::Relaxed);
        self.running.store(true, Ordering::Relaxed);
    }
}

struct TcpService {
    code_hash: CodeHash,
    addr: SocketAddr,
    status: Arc<Status>,
    counters: Arc<IngressCounters>,
    supervisor: JoinHandle<()>,
    ingress: JoinHandle<()>,
}

/// The TCP services of a node: each one long-lived instance behind a
/// public port. Shares the HTTP [`ServiceHost`]'s engine, compiled
/// components and instance slots (each TCP service holds one slot while it
/// runs). Cheap to clone (shared).
#[derive(Clone)]
pub struct TcpServiceHost {
    inner: Arc<TcpInner>,
}

struct TcpInner {
    host: ServiceHost,
    /// Refuses a component that isn't a wasi:cli command or imports
    /// anything beyond WASI 0.2.
    commands: Prepared<TcpState, CommandPre<TcpState>>,
    services: Mutex<HashMap<u64, TcpService>>,
}

impl TcpServiceHost {
    /// A host of TCP services on `host`'s engine.
    pub fn new(host: ServiceHost) -> Result<Self, ServiceError> {
        let mut linker = Linker::new(host.components().engine());
        // The whole of WASI 0.2 is linked, as a component built with a
        // normal toolchain imports it; the context grants no files, no
        // UDP and no name lookup, and sockets only under the policy.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| ServiceError::Config(format!("{e:#}")))?;
        let entries = host.config().memory_cache_entries;
        Ok(Self {
            inner: Arc::new(TcpInner {
                host,
                commands: Prepared::new(linker, entries, CommandPre::new),
                services: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Starts service `id` (stopping a previous one of that id first):
    /// opens `settings.listen:settings.port`, then runs `component` (whose
    /// sha256 must be `code_hash`) behind it, restarting it when it fails.
    /// Returns the address clients connect to.
    pub async fn start(
        &self,
        id: u64,
        component: &[u8],
        code_hash: &CodeHash,
        settings: TcpServiceSettings,
    ) -> Result<SocketAddr, ServiceError> {
        let inner = &self.inner;
        settings.check(inner.host.config().max_memory_bytes)?;
        let pre = self.prepare(code_hash, component).await?;
        self.stop(id).await;
        let slot = inner
            .host
            .reserve_instance()
            .ok_or(ServiceError::NodeFull)?;
        let public = SocketAddr::new(settings.listen, settings.port);
        let listener = tokio::net::TcpListener::bind(public)
            .await
            .map_err(|e| ServiceError::Config(format!("cannot listen on {public}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServiceError::Config(e.to_string()))?;

        let mut egress = EgressPolicy::new(&settings.allowed_hosts, 0);
        for ip in &inner.host.config().egress_local_addresses {
            egress = egress.with_local_address(*ip);
        }
        let upstream = Upstream::default();
        let status = Arc::new(Status::default());
        // The first instance is under way from here, not from when the
        // supervisor's task first runs: a health check or probe that comes
        // as soon as this returns finds the service running.
        status.begin_run();
        let counters = Arc::new(IngressCounters::default());
        let ingress = tokio::spawn(ingress::serve(
            listener,
            upstream.clone(),
            settings.limits,
            Arc::clone(&counters),
            id,
        ));
        let supervisor = tokio::spawn(supervise(Instance {
            id,
            pre,
            engine: inner.host.components().engine().clone(),
            env: settings
                .env
                .into_iter()
                .filter(|(k, _)| !HOST_ENV.contains(&k.as_str()))
                .collect(),
            egress: Arc::new(egress),
            public_port: addr.port(),
            memory_bytes: settings.memory_bytes,
            limits: settings.limits,
            upstream,
            status: Arc::clone(&status),
            _slot: slot,
        }));
        let service = TcpService {
            code_hash: *code_hash,
            addr,
            status,
            counters,
            supervisor,
            ingress,
        };
        let mut services = inner.services.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = services.insert(id, service) {
            // Another start of the same id raced this one: the later wins.
            old.supervisor.abort();
            old.ingress.abort();
        }
        tracing::info!(service = id, %addr, code = %hex::encode(code_hash), "tcp service started");
        Ok(addr)
    }

    /// Stops service `id`: closes its port and its connections and drops
    /// its instance; the port is free when this returns. Whether it ran.
    pub async fn stop(&self, id: u64) -> bool {
        let removed = self
            .inner
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let Some(service) = removed else {
            return false;
        };
        service.supervisor.abort();
        service.ingress.abort();
        // Awaiting the aborted tasks waits until they are dropped: the
        // listener, the connections and the store with them.
        let _ = service.supervisor.await;
        let _ = service.ingress.await;
        tracing::info!(service = id, "tcp service stopped");
        true
    }

    /// The running TCP services, by id.
    pub fn list(&self) -> Vec<TcpServiceInfo> {
        let services = self
            .inner
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<TcpServiceInfo> = services
            .iter()
            .map(|(id, s)| TcpServiceInfo {
                id: *id,
                code_hash: s.code_hash,
                addr: s.addr,
                running: s.status.running.load(Ordering::Relaxed),
                starts: s.status.starts.load(Ordering::Relaxed),
                connections: s.counters.open.load(Ordering::Relaxed),
                refused: s.counters.refused.load(Ordering::Relaxed),
                idle_closed: s.counters.idle_closed.load(Ordering::Relaxed),
                fuel_used: s.status.fuel_used.load(Ordering::Relaxed),
                last_exit: s
                    .status
                    .last_exit
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            })
            .collect();
        list.sort_by_key(|s| s.id);
        list
    }

    /// Service `id`, if it runs.
    pub fn info(&self, id: u64) -> Option<TcpServiceInfo> {
        self.list().into_iter().find(|s| s.id == id)
    }

    async fn prepare(
        &self,
        hash: &CodeHash,
        bytes: &[u8],
    ) -> Result<CommandPre<TcpState>, ServiceError> {
        let inner = &self.inner;
        inner
            .commands
            .get(inner.host.components(), hash, bytes)
            .await
    }
}

/// One service's instance settings, owned by its supervisor.
struct Instance {
    id: u64,
    pre: CommandPre<TcpState>,
    engine: wasmtime::Engine,
    env: Vec<(String, String)>,
    egress: Arc<EgressPolicy>,
    public_port: u16,
    memory_bytes: u64,
    limits: TcpLimits,
    upstream: Upstream,
    status: Arc<Status>,
    /// The node's instance slot this service holds.
    _slot: OwnedSemaphorePermit,
}

/// Runs the instance again and again, with back-off, until aborted. The
/// first run was counted by [`TcpServiceHost::start`].
async fn supervise(instance: Instance) {
    let id = instance.id;
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = Instant::now();
        let ended = run_once(&instance).await;
        instance.status.running.store(false, Ordering::Relaxed);
        instance.upstream.set(None);
        if started.elapsed() >= BACKOFF_RESET {
            backoff = BACKOFF_MIN;
        }
        tracing::warn!(service = id, ended = %ended, restart_in = ?backoff, "tcp service instance ended");
        *instance
            .status
            .last_exit
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(ended);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        instance.status.begin_run();
    }
}

/// Runs one instance to its end; says how it ended.
async fn run_once(instance: &Instance) -> String {
    let resolved = policy::resolve_allowed(&instance.egress).await;
    // A free loopback port for the instance, chosen by the OS. Another
    // process could take it before the instance binds: the instance then
    // fails to listen and is restarted on another port.
    let internal =
        match std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
            Ok(a) => a,
            Err(e) => return format!("no loopback port: {e}"),
        };
    let policy = SocketPolicy {
        listen: internal,
        peers: instance.upstream.peers.clone(),
        resolved,
        egress: Arc::clone(&instance.egress),
    };
    let mut env = instance.env.clone();
    env.push(("PORT".into(), internal.port().to_string()));
    env.push(("LISTEN".into(), internal.ip().to_string()));
    env.push(("PUBLIC_PORT".into(), instance.public_port.to_string()));
    env.push(("RESOLVED_HOSTS".into(), policy.resolved_env()));
    let log = LogSink::new(instance.id);
    let check = policy.clone();
    let wasi = WasiCtx::builder()
        .envs(&env)
        .stdout(log.clone())
        .stderr(log)
        .allow_tcp(true)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(move |addr, use_| {
            let allowed = check.allows(addr, use_);
            if !allowed {
                tracing::debug!(%addr, ?use_, "tcp service socket use refused");
            }
            Box::pin(async move { allowed })
        })
        .build();
    let mut store = Store::new(
        &instance.engine,
        TcpState {
            wasi,
            table: ResourceTable::new(),
            limiter: RequestLimiter::new(instance.memory_bytes),
        },
    );
    store.limiter(|s| &mut s.limiter);
    let budget = instance.limits.fuel_per_interval;
    let interval = instance.limits.fuel_interval;
    if let Err(e) = store
        .set_fuel(budget)
        .and_then(|()| store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL)))
    {
        return format!("internal error: {e}");
    }
    let mut next_refill = std::time::Instant::now() + interval;
    let status = Arc::clone(&instance.status);
    store.call_hook(move |mut ctx, hook| {
        if matches!(hook, CallHook::CallingHost | CallHook::ReturningFromHost) {
            let now = std::time::Instant::now();
            if now >= next_refill {
                let used = budget.saturating_sub(ctx.get_fuel()?);
                status.fuel_used.fetch_add(used, Ordering::Relaxed);
                ctx.set_fuel(budget)?;
                next_refill = now + interval;
            }
        }
        Ok(())
    });
    instance.upstream.set(Some(internal));
    let ran = async {
        let command = instance.pre.instantiate_async(&mut store).await?;
        command.wasi_cli_run().call_run(&mut store).await
    }
    .await;
    let memory_refused = store.data().limiter.memory_refused;
    let used = budget.saturating_sub(store.get_fuel().unwrap_or(0));
    instance.status.fuel_used.fetch_add(used, Ordering::Relaxed);
    match ran {
        Ok(Ok(())) => "exited".into(),
        Ok(Err(())) => "exited with an error".into(),
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                format!("exited with code {}", exit.0)
            } else if memory_refused {
                "out of memory".into()
            } else {
                match e.downcast_ref::<Trap>() {
                    Some(Trap::OutOfFuel) => "out of fuel".into(),
                    Some(trap) => format!("trap: {trap}"),
                    None => format!("failed: {e:#}"),
                }
            }
        }
    }
}

/// The data of a TCP service instance's store.
pub struct TcpState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: RequestLimiter,
}

impl WasiView for TcpState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The instance's stdout and stderr: lines go to the node's log (info
/// level), up to [`LOG_BYTES_PER_INSTANCE`] bytes; the rest is dropped.
#[derive(Clone)]
struct LogSink {
    id: u64,
    logged: Arc<AtomicU64>,
    line: Arc<Mutex<Vec<u8>>>,
}

impl LogSink {
    fn new(id: u64) -> Self {
        Self {
            id,
            logged: Arc::default(),
            line: Arc::default(),
        }
    }

    fn write(&self, buf: &[u8]) {
        let budget = LOG_BYTES_PER_INSTANCE as u64;
        let before = self.logged.fetch_add(buf.len() as u64, Ordering::Relaxed);
        if before >= budget {
            return;
        }
        let take = usize::try_from(budget - before).map_or(buf.len(), |left| left.min(buf.len()));
        let mut line = self.line.lock().unwrap_or_else(|p| p.into_inner());
        for &b in &buf[..take] {
            if b == b'\n' {
                tracing::info!(
                    service = self.id,
                    "{}",
                    String::from_utf8_lossy(&line).escape_debug()
                );
                line.clear();
            } else {
                line.push(b);
            }
        }
        if before + buf.len() as u64 >= budget {
            tracing::info!(service = self.id, "log limit reached, the rest is dropped");
        }
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
