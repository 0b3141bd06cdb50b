//! An embedded local Internet Computer for tests, benchmarks and demos.
//!
//! [`Devnet`] runs real canister `.wasm` files under wasmtime with the IC's
//! system API (`ic0`) and message semantics: atomic messages with rollback on
//! trap, inter-canister calls with reply/reject/cleanup callbacks, bounded-wait
//! calls and their deadlines, the global timer, stable memory, upgrades, time
//! under the caller's control, instruction counting with limits, a management
//! canister, and fault injection. It is synchronous and deterministic: nothing
//! runs unless a method of [`Devnet`] is called. See the crate's README for
//! what it emulates faithfully and what it does not.

mod candid_api;
pub mod costs;
mod cycles;
mod error;
mod faults;
mod instance;
mod lifecycle;
mod logs;
mod management;
mod module_cache;
mod outcalls;
mod persist;
mod rng;
mod scheduler;
mod snapshots;
mod stable;
mod system_api;
pub mod top_up;
pub mod vetkd;
mod wasm_prep;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use candid::Principal;
pub use costs::CyclesBurned;
pub use cycles::{
    Account, CANISTER_CREATION_FEE, CMC_ID, CYCLES_LEDGER_FEE, CYCLES_LEDGER_ID, cycles_account,
};
pub use error::{CallError, ErrorCode, InstallError, Reject, RejectCode};
pub use faults::{Fault, FaultKind};
pub use lifecycle::{FIRST_CANISTER_ID, RunStatus};
pub use logs::DEFAULT_LOG_MEMORY_LIMIT;
pub use management::{CanisterSettings, CanisterStatus, InstallMode, UpgradeFlags};
pub use outcalls::{SUBNET_NODES, http_request_cost, request_size};
pub use persist::StateError;
pub use snapshots::MAX_SNAPSHOTS;
pub use system_api::MAX_PAYLOAD;

use instance::{CanisterCode, LiveInstance};
use scheduler::{CallContext, Callback, Message};
use stable::StableMemory;
use wasmtime::{Engine, Linker};

/// Limits and knobs of a [`Devnet`]. `Default` gives the IC's values.
#[derive(Clone, Debug)]
pub struct DevnetConfig {
    /// Instruction limit of one update message or callback (IC: 40 billion).
    pub update_instruction_limit: u64,
    /// Instruction limit of one query (IC: 5 billion).
    pub query_instruction_limit: u64,
    /// Instruction limit of `canister_inspect_message` (IC: 200 million).
    pub inspect_instruction_limit: u64,
    /// Instruction limit of install and upgrade hooks (IC: 300 billion).
    pub install_instruction_limit: u64,
    /// Largest stable memory in wasm pages (held in RAM, so smaller than the IC's).
    pub max_stable_pages: u64,
    /// Cycles given to each new canister.
    pub initial_cycles: u128,
    /// Seed of the `raw_rand` generator.
    pub seed: u64,
    /// Messages one [`Devnet::tick`] executes at most (guards against call loops).
    pub max_messages_per_tick: usize,
    /// Print canisters' `debug_print` output to stderr as it happens.
    pub print_debug: bool,
}

impl Default for DevnetConfig {
    fn default() -> Self {
        DevnetConfig {
            update_instruction_limit: 40_000_000_000,
            query_instruction_limit: 5_000_000_000,
            inspect_instruction_limit: 200_000_000,
            install_instruction_limit: 300_000_000_000,
            max_stable_pages: 4 * 16384, // 4 GiB
            initial_cycles: 100_000_000_000_000,
            seed: 0,
            max_messages_per_tick: 1_000_000,
            print_debug: false,
        }
    }
}

/// Identifies an ingress message submitted with [`Devnet::submit_call`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct MessageId(pub u64);

/// State of an ingress message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IngressStatus {
    /// Not answered yet.
    Pending,
    /// Answered with a reply or a reject.
    Done(Result<Vec<u8>, Reject>),
    /// Unknown message id.
    Unknown,
}

