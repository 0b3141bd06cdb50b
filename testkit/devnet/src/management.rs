//! The management canister (`aaaaa-aa`): canister creation, code
//! installation (install, reinstall, upgrade, uninstall), settings, status,
//! logs and `raw_rand`, both as Rust methods on [`Devnet`] and as calls from
//! canisters and ingress. Stopping, starting and deleting are in
//! `lifecycle`.

use candid::{CandidType, Decode, Deserialize, Encode, Nat, Principal};
pub use ic_management_canister_types::CanisterSettings;
use ic_management_canister_types::{
    CanisterIdRecord, CanisterLogFilter, CanisterStatusResult, CanisterStatusType,
    DefiniteCanisterSettings, DeleteCanisterSnapshotArgs, FetchCanisterLogsArgs,
    FetchCanisterLogsResult, LoadCanisterSnapshotArgs, LogVisibility, MemoryMetrics,
    ProvisionalTopUpCanisterArgs, QueryStats, StatusVisibility, TakeCanisterSnapshotArgs,
    UpdateSettingsArgs,
};

use crate::error::{ErrorCode, InstallError, Reject};
use crate::instance::{CanisterCode, Keep, LiveInstance};
use crate::stable::StableMemory;
use crate::system_api::{EntryKind, ExecContext};
use crate::{Canister, Devnet};

/// How `install_code` treats an existing module.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum InstallMode {
    /// Install into an empty canister.
    #[serde(rename = "install")]
    Install,
    /// Replace the module, dropping heap and stable memory.
    #[serde(rename = "reinstall")]
    Reinstall,
    /// Replace the module, keeping stable memory and running the upgrade hooks.
    #[serde(rename = "upgrade")]
    Upgrade(Option<UpgradeFlags>),
}

/// Options of an upgrade.
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct UpgradeFlags {
    /// Skip `canister_pre_upgrade`.
    pub skip_pre_upgrade: Option<bool>,
}

#[derive(CandidType, Deserialize)]
struct CreateCanisterArgs {
    settings: Option<CanisterSettings>,
}

#[derive(CandidType, Deserialize)]
struct InstallCodeArgs {
    mode: InstallMode,
    canister_id: Principal,
    #[serde(with = "serde_bytes")]
    wasm_module: Vec<u8>,
    #[serde(with = "serde_bytes")]
    arg: Vec<u8>,
}

/// `canister_status`'s record: the IC's full reply.
pub type CanisterStatus = CanisterStatusResult;

/// A canister's settings as the devnet keeps them (the `controllers` field is
/// unused: controllers live beside it, as every call checks them).
pub(crate) type Settings = DefiniteCanisterSettings;

/// The IC's defaults of a new canister's settings.
pub(crate) fn default_settings() -> Settings {
    DefiniteCanisterSettings {
        controllers: Vec::new(),
        compute_allocation: Nat::from(0u8),
        memory_allocation: Nat::from(0u8),
        freezing_threshold: Nat::from(2_592_000u32),
        reserved_cycles_limit: Nat::from(5_000_000_000_000u64),
        minimum_incoming_canister_call_cycles: Nat::from(0u8),
        log_visibility: LogVisibility::Controllers,
        log_memory_limit: Nat::from(crate::logs::DEFAULT_LOG_MEMORY_LIMIT),
        snapshot_visibility: Default::default(),
        status_visibility: Default::default(),
        wasm_memory_limit: Nat::from(3u64 << 30),
        wasm_memory_threshold: Nat::from(0u8),
        environment_variables: Vec::new(),
    }
}

/// Most controllers a canister may have (IC: 10).
const MAX_CONTROLLERS: usize = 10;
/// Most allowed log viewers (IC: 10).
const MAX_LOG_VIEWERS: usize = 10;
/// Most environment variables (IC: 20).
const MAX_ENVIRONMENT_VARIABLES: usize = 20;

fn invalid_settings(message: impl std::fmt::Display) -> Reject {
    Reject::error(
        ErrorCode::CanisterContractViolation,
        format!("Invalid settings: {message}"),
    )
}

fn at_most(value: &Nat, max: u64, name: &str) -> Result<(), Reject> {
    if u64::try_from(value.0.clone()).is_ok_and(|v| v <= max) {
        Ok(())
    } else {
        Err(invalid_settings(format!(
            "{name} must be at most {max}, got {value}"
        )))
    }
}

