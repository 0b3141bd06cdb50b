//! The upkeep timer a canister with audited books and a public event log
//! starts at `init` and `post_upgrade` (timers do not survive upgrades).
//! Each run samples the cycle balance for the burn rate on `/metrics`,
//! runs the canister's own bounded pruning and one chunk of bounded work of
//! the background audit of its books (the rule is [`crate::audit`]'s), and,
//! when the event log holds more blocks than it keeps, moves the oldest to
//! the archive (see [`crate::archiving`]).
//!
//! Each run of a timer is a message the canister pays for, about 15 M
//! cycles even with nothing to do, so the upkeep runs every
//! [`UPKEEP_IDLE_SECS`] (five minutes) while nothing is due, and a
//! follow-up comes [`UPKEEP_BUSY_SECS`] after a run that left work: an audit
//! pass under way, a full chunk pruned, blocks due to move. A pass starts
//! after every install and upgrade, so the first run is such a follow-up;
//! naming an archive (`set_log_archiving`) asks for one too. The repeating
//! timer survives a run that traps; a follow-up whose run trapped is armed
//! again once it is [`LOST_FOLLOW_UP_NS`] overdue.
//!
//! [`start_repeating`] is the same cadence for another run: the matcher's
//! watchdog, which has no audited books of its own to keep here.

use crate::archiving;
use crate::audit::{AUDIT_CHUNK_RECORDS, AUDIT_PERIOD_SECS, AuditedBooks};
use crate::event_log::EventLog;
use crate::memory::Memory;
use crate::runtime::{IcRuntime, SystemApi};
use market_api::blocks::BlockEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

/// Most records one run of the upkeep prunes; a run that prunes this many
/// is followed up, so up to 288,000 a day.
pub const PRUNE_CHUNK: usize = 100;

/// The upkeep's period while nothing is due: the spacing of the burn
/// rate's samples ([`crate::cycles::SAMPLE_SPACING_NS`]).
pub const UPKEEP_IDLE_SECS: u64 = 300;

/// How soon a run that left work is followed up: the audit's own period.
pub const UPKEEP_BUSY_SECS: u64 = AUDIT_PERIOD_SECS;

/// A follow-up this overdue is taken as lost (its run trapped, which rolls
/// back its own bookkeeping) and may be armed again.
pub const LOST_FOLLOW_UP_NS: u64 = 60_000_000_000;

/// When the armed follow-up of the upkeep is due, if one is armed. Heap
/// only, as timers are.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FollowUp {
    due_ns: Option<u64>,
}

impl FollowUp {
    /// Whether to arm a follow-up `delay_secs` after `now_ns`: not while
    /// one is armed and not yet [`LOST_FOLLOW_UP_NS`] overdue. Records the
    /// new one when so.
    pub fn arm(&mut self, now_ns: u64, delay_secs: u64) -> bool {
        if self
            .due_ns
            .is_some_and(|due| now_ns < due.saturating_add(LOST_FOLLOW_UP_NS))
        {
            return false;
        }
        self.due_ns = Some(now_ns.saturating_add(delay_secs.saturating_mul(1_000_000_000)));
        true
    }

    /// The armed follow-up runs.
    pub fn fired(&mut self) {
        self.due_ns = None;
    }
}

/// One run of a canister's upkeep, as a future for a timer.
type Run = Rc<dyn Fn() -> Pin<Box<dyn Future<Output = ()>>>>;

thread_local! {
    /// The canister's upkeep run, once [`start_repeating`] has started it,
    /// and how soon it is followed up.
    static RUN: RefCell<Option<(Run, u64)>> = const { RefCell::new(None) };
    static FOLLOW_UP: Cell<FollowUp> = const { Cell::new(FollowUp { due_ns: None }) };
}

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

/// Starts the upkeep: every [`UPKEEP_IDLE_SECS`], and a first run
/// [`UPKEEP_BUSY_SECS`] from now. Each run samples the cycle balance, then
/// `prune` deletes at most [`PRUNE_CHUNK`] records past their retention
/// (given the time and that budget; it returns how many it deleted), then
/// a chunk of the audit runs; all of that is committed, and a follow-up
/// armed if work is left, before the run moves old blocks to the archive,
/// if any are due, across the archive call's `.await`.
pub fn start_upkeep<S: CanisterState + AuditedBooks>(prune: fn(&mut S, u64, usize) -> usize) {
    start_repeating(UPKEEP_BUSY_SECS, move || upkeep::<S>(prune));
}

/// Starts `run` every [`UPKEEP_IDLE_SECS`], and a first run `busy_secs`
/// from now; [`follow_up_soon`] arms another `busy_secs` after it is
/// called. One such run per canister.
pub fn start_repeating<F, R>(busy_secs: u64, run: F)
where
    F: Fn() -> R + 'static,
    R: Future<Output = ()> + 'static,
{
    let run: Run = Rc::new(move || Box::pin(run()));
    RUN.with_borrow_mut(|r| *r = Some((run.clone(), busy_secs)));
    ic_cdk_timers::set_timer_interval(Duration::from_secs(UPKEEP_IDLE_SECS), move || run());
    follow_up_soon();
}

/// Arms a run of the upkeep (or of what [`start_repeating`] started) soon,
/// unless one is armed already or none was started.
pub fn follow_up_soon() {
    let Some((run, busy_secs)) = RUN.with_borrow(|r| r.clone()) else {
        return;
    };
    let mut follow_up = FOLLOW_UP.get();
    let armed = follow_up.arm(IcRuntime.now_ns(), busy_secs);
    FOLLOW_UP.set(follow_up);
    if armed {
        ic_cdk_timers::set_timer(Duration::from_secs(busy_secs), async move {
            let mut follow_up = FOLLOW_UP.get();
            follow_up.fired();
            FOLLOW_UP.set(follow_up);
            run().await;
        });
    }
}

async fn upkeep<S: CanisterState + AuditedBooks>(prune: fn(&mut S, u64, usize) -> usize) {
    crate::cycles::observe(&IcRuntime);
    let now = IcRuntime.now_ns();
    let (work_left, archive) = S::mutate(|s| {
        let pruned = prune(s, now, PRUNE_CHUNK);
        s.run_audit_chunk(now, AUDIT_CHUNK_RECORDS, |line| ic_cdk::println!("{line}"));
        let archive = s.events().archiving_due(now);
        (
            pruned >= PRUNE_CHUNK || s.audit_mut().is_running() || archive,
            archive,
        )
    });
    if work_left {
        follow_up_soon();
    }
    if archive {
        move_old_blocks::<S>().await;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn one_follow_up_is_armed_at_a_time() {
        let mut f = FollowUp::default();
        assert!(f.arm(0, UPKEEP_BUSY_SECS));
        assert!(!f.arm(1, UPKEEP_BUSY_SECS), "one is armed");
        assert!(
            !f.arm(UPKEEP_BUSY_SECS * SEC, UPKEEP_BUSY_SECS),
            "due now, not yet run"
        );
        f.fired();
        assert!(
            f.arm(UPKEEP_BUSY_SECS * SEC, UPKEEP_BUSY_SECS),
            "it ran: the next may be armed"
        );
    }

    #[test]
    fn a_follow_up_that_never_ran_is_armed_again_once_overdue() {
        let mut f = FollowUp::default();
        assert!(f.arm(0, 60));
        let due = 60 * SEC;
        assert!(!f.arm(due + LOST_FOLLOW_UP_NS - 1, 60));
        assert!(f.arm(due + LOST_FOLLOW_UP_NS, 60), "its run trapped: lost");
    }
}
