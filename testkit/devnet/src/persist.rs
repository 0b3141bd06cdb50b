//! Saving a devnet's state to bytes and loading it back, so a devnet can
//! outlive its process (the `devnet` server's `--state-dir`).
//!
//! What is saved is everything the canisters and their callers can observe:
//! each canister's module, committed linear memory, mutable globals, stable
//! memory, controllers, settings, run status (with waiting stop calls),
//! timer, version, cycles, certified data and logs; the clock; messages in
//! flight, call contexts and callbacks; ingress statuses; the cycles
//! ledger's balances; the subnet id; the cycles minting canister's ICP
//! ledger and the top-ups notified; id counters and the `raw_rand`
//! generator. Not saved: the configuration
//! (the loader passes its own), injected faults and the execution record.
//! Function tables are rebuilt from the module's element segments, as the
//! rollback of a trapped message also assumes (canisters built with ic-cdk
//! never write their table).
//!
//! The encoding is CBOR with a format number; a state of another format is
//! refused rather than misread.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use candid::Principal;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::RunStatus;
use crate::cycles::{Account, CyclesLedger};
use crate::instance::{CanisterCode, LiveInstance, SavedValue};
use crate::logs::LogBuffer;
use crate::scheduler::{CallContext, Callback, Message, Origin};
use crate::snapshots::CanisterSnapshot;
use crate::stable::StableMemory;
use crate::{Canister, Devnet, DevnetConfig, IngressStatus, MessageId};

/// Format number of saved states; bumped when the layout changes.
const FORMAT: u32 = 1;

/// Why a saved state could not be written or read.
#[derive(Debug)]
pub struct StateError(String);

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}

fn err(message: impl Into<String>) -> StateError {
    StateError(message.into())
}

#[derive(Serialize, Deserialize)]
struct SavedDevnet {
    format: u32,
    time: u64,
    next_canister: u64,
    next_id: u64,
    rng: u64,
    /// Distinct modules by SHA-256, so canisters running one module store it once.
    modules: BTreeMap<ByteBuf, ByteBuf>,
    canisters: Vec<SavedCanister>,
    queue: Vec<Message>,
    call_contexts: Vec<(u64, CallContext)>,
    callbacks: Vec<(u64, Callback)>,
    ingress: Vec<(MessageId, IngressStatus)>,
    /// Absent from states saved before the cycles canisters: no balances.
    #[serde(default)]
    cycles_ledger: Vec<(Account, u128)>,
    #[serde(default)]
    cycles_ledger_next_block: u64,
    #[serde(default)]
    subnet_id: Option<Principal>,
    /// Absent from states saved before top-ups: no ICP ledger named.
    #[serde(default)]
    cmc: crate::top_up::CmcState,
}

#[derive(Serialize, Deserialize)]
struct SavedCanister {
    id: Principal,
    controllers: Vec<Principal>,
    instance: Option<SavedInstance>,
    stable: ByteBuf,
    global_timer: u64,
    version: u64,
    balance: u128,
    certified_data: ByteBuf,
    logs: Vec<String>,
    /// The fields below are absent from states saved before they were
    /// kept: the IC's defaults, running, an empty log then.
    #[serde(default)]
    status: RunStatus,
    #[serde(default)]
    stop_waiters: Vec<Origin>,
    /// Candid of the settings (`DefiniteCanisterSettings`).
    #[serde(default)]
    settings: Option<ByteBuf>,
    #[serde(default)]
    log: LogBuffer,
    #[serde(default)]
    snapshots: Vec<SavedSnapshot>,
}

#[derive(Serialize, Deserialize)]
struct SavedSnapshot {
    id: ByteBuf,
    taken_at: u64,
    instance: Option<SavedInstance>,
    stable: ByteBuf,
    certified_data: ByteBuf,
}

#[derive(Serialize, Deserialize)]
struct SavedInstance {
    module: ByteBuf,
    memory: ByteBuf,
    globals: Vec<SavedValue>,
}

impl Devnet {
    /// The whole state as bytes, for [`Devnet::load_state`]. Call it between
    /// messages (any time the devnet is not executing, e.g. between ticks):
    /// messages still queued are saved and delivered after loading.
    pub fn save_state(&mut self) -> Result<Vec<u8>, StateError> {
        let mut modules = BTreeMap::new();
        let mut canisters = Vec::with_capacity(self.canisters.len());
        for (id, c) in self.canisters.iter_mut() {
            let instance = match c.live.as_mut() {
                Some(live) => {
                    let code = live.code().clone();
                    modules
                        .entry(ByteBuf::from(code.hash.to_vec()))
                        .or_insert_with(|| ByteBuf::from(code.wasm.to_vec()));
                    let (memory, globals) = live
                        .save()
                        .map_err(|e| err(format!("canister {id}: {e}")))?;
                    Some(SavedInstance {
                        module: ByteBuf::from(code.hash.to_vec()),
                        memory: ByteBuf::from(memory),
                        globals,
                    })
                }
                None => None,
            };
            canisters.push(SavedCanister {
                id: *id,
                controllers: c.controllers.clone(),
                instance,
                stable: ByteBuf::from(c.stable.contents().to_vec()),
                global_timer: c.global_timer,
                version: c.version,
                balance: c.balance,
                certified_data: ByteBuf::from(c.certified_data.clone()),
                logs: c.logs.clone(),
                status: c.status,
                stop_waiters: c.stop_waiters.clone(),
                settings: Some(ByteBuf::from(
                    candid::encode_one(&c.settings)
                        .map_err(|e| err(format!("canister {id}: encoding settings: {e}")))?,
                )),
                log: c.log.clone(),
                snapshots: c
                    .snapshots
                    .iter()
                    .map(|snap| SavedSnapshot {
                        id: ByteBuf::from(snap.id.clone()),
                        taken_at: snap.taken_at,
                        instance: snap.instance.as_ref().map(|(code, memory, globals)| {
                            modules
                                .entry(ByteBuf::from(code.hash.to_vec()))
                                .or_insert_with(|| ByteBuf::from(code.wasm.to_vec()));
                            SavedInstance {
                                module: ByteBuf::from(code.hash.to_vec()),
                                memory: ByteBuf::from(memory.clone()),
                                globals: globals.clone(),
                            }
                        }),
                        stable: ByteBuf::from(snap.stable.contents().to_vec()),
                        certified_data: ByteBuf::from(snap.certified_data.clone()),
                    })
                    .collect(),
            });
        }
        let saved = SavedDevnet {
            format: FORMAT,
            time: self.time,
            next_canister: self.next_canister,
            next_id: self.next_id,
            rng: self.rng.state(),
            modules,
            canisters,
            queue: self.queue.iter().cloned().collect(),
            call_contexts: self
                .call_contexts
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            callbacks: self
                .callbacks
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            ingress: self.ingress.iter().map(|(k, v)| (*k, v.clone())).collect(),
            cycles_ledger: self.ledger.entries().0,
            cycles_ledger_next_block: self.ledger.entries().1,
            subnet_id: Some(self.subnet_id),
            cmc: self.cmc.clone(),
        };
        let mut out = Vec::new();
        ciborium::into_writer(&saved, &mut out)
            .map_err(|e| err(format!("encoding the devnet state: {e}")))?;
        Ok(out)
    }