/// Applies the fields `update` sets to `settings` and `controllers`, after
/// checking them as the IC does; nothing changes if one is invalid.
pub(crate) fn apply_settings(
    settings: &mut Settings,
    controllers: &mut Vec<Principal>,
    update: CanisterSettings,
) -> Result<(), Reject> {
    if let Some(c) = &update.controllers
        && c.len() > MAX_CONTROLLERS
    {
        return Err(invalid_settings(format!(
            "at most {MAX_CONTROLLERS} controllers are allowed, got {}",
            c.len()
        )));
    }
    if let Some(v) = &update.compute_allocation {
        at_most(v, 100, "compute_allocation")?;
    }
    for (v, name) in [
        (&update.memory_allocation, "memory_allocation"),
        (&update.freezing_threshold, "freezing_threshold"),
        (&update.reserved_cycles_limit, "reserved_cycles_limit"),
        (&update.log_memory_limit, "log_memory_limit"),
        (&update.wasm_memory_limit, "wasm_memory_limit"),
        (&update.wasm_memory_threshold, "wasm_memory_threshold"),
    ] {
        if let Some(v) = v {
            at_most(v, u64::MAX, name)?;
        }
    }
    if let Some(LogVisibility::AllowedViewers(v)) = &update.log_visibility
        && v.len() > MAX_LOG_VIEWERS
    {
        return Err(invalid_settings(format!(
            "at most {MAX_LOG_VIEWERS} log viewers are allowed, got {}",
            v.len()
        )));
    }
    if let Some(v) = &update.environment_variables
        && v.len() > MAX_ENVIRONMENT_VARIABLES
    {
        return Err(invalid_settings(format!(
            "at most {MAX_ENVIRONMENT_VARIABLES} environment variables are allowed, got {}",
            v.len()
        )));
    }
    let s = settings;
    if let Some(c) = update.controllers {
        *controllers = c;
    }
    macro_rules! set {
        ($($field:ident),*) => {
            $(if let Some(v) = update.$field { s.$field = v; })*
        };
    }
    set!(
        compute_allocation,
        memory_allocation,
        freezing_threshold,
        reserved_cycles_limit,
        minimum_incoming_canister_call_cycles,
        log_visibility,
        log_memory_limit,
        snapshot_visibility,
        status_visibility,
        wasm_memory_limit,
        wasm_memory_threshold,
        environment_variables
    );
    Ok(())
}

fn nat_u64(n: &Nat) -> u64 {
    u64::try_from(n.0.clone()).unwrap_or(u64::MAX)
}

pub(crate) fn not_found(canister: Principal) -> Reject {
    Reject::error(
        ErrorCode::CanisterNotFound,
        format!("Canister {canister} not found"),
    )
}

fn install_reject(e: InstallError) -> Reject {
    let code = match &e {
        InstallError::CanisterNotFound(c) => return not_found(*c),
        InstallError::NotController(_) => ErrorCode::CanisterInvalidController,
        InstallError::Trapped(t) => return crate::error::trap_reject(t.clone()),
        InstallError::UnsupportedImport(_) | InstallError::InvalidModule(_) => {
            ErrorCode::CanisterInvalidWasm
        }
        InstallError::WrongMode(_) if e.to_string().contains("already has") => {
            ErrorCode::CanisterNonEmpty
        }
        InstallError::WrongMode(_) => ErrorCode::CanisterWasmModuleNotFound,
    };
    Reject::error(code, e.to_string())
}

pub(crate) fn bad_arg(e: candid::Error) -> Reject {
    Reject::error(
        ErrorCode::InvalidManagementPayload,
        format!("Error decoding candid: {e}"),
    )
}

fn encode<T: CandidType>(value: &T) -> Vec<u8> {
    Encode!(value).expect("encoding a management reply")
}

impl Devnet {
    /// Creates an empty canister controlled by `controllers` (may be empty),
    /// with the IC's default settings.
    pub fn create_canister(&mut self, controllers: Vec<Principal>) -> Principal {
        let id = crate::lifecycle::canister_id(self.next_canister);
        self.next_canister += 1;
        self.canisters.insert(
            id,
            Canister {
                controllers,
                settings: default_settings(),
                status: crate::RunStatus::Running,
                stop_waiters: Vec::new(),
                live: None,
                stable: StableMemory::new(self.config.max_stable_pages),
                global_timer: 0,
                version: 0,
                balance: self.config.initial_cycles,
                certified_data: Vec::new(),
                logs: Vec::new(),
                log: Default::default(),
                snapshots: Vec::new(),
                burned: Default::default(),
            },
        );
        id
    }

