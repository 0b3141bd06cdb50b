//! What one request's [`wasmtime::Store`] holds: its WASI context (the
//! lease's env, no files or sockets, stdio dropped), its HTTP context and
//! egress hooks, and its memory limits.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::egress::{EgressHooks, EgressPolicy};
use super::engine::TABLE_ELEMENTS;

/// The data of one request's store.
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: EgressHooks,
    pub(super) limiter: RequestLimiter,
}

impl RequestState {
    /// A fresh state: `env` as the component's environment, outgoing
    /// requests under `egress`, linear memory up to `memory_bytes`.
    pub(super) fn new(
        env: &[(String, String)],
        egress: Arc<EgressPolicy>,
        memory_bytes: u64,
    ) -> Self {
        // stdin is closed and stdout/stderr are sinks (the builder's
        // defaults): a guest's logging costs the node nothing.
        let wasi = WasiCtx::builder().envs(env).build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: EgressHooks::new(egress),
            limiter: RequestLimiter::new(memory_bytes),
        }
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// [`StoreLimits`] that remembers a refused memory growth, so a request
/// that trapped on it is reported as out of memory.
pub(super) struct RequestLimiter {
    limits: StoreLimits,
    pub(super) memory_refused: bool,
}

impl RequestLimiter {
    /// Linear memory up to `memory_bytes`, tables as the pool allows.
    pub(super) fn new(memory_bytes: u64) -> Self {
        Self {
            limits: StoreLimitsBuilder::new()
                .memory_size(usize::try_from(memory_bytes).unwrap_or(usize::MAX))
                .table_elements(TABLE_ELEMENTS)
                .instances(16)
                .memories(2)
                .tables(8)
                .trap_on_grow_failure(true)
                .build(),
            memory_refused: false,
        }
    }
}

impl ResourceLimiter for RequestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let r = self.limits.memory_growing(current, desired, maximum);
        if !matches!(r, Ok(true)) {
            self.memory_refused = true;
        }
        r
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