/// One executed message, for tests and benchmarks that count instructions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    /// The canister that ran it.
    pub canister: Principal,
    /// What ran: an exported function name or `callback`, `cleanup`.
    pub entry: String,
    /// Instructions it used.
    pub instructions: u64,
    /// The trap message, if it trapped.
    pub trap: Option<String>,
}

/// What one [`Devnet::tick`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickStats {
    /// Requests and responses delivered.
    pub messages: usize,
    /// Global timers fired.
    pub timers: usize,
    /// Deadlines of bounded-wait calls that expired.
    pub expired: usize,
    /// True if the tick stopped at `max_messages_per_tick` with work left.
    pub exhausted: bool,
}

/// One canister's state.
pub(crate) struct Canister {
    pub controllers: Vec<Principal>,
    /// Every other setting (its `controllers` field is unused: see above).
    pub settings: management::Settings,
    pub status: RunStatus,
    /// `stop_canister` calls waiting for the canister to reach `Stopped`.
    pub stop_waiters: Vec<scheduler::Origin>,
    pub live: Option<LiveInstance>,
    pub stable: StableMemory,
    pub global_timer: u64,
    pub version: u64,
    pub balance: u128,
    pub certified_data: Vec<u8>,
    /// Every `debug_print` line, unbounded ([`Devnet::canister_logs`]).
    pub logs: Vec<String>,
    /// The log records `fetch_canister_logs` serves, bounded.
    pub log: logs::LogBuffer,
    pub snapshots: Vec<snapshots::CanisterSnapshot>,
    /// Cycles burned since creation or the last reset, by category (not saved).
    pub burned: CyclesBurned,
}

impl Canister {
    pub fn code(&self) -> Option<&Arc<CanisterCode>> {
        self.live.as_ref().map(|l| l.code())
    }

    /// Records a message's `debug_print` lines, and its trap if it trapped,
    /// in both logs.
    pub fn append_logs(&mut self, now: u64, lines: &mut Vec<String>, trap: Option<&str>) {
        let limit = u64::try_from(self.settings.log_memory_limit.0.clone()).unwrap_or(u64::MAX);
        for line in lines.iter() {
            self.log.push(now, line.as_bytes(), limit);
        }
        if let Some(t) = trap {
            self.log.push(now, format!("[TRAP]: {t}").as_bytes(), limit);
        }
        self.logs.append(lines);
    }

    /// Bytes the IC charges storage for: heap, stable memory and snapshots,
    /// or the memory allocation if it is larger.
    pub fn memory_bytes(&self) -> u64 {
        let heap = self.live.as_ref().map_or(0, |l| l.memory_size()) as u64;
        let snapshots: u64 = self.snapshots.iter().map(|s| s.describe().total_size).sum();
        let used = heap
            .saturating_add(self.stable.len() as u64)
            .saturating_add(snapshots);
        let allocated =
            u64::try_from(self.settings.memory_allocation.0.clone()).unwrap_or(u64::MAX);
        used.max(allocated)
    }

    /// The compute allocation in percent.
    pub fn compute_allocation(&self) -> u64 {
        u64::try_from(self.settings.compute_allocation.0.clone()).unwrap_or(100)
    }

    /// The balance below which the canister is frozen.
    pub fn freezing_threshold_cycles(&self) -> u128 {
        let secs = u64::try_from(self.settings.freezing_threshold.0.clone()).unwrap_or(u64::MAX);
        costs::freezing_threshold_cycles(self.memory_bytes(), self.compute_allocation(), secs)
    }

    /// Takes `amount` (all that is left if less) and records what it paid for.
    pub fn charge(&mut self, what: costs::Burn, amount: u128) {
        let paid = amount.min(self.balance);
        self.balance -= paid;
        self.burned.add(what, paid);
    }
}