    /// Creates an empty canister as `sender` would through the management
    /// canister: `settings.controllers`, or `sender` alone if unset, and
    /// every other setting given (checked as the IC does), else the IC's
    /// defaults.
    pub fn create_canister_with_settings(
        &mut self,
        sender: Principal,
        settings: CanisterSettings,
    ) -> Result<Principal, Reject> {
        let mut controllers = vec![sender];
        let mut checked = default_settings();
        apply_settings(&mut checked, &mut controllers, settings)?;
        let id = self.create_canister(controllers);
        self.canisters.get_mut(&id).expect("just created").settings = checked;
        Ok(id)
    }

    /// Changes the settings `settings` sets, as `update_settings` from a
    /// controller does.
    pub fn update_settings(
        &mut self,
        sender: Principal,
        canister: Principal,
        settings: CanisterSettings,
    ) -> Result<(), Reject> {
        self.require_controller(sender, canister)?;
        let c = self.canisters.get_mut(&canister).expect("checked");
        let mut new = c.settings.clone();
        let mut controllers = c.controllers.clone();
        apply_settings(&mut new, &mut controllers, settings)?;
        c.log.shrink_to(nat_u64(&new.log_memory_limit));
        c.settings = new;
        c.controllers = controllers;
        Ok(())
    }

