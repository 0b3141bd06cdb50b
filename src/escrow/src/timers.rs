//! The escrow's timers: the moves of old event-log blocks to the archive,
//! and the background audit of its books, one chunk of
//! bounded work per run (the rule is `canister_common::audit`'s), a sample
//! of the cycle balance for the burn rate on `/metrics`, and the deletion
//! of settled locks whose retention has ended, a bounded number per run.
//! Timers do not survive upgrades; `init` and `post_upgrade` start them.

use crate::runtime::IcRuntime;
use crate::state::mutate_state;
use canister_common::audit::{AUDIT_CHUNK_RECORDS, start_audit_timer};

/// Most settled locks deleted per run: with a run every
/// [`AUDIT_PERIOD_SECS`](canister_common::audit::AUDIT_PERIOD_SECS),
/// 288,000 a day.
pub const PRUNE_CHUNK_LOCKS: usize = 100;

/// Starts the repeating audit timer.
pub fn start_audit() {
    start_audit_timer(|now| {
        canister_common::cycles::observe(&IcRuntime);
        mutate_state(|s| {
            s.prune_settled_locks(now, PRUNE_CHUNK_LOCKS);
            s.run_audit_chunk(now, AUDIT_CHUNK_RECORDS, |line| ic_cdk::println!("{line}"))
        })
    });
}

/// Starts the repeating timer that moves the oldest event-log blocks to the
/// archive (see `canister_common::event_log`).
pub fn start_archiving() {
    canister_common::archiving::start_archive_timer(move_old_blocks);
}

async fn move_old_blocks() {
    use canister_common::runtime::SystemApi;
    let report = canister_common::archiving::move_old_blocks(
        &IcRuntime,
        || mutate_state(|s| s.events.next_batch(IcRuntime.now_ns())),
        |batch, answer| mutate_state(|s| s.events.batch_answered(batch, answer)),
    )
    .await;
    if let Some(reason) = report.kept {
        ic_cdk::println!("event log archiving: {reason}");
    }
}
