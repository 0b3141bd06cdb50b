//! A canister's life: its id, running / stopping / stopped, deletion and
//! uninstalling, as the management canister's `stop_canister`,
//! `start_canister`, `delete_canister` and `uninstall_code` drive it.

use candid::{Decode, Principal};
use serde::{Deserialize, Serialize};

use crate::Devnet;
use crate::error::{ErrorCode, Reject};
use crate::management::bad_arg;
use crate::scheduler::Origin;
use crate::stable::StableMemory;

/// The id of the first canister a devnet creates, `bkyz2-fmaaa-aaaaa-qaaaq-cai`,
/// as on a local dfx or PocketIC application subnet. The next ones follow
/// (`bd3sg-teaaa-aaaaa-qaaba-cai`, ...), far from the ids of mainnet's
/// system canisters (the ICP ledger, the cycles minting canister).
pub const FIRST_CANISTER_ID: Principal =
    Principal::from_slice(&[0x80, 0, 0, 0, 0, 0x10, 0, 1, 1, 1]);

/// The id of the `index`-th canister created (from 0): the 8-byte
/// big-endian number `0x8000_0000_0010_0001 + index`, then `01 01`, the
/// IC's layout of canister ids.
pub(crate) fn canister_id(index: u64) -> Principal {
    let n = 0x8000_0000_0010_0001u64 + index;
    let mut bytes = [1u8; 10];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    Principal::from_slice(&bytes)
}

/// Whether a canister runs messages (`canister_status`'s `status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    /// Runs requests, timers and responses.
    #[default]
    Running,
    /// Stop requested while call contexts were open: refuses new requests
    /// and fires no timers, but still receives responses; `Stopped` once
    /// the last call context closes.
    Stopping,
    /// Runs nothing; refuses requests.
    Stopped,
}

impl Devnet {
    /// The canister's run status, if it exists.
    pub fn run_status(&self, canister: Principal) -> Option<RunStatus> {
        self.canisters.get(&canister).map(|c| c.status)
    }

    /// The reject of a new request to a canister that is not running, as
    /// the IC gives it; `Ok` if it runs (or does not exist: the caller
    /// reports that).
    pub(crate) fn require_running(&self, canister: Principal) -> Result<(), Reject> {
        match self.canisters.get(&canister).map(|c| c.status) {
            Some(RunStatus::Stopping) => Err(Reject::error(
                ErrorCode::CanisterStopping,
                format!("Canister {canister} is stopping"),
            )),
            Some(RunStatus::Stopped) => Err(Reject::error(
                ErrorCode::CanisterStopped,
                format!("Canister {canister} is stopped"),
            )),
            _ => Ok(()),
        }
    }

    fn open_call_contexts(&self, canister: Principal) -> usize {
        self.call_contexts
            .values()
            .filter(|cc| cc.canister() == canister)
            .count()
    }

    /// `stop_canister` from `caller`, whose answer goes to `origin`. Returns
    /// the answer if it is known now; `None` if the canister is stopping
    /// and the call is answered when it stops (or is started again).
    pub(crate) fn stop_request(
        &mut self,
        caller: Principal,
        arg: &[u8],
        origin: Origin,
    ) -> Option<Result<Vec<u8>, Reject>> {
        let canister = match Decode!(arg, ic_management_canister_types::CanisterIdRecord) {
            Ok(a) => a.canister_id,
            Err(e) => return Some(Err(bad_arg(e))),
        };
        if let Err(r) = self.require_controller(caller, canister) {
            return Some(Err(r));
        }
        let open = self.open_call_contexts(canister);
        let c = self.canisters.get_mut(&canister).expect("checked");
        match c.status {
            RunStatus::Stopped => return Some(Ok(empty_reply())),
            RunStatus::Running if open == 0 => {
                c.status = RunStatus::Stopped;
                return Some(Ok(empty_reply()));
            }
            RunStatus::Running | RunStatus::Stopping => {
                c.status = RunStatus::Stopping;
                c.stop_waiters.push(origin);
            }
        }
        None
    }

