//! How much fuel an attempt may report, and how long its run may take:
//! pure logic over the assignment's terms and IC time, tested without a
//! network.
//!
//! The matcher bills a one-off job by fuel and holds its provider to the
//! speed its offer declared: a heartbeat at IC time `t` may report at most
//! `fuel_per_sec × (t − counting_from)` cumulative fuel, never more than
//! the budget and never less than reported before ([`Pace::allowed`]). A
//! node faster than it declared therefore reports less than it burnt until
//! its result, which carries the true count. The result is due by the
//! assignment's `result_deadline_ns`; the run gets the time until then,
//! less a margin to get the result in ([`run_timeout`]).

use std::time::Duration;

use market_api::matcher::{Assignment, JobSpec, attempt_secs};

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Time kept, after a run's wall-clock limit, to save and submit its
/// result before the deadline (plus two turns of the daemon's loop).
pub const SUBMIT_MARGIN: Duration = Duration::from_secs(5);

/// What the matcher's listing says of an attempt's fuel and time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pace {
    /// The offer's declared speed, fuel per second (0 for a job in a
    /// reservation or a reserved slot).
    pub fuel_per_sec: u64,
    /// When the attempt's fuel and time began to count (its bond held).
    pub counting_from_ns: Option<u64>,
    /// When the attempt's result is due, once the matcher says.
    pub result_deadline_ns: Option<u64>,
    /// Cumulative fuel the matcher accepted from this attempt so far.
    pub fuel_reported: u64,
}

impl Pace {
    /// The terms of assignment `a`.
    pub fn of(a: &Assignment) -> Self {
        Self {
            fuel_per_sec: a.fuel_per_sec,
            counting_from_ns: a.counting_from_ns,
            result_deadline_ns: a.result_deadline_ns,
            fuel_reported: a.fuel_reported,
        }
    }

    /// Takes a newer listing of the same attempt: what it says replaces
    /// what was known, except the fuel reported, which never goes down (a
    /// listing read before an accepted heartbeat may lag behind it).
    pub fn update(&mut self, newer: Pace) {
        let reported = self.fuel_reported.max(newer.fuel_reported);
        *self = Pace {
            fuel_reported: reported,
            ..newer
        };
    }

    /// The most cumulative fuel a heartbeat at `now_ns` may report: the
    /// declared speed times the seconds counted so far, within `budget`
    /// (0 before the attempt's time counts).
    pub fn allowed(&self, budget: u64, now_ns: u64) -> u64 {
        let Some(from) = self.counting_from_ns else {
            return 0;
        };
        let elapsed = now_ns.saturating_sub(from);
        let allowed =
            u128::from(self.fuel_per_sec) * u128::from(elapsed) / u128::from(NANOS_PER_SEC);
        u64::try_from(allowed).unwrap_or(u64::MAX).min(budget)
    }

    /// What a heartbeat at `now_ns` reports for a run that has `used`
    /// fuel of `budget`: as much of it as the speed allows, and never less
    /// than reported before.
    pub fn heartbeat_fuel(&self, used: u64, budget: u64, now_ns: u64) -> u64 {
        used.min(self.allowed(budget, now_ns))
            .max(self.fuel_reported)
    }

    /// The fuel a result reports for a run that used `used`: the true
    /// count. Only a run cut short after a restart (the same attempt run
    /// again, with less time left) can have used less than its attempt
    /// already reported; the result then reports what was reported, which
    /// the matcher requires.
    pub fn result_fuel(&self, used: u64) -> u64 {
        used.max(self.fuel_reported)
    }

    /// When a run of `spec` started at `now_ns` must have its result in:
    /// the assignment's result deadline, or before the matcher gives one
    /// (its bond not yet held), the earliest it can be: the attempt's time
    /// ([`attempt_secs`]) from when it began to count, or from now. `None`
    /// if nothing bounds the attempt (a job in a reservation naming no
    /// deadline).
    pub fn run_deadline_ns(&self, spec: &JobSpec, now_ns: u64) -> Option<u64> {
        if let Some(due) = self.result_deadline_ns {
            return Some(due);
        }
        if self.fuel_per_sec == 0 && spec.deadline_secs.is_none() {
            return None;
        }
        let secs = attempt_secs(
            spec.limits.fuel,
            self.fuel_per_sec,
            spec.deadline_secs,
            spec.interval_secs,
        );
        let from = self.counting_from_ns.unwrap_or(now_ns);
        Some(from.saturating_add(secs.saturating_mul(NANOS_PER_SEC)))
    }
}

