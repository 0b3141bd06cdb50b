//! The matcher's timers: one one-shot timer armed for the earliest deadline,
//! probe or outbox step; the repeating background audit of the indexes
//! (one chunk of bounded work per run; the rule is `canister_common::audit`'s)
//! every 30 s, which is also the matcher's pulse, re-arms the one-shot
//! timer if it was lost, samples the cycle balance for the burn rate on
//! `/metrics` and moves old event-log blocks to the archive; and the
//! watchdog's housekeeping, every 5 minutes while it leaves nothing to do
//! and a minute after a run that left work or a step that may have paid
//! the market (`canister_common::timers::start_repeating`).
//! Timers do not survive upgrades; `post_upgrade` arms new ones from stable
//! state.

use crate::perform;
use crate::runtime::{IcRuntime, Runtime, SystemApi};
use crate::state::{mutate_state, read_state};
use std::cell::Cell;
use std::time::Duration;

/// Deadlines handled by one timer run.
const DEADLINES_PER_RUN: usize = 100;
/// A timer this overdue is taken as lost: its run never started or trapped
/// before re-arming (ic-cdk-timers drops a one-shot timer whose run traps).
const LOST_TIMER_NS: u64 = 60_000_000_000;
/// How soon the watchdog follows up a run that left work, or a step that
/// may have paid the market (its top-up reads the balance then).
const WATCHDOG_BUSY_SECS: u64 = 60;
/// Abandoned module uploads collected per watchdog run.
const COLLECTED_PER_RUN: usize = 10;
/// Resting bids the watchdog's sweep looks at per run (see
/// `Market::sweep_resting_bids`): about 0.7-1.4 M instructions each when
/// matched, less when only checked for expiry.
const SWEEP_BIDS_PER_RUN: usize = 500;

/// Service replicas' probes started by one timer run (each an outcall of
/// the outbox's next run).
const PROBES_PER_RUN: usize = 100;

/// Finished jobs past their retention deleted per watchdog run.
const PRUNED_PER_RUN: usize = 100;

thread_local! {
    /// The armed timer and when it fires (heap only: timers do not survive
    /// upgrades, so post_upgrade arms a new one from stable state).
    static TIMER: Cell<Option<(ic_cdk_timers::TimerId, u64)>> = const { Cell::new(None) };
    /// Where the sweep of resting bids goes on (heap only: after an upgrade
    /// it starts again from the best bid, which only repeats some work).
    static SWEEP: Cell<Option<crate::book::BidKey>> = const { Cell::new(None) };
}

fn now() -> u64 {
    IcRuntime.now_ns()
}

/// Arms the timer for the earliest deadline or outbox step, if it is not
/// armed for an earlier time already.
pub fn schedule() {
    let wake = read_state(|s| {
        [
            s.market.next_deadline_ns(&s.params()),
            s.market.outbox.next_wake_ns(),
            s.market.next_probe_ns(),
        ]
        .into_iter()
        .flatten()
        .min()
    });
    let Some(wake) = wake else { return };
    if let Some((_, at)) = TIMER.get()
        && at <= wake
        && now() < at.saturating_add(LOST_TIMER_NS)
    {
        return;
    }
    if let Some((id, _)) = TIMER.take() {
        ic_cdk_timers::clear_timer(id);
    }
    let delay = Duration::from_nanos(wake.saturating_sub(now()));
    let id = ic_cdk_timers::set_timer(delay, run());
    TIMER.set(Some((id, wake)));
}

/// One timer run: handle due deadlines, start due probes, perform ready
/// outbox steps, re-arm.
async fn run() {
    TIMER.set(None);
    let t = now();
    mutate_state(|s| {
        s.market.observe_run(t);
        let p = s.params();
        s.market.process_deadlines(&p, t, DEADLINES_PER_RUN);
        s.market.process_probes(t, PROBES_PER_RUN);
        s.market.modules.collect_garbage(t, 10);
    });
    schedule();
    perform::run_ready_steps(&IcRuntime).await;
    schedule();
}

