//! Canister snapshots: `take_canister_snapshot`, `load_canister_snapshot`,
//! `list_canister_snapshots` and `delete_canister_snapshot`. A snapshot holds
//! the module, the committed linear memory and mutable globals, stable
//! memory and certified data; loading one puts them back (the global timer
//! is deactivated and the version moves on, as after an install).

use std::sync::Arc;

use candid::Principal;
use ic_management_canister_types::Snapshot;

use crate::Devnet;
use crate::error::{ErrorCode, Reject};
use crate::instance::{CanisterCode, LiveInstance, SavedValue};
use crate::stable::StableMemory;

/// Most snapshots a canister keeps (the IC's default limit).
pub const MAX_SNAPSHOTS: usize = 10;

/// One snapshot of a canister.
#[derive(Clone)]
pub(crate) struct CanisterSnapshot {
    /// The IC's layout: the local id (8 bytes, big-endian), then the
    /// canister id.
    pub id: Vec<u8>,
    pub taken_at: u64,
    /// The module and its committed memory and globals; `None` for an
    /// empty canister.
    pub instance: Option<(Arc<CanisterCode>, Vec<u8>, Vec<SavedValue>)>,
    pub stable: StableMemory,
    pub certified_data: Vec<u8>,
}

impl CanisterSnapshot {
    /// What `list_canister_snapshots` says of it.
    pub fn describe(&self) -> Snapshot {
        let (wasm, heap) = self
            .instance
            .as_ref()
            .map_or((0, 0), |(code, memory, _)| (code.wasm.len(), memory.len()));
        Snapshot {
            id: self.id.clone(),
            taken_at_timestamp: self.taken_at,
            total_size: (wasm + heap + self.stable.len() + self.certified_data.len()) as u64,
        }
    }
}

fn not_found(canister: Principal, id: &[u8]) -> Reject {
    Reject::error(
        ErrorCode::CanisterSnapshotNotFound,
        format!(
            "Could not find the snapshot ID {} for canister {canister}.",
            crate::hex(id)
        ),
    )
}

impl Devnet {
    /// `take_canister_snapshot` from `sender`: a snapshot of the canister
    /// now, replacing `replace` if given; at most [`MAX_SNAPSHOTS`].
    pub fn take_canister_snapshot(
        &mut self,
        sender: Principal,
        canister: Principal,
        replace: Option<Vec<u8>>,
        uninstall_code: bool,
    ) -> Result<Snapshot, Reject> {
        self.require_controller(sender, canister)?;
        let local = self.fresh_id();
        let time = self.time;
        let c = self.canisters.get_mut(&canister).expect("checked");
        if let Some(old) = &replace
            && !c.snapshots.iter().any(|s| &s.id == old)
        {
            return Err(not_found(canister, old));
        }
        if replace.is_none() && c.snapshots.len() >= MAX_SNAPSHOTS {
            return Err(Reject::error(
                ErrorCode::CanisterRejectedMessage,
                format!(
                    "Canister {canister} has reached the maximum of {MAX_SNAPSHOTS} snapshots; \
                     delete one or replace it"
                ),
            ));
        }
        let instance = match c.live.as_mut() {
            Some(live) => {
                let (memory, globals) = live.save().map_err(|e| {
                    Reject::error(
                        ErrorCode::CanisterContractViolation,
                        format!("Canister {canister}: taking a snapshot failed: {e}"),
                    )
                })?;
                Some((live.code().clone(), memory, globals))
            }
            None => None,
        };
        let mut id = local.to_be_bytes().to_vec();
        id.extend_from_slice(canister.as_slice());
        let snapshot = CanisterSnapshot {
            id,
            taken_at: time,
            instance,
            stable: c.stable.clone(),
            certified_data: c.certified_data.clone(),
        };
        if let Some(old) = replace {
            c.snapshots.retain(|s| s.id != old);
        }
        let described = snapshot.describe();
        c.snapshots.push(snapshot);
        if uninstall_code {
            self.uninstall_code(sender, canister)?;
        }
        Ok(described)
    }

    /// `load_canister_snapshot` from `sender`: the canister's module,
    /// memories and certified data become the snapshot's.
    pub fn load_canister_snapshot(
        &mut self,
        sender: Principal,
        canister: Principal,
        snapshot: &[u8],
    ) -> Result<(), Reject> {
        self.require_controller(sender, canister)?;
        let engine = self.engine.clone();
        let c = self.canisters.get_mut(&canister).expect("checked");
        let s = c
            .snapshots
            .iter()
            .find(|s| s.id == snapshot)
            .ok_or_else(|| not_found(canister, snapshot))?
            .clone();
        c.live = match &s.instance {
            Some((code, memory, globals)) => Some(
                LiveInstance::load(&engine, code.clone(), memory, globals).map_err(|e| {
                    Reject::error(
                        ErrorCode::CanisterContractViolation,
                        format!("Canister {canister}: loading the snapshot failed: {e}"),
                    )
                })?,
            ),
            None => None,
        };
        c.stable = s.stable;
        c.certified_data = s.certified_data;
        c.global_timer = 0;
        c.version += 1;
        Ok(())
    }

    /// `list_canister_snapshots`: the canister's snapshots, oldest first.
    pub fn list_canister_snapshots(
        &self,
        sender: Principal,
        canister: Principal,
    ) -> Result<Vec<Snapshot>, Reject> {
        self.require_controller(sender, canister)?;
        Ok(self.canisters[&canister]
            .snapshots
            .iter()
            .map(CanisterSnapshot::describe)
            .collect())
    }

    /// `delete_canister_snapshot` from `sender`.
    pub fn delete_canister_snapshot(
        &mut self,
        sender: Principal,
        canister: Principal,
        snapshot: &[u8],
    ) -> Result<(), Reject> {
        self.require_controller(sender, canister)?;
        let c = self.canisters.get_mut(&canister).expect("checked");
        let before = c.snapshots.len();
        c.snapshots.retain(|s| s.id != snapshot);
        if c.snapshots.len() == before {
            return Err(not_found(canister, snapshot));
        }
        Ok(())
    }
}
