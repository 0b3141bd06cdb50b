//! The services' wasmtime [`Engine`], its linker, and compiled components
//! cached by sha256.
//!
//! Separate from the batch sandbox's engine: the component model is on,
//! the pooling allocator holds component instances, and there is no NaN
//! canonicalisation (a service's answers are not re-executed for audit).
//! Otherwise the same proposals are off, and fuel is on: it bounds the
//! work of one request, and the guest yields to the runtime every
//! [`FUEL_YIELD_INTERVAL`] units so that a wall-clock timeout can stop a
//! guest spinning in wasm.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::cli::WasiCli;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::ServiceError;
use super::state::RequestState;
use crate::sandbox::cache::BoundedMap;
use crate::sandbox::{CodeHash, DiskCache};

/// Fuel a request burns between yields to the runtime (where a timeout can
/// stop it): well under a millisecond of typical code.
pub const FUEL_YIELD_INTERVAL: u64 = 1_000_000;

/// Node-wide settings of the service host.
#[derive(Clone, Debug)]
pub struct ServiceHostConfig {
    /// Instances alive at once across every service on the node (one per
    /// request in flight): sizes the pooling allocator. More requests are
    /// answered 503.
    pub max_instances: u32,
    /// Largest linear memory one instance may have, bytes (a service's
    /// `memory_mib` must fit).
    pub max_memory_bytes: u64,
    /// Largest component accepted, bytes.
    pub max_component_bytes: usize,
    /// Wall-clock limit on compiling one component.
    pub compile_timeout: Duration,
    /// Directory of the on-disk compiled-component cache (shared with the
    /// batch sandbox's, HMAC-sealed); `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Compiled components kept in memory.
    pub memory_cache_entries: usize,
    /// Use the pooling allocator (fast instantiation; address space
    /// reserved up front for `max_instances`).
    pub pooling: bool,
    /// Addresses on the provider's own network that services' allowed
    /// hosts may resolve to (local test servers). Empty by default: only
    /// public addresses are reachable.
    pub egress_local_addresses: Vec<std::net::IpAddr>,
    /// The ingress's public base URL (`https://node.example:8443`): a
    /// service's endpoint is `<base>/<id>/`.
    pub public_base_url: Option<String>,
}

impl Default for ServiceHostConfig {
    fn default() -> Self {
        Self {
            max_instances: 128,
            max_memory_bytes: 256 << 20,
            max_component_bytes: 16 << 20,
            compile_timeout: Duration::from_secs(10),
            cache_dir: None,
            memory_cache_entries: 64,
            pooling: true,
            egress_local_addresses: Vec::new(),
            public_base_url: None,
        }
    }
}

/// Core instances a component may create (a Rust component built from one
/// core module with the adapter's shims uses up to four).
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
/// Tables per component.
const TABLES_PER_COMPONENT: u32 = 4;
/// Elements per table.
pub(super) const TABLE_ELEMENTS: usize = 20_000;
/// Wasm stack of a request.
const MAX_WASM_STACK: usize = 1 << 20;

impl ServiceHostConfig {
    /// Builds the services' engine.
    pub fn engine(&self) -> Result<Engine, ServiceError> {
        if self.max_instances == 0 {
            return Err(ServiceError::Config(
                "max_instances must be at least 1".into(),
            ));
        }
        if self.max_memory_bytes > 4 << 30 {
            return Err(ServiceError::Config(
                "max_memory_bytes can't exceed 4 GiB (32-bit memories)".into(),
            ));
        }
        let mut config = crate::sandbox::metered_config();
        config
            .wasm_component_model(true)
            .max_wasm_stack(MAX_WASM_STACK)
            .async_stack_size(MAX_WASM_STACK + (1 << 20))
            // The batch engine's denylist, component model aside.
            .wasm_features(crate::sandbox::DENIED_PROPOSALS, false);
        if self.pooling {
            let n = self.max_instances;
            let mut pool = PoolingAllocationConfig::new();
            pool.total_component_instances(n)
                .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
                .total_memories(n)
                .total_tables(n.saturating_mul(TABLES_PER_COMPONENT))
                .total_stacks(n)
                .max_memories_per_component(1)
                .max_memories_per_module(1)
                .max_tables_per_component(TABLES_PER_COMPONENT)
                .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
                .max_memory_size(usize::try_from(self.max_memory_bytes).unwrap_or(usize::MAX))
                .table_elements(TABLE_ELEMENTS)
                .max_core_instance_size(1 << 20)
                .max_component_instance_size(1 << 20)
                .linear_memory_keep_resident(1 << 20)
                .table_keep_resident(64 << 10);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        Engine::new(&config).map_err(|e| ServiceError::Config(format!("{e:#}")))
    }
}

/// The `wasi:http/proxy` world plus `wasi:cli/environment`, so the lease's
/// env reaches the component. No files, sockets or exit.
pub(super) fn linker(engine: &Engine) -> Result<Linker<RequestState>, ServiceError> {
    let mut linker = Linker::new(engine);
    let link = |r: wasmtime::Result<()>| r.map_err(|e| ServiceError::Config(format!("{e:#}")));
    link(wasmtime_wasi_http::p2::add_to_linker_async(&mut linker))?;
    link(
        wasmtime_wasi::p2::bindings::cli::environment::add_to_linker::<RequestState, WasiCli>(
            &mut linker,
            wasmtime_wasi::cli::WasiCliView::cli,
        ),
    )?;
    Ok(linker)
}

/// Components of one world (`P`, pre-instantiated with store data `T`),
/// linked and kept by code hash.
pub(super) struct Prepared<T: 'static, P> {
    linker: Linker<T>,
    ready: BoundedMap<P>,
    world: fn(InstancePre<T>) -> wasmtime::Result<P>,
}