/// The watchdog: a repeating timer (which, unlike a one-shot one, survives
/// a trapping run) that collects abandoned module uploads even when no
/// deadline wakes the canister, deletes finished jobs past their
/// retention, sweeps the resting bids, reads the matcher's balance for a
/// top-up when it may have grown, and re-arms the deadline timer if it
/// was lost. Each run is a message the matcher pays for, so it runs every
/// 5 minutes while nothing is left to do; a run that left work (a full
/// chunk collected or pruned, a sweep part way through the bids) is
/// followed up in [`WATCHDOG_BUSY_SECS`], and so is a step that may have
/// paid the market ([`watchdog_soon`]).
pub fn start_watchdog() {
    canister_common::timers::start_repeating(WATCHDOG_BUSY_SECS, watchdog);
}

/// Arms a run of the watchdog in [`WATCHDOG_BUSY_SECS`], unless one is
/// armed already.
pub fn watchdog_soon() {
    canister_common::timers::follow_up_soon();
}

async fn watchdog() {
    let t = now();
    let work_left = mutate_state(|s| {
        s.market.observe_run(t);
        let collected = s.market.modules.collect_garbage(t, COLLECTED_PER_RUN);
        let pruned = s.market.prune_finished(t, PRUNED_PER_RUN);
        let p = s.params();
        let next = s
            .market
            .sweep_resting_bids(&p, t, SWEEP.get(), SWEEP_BIDS_PER_RUN);
        SWEEP.set(next);
        collected >= COLLECTED_PER_RUN || pruned >= PRUNED_PER_RUN || next.is_some()
    });
    if work_left {
        watchdog_soon();
    }
    crate::top_up::queue(&IcRuntime).await;
    schedule();
}

/// How soon after install or upgrade the rates are first read.
const FIRST_RATES_READ: Duration = Duration::from_secs(1);

/// Starts reading the rates: once soon, then every
/// `PricingConfig::refresh_secs` (nothing without a pricing
/// configuration). Each read is an outbox step of the next timer run.
pub fn start_rates() {
    let Some(pricing) = read_state(|s| s.config().pricing) else {
        return;
    };
    let read = || async { crate::endpoints::queue_rate_reads(&IcRuntime) };
    ic_cdk_timers::set_timer(FIRST_RATES_READ, read());
    ic_cdk_timers::set_timer_interval(Duration::from_secs(pricing.refresh_secs()), read);
}

/// Starts the repeating audit timer, which also samples the cycle balance
/// for the burn rate on `/metrics` and, when the event log holds more
/// blocks than it keeps, moves the oldest to the archive (see
/// `canister_common::event_log`) through the performer, after the audit's
/// chunk is committed. A run with nothing to archive makes no call.
pub fn start_audit() {
    use canister_common::audit::{AUDIT_CHUNK_RECORDS, AUDIT_PERIOD_SECS};
    ic_cdk_timers::set_timer_interval(Duration::from_secs(AUDIT_PERIOD_SECS), || async {
        canister_common::cycles::observe(&IcRuntime);
        let t = now();
        let archive = mutate_state(|s| {
            // The one timer that runs whatever else is due: the matcher's
            // pulse, by which it notices its own outages.
            s.market.observe_run(t);
            s.run_audit_chunk(t, AUDIT_CHUNK_RECORDS, |line| IcRuntime.log(line));
            s.events.archiving_due(t)
        });
        // A deadline timer lost to a trap is armed again within a run.
        schedule();
        if archive {
            perform::move_old_blocks(&IcRuntime).await;
        }
    });
}

/// How soon after install or upgrade the privacy key is first read.
const FIRST_KEY_READ: Duration = Duration::from_secs(1);
/// How long after a failed read of the privacy key it is read again.
const KEY_READ_RETRY: Duration = Duration::from_secs(60);

/// Starts reading the matcher's public key for job keys (nothing without
/// privacy configured): soon, then again after each failure until a read
/// succeeds.
pub fn start_privacy_key() {
    if read_state(|s| s.config().privacy.is_none()) {
        return;
    }
    read_privacy_key_after(FIRST_KEY_READ);
}

fn read_privacy_key_after(delay: Duration) {
    ic_cdk_timers::set_timer(delay, async {
        if read_state(|s| s.privacy_key().is_some()) {
            return;
        }
        // The retry is set before the call's await, a commit point: if the
        // rest of this message traps (or its reply never comes), the key is
        // still read again. Once a read succeeds the retry finds the key
        // and stops.
        read_privacy_key_after(KEY_READ_RETRY);
        if let Err(e) = crate::endpoints::read_privacy_key(&IcRuntime).await {
            IcRuntime.log(&format!("privacy key: {e}"));
        }
    });
}