/// An embedded local IC. See the crate documentation.
pub struct Devnet {
    engine: Engine,
    linker: Linker<system_api::Host>,
    config: DevnetConfig,
    canisters: BTreeMap<Principal, Canister>,
    next_canister: u64,
    /// The subnet's id, which the cycles minting canister names.
    subnet_id: Principal,
    /// Cycles ledger accounts (owner, subaccount) and their balances.
    ledger: cycles::CyclesLedger,
    /// The cycles minting canister's ICP ledger and the top-ups notified.
    cmc: top_up::CmcState,
    time: u64,
    queue: VecDeque<Message>,
    call_contexts: HashMap<u64, CallContext>,
    callbacks: BTreeMap<u64, Callback>,
    next_id: u64,
    ingress: HashMap<MessageId, IngressStatus>,
    faults: Vec<Fault>,
    rng: rng::SplitMix64,
    executions: VecDeque<Execution>,
}

/// Lower-case hex of `bytes`, for names and debug output.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One engine per process: every devnet uses the same configuration, and
/// sharing it lets compiled modules be shared too (see `instance`).
fn shared_engine() -> Engine {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = wasmtime::Config::new();
            config
                .consume_fuel(true)
                .cranelift_nan_canonicalization(true)
                .wasm_relaxed_simd(false)
                .wasm_multi_memory(false)
                .wasm_memory64(false);
            Engine::new(&config).expect("wasmtime engine configuration")
        })
        .clone()
}

/// How many [`Execution`] records are kept.
const EXECUTION_LOG_LEN: usize = 10_000;

impl Default for Devnet {
    fn default() -> Self {
        Self::new()
    }
}

impl Devnet {
    /// A devnet with the IC's default limits, time at 2025-01-01T00:00:00Z.
    pub fn new() -> Self {
        Self::with_config(DevnetConfig::default())
    }

    /// A devnet with the given limits and seed.
    pub fn with_config(config: DevnetConfig) -> Self {
        let engine = shared_engine();
        let mut linker = Linker::new(&engine);
        system_api::add_to_linker(&mut linker).expect("defining the ic0 functions");
        Devnet {
            engine,
            linker,
            rng: rng::SplitMix64::new(config.seed),
            config,
            canisters: BTreeMap::new(),
            next_canister: 0,
            subnet_id: cycles::DEFAULT_SUBNET_ID,
            ledger: cycles::CyclesLedger::default(),
            cmc: top_up::CmcState::default(),
            time: 1_735_689_600_000_000_000,
            queue: VecDeque::new(),
            call_contexts: HashMap::new(),
            callbacks: BTreeMap::new(),
            next_id: 0,
            ingress: HashMap::new(),
            faults: Vec::new(),
            executions: VecDeque::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DevnetConfig {
        &self.config
    }

    /// The IC time in nanoseconds since the Unix epoch.
    pub fn time_nanos(&self) -> u64 {
        self.time
    }

    /// The IC time.
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.time)
    }

    /// Sets the IC time; it never goes backwards (an earlier time is ignored).
    pub fn set_time(&mut self, time: SystemTime) {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let now = self.time.max(nanos);
        self.charge_idle(now - self.time);
        self.time = now;
    }

    /// Moves the IC time forward. Timers and deadlines act on the next [`tick`](Self::tick).
    pub fn advance_time(&mut self, by: Duration) {
        let now = self.time.saturating_add(by.as_nanos() as u64);
        self.charge_idle(now - self.time);
        self.time = now;
    }

    /// Cycles the canister has burned since it was created or
    /// [`reset_cycles_burned`](Self::reset_cycles_burned), by category.
    pub fn cycles_burned(&self, canister: Principal) -> Option<CyclesBurned> {
        self.canisters.get(&canister).map(|c| c.burned)
    }

    /// Sets every canister's burned-cycles counters to zero.
    pub fn reset_cycles_burned(&mut self) {
        for c in self.canisters.values_mut() {
            c.burned = CyclesBurned::default();
        }
    }

    /// The balance below which the canister is frozen (what it burns idle
    /// in its `freezing_threshold`), if it exists.
    pub fn freezing_threshold_cycles(&self, canister: Principal) -> Option<u128> {
        self.canisters
            .get(&canister)
            .map(|c| c.freezing_threshold_cycles())
    }

