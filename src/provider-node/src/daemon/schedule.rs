//! When to heartbeat: pure logic over IC time, tested without a network.
//!
//! The matcher accepts a heartbeat for a running job inside
//! `[due − interval/2, due + grace]` ([`heartbeat_window_opens_ns`]); the
//! first heartbeat of an assignment acknowledges it and may come at any
//! time before its deadline. The node sends one batch for all its jobs:
//!
//! - a job not yet acknowledged is always in the next batch;
//! - a running job is *urgent* from `due − interval/4` on (a quarter of an
//!   interval before the deadline's start, leaving the grace period for
//!   retries), and *eligible* from the window's opening `due − interval/2`;
//! - a batch is sent when some job is urgent or unacknowledged, and carries
//!   every eligible job, so jobs with nearby deadlines share a call.
//!
//! All times are the IC's (nanoseconds), never the local clock: the devnet
//! may run faster than real time.

use market_api::JobId;
use market_api::matcher::heartbeat_window_opens_ns;

/// What the scheduler needs to know of one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatSlot {
    /// The job.
    pub job_id: JobId,
    /// Length of one interval, ns.
    pub interval_ns: u64,
    /// When the current interval is due; `None` until acknowledged.
    pub due_ns: Option<u64>,
}

impl HeartbeatSlot {
    /// When the matcher starts accepting the next heartbeat (the matcher's
    /// own rule, [`heartbeat_window_opens_ns`]).
    pub fn window_opens_ns(&self) -> u64 {
        self.due_ns
            .map_or(0, |due| heartbeat_window_opens_ns(due, self.interval_ns))
    }

    /// When the node wants the next heartbeat sent.
    pub fn urgent_at_ns(&self) -> u64 {
        self.due_ns
            .map_or(0, |due| due.saturating_sub(self.interval_ns / 4))
    }
}

/// The jobs to put in a batch sent at `now_ns` (empty: send nothing).
pub fn batch(slots: &[HeartbeatSlot], now_ns: u64) -> Vec<JobId> {
    let needed = slots.iter().any(|s| now_ns >= s.urgent_at_ns());
    if !needed {
        return vec![];
    }
    slots
        .iter()
        .filter(|s| now_ns >= s.window_opens_ns())
        .map(|s| s.job_id)
        .collect()
}

/// When (IC time) a batch will next be needed, if any job is tracked.
pub fn next_needed_ns(slots: &[HeartbeatSlot]) -> Option<u64> {
    slots.iter().map(HeartbeatSlot::urgent_at_ns).min()
}

/// Whether a heartbeat sent at `now_ns` comes after the interval's due time
/// (still accepted within the grace period, but late).
pub fn is_late(slot: &HeartbeatSlot, now_ns: u64) -> bool {
    slot.due_ns.is_some_and(|due| now_ns > due)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn running(job_id: JobId, interval_secs: u64, due_secs: u64) -> HeartbeatSlot {
        HeartbeatSlot {
            job_id,
            interval_ns: interval_secs * S,
            due_ns: Some(due_secs * S),
        }
    }

    #[test]
    fn new_assignments_are_acknowledged_at_once() {
        let new = HeartbeatSlot {
            job_id: 1,
            interval_ns: 60 * S,
            due_ns: None,
        };
        assert_eq!(batch(&[new], 0), vec![1]);
        assert_eq!(next_needed_ns(&[new]), Some(0));
    }

    #[test]
    fn running_jobs_wait_for_their_window_and_go_before_the_due_time() {
        // Interval 60 s due at 100 s: the window opens at 70 s, urgent at 85 s.
        let j = running(1, 60, 100);
        assert!(batch(&[j], 69 * S).is_empty());
        assert!(batch(&[j], 84 * S).is_empty(), "open but not urgent yet");
        assert_eq!(batch(&[j], 85 * S), vec![1]);
        assert_eq!(next_needed_ns(&[j]), Some(85 * S));
        assert!(!is_late(&j, 100 * S));
        assert!(is_late(&j, 101 * S));
    }

    #[test]
    fn one_batch_carries_every_job_whose_window_is_open() {
        let a = running(1, 60, 100); // urgent at 85, open at 70
        let b = running(2, 60, 110); // open at 80, urgent at 95
        let c = running(3, 60, 200); // open at 170
        let new = HeartbeatSlot {
            job_id: 4,
            interval_ns: 10 * S,
            due_ns: None,
        };
        assert_eq!(
            batch(&[a, b, c], 85 * S),
            vec![1, 2],
            "b rides along with a"
        );
        assert!(batch(&[a, b, c], 79 * S).is_empty());
        assert_eq!(
            batch(&[a, b, c, new], 79 * S),
            vec![1, 4],
            "an acknowledgement takes the open windows with it"
        );
        assert_eq!(next_needed_ns(&[a, b, c]), Some(85 * S));
    }

    #[test]
    fn short_intervals_and_early_times_do_not_underflow() {
        let j = running(1, 1, 0);
        assert_eq!(j.window_opens_ns(), 0);
        assert_eq!(batch(&[j], 0), vec![1]);
        let odd = HeartbeatSlot {
            job_id: 2,
            interval_ns: 3,
            due_ns: Some(3),
        };
        assert_eq!(odd.window_opens_ns(), 2);
        assert_eq!(odd.urgent_at_ns(), 3);
    }
}
