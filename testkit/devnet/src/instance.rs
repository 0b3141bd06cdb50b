//! A canister's compiled code and live wasm instance, and the atomic
//! execution of one message on it (snapshot, run, commit or roll back).
//!
//! Rollback: before each message the linear memory is copied into a reused
//! buffer and every mutable global is read; stable memory keeps an undo log
//! of the ranges the message writes. On a trap (or for a query) memory and
//! globals are written back and the undo log is replayed. If the message grew
//! linear memory, which wasm cannot shrink, the instance is re-created and
//! the snapshot copied into it.

use std::collections::HashSet;
use std::sync::Arc;

use wasmtime::{Engine, Global, Instance, InstancePre, Linker, Memory, Module, Ref, Store, Val};

use crate::error::InstallError;
use crate::stable::StableMemory;
use crate::system_api::{CanisterTrap, ExecContext, Host, IMPLEMENTED};
use crate::wasm_prep::{self, TABLE_EXPORT};

/// Compiled canister code shared by every instance of it.
pub(crate) struct CanisterCode {
    pre: InstancePre<Host>,
    global_exports: Vec<String>,
    has_table: bool,
    exports: HashSet<String>,
    /// SHA-256 of the installed module bytes.
    pub hash: [u8; 32],
    /// The module as installed (saved with the devnet's state).
    pub wasm: Arc<[u8]>,
}

impl CanisterCode {
    /// Validates, rewrites and compiles `wasm`.
    pub fn compile(
        engine: &Engine,
        linker: &Linker<Host>,
        wasm: &[u8],
    ) -> Result<Arc<CanisterCode>, InstallError> {
        use sha2::Digest;
        let prepared = wasm_prep::prepare(wasm, IMPLEMENTED)?;
        let hash: [u8; 32] = sha2::Sha256::digest(wasm).into();
        let module = compiled_module(engine, hash, &prepared.bytes)?;
        let exports = module.exports().map(|e| e.name().to_string()).collect();
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| InstallError::InvalidModule(format!("{e:#}")))?;
        Ok(Arc::new(CanisterCode {
            pre,
            global_exports: prepared.global_exports,
            has_table: prepared.has_table,
            exports,
            hash,
            wasm: wasm.into(),
        }))
    }

    /// Whether the module exports a function of this name.
    pub fn exports(&self, name: &str) -> bool {
        self.exports.contains(name)
    }
}

/// Compiles a module once per process and hash: tests install the same
/// canister into many devnets, and compiling a 1 MB module takes a while
/// (and once across processes, see [`crate::module_cache`]).
fn compiled_module(engine: &Engine, hash: [u8; 32], bytes: &[u8]) -> Result<Module, InstallError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], Module>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    // Held while compiling, so concurrent installs of one module compile it once.
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = cache.get(&hash) {
        return Ok(m.clone());
    }
    let module = crate::module_cache::compile(engine, bytes)
        .map_err(|e| InstallError::InvalidModule(format!("{e:#}")))?;
    cache.insert(hash, module.clone());
    Ok(module)
}

/// What a message runs.
pub(crate) enum Entry {
    /// An exported function such as `canister_update foo`.
    Export(String),
    /// A callback closure from the function table.
    Callback(u32, u32),
}

/// What to keep of a message's changes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Keep everything unless the message traps.
    All,
    /// Discard everything (queries, inspect_message).
    Nothing,
    /// Discard heap changes but keep stable memory (pre_upgrade on a copy).
    StableOnly,
}

/// The result of running one message.
pub(crate) struct Outcome {
    /// The trap message, if it trapped.
    pub trap: Option<String>,
    /// Instructions (wasmtime fuel) the message used.
    pub instructions: u64,
    /// The context with the message's recorded effects.
    pub ctx: ExecContext,
}

/// A live instance of a canister module.
pub(crate) struct LiveInstance {
    code: Arc<CanisterCode>,
    store: Store<Host>,
    instance: Instance,
    memory: Memory,
    globals: Vec<Global>,
    /// Reused buffers for the pre-message snapshot.
    snap_memory: Vec<u8>,
    snap_globals: Vec<Val>,
}