    /// A devnet holding the state `bytes` saved by [`Devnet::save_state`],
    /// run with `config`. Modules are compiled again (once per module).
    pub fn load_state(config: DevnetConfig, bytes: &[u8]) -> Result<Devnet, StateError> {
        let saved: SavedDevnet = ciborium::from_reader(bytes)
            .map_err(|e| err(format!("decoding the devnet state: {e}")))?;
        if saved.format != FORMAT {
            return Err(err(format!(
                "the state has format {}; this devnet reads format {FORMAT}",
                saved.format
            )));
        }
        let mut dn = Devnet::with_config(config);
        let mut codes: BTreeMap<Vec<u8>, Arc<CanisterCode>> = BTreeMap::new();
        for (hash, wasm) in &saved.modules {
            let code = CanisterCode::compile(&dn.engine, &dn.linker, wasm)
                .map_err(|e| err(format!("compiling a saved module: {e}")))?;
            if code.hash[..] != hash[..] {
                return Err(err("a saved module does not match its hash"));
            }
            codes.insert(hash.to_vec(), code);
        }
        for c in saved.canisters {
            let live = match c.instance {
                Some(inst) => {
                    let code = codes.get(&inst.module[..]).ok_or_else(|| {
                        err(format!("canister {}: its module is not in the state", c.id))
                    })?;
                    Some(
                        LiveInstance::load(&dn.engine, code.clone(), &inst.memory, &inst.globals)
                            .map_err(|e| err(format!("canister {}: {e}", c.id)))?,
                    )
                }
                None => None,
            };
            let stable = StableMemory::from_saved(c.stable.into_vec(), dn.config.max_stable_pages)
                .map_err(|e| err(format!("canister {}: {e}", c.id)))?;
            let mut snapshots = Vec::with_capacity(c.snapshots.len());
            for snap in c.snapshots {
                let instance = match snap.instance {
                    Some(inst) => {
                        let code = codes.get(&inst.module[..]).ok_or_else(|| {
                            err(format!("canister {}: a snapshot's module is missing", c.id))
                        })?;
                        Some((code.clone(), inst.memory.into_vec(), inst.globals))
                    }
                    None => None,
                };
                snapshots.push(CanisterSnapshot {
                    id: snap.id.into_vec(),
                    taken_at: snap.taken_at,
                    instance,
                    stable: StableMemory::from_saved(
                        snap.stable.into_vec(),
                        dn.config.max_stable_pages,
                    )
                    .map_err(|e| err(format!("canister {}: snapshot: {e}", c.id)))?,
                    certified_data: snap.certified_data.into_vec(),
                });
            }
            let settings = match c.settings {
                Some(bytes) => candid::decode_one(&bytes)
                    .map_err(|e| err(format!("canister {}: decoding settings: {e}", c.id)))?,
                None => crate::management::default_settings(),
            };
            dn.canisters.insert(
                c.id,
                Canister {
                    controllers: c.controllers,
                    settings,
                    status: c.status,
                    stop_waiters: c.stop_waiters,
                    log: c.log,
                    snapshots,
                    live,
                    stable,
                    global_timer: c.global_timer,
                    version: c.version,
                    balance: c.balance,
                    certified_data: c.certified_data.into_vec(),
                    logs: c.logs,
                    burned: Default::default(),
                },
            );
        }
        dn.time = saved.time;
        dn.next_canister = saved.next_canister;
        dn.next_id = saved.next_id;
        dn.rng = crate::rng::SplitMix64::new(saved.rng);
        dn.queue = saved.queue.into();
        dn.call_contexts = saved.call_contexts.into_iter().collect();
        dn.callbacks = saved.callbacks.into_iter().collect();
        dn.ingress = saved.ingress.into_iter().collect();
        dn.ledger = CyclesLedger::from_entries(saved.cycles_ledger, saved.cycles_ledger_next_block);
        if let Some(subnet) = saved.subnet_id {
            dn.subnet_id = subnet;
        }
        dn.cmc = saved.cmc;
        Ok(dn)
    }
}