    /// Installs `wasm` into an empty canister and runs `canister_init(arg)`.
    pub fn install_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Principal,
    ) -> Result<(), InstallError> {
        self.install_code(sender, canister, InstallMode::Install, wasm, arg)
    }

    /// Upgrades: `canister_pre_upgrade` on the old module, stable memory kept,
    /// heap dropped, `canister_post_upgrade(arg)` on the new one. All or nothing.
    pub fn upgrade_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Principal,
    ) -> Result<(), InstallError> {
        self.install_code(sender, canister, InstallMode::Upgrade(None), wasm, arg)
    }

    /// Reinstalls: heap and stable memory dropped, `canister_init(arg)` run.
    pub fn reinstall_canister(
        &mut self,
        canister: Principal,
        wasm: &[u8],
        arg: Vec<u8>,
        sender: Principal,
    ) -> Result<(), InstallError> {
        self.install_code(sender, canister, InstallMode::Reinstall, wasm, arg)
    }

    /// `install_code` as the management canister does it, for `sender`.
    pub fn install_code(
        &mut self,
        sender: Principal,
        canister: Principal,
        mode: InstallMode,
        wasm: &[u8],
        arg: Vec<u8>,
    ) -> Result<(), InstallError> {
        let c = self
            .canisters
            .get(&canister)
            .ok_or(InstallError::CanisterNotFound(canister))?;
        if !c.controllers.contains(&sender) {
            return Err(InstallError::NotController(sender));
        }
        let has_code = c.live.is_some();
        match (&mode, has_code) {
            (InstallMode::Install, true) => {
                return Err(InstallError::WrongMode(
                    "canister already has a module; use reinstall or upgrade".into(),
                ));
            }
            (InstallMode::Upgrade(_), false) => {
                return Err(InstallError::WrongMode(
                    "canister has no module to upgrade".into(),
                ));
            }
            _ => {}
        }
        let code = CanisterCode::compile(&self.engine, &self.linker, wasm)?;
        let limit = self.config.install_instruction_limit;

        // Stable memory the new module starts with, and the timer after the hooks.
        let mut stable = match &mode {
            InstallMode::Upgrade(flags) => {
                let mut stable = self.canisters[&canister].stable.clone();
                let skip = flags
                    .as_ref()
                    .and_then(|f| f.skip_pre_upgrade)
                    .unwrap_or(false);
                let old_exports = self.canisters[&canister]
                    .code()
                    .is_some_and(|c| c.exports("canister_pre_upgrade"));
                if !skip && old_exports {
                    let ctx = self.context(canister, EntryKind::PreUpgrade);
                    let engine = self.engine.clone();
                    let c = self.canisters.get_mut(&canister).expect("exists");
                    let live = c.live.as_mut().expect("has code");
                    let entry = crate::instance::Entry::Export("canister_pre_upgrade".into());
                    let mut out =
                        live.run(&engine, &mut stable, &entry, ctx, limit, Keep::StableOnly);
                    c.append_logs(self.time, &mut out.ctx.logs, out.trap.as_deref());
                    self.record(
                        canister,
                        "canister_pre_upgrade",
                        out.instructions,
                        out.trap.clone(),
                    );
                    if let Some(t) = out.trap {
                        return Err(InstallError::Trapped(t));
                    }
                }
                stable
            }
            _ => StableMemory::new(self.config.max_stable_pages),
        };

        let mut live = LiveInstance::new(&self.engine, code.clone())?;
        let (hook, kind) = match mode {
            InstallMode::Upgrade(_) => ("canister_post_upgrade", EntryKind::PostUpgrade),
            _ => ("canister_init", EntryKind::Init),
        };
        let c = &self.canisters[&canister];
        let mut ctx = ExecContext::new(kind, canister);
        ctx.time = self.time;
        ctx.controllers = c.controllers.clone();
        ctx.version = c.version + 1;
        ctx.balance = c.balance;
        ctx.freezing_threshold = c.freezing_threshold_cycles();
        ctx.caller = sender;
        ctx.arg = arg;
        let mut global_timer = 0;
        let mut balance = c.balance;
        if code.exports(hook) {
            let entry = crate::instance::Entry::Export(hook.into());
            let mut out = live.run(&self.engine, &mut stable, &entry, ctx, limit, Keep::All);
            let c = self.canisters.get_mut(&canister).expect("exists");
            c.append_logs(self.time, &mut out.ctx.logs, out.trap.as_deref());
            self.record(canister, hook, out.instructions, out.trap.clone());
            let cost = crate::costs::execution_cost(out.instructions);
            let c = self.canisters.get_mut(&canister).expect("exists");
            c.charge(crate::costs::Burn::Execution, cost);
            if let Some(t) = out.trap {
                return Err(InstallError::Trapped(t));
            }
            global_timer = out.ctx.global_timer;
            balance = out.ctx.balance.saturating_sub(cost);
            if let Some(data) = out.ctx.certified_data.take() {
                self.canisters
                    .get_mut(&canister)
                    .expect("exists")
                    .certified_data = data;
            }
        }
        let c = self.canisters.get_mut(&canister).expect("exists");
        c.live = Some(live);
        c.stable = stable;
        c.version += 1;
        // Timers do not survive installation: only what the hook set remains.
        c.global_timer = global_timer;
        c.balance = balance;
        Ok(())
    }

    /// The canister's status as the management canister reports it: the
    /// IC's full record, with the settings in force, the balance after
    /// charges and the idle burn rate. Fields the devnet does not model
    /// (query statistics, reserved cycles) are zero.
    pub fn canister_status(&self, canister: Principal) -> Option<CanisterStatus> {
        let c = self.canisters.get(&canister)?;
        let heap = c.live.as_ref().map_or(0, |l| l.memory_size());
        let stable = c.stable.len();
        let wasm = c.code().map_or(0, |code| code.wasm.len());
        let mut settings = c.settings.clone();
        settings.controllers = c.controllers.clone();
        let zero = || Nat::from(0u8);
        Some(CanisterStatusResult {
            status: match c.status {
                crate::RunStatus::Running => CanisterStatusType::Running,
                crate::RunStatus::Stopping => CanisterStatusType::Stopping,
                crate::RunStatus::Stopped => CanisterStatusType::Stopped,
            },
            ready_for_migration: false,
            version: c.version,
            settings,
            module_hash: c.code().map(|code| code.hash.to_vec()),
            memory_size: Nat::from(heap + stable),
            memory_metrics: MemoryMetrics {
                wasm_memory_size: Nat::from(heap),
                stable_memory_size: Nat::from(stable),
                global_memory_size: zero(),
                wasm_binary_size: Nat::from(wasm),
                custom_sections_size: zero(),
                canister_history_size: zero(),
                wasm_chunk_store_size: zero(),
                snapshots_size: Nat::from(
                    c.snapshots
                        .iter()
                        .map(|s| s.describe().total_size)
                        .sum::<u64>(),
                ),
                log_memory_store_size: Nat::from(c.log.bytes()),
            },
            cycles: Nat::from(c.balance),
            reserved_cycles: zero(),
            idle_cycles_burned_per_day: Nat::from(crate::costs::idle_cycles_per_day(
                c.memory_bytes(),
                c.compute_allocation(),
            )),
            query_stats: QueryStats {
                num_calls_total: zero(),
                num_instructions_total: zero(),
                request_payload_bytes_total: zero(),
                response_payload_bytes_total: zero(),
            },
        })
    }

    /// The canister's log records as `fetch_canister_logs` returns them
    /// to `sender`, who must be allowed by the canister's `log_visibility`.
    pub fn fetch_canister_logs(
        &self,
        sender: Principal,
        canister: Principal,
    ) -> Result<FetchCanisterLogsResult, Reject> {
        let c = self
            .canisters
            .get(&canister)
            .ok_or_else(|| not_found(canister))?;
        let allowed = match &c.settings.log_visibility {
            LogVisibility::Public => true,
            LogVisibility::Controllers => c.controllers.contains(&sender),
            LogVisibility::AllowedViewers(v) => {
                c.controllers.contains(&sender) || v.contains(&sender)
            }
        };
        if !allowed {
            return Err(Reject::error(
                ErrorCode::CanisterRejectedMessage,
                format!("Caller {sender} is not allowed to query ic00 method fetch_canister_logs"),
            ));
        }
        Ok(FetchCanisterLogsResult {
            canister_log_records: c.log.records(),
        })
    }

    /// 32 bytes from the seeded generator, as `raw_rand` returns them.
    pub fn raw_rand(&mut self) -> [u8; 32] {
        let mut out = [0; 32];
        self.rng.fill(&mut out);
        out
    }

    pub(crate) fn require_controller(
        &self,
        caller: Principal,
        canister: Principal,
    ) -> Result<(), Reject> {
        match self.canisters.get(&canister) {
            None => Err(not_found(canister)),
            Some(c) if !c.controllers.contains(&caller) => Err(Reject::error(
                ErrorCode::CanisterInvalidController,
                format!(
                    "Only the controllers of the canister {canister} can control it.\n\
                     Canister's controllers: {}\nSender's ID: {caller}",
                    c.controllers
                        .iter()
                        .map(|p| p.to_text())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// `Ok` if `sender` may read the canister's status: a controller, or
    /// anyone its `status_visibility` allows.
    pub fn require_status_viewer(
        &self,
        sender: Principal,
        canister: Principal,
    ) -> Result<(), Reject> {
        let c = self
            .canisters
            .get(&canister)
            .ok_or_else(|| not_found(canister))?;
        let allowed = match &c.settings.status_visibility {
            StatusVisibility::Public => true,
            StatusVisibility::AllowedViewers(v) => v.contains(&sender),
            StatusVisibility::Controllers => false,
        };
        if allowed {
            Ok(())
        } else {
            self.require_controller(sender, canister)
        }
    }

    /// Handles a query to the management canister from `sender`
    /// (`canister_status`, `fetch_canister_logs`).
    pub fn management_query(
        &self,
        sender: Principal,
        method: &str,
        arg: &[u8],
    ) -> Result<Vec<u8>, Reject> {
        match method {
            "canister_status" => {
                let args = Decode!(arg, CanisterIdRecord).map_err(bad_arg)?;
                self.require_status_viewer(sender, args.canister_id)?;
                Ok(encode(
                    &self.canister_status(args.canister_id).expect("exists"),
                ))
            }
            "fetch_canister_logs" => {
                let args = Decode!(arg, FetchCanisterLogsArgs).map_err(bad_arg)?;
                let mut logs = self.fetch_canister_logs(sender, args.canister_id)?;
                // Both filters are half-open ranges `[start, end)`.
                if let Some(filter) = args.filter {
                    logs.canister_log_records.retain(|r| match filter {
                        CanisterLogFilter::ByIdx { start, end } => (start..end).contains(&r.idx),
                        CanisterLogFilter::ByTimestampNanos { start, end } => {
                            (start..end).contains(&r.timestamp_nanos)
                        }
                    });
                }
                Ok(encode(&logs))
            }
            other => Err(Reject::error(
                ErrorCode::CanisterMethodNotFound,
                format!("Management canister has no query method '{other}'"),
            )),
        }
    }

    /// Handles a call to the management canister from `caller` that is
    /// answered at once (every method but `stop_canister`).
    pub(crate) fn management_call(
        &mut self,
        caller: Principal,
        method: &str,
        arg: &[u8],
    ) -> Result<Vec<u8>, Reject> {
        match method {
            "create_canister" | "provisional_create_canister_with_cycles" => {
                let args = Decode!(arg, CreateCanisterArgs).map_err(bad_arg)?;
                let id =
                    self.create_canister_with_settings(caller, args.settings.unwrap_or_default())?;
                Ok(encode(&CanisterIdRecord { canister_id: id }))
            }
            "install_code" => {
                let args = Decode!(arg, InstallCodeArgs).map_err(bad_arg)?;
                self.install_code(
                    caller,
                    args.canister_id,
                    args.mode,
                    &args.wasm_module,
                    args.arg,
                )
                .map_err(install_reject)?;
                Ok(encode(&()))
            }
            "uninstall_code" => {
                let args = Decode!(arg, CanisterIdRecord).map_err(bad_arg)?;
                self.uninstall_code(caller, args.canister_id)?;
                Ok(encode(&()))
            }
            "update_settings" => {
                let args = Decode!(arg, UpdateSettingsArgs).map_err(bad_arg)?;
                self.update_settings(caller, args.canister_id, args.settings)?;
                Ok(encode(&()))
            }
            "start_canister" => {
                let args = Decode!(arg, CanisterIdRecord).map_err(bad_arg)?;
                self.start_canister(caller, args.canister_id)?;
                Ok(encode(&()))
            }
            "delete_canister" => {
                let args = Decode!(arg, CanisterIdRecord).map_err(bad_arg)?;
                self.delete_canister(caller, args.canister_id)?;
                Ok(encode(&()))
            }
            "canister_status" | "fetch_canister_logs" => self.management_query(caller, method, arg),
            "take_canister_snapshot" => {
                let args = Decode!(arg, TakeCanisterSnapshotArgs).map_err(bad_arg)?;
                let snapshot = self.take_canister_snapshot(
                    caller,
                    args.canister_id,
                    args.replace_snapshot,
                    args.uninstall_code.unwrap_or(false),
                )?;
                Ok(encode(&snapshot))
            }
            "load_canister_snapshot" => {
                let args = Decode!(arg, LoadCanisterSnapshotArgs).map_err(bad_arg)?;
                self.load_canister_snapshot(caller, args.canister_id, &args.snapshot_id)?;
                Ok(encode(&()))
            }
            "list_canister_snapshots" => {
                let args = Decode!(arg, CanisterIdRecord).map_err(bad_arg)?;
                Ok(encode(
                    &self.list_canister_snapshots(caller, args.canister_id)?,
                ))
            }
            "delete_canister_snapshot" => {
                let args = Decode!(arg, DeleteCanisterSnapshotArgs).map_err(bad_arg)?;
                self.delete_canister_snapshot(caller, args.canister_id, &args.snapshot_id)?;
                Ok(encode(&()))
            }
            "provisional_top_up_canister" => {
                let args = Decode!(arg, ProvisionalTopUpCanisterArgs).map_err(bad_arg)?;
                let c = self
                    .canisters
                    .get_mut(&args.canister_id)
                    .ok_or_else(|| not_found(args.canister_id))?;
                let amount = u128::try_from(args.amount.0).ok();
                c.balance = amount
                    .and_then(|a| c.balance.checked_add(a))
                    .ok_or_else(|| {
                        Reject::error(
                            ErrorCode::CanisterContractViolation,
                            "the canister's cycle balance would overflow",
                        )
                    })?;
                Ok(encode(&()))
            }
            "raw_rand" => {
                let bytes = self.raw_rand().to_vec();
                Ok(encode(&serde_bytes::ByteBuf::from(bytes)))
            }
            "http_request" | "vetkd_public_key" | "vetkd_derive_key" => Err(Reject::error(
                ErrorCode::CanisterRejectedMessage,
                format!("{method} can only be called by canisters"),
            )),
            other => Err(Reject::error(
                ErrorCode::CanisterMethodNotFound,
                format!("Management canister has no method '{other}'"),
            )),
        }
    }
}