fn describe_error(e: &wasmtime::Error) -> String {
    if let Some(t) = e.downcast_ref::<CanisterTrap>() {
        format!("Canister called `ic0.trap` with message: {}", t.0)
    } else if let Some(t) = e.downcast_ref::<wasmtime::Trap>() {
        match t {
            wasmtime::Trap::OutOfFuel => "Canister exceeded the instruction limit".to_string(),
            other => format!("Canister trapped: {other}"),
        }
    } else {
        format!("Canister trapped: {e:#}")
    }
}

impl LiveInstance {
    /// Instantiates `code` in a fresh store.
    pub fn new(engine: &Engine, code: Arc<CanisterCode>) -> Result<LiveInstance, InstallError> {
        let host = Host {
            memory: None,
            table: None,
            stable: StableMemory::default(),
            ctx: ExecContext::new(
                crate::system_api::EntryKind::Init,
                candid::Principal::anonymous(),
            ),
        };
        let mut store = Store::new(engine, host);
        // Instantiation (data segments, start function) is not metered.
        store
            .set_fuel(u64::MAX)
            .map_err(|e| InstallError::InvalidModule(format!("{e:#}")))?;
        let instance = code
            .pre
            .instantiate(&mut store)
            .map_err(|e| InstallError::InvalidModule(describe_error(&e)))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| InstallError::InvalidModule("module exports no `memory`".into()))?;
        let table = if code.has_table {
            instance.get_table(&mut store, TABLE_EXPORT)
        } else {
            None
        };
        let globals = code
            .global_exports
            .iter()
            .filter_map(|n| instance.get_global(&mut store, n))
            .collect();
        store.data_mut().memory = Some(memory);
        store.data_mut().table = table;
        Ok(LiveInstance {
            code,
            store,
            instance,
            memory,
            globals,
            snap_memory: Vec::new(),
            snap_globals: Vec::new(),
        })
    }

    /// The code this instance runs.
    pub fn code(&self) -> &Arc<CanisterCode> {
        &self.code
    }

    /// Current linear memory size in bytes.
    pub fn memory_size(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// The committed linear memory and mutable globals (between messages).
    pub fn save(&mut self) -> Result<(Vec<u8>, Vec<SavedValue>), String> {
        let memory = self.memory.data(&self.store).to_vec();
        let mut globals = Vec::with_capacity(self.globals.len());
        for g in &self.globals {
            globals.push(SavedValue::from_val(g.get(&mut self.store))?);
        }
        Ok((memory, globals))
    }

    /// An instance of `code` holding saved linear memory and globals.
    pub fn load(
        engine: &Engine,
        code: Arc<CanisterCode>,
        memory: &[u8],
        globals: &[SavedValue],
    ) -> Result<LiveInstance, String> {
        let mut live = LiveInstance::new(engine, code).map_err(|e| e.to_string())?;
        let size = live.memory.data_size(&live.store);
        if memory.len() < size || !(memory.len() - size).is_multiple_of(65536) {
            return Err(format!(
                "saved memory of {} bytes does not fit a module whose memory starts at {size}",
                memory.len()
            ));
        }
        live.memory
            .grow(&mut live.store, ((memory.len() - size) / 65536) as u64)
            .map_err(|e| format!("growing memory to {} bytes: {e:#}", memory.len()))?;
        live.memory
            .data_mut(&mut live.store)
            .copy_from_slice(memory);
        if globals.len() != live.globals.len() {
            return Err(format!(
                "{} saved globals for a module with {} mutable globals",
                globals.len(),
                live.globals.len()
            ));
        }
        for (g, v) in live.globals.clone().iter().zip(globals) {
            g.set(&mut live.store, v.to_val())
                .map_err(|e| format!("restoring a global: {e:#}"))?;
        }
        Ok(live)
    }

    fn snapshot(&mut self) {
        self.snap_memory.clear();
        self.snap_memory
            .extend_from_slice(self.memory.data(&self.store));
        self.snap_globals.clear();
        for g in &self.globals {
            self.snap_globals.push(g.get(&mut self.store));
        }
    }

    fn restore(&mut self, engine: &Engine) {
        if self.memory.data_size(&self.store) != self.snap_memory.len() {
            // Memory grew during the message: start from a fresh instance.
            let fresh = LiveInstance::new(engine, self.code.clone())
                .expect("re-instantiating an already installed module");
            let LiveInstance {
                store,
                instance,
                memory,
                globals,
                ..
            } = fresh;
            let stable = std::mem::take(&mut self.store.data_mut().stable);
            let ctx = std::mem::replace(
                &mut self.store.data_mut().ctx,
                ExecContext::new(
                    crate::system_api::EntryKind::Init,
                    candid::Principal::anonymous(),
                ),
            );
            self.store = store;
            self.instance = instance;
            self.memory = memory;
            self.globals = globals;
            self.store.data_mut().stable = stable;
            self.store.data_mut().ctx = ctx;
            let pages = (self.snap_memory.len() - self.memory.data_size(&self.store)) / 65536;
            self.memory
                .grow(&mut self.store, pages as u64)
                .expect("growing memory back to its committed size");
        }
        self.memory
            .data_mut(&mut self.store)
            .copy_from_slice(&self.snap_memory);
        for (g, v) in self.globals.iter().zip(self.snap_globals.iter()) {
            g.set(&mut self.store, *v)
                .expect("restoring a mutable global");
        }
    }

    /// Runs one message atomically; `stable` is the canister's stable memory.
    pub fn run(
        &mut self,
        engine: &Engine,
        stable: &mut StableMemory,
        entry: &Entry,
        mut ctx: ExecContext,
        limit: u64,
        keep: Keep,
    ) -> Outcome {
        self.snapshot();
        stable.begin();
        ctx.instruction_limit = limit;
        {
            let host = self.store.data_mut();
            host.ctx = ctx;
            host.stable = std::mem::take(stable);
        }
        self.store.set_fuel(limit).expect("fuel is enabled");
        let result = self.call(entry);
        let left = self.store.get_fuel().unwrap_or(0);
        let instructions = limit.saturating_sub(left);
        let trap = result.err().map(|e| describe_error(&e));
        if trap.is_some() || keep != Keep::All {
            self.restore(engine);
        }
        let host = self.store.data_mut();
        *stable = std::mem::take(&mut host.stable);
        let ctx = std::mem::replace(
            &mut host.ctx,
            ExecContext::new(
                crate::system_api::EntryKind::Init,
                candid::Principal::anonymous(),
            ),
        );
        if trap.is_some() || keep == Keep::Nothing {
            stable.rollback();
        } else {
            stable.commit();
        }
        Outcome {
            trap,
            instructions,
            ctx,
        }
    }

    fn call(&mut self, entry: &Entry) -> wasmtime::Result<()> {
        match entry {
            Entry::Export(name) => {
                let f = self
                    .instance
                    .get_typed_func::<(), ()>(&mut self.store, name)?;
                f.call(&mut self.store, ())
            }
            Entry::Callback(fun, env) => {
                let table = self.store.data().table.ok_or_else(|| {
                    wasmtime::Error::new(CanisterTrap("module has no table".into()))
                })?;
                let func = match table.get(&mut self.store, u64::from(*fun)) {
                    Some(Ref::Func(Some(f))) => f,
                    _ => {
                        return Err(wasmtime::Error::new(CanisterTrap(format!(
                            "callback {fun} is not a function in the table"
                        ))));
                    }
                };
                let typed = func.typed::<u32, ()>(&self.store)?;
                typed.call(&mut self.store, *env)
            }
        }
    }
}

/// The value of a mutable global, as saved with the devnet's state.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum SavedValue {
    I32(i32),
    I64(i64),
    /// Bits of an `f32`.
    F32(u32),
    /// Bits of an `f64`.
    F64(u64),
    V128(u128),
}

impl SavedValue {
    fn from_val(v: Val) -> Result<SavedValue, String> {
        Ok(match v {
            Val::I32(x) => SavedValue::I32(x),
            Val::I64(x) => SavedValue::I64(x),
            Val::F32(x) => SavedValue::F32(x),
            Val::F64(x) => SavedValue::F64(x),
            Val::V128(x) => SavedValue::V128(x.as_u128()),
            other => {
                return Err(format!(
                    "a mutable global holding {other:?} cannot be saved"
                ));
            }
        })
    }

    fn to_val(self) -> Val {
        match self {
            SavedValue::I32(x) => Val::I32(x),
            SavedValue::I64(x) => Val::I64(x),
            SavedValue::F32(x) => Val::F32(x),
            SavedValue::F64(x) => Val::F64(x),
            SavedValue::V128(x) => Val::V128(x.into()),
        }
    }
}
