//! The escrow's one timer: the background audit of its books, one chunk of
//! bounded work per run (the rule is `canister_common::audit`'s), a sample
//! of the cycle balance for the burn rate on `/metrics`, and the deletion
//! of settled locks whose retention has ended, a bounded number per run.
//! Timers do not survive upgrades; `init` and `post_upgrade` start it.

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