    /// Charges every canister for storage and compute allocation over
    /// `nanos`; a canister that cannot pay loses its code, as on the IC.
    fn charge_idle(&mut self, nanos: u64) {
        if nanos == 0 {
            return;
        }
        let pages = self.config.max_stable_pages;
        for c in self.canisters.values_mut() {
            let cost = costs::idle_cost(c.memory_bytes(), c.compute_allocation(), nanos);
            let exhausted = cost > c.balance;
            c.charge(costs::Burn::Storage, cost);
            if exhausted && c.live.is_some() {
                lifecycle::drop_code(c, pages);
            }
        }
    }

    /// Makes the next matching inter-canister calls fail; see [`Fault`].
    pub fn inject_fault(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    /// Removes all injected faults that have not been used up.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Whether a canister with this id exists.
    pub fn canister_exists(&self, canister: Principal) -> bool {
        self.canisters.contains_key(&canister)
    }

    /// The canister's controllers, if it exists.
    pub fn controllers(&self, canister: Principal) -> Option<Vec<Principal>> {
        self.canisters.get(&canister).map(|c| c.controllers.clone())
    }

    /// The canister's cycle balance, if it exists.
    pub fn cycle_balance(&self, canister: Principal) -> Option<u128> {
        self.canisters.get(&canister).map(|c| c.balance)
    }

    /// Adds cycles to a canister's balance.
    pub fn add_cycles(&mut self, canister: Principal, amount: u128) {
        if let Some(c) = self.canisters.get_mut(&canister) {
            c.balance = c.balance.saturating_add(amount);
        }
    }

    /// Sets a canister's cycle balance: a test's shortcut to a canister
    /// that has spent its cycles (or been given many). The cycles taken or
    /// given count in no category of [`cycles_burned`](Self::cycles_burned).
    pub fn set_cycle_balance(&mut self, canister: Principal, amount: u128) {
        if let Some(c) = self.canisters.get_mut(&canister) {
            c.balance = amount;
        }
    }

    /// The SHA-256 of the canister's installed module.
    pub fn module_hash(&self, canister: Principal) -> Option<[u8; 32]> {
        self.canisters
            .get(&canister)
            .and_then(|c| c.code().map(|code| code.hash))
    }

    /// The canister's certified data (set by `ic0.certified_data_set`; empty
    /// until set), if the canister exists.
    pub fn certified_data(&self, canister: Principal) -> Option<Vec<u8>> {
        self.canisters
            .get(&canister)
            .map(|c| c.certified_data.clone())
    }

    /// The canister's version (`ic0.canister_version`), if it exists.
    pub fn canister_version(&self, canister: Principal) -> Option<u64> {
        self.canisters.get(&canister).map(|c| c.version)
    }

    /// Size of the canister's stable memory in bytes.
    pub fn stable_memory_size(&self, canister: Principal) -> Option<usize> {
        self.canisters.get(&canister).map(|c| c.stable.len())
    }

    /// The canister's `debug_print` lines (including those of trapped messages).
    pub fn canister_logs(&self, canister: Principal) -> Vec<String> {
        self.canisters
            .get(&canister)
            .map(|c| c.logs.clone())
            .unwrap_or_default()
    }

    /// Instructions used by the most recent message, if any ran.
    pub fn last_instructions(&self) -> Option<u64> {
        self.executions.back().map(|e| e.instructions)
    }

    /// Takes the record of executed messages (the last 10 000 at most).
    pub fn take_executions(&mut self) -> Vec<Execution> {
        self.executions.drain(..).collect()
    }

    /// Number of requests and responses waiting to be delivered.
    pub fn queued_messages(&self) -> usize {
        self.queue.len()
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn record(
        &mut self,
        canister: Principal,
        entry: &str,
        instructions: u64,
        trap: Option<String>,
    ) {
        if self.executions.len() == EXECUTION_LOG_LEN {
            self.executions.pop_front();
        }
        self.executions.push_back(Execution {
            canister,
            entry: entry.to_string(),
            instructions,
            trap,
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn devnet_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<super::Devnet>();
    }
}
