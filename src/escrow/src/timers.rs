//! The escrow's timers: the moves of old event-log blocks to the archive,
//! and the background audit of its books, one chunk of
//! bounded work per run (the rule is `canister_common::audit`'s), a sample
//! of the cycle balance for the burn rate on `/metrics`, and the deletion
//! of settled locks whose retention has ended, a bounded number per run.
//! Timers do not survive upgrades; `init` and `post_upgrade` start them.

use crate::state::State;

/// Starts the repeating audit timer, which also prunes the settled locks past their retention.
pub fn start_audit() {
    canister_common::timers::start_audit(State::prune_settled_locks);
}

/// Starts the repeating timer that moves the oldest event-log blocks to the
/// archive (see `canister_common::event_log`).
pub fn start_archiving() {
    canister_common::timers::start_archiving::<State>();
}