impl<T: 'static, P: Clone> Prepared<T, P> {
    /// At most `entries` kept; each component linked by `linker`, then
    /// made a `P` by `world`, which refuses one not of the world.
    pub(super) fn new(
        linker: Linker<T>,
        entries: usize,
        world: fn(InstancePre<T>) -> wasmtime::Result<P>,
    ) -> Self {
        Self {
            linker,
            ready: BoundedMap::new(entries),
            world,
        }
    }

    /// The pre-instantiated component of `bytes`, whose sha256 must be
    /// `hash`: from memory, or [compiled](Components::compile) by
    /// `components` and linked.
    pub(super) async fn get(
        &self,
        components: &Components,
        hash: &CodeHash,
        bytes: &[u8],
    ) -> Result<P, ServiceError> {
        if let Some(pre) = self.ready.get(hash) {
            components.check_bytes(hash, bytes)?;
            return Ok(pre);
        }
        let component = components.compile(hash, bytes).await?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(self.world)
            .map_err(|e| ServiceError::Invalid(format!("{e:#}")))?;
        self.ready.insert(*hash, pre.clone());
        Ok(pre)
    }
}

/// Compiled, pre-instantiated components by code hash.
pub(super) struct Components {
    engine: Engine,
    /// Refuses a component importing anything outside the proxy world and
    /// the environment.
    proxies: Prepared<RequestState, ProxyPre<RequestState>>,
    disk: Option<DiskCache>,
    compile_slot: Arc<tokio::sync::Semaphore>,
    max_bytes: usize,
    compile_timeout: Duration,
}

impl Components {
    pub(super) fn new(config: &ServiceHostConfig, engine: Engine) -> Result<Self, ServiceError> {
        let disk = match &config.cache_dir {
            Some(dir) => Some(
                DiskCache::open(dir, &engine).map_err(|e| ServiceError::Config(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Self {
            proxies: Prepared::new(linker(&engine)?, config.memory_cache_entries, ProxyPre::new),
            engine,
            disk,
            compile_slot: Arc::new(tokio::sync::Semaphore::new(1)),
            max_bytes: config.max_component_bytes,
            compile_timeout: config.compile_timeout,
        })
    }

    pub(super) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The pre-instantiated component of `bytes`, whose sha256 must be
    /// `hash`: from memory, or [compiled](Self::compile).
    pub(super) async fn prepare(
        &self,
        hash: &CodeHash,
        bytes: &[u8],
    ) -> Result<ProxyPre<RequestState>, ServiceError> {
        self.proxies.get(self, hash, bytes).await
    }

    /// The compiled component of `bytes`, whose sha256 must be `hash`: from
    /// disk, or compiled (on a blocking thread, one at a time, within the
    /// compile timeout). Any world: the caller links it.
    pub(super) async fn compile(
        &self,
        hash: &CodeHash,
        bytes: &[u8],
    ) -> Result<Component, ServiceError> {
        self.check_bytes(hash, bytes)?;
        if let Some(c) = self
            .disk
            .as_ref()
            .and_then(|d| d.load::<Component>(&self.engine, hash))
        {
            return Ok(c);
        }
        let slot = Arc::clone(&self.compile_slot)
            .acquire_owned()
            .await
            .map_err(|_| ServiceError::Config("compile slot closed".into()))?;
        let engine = self.engine.clone();
        let wasm = bytes.to_vec();
        let compile = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            Component::new(&engine, &wasm)
        });
        let component = match tokio::time::timeout(self.compile_timeout, compile).await {
            Err(_) => return Err(ServiceError::CompileTimeout(self.compile_timeout)),
            Ok(Err(panic)) => return Err(ServiceError::Invalid(panic.to_string())),
            Ok(Ok(Err(e))) => return Err(ServiceError::Invalid(format!("{e:#}"))),
            Ok(Ok(Ok(c))) => c,
        };
        if let Some(disk) = &self.disk {
            // A failed write costs only a recompile later.
            let _ = disk.store(hash, &component);
        }
        Ok(component)
    }

    /// Refuses `bytes` over the size limit or not hashing to `hash`.
    pub(super) fn check_bytes(&self, hash: &CodeHash, bytes: &[u8]) -> Result<(), ServiceError> {
        let max_bytes = self.max_bytes;
        if bytes.len() > max_bytes {
            return Err(ServiceError::ComponentTooLarge {
                size: bytes.len(),
                limit: max_bytes,
            });
        }
        let actual: CodeHash = Sha256::digest(bytes).into();
        if actual != *hash {
            return Err(ServiceError::HashMismatch {
                expected: hex::encode(hash),
                actual: hex::encode(actual),
            });
        }
        Ok(())
    }
}
