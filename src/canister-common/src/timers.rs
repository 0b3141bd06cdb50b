//! The timers a canister with audited books and a public event log starts
//! at `init` and `post_upgrade` (timers do not survive upgrades): the
//! background audit of its books, one chunk of bounded work per run (the
//! rule is [`crate::audit`]'s), with a sample of the cycle balance for the
//! burn rate on `/metrics` and the canister's own bounded pruning; and the
//! moves of old event-log blocks to the archive (see [`crate::archiving`]).

use crate::archiving::{self, start_archive_timer};
use crate::audit::{AUDIT_CHUNK_RECORDS, AuditedBooks, start_audit_timer};
use crate::event_log::EventLog;
use crate::memory::Memory;
use crate::runtime::{IcRuntime, SystemApi};
use market_api::blocks::BlockEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Most records one run of the audit timer prunes: with a run every
/// [`AUDIT_PERIOD_SECS`](crate::audit::AUDIT_PERIOD_SECS), 288,000 a day.
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

/// Starts the repeating audit timer. Each run samples the cycle balance,
/// then `prune` deletes at most [`PRUNE_CHUNK`] records past their
/// retention (given the time and that budget; it returns how many it
/// deleted), then a chunk of the audit runs.
pub fn start_audit<S: CanisterState + AuditedBooks>(prune: fn(&mut S, u64, usize) -> usize) {
    start_audit_timer(move |now| {
        crate::cycles::observe(&IcRuntime);
        S::mutate(|s| {
            prune(s, now, PRUNE_CHUNK);
            s.run_audit_chunk(now, AUDIT_CHUNK_RECORDS, |line| ic_cdk::println!("{line}"))
        })
    });
}

/// Starts the repeating timer that moves the oldest event-log blocks to the
/// archive.
pub fn start_archiving<S: CanisterState>() {
    start_archive_timer(move_old_blocks::<S>);
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
