//! The upkeep timer a canister with audited books and a public event log
//! starts at `init` and `post_upgrade` (timers do not survive upgrades):
//! every [`AUDIT_PERIOD_SECS`] it samples the cycle balance for the burn
//! rate on `/metrics`, runs the canister's own bounded pruning and one
//! chunk of bounded work of the background audit of its books (the rule is
//! [`crate::audit`]'s), and, when the event log holds more blocks than it
//! keeps, moves the oldest to the archive (see [`crate::archiving`]). One
//! timer rather than two: each run of a timer is a message the canister
//! pays for, and a run with nothing to archive makes no call.

use crate::archiving;
use crate::audit::{AUDIT_CHUNK_RECORDS, AUDIT_PERIOD_SECS, AuditedBooks};
use crate::event_log::EventLog;
use crate::memory::Memory;
use crate::runtime::{IcRuntime, SystemApi};
use market_api::blocks::BlockEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Most records one run of the audit timer prunes: with a run every
/// [`AUDIT_PERIOD_SECS`], 288,000 a day.
pub const PRUNE_CHUNK: usize = 100;

/// A canister's state as its timers reach it. [`canister_state!`](crate::canister_state)
/// implements it when given the state's event type.
pub trait CanisterState: Sized + 'static {
    /// The events of its public log.
    type Event: BlockEvent + Serialize + DeserializeOwned + Clone;

    /// Changes the state (the canister's `mutate_state`).
    fn mutate<R>(f: impl FnOnce(&mut Self) -> R) -> R;

    /// Its public event log.
    fn events(&mut self) -> &mut EventLog<Self::Event, Memory>;
}

/// Starts the repeating upkeep timer. Each run samples the cycle
/// balance, then `prune` deletes at most [`PRUNE_CHUNK`] records past their
/// retention (given the time and that budget; it returns how many it
/// deleted), then a chunk of the audit runs; all of that is committed
/// before the run moves old blocks to the archive, if any are due, across
/// the archive call's `.await`.
pub fn start_upkeep<S: CanisterState + AuditedBooks>(prune: fn(&mut S, u64, usize) -> usize) {
    ic_cdk_timers::set_timer_interval(Duration::from_secs(AUDIT_PERIOD_SECS), move || async move {
        crate::cycles::observe(&IcRuntime);
        let now = IcRuntime.now_ns();
        let archive = S::mutate(|s| {
            prune(s, now, PRUNE_CHUNK);
            s.run_audit_chunk(now, AUDIT_CHUNK_RECORDS, |line| ic_cdk::println!("{line}"));
            s.events().archiving_due(now)
        });
        if archive {
            move_old_blocks::<S>().await;
        }
    });
}

async fn move_old_blocks<S: CanisterState>() {
    let report = archiving::move_old_blocks(
        &IcRuntime,
        || S::mutate(|s| s.events().next_batch(IcRuntime.now_ns())),
        |batch, answer| S::mutate(|s| s.events().batch_answered(batch, answer)),
    )
    .await;
    if let Some(reason) = report.kept {
        ic_cdk::println!("event log archiving: {reason}");
    }
}
