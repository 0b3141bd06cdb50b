//! The registry's one timer: the background audit of its books, one chunk of
//! bounded work per run (the rule is `canister_common::audit`'s). Timers
//! do not survive upgrades; `init` and `post_upgrade` start it.

use crate::state::mutate_state;
use canister_common::audit::{AUDIT_CHUNK_RECORDS, AUDIT_PERIOD_SECS};
use std::time::Duration;

/// Starts the repeating audit timer.
pub fn start_audit() {
    ic_cdk_timers::set_timer_interval(Duration::from_secs(AUDIT_PERIOD_SECS), || async {
        let now = ic_cdk::api::time();
        mutate_state(|s| {
            s.run_audit_chunk(now, AUDIT_CHUNK_RECORDS, |line| ic_cdk::println!("{line}"))
        });
    });
}