    /// Stops the canister as `stop_canister` from `sender` does, running the
    /// devnet until it is stopped (its open call contexts closed).
    pub fn stop_canister(&mut self, sender: Principal, canister: Principal) -> Result<(), Reject> {
        let arg = candid::encode_one(ic_management_canister_types::CanisterIdRecord {
            canister_id: canister,
        })
        .expect("encode");
        let id = self.submit_call(
            Principal::management_canister(),
            sender,
            "stop_canister",
            arg,
        )?;
        self.await_call(id).map(|_| ())
    }

    /// Called when one of the canister's call contexts closed: a stopping
    /// canister with none left is stopped, and its stop calls answered.
    pub(crate) fn call_context_closed(&mut self, canister: Principal) {
        let stopping = self
            .canisters
            .get(&canister)
            .is_some_and(|c| c.status == RunStatus::Stopping);
        if !stopping || self.open_call_contexts(canister) > 0 {
            return;
        }
        let c = self.canisters.get_mut(&canister).expect("exists");
        c.status = RunStatus::Stopped;
        for origin in std::mem::take(&mut c.stop_waiters) {
            self.respond_to(origin, Ok(empty_reply()), 0);
        }
    }

    /// `start_canister` from `sender`: the canister runs again; stop calls
    /// still waiting are rejected, as on the IC.
    pub fn start_canister(&mut self, sender: Principal, canister: Principal) -> Result<(), Reject> {
        self.require_controller(sender, canister)?;
        let c = self.canisters.get_mut(&canister).expect("checked");
        c.status = RunStatus::Running;
        for origin in std::mem::take(&mut c.stop_waiters) {
            let reject = Reject::error(
                ErrorCode::CanisterStoppingCancelled,
                format!("Canister {canister}'s stop request was cancelled."),
            );
            self.respond_to(origin, Err(reject), 0);
        }
        Ok(())
    }

    /// `delete_canister` from `sender`: a stopped canister and its state
    /// are gone (cycles included); its id is never given again.
    pub fn delete_canister(
        &mut self,
        sender: Principal,
        canister: Principal,
    ) -> Result<(), Reject> {
        self.require_controller(sender, canister)?;
        if self.canisters[&canister].status != RunStatus::Stopped {
            return Err(Reject::error(
                ErrorCode::CanisterNotStopped,
                format!("Canister {canister} must be stopped before it is deleted."),
            ));
        }
        self.canisters.remove(&canister);
        Ok(())
    }

    /// `uninstall_code` from `sender`: the module, heap, stable memory,
    /// certified data and timer are dropped; outstanding callbacks will
    /// find no code (their call contexts are rejected).
    pub fn uninstall_code(&mut self, sender: Principal, canister: Principal) -> Result<(), Reject> {
        self.require_controller(sender, canister)?;
        let pages = self.config.max_stable_pages;
        drop_code(self.canisters.get_mut(&canister).expect("checked"), pages);
        Ok(())
    }
}

/// Drops a canister's module, memories, certified data and timer (by
/// `uninstall_code`, or when its cycles run out).
pub(crate) fn drop_code(c: &mut crate::Canister, max_stable_pages: u64) {
    c.live = None;
    c.stable = StableMemory::new(max_stable_pages);
    c.certified_data.clear();
    c.global_timer = 0;
    c.version += 1;
}

fn empty_reply() -> Vec<u8> {
    candid::encode_args(()).expect("encode")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_a_local_application_subnet() {
        assert_eq!(canister_id(0), FIRST_CANISTER_ID);
        assert_eq!(canister_id(0).to_text(), "bkyz2-fmaaa-aaaaa-qaaaq-cai");
        assert_eq!(canister_id(1).to_text(), "bd3sg-teaaa-aaaaa-qaaba-cai");
    }
}
