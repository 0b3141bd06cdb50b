//! The matcher's own outages, and the deadlines they move.
//!
//! While the matcher is frozen (out of cycles), stopped (for an upgrade) or
//! its subnet stalls, it executes nothing: providers' heartbeats and results
//! are refused by the IC, through no fault of theirs, and its deadline timer
//! does not run. When it runs again, a deadline that fell inside the outage
//! must not slash the provider for it.
//!
//! # Noticing an outage
//!
//! The matcher runs at least once every `AUDIT_PERIOD_SECS` (30 s) while it
//! is up: its audit timer repeats forever, and every provider call runs too.
//! Each of those runs calls [`Outages::observe`] with the time; a gap since
//! the previous run longer than [`OUTAGE_AFTER_NS`] is recorded as an outage
//! from the previous run to this one. The matcher can't tell a frozen
//! canister from a stalled subnet, and need not: either way nobody could
//! reach it.
//!
//! # Moving deadlines
//!
//! A deadline that fell at or after an outage began moves to the outage's
//! end plus the grace period ([`Outages::extend`]), so every provider gets
//! a grace period of a running matcher to heartbeat, report or hand back:
//! the provider whose node is alive comes back in time, the one whose node
//! is dead is slashed a grace period later than it would have been. The
//! challenge window moves the same way, so a buyer can still dispute.
//! Deadlines stay indexed by their own time; the extension is monotone (a
//! later deadline never moves before an earlier one), so the index's order
//! is the order of the moved deadlines too.
//!
//! An outage can only delay a slash, never spare one, and what it delays
//! a provider can't cause: an outage starts before any call of its could
//! reach the matcher.

use serde::{Deserialize, Serialize};

/// A gap between two runs of the matcher longer than this (its audit
/// timer's period and a margin for a busy subnet) is an outage.
pub const OUTAGE_AFTER_NS: u64 = (canister_common::audit::AUDIT_PERIOD_SECS + 10) * 1_000_000_000;

/// The outages kept: enough to chain outages that follow one another
/// within a grace period; a deadline moved by an older one was handled
/// long ago.
pub const MAX_OUTAGES: usize = 16;

/// A time the matcher did not run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    /// Its last run before the gap.
    pub from_ns: u64,
    /// Its first run after.
    pub until_ns: u64,
}

/// When the matcher last ran, and its recent outages, oldest first.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Outages {
    /// The time of its last run that observed the clock (0: none yet).
    pub last_run_ns: u64,
    /// The most recent outages, oldest first, at most [`MAX_OUTAGES`].
    pub recent: Vec<Outage>,
    /// Outages recorded since install.
    #[serde(default)]
    pub total: u64,
    /// Their length in all, in seconds.
    #[serde(default)]
    pub total_secs: u64,
}

impl Outages {
    /// A run of the matcher at `now_ns`: records an outage if the gap since
    /// the last run is longer than [`OUTAGE_AFTER_NS`]; returns it if so.
    /// A clock that seems to go back (it never does on the IC) is ignored.
    pub fn observe(&mut self, now_ns: u64) -> Option<Outage> {
        let last = self.last_run_ns;
        if now_ns <= last {
            return None;
        }
        self.last_run_ns = now_ns;
        if last == 0 || now_ns - last <= OUTAGE_AFTER_NS {
            return None;
        }
        let outage = Outage {
            from_ns: last,
            until_ns: now_ns,
        };
        if self.recent.len() >= MAX_OUTAGES {
            self.recent.remove(0);
        }
        self.recent.push(outage);
        self.total = self.total.saturating_add(1);
        self.total_secs = self
            .total_secs
            .saturating_add((now_ns - last) / 1_000_000_000);
        Some(outage)
    }

    /// Where a deadline at `deadline_ns` stands after the outages: moved
    /// to a grace period (`grace_ns`) after the end of each outage that
    /// began at or before it, in order (a moved deadline may fall in the
    /// next outage).
    pub fn extend(&self, deadline_ns: u64, grace_ns: u64) -> u64 {
        self.recent.iter().fold(deadline_ns, |d, o| {
            if o.from_ns <= d {
                d.max(o.until_ns.saturating_add(grace_ns))
            } else {
                d
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const GRACE: u64 = 30 * S;

    fn observed(times: &[u64]) -> Outages {
        let mut o = Outages::default();
        for &t in times {
            o.observe(t * S);
        }
        o
    }

    #[test]
    fn runs_a_timer_period_apart_are_no_outage() {
        let o = observed(&[100, 130, 160, 200]);
        assert!(o.recent.is_empty());
        assert_eq!(o.extend(150 * S, GRACE), 150 * S);
    }

    #[test]
    fn a_gap_is_an_outage_from_the_last_run_to_the_next() {
        let mut o = observed(&[100, 130]);
        assert_eq!(
            o.observe(310 * S),
            Some(Outage {
                from_ns: 130 * S,
                until_ns: 310 * S
            })
        );
        assert_eq!((o.total, o.total_secs), (1, 180));
        // Deadlines before the outage stand; those in it, or after it
        // began, move to a grace period after it.
        assert_eq!(o.extend(129 * S, GRACE), 129 * S);
        assert_eq!(o.extend(130 * S, GRACE), 340 * S);
        assert_eq!(o.extend(200 * S, GRACE), 340 * S);
        assert_eq!(o.extend(335 * S, GRACE), 340 * S);
        assert_eq!(o.extend(400 * S, GRACE), 400 * S);
    }

    #[test]
    fn outages_a_grace_period_apart_chain() {
        let o = observed(&[100, 200, 220, 300]);
        assert_eq!(o.recent.len(), 2);
        // Moved past the first outage into the second, then past it.
        assert_eq!(o.extend(150 * S, GRACE), 330 * S);
        // Monotone: a later deadline never ends earlier.
        let mut last = 0;
        for t in 0..500 {
            let d = o.extend(t * S, GRACE);
            assert!(d >= last && d >= t * S);
            last = d;
        }
    }

    #[test]
    fn the_first_run_and_a_clock_going_back_are_no_outage() {
        let mut o = Outages::default();
        assert_eq!(o.observe(1_000 * S), None);
        assert_eq!(o.observe(10 * S), None);
        assert_eq!(o.last_run_ns, 1_000 * S);
    }

    #[test]
    fn only_the_most_recent_outages_are_kept() {
        let times: Vec<u64> = (0..40).map(|i| 100 + i * 100).collect();
        let o = observed(&times);
        assert_eq!(o.recent.len(), MAX_OUTAGES);
        assert_eq!(o.total, 39);
        assert_eq!(o.recent.last().unwrap().until_ns, 4_000 * S);
    }
}