/// The wall-clock limit of a run started at `now_ns` whose result is due
/// at `deadline_ns`: the time left less a margin to get the result in
/// ([`SUBMIT_MARGIN`] plus two `poll_interval`s, but never more than a
/// quarter of the time left), and never more than the node's
/// `max_job_time`.
pub fn run_timeout(
    now_ns: u64,
    deadline_ns: Option<u64>,
    poll_interval: Duration,
    max_job_time: Duration,
) -> Duration {
    let Some(deadline_ns) = deadline_ns else {
        return max_job_time;
    };
    let left = Duration::from_nanos(deadline_ns.saturating_sub(now_ns));
    let margin = SUBMIT_MARGIN
        .saturating_add(poll_interval.saturating_mul(2))
        .min(left / 4);
    left.saturating_sub(margin).min(max_job_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = NANOS_PER_SEC;

    fn pace(fuel_per_sec: u64, from_secs: u64, reported: u64) -> Pace {
        Pace {
            fuel_per_sec,
            counting_from_ns: Some(from_secs * S),
            result_deadline_ns: None,
            fuel_reported: reported,
        }
    }

    /// The daemon tests' job, with a budget of `fuel` and the deadline
    /// `deadline_secs`, in intervals of 10 s.
    fn spec(fuel: u64, deadline_secs: Option<u64>) -> JobSpec {
        let mut spec = crate::daemon::tests::spec([0; 32], 10);
        spec.limits.fuel = fuel;
        spec.deadline_secs = deadline_secs;
        spec.max_price_per_gfuel = 1;
        spec
    }

    #[test]
    fn a_heartbeat_reports_what_the_speed_allows_and_never_less_than_before() {
        // 1,000 fuel/s counted from 100 s, budget 50,000.
        let p = pace(1_000, 100, 0);
        assert_eq!(p.allowed(50_000, 100 * S), 0);
        assert_eq!(p.allowed(50_000, 107 * S + S / 2), 7_500);
        assert_eq!(p.allowed(50_000, 1_000 * S), 50_000, "capped by the budget");
        assert_eq!(p.allowed(50_000, 99 * S), 0, "before the count: nothing");
        // A fast run reports the cap; a slow one what it used.
        assert_eq!(p.heartbeat_fuel(9_000, 50_000, 105 * S), 5_000);
        assert_eq!(p.heartbeat_fuel(3_000, 50_000, 105 * S), 3_000);
        // A run restarted from scratch never reports less than before.
        let p = pace(1_000, 100, 4_000);
        assert_eq!(p.heartbeat_fuel(10, 50_000, 105 * S), 4_000);
        // Before the bond holds nothing is allowed.
        let unbonded = Pace {
            counting_from_ns: None,
            ..pace(1_000, 0, 0)
        };
        assert_eq!(unbonded.heartbeat_fuel(9_000, 50_000, 105 * S), 0);
        // No overflow at the extremes.
        assert_eq!(pace(u64::MAX, 0, 0).allowed(u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn a_result_reports_the_true_fuel_unless_it_fell_below_what_was_reported() {
        let p = pace(1_000, 100, 4_000);
        assert_eq!(p.result_fuel(9_000), 9_000);
        assert_eq!(p.result_fuel(1_000), 4_000);
    }

    #[test]
    fn a_newer_listing_never_lowers_the_fuel_reported() {
        let mut p = pace(1_000, 100, 4_000);
        p.update(Pace {
            result_deadline_ns: Some(200 * S),
            ..pace(1_000, 100, 3_000)
        });
        assert_eq!(p.fuel_reported, 4_000);
        assert_eq!(p.result_deadline_ns, Some(200 * S));
        p.update(pace(1_000, 100, 6_000));
        assert_eq!(p.fuel_reported, 6_000);
    }

    #[test]
    fn the_run_ends_before_the_result_deadline() {
        let mut p = pace(1_000, 100, 0);
        // Known deadline: it is the one.
        p.result_deadline_ns = Some(160 * S);
        assert_eq!(
            p.run_deadline_ns(&spec(10_000, None), 120 * S),
            Some(160 * S)
        );
        // Not known yet: the attempt's time from when it counts (2 × 10 s
        // for the budget at the declared speed, plus an interval).
        p.result_deadline_ns = None;
        assert_eq!(
            p.run_deadline_ns(&spec(10_000, None), 120 * S),
            Some(130 * S)
        );
        assert_eq!(
            p.run_deadline_ns(&spec(10_000, Some(7)), 120 * S),
            Some(107 * S),
            "the bid's own deadline"
        );
        // Not counting yet: from now, which is never later than the real one.
        p.counting_from_ns = None;
        assert_eq!(
            p.run_deadline_ns(&spec(10_000, None), 120 * S),
            Some(150 * S)
        );
        // A job in a reservation with no deadline of its own: unbounded.
        let free = Pace::default();
        assert_eq!(free.run_deadline_ns(&spec(10_000, None), 120 * S), None);
        assert_eq!(
            free.run_deadline_ns(&spec(10_000, Some(30)), 120 * S),
            Some(150 * S)
        );
    }

    #[test]
    fn the_run_keeps_a_margin_to_submit_and_the_node_cap() {
        let hour = Duration::from_secs(3_600);
        let poll = Duration::from_secs(1);
        // 100 s left: 7 s kept for the result.
        assert_eq!(
            run_timeout(0, Some(100 * S), poll, hour),
            Duration::from_secs(93)
        );
        // 8 s left: a quarter kept.
        assert_eq!(
            run_timeout(0, Some(8 * S), poll, hour),
            Duration::from_secs(6)
        );
        // Past the deadline: no time at all.
        assert_eq!(run_timeout(10 * S, Some(5 * S), poll, hour), Duration::ZERO);
        // The node's cap, and no deadline.
        assert_eq!(run_timeout(0, Some(10_000 * S), poll, hour), hour);
        assert_eq!(run_timeout(0, None, poll, hour), hour);
    }
}
