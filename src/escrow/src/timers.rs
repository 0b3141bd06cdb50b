//! The escrow's timer: one repeating upkeep timer (see
//! `canister_common::timers`) that samples the cycle balance for the burn
//! rate on `/metrics`, deletes settled locks whose retention has ended, a
//! bounded number per run, runs a chunk of bounded work of the background
//! audit of its books (the rule is `canister_common::audit`'s), and moves
//! old event-log blocks to the archive when they are due. Timers do not
//! survive upgrades; `init` and `post_upgrade` start it.

use crate::state::State;

/// Starts the repeating upkeep timer: the audit, the pruning of the settled locks
/// past their retention, and the moves of old event-log blocks to the
/// archive.
pub fn start_upkeep() {
    canister_common::timers::start_upkeep(State::prune_settled_locks);
}
