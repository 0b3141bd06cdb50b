//! The management canister (`aaaaa-aa`): canister creation, code
//! installation (install, reinstall, upgrade), status and `raw_rand`, both as
//! Rust methods on [`Devnet`] and as calls from canisters and ingress.

use candid::{CandidType, Decode, Deserialize, Encode, Nat, Principal};

use crate::error::{InstallError, Reject, RejectCode};
use crate::instance::{CanisterCode, Keep, LiveInstance};
use crate::stable::StableMemory;
use crate::system_api::{EntryKind, ExecContext};
use crate::{Canister, Devnet};

/// Settings of a new canister (the subset of the IC's settings the devnet models).
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CanisterSettings {
    /// Controllers; the creator is the only controller if `None`.
    pub controllers: Option<Vec<Principal>>,
}

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
struct CanisterIdRecord {
    canister_id: Principal,
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

#[derive(CandidType, Deserialize)]
struct UpdateSettingsArgs {
    canister_id: Principal,
    settings: CanisterSettings,
}

#[derive(CandidType, Deserialize)]
struct DepositCyclesArgs {
    canister_id: Principal,
}

/// `variant { running; stopping; stopped }` of `canister_status`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// The canister runs messages (the only status the devnet models).
    #[serde(rename = "running")]
    Running,
}

/// `settings` of a `canister_status` reply.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DefiniteSettings {
    /// The controllers.
    pub controllers: Vec<Principal>,
}

/// The subset of `canister_status`'s reply the devnet fills in.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CanisterStatus {
    /// Always `running`.
    pub status: RunStatus,
    /// SHA-256 of the installed module.
    pub module_hash: Option<Vec<u8>>,
    /// The settings in force.
    pub settings: DefiniteSettings,
    /// Heap plus stable memory in bytes.
    pub memory_size: Nat,
    /// The cycle balance.
    pub cycles: Nat,
}

fn reject(code: RejectCode, msg: impl Into<String>) -> Reject {
    Reject::new(code, msg)
}

fn install_reject(e: InstallError) -> Reject {
    let code = match e {
        InstallError::CanisterNotFound(_) => RejectCode::DestinationInvalid,
        InstallError::Trapped(_) => RejectCode::CanisterError,
        _ => RejectCode::CanisterReject,
    };
    reject(code, e.to_string())
}

fn bad_arg(e: candid::Error) -> Reject {
    reject(RejectCode::CanisterReject, format!("invalid argument: {e}"))
}

impl Devnet {
    /// Creates an empty canister controlled by `controllers` (may be empty).
    pub fn create_canister(&mut self, controllers: Vec<Principal>) -> Principal {
        let index = self.next_canister;
        self.next_canister += 1;
        let mut bytes = index.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1, 1]);
        let id = Principal::from_slice(&bytes);
        self.canisters.insert(
            id,
            Canister {
                controllers,
                live: None,
                stable: StableMemory::new(self.config.max_stable_pages),
                global_timer: 0,
                version: 0,
                balance: self.config.initial_cycles,
                certified_data: Vec::new(),
                logs: Vec::new(),
            },
        );
        id
    }

    /// Creates an empty canister as `sender` would through the management
    /// canister: `settings.controllers`, or `sender` alone if unset.
    pub fn create_canister_with_settings(
        &mut self,
        sender: Principal,
        settings: CanisterSettings,
    ) -> Principal {
        let controllers = settings.controllers.unwrap_or_else(|| vec![sender]);
        self.create_canister(controllers)
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
                    c.logs.append(&mut out.ctx.logs);
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
        ctx.caller = sender;
        ctx.arg = arg;
        let mut global_timer = 0;
        let mut balance = c.balance;
        if code.exports(hook) {
            let entry = crate::instance::Entry::Export(hook.into());
            let mut out = live.run(&self.engine, &mut stable, &entry, ctx, limit, Keep::All);
            let c = self.canisters.get_mut(&canister).expect("exists");
            c.logs.append(&mut out.ctx.logs);
            self.record(canister, hook, out.instructions, out.trap.clone());
            if let Some(t) = out.trap {
                return Err(InstallError::Trapped(t));
            }
            global_timer = out.ctx.global_timer;
            balance = out.ctx.balance;
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

    /// The canister's status as the management canister reports it.
    pub fn canister_status(&self, canister: Principal) -> Option<CanisterStatus> {
        let c = self.canisters.get(&canister)?;
        let heap = c.live.as_ref().map_or(0, |l| l.memory_size());
        Some(CanisterStatus {
            status: RunStatus::Running,
            module_hash: c.code().map(|code| code.hash.to_vec()),
            settings: DefiniteSettings {
                controllers: c.controllers.clone(),
            },
            memory_size: Nat::from(heap + c.stable.len()),
            cycles: Nat::from(c.balance),
        })
    }

    /// 32 bytes from the seeded generator, as `raw_rand` returns them.
    pub fn raw_rand(&mut self) -> [u8; 32] {
        let mut out = [0; 32];
        self.rng.fill(&mut out);
        out
    }

    fn require_controller(&self, caller: Principal, canister: Principal) -> Result<(), Reject> {
        match self.canisters.get(&canister) {
            None => Err(reject(
                RejectCode::DestinationInvalid,
                format!("Canister {canister} not found"),
            )),
            Some(c) if !c.controllers.contains(&caller) => Err(reject(
                RejectCode::CanisterError,
                format!("Only the controllers of canister {canister} can call this method"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Handles a call to the management canister from `caller`.
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
                    self.create_canister_with_settings(caller, args.settings.unwrap_or_default());
                Ok(Encode!(&CanisterIdRecord { canister_id: id }).expect("encode"))
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
                Ok(Encode!().expect("encode"))
            }
            "update_settings" => {
                let args = Decode!(arg, UpdateSettingsArgs).map_err(bad_arg)?;
                self.require_controller(caller, args.canister_id)?;
                if let Some(controllers) = args.settings.controllers {
                    self.canisters
                        .get_mut(&args.canister_id)
                        .expect("exists")
                        .controllers = controllers;
                }
                Ok(Encode!().expect("encode"))
            }
            "canister_status" => {
                let args = Decode!(arg, CanisterIdRecord).map_err(bad_arg)?;
                self.require_controller(caller, args.canister_id)?;
                let status = self.canister_status(args.canister_id).expect("exists");
                Ok(Encode!(&status).expect("encode"))
            }
            "deposit_cycles" | "provisional_top_up_canister" => {
                let args = Decode!(arg, DepositCyclesArgs).map_err(bad_arg)?;
                if !self.canister_exists(args.canister_id) {
                    return Err(reject(
                        RejectCode::DestinationInvalid,
                        format!("Canister {} not found", args.canister_id),
                    ));
                }
                Ok(Encode!().expect("encode"))
            }
            "raw_rand" => {
                let bytes = self.raw_rand().to_vec();
                Ok(Encode!(&serde_bytes::ByteBuf::from(bytes)).expect("encode"))
            }
            "http_request" | "vetkd_public_key" | "vetkd_derive_key" => Err(reject(
                RejectCode::CanisterReject,
                format!("{method} can only be called by canisters"),
            )),
            other => Err(reject(
                RejectCode::DestinationInvalid,
                format!("the devnet's management canister has no method '{other}'"),
            )),
        }
    }
}
