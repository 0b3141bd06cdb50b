//! The canister's cycles as its `/metrics` page shows them: the balance,
//! the burn rate in cycles per day, and the days the balance lasts at that
//! rate before the canister freezes.
//!
//! The rate comes from balance samples the canister's periodic timer takes
//! ([`observe`]): a small bounded ring in heap memory (rebuilt empty on
//! upgrade, which restarts the window). A balance that went up since the
//! last reading (a top-up, or cycles refunded by a call) restarts the
//! window: the rate only ever spans a stretch where the balance fell, so it
//! is never negative. All arithmetic is on integers and checked; a result
//! that would not fit is left out of the page rather than wrong.

use crate::metrics::MetricsPage;
use crate::runtime::SystemApi;
use std::cell::RefCell;
use std::collections::VecDeque;

/// Samples kept at most: with [`SAMPLE_SPACING_NS`] the rate spans up to
/// four hours.
pub const MAX_SAMPLES: usize = 48;

/// Least time between two samples kept (five minutes): the timers that
/// read the balance run more often; a reading taken sooner is not kept
/// unless the balance went up (see [`CycleSamples::record`]).
pub const SAMPLE_SPACING_NS: u64 = 300_000_000_000;

const NANOS_PER_DAY: u128 = 86_400_000_000_000;

/// One reading of the balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceSample {
    /// IC time of the reading, in nanoseconds.
    pub at_ns: u64,
    /// The balance read, in cycles.
    pub cycles: u128,
}

/// The last balance readings, oldest first, over a stretch in which the
/// balance never went up; at most [`MAX_SAMPLES`], at least
/// [`SAMPLE_SPACING_NS`] apart.
#[derive(Clone, Debug, Default)]
pub struct CycleSamples {
    samples: VecDeque<BalanceSample>,
    /// The newest reading, kept or not: a top-up smaller than what burned
    /// since the newest sample still shows as a rise against it.
    latest: Option<BalanceSample>,
}

/// How fast the balance fell over the samples' window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BurnRate {
    /// Cycles burned per day, rounded down.
    pub cycles_per_day: u128,
    /// Length of the window the rate is measured over, in nanoseconds.
    pub window_ns: u64,
}

impl CycleSamples {
    /// No samples yet.
    pub const fn new() -> Self {
        CycleSamples {
            samples: VecDeque::new(),
            latest: None,
        }
    }

    /// Records the balance `cycles` read at `at_ns`. A balance above the
    /// previous reading's, or a clock that went back, restarts the window
    /// with this reading alone; otherwise a reading sooner than
    /// [`SAMPLE_SPACING_NS`] after the newest sample is not kept; the
    /// oldest sample goes when the ring is full.
    pub fn record(&mut self, at_ns: u64, cycles: u128) {
        let sample = BalanceSample { at_ns, cycles };
        let rose = self
            .latest
            .replace(sample)
            .is_some_and(|l| cycles > l.cycles || at_ns < l.at_ns);
        match self.samples.back() {
            _ if rose => self.samples.clear(),
            Some(last) if at_ns - last.at_ns < SAMPLE_SPACING_NS => return,
            _ => {}
        }
        if self.samples.len() == MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = &BalanceSample> {
        self.samples.iter()
    }

    /// The burn rate between the oldest and the newest sample; `None` with
    /// fewer than two samples or if the rate does not fit 128 bits.
    pub fn burn_rate(&self) -> Option<BurnRate> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let window_ns = last.at_ns.checked_sub(first.at_ns).filter(|w| *w > 0)?;
        let burned = first.cycles.checked_sub(last.cycles)?;
        let cycles_per_day = burned.checked_mul(NANOS_PER_DAY)? / u128::from(window_ns);
        Some(BurnRate {
            cycles_per_day,
            window_ns,
        })
    }
}

impl BurnRate {
    /// Whole days `cycles` last at this rate; `None` if nothing burns.
    pub fn days_left(&self, cycles: u128) -> Option<u128> {
        cycles.checked_div(self.cycles_per_day)
    }
}

/// What the `/metrics` page shows of the canister's cycles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CyclesReport {
    /// The balance (`ic0.canister_cycle_balance128`).
    pub balance: u128,
    /// The balance above the freezing threshold
    /// (`ic0.canister_liquid_cycle_balance128`): what the canister can
    /// still spend before it freezes.
    pub liquid: u128,
    /// The burn rate, once two samples span a stretch where the balance fell.
    pub burn: Option<BurnRate>,
}

impl CyclesReport {
    /// The balances read from `rt` now and the rate of `samples`.
    pub fn read(rt: &impl SystemApi, samples: &CycleSamples) -> Self {
        CyclesReport {
            balance: rt.cycle_balance(),
            liquid: rt.liquid_cycle_balance(),
            burn: samples.burn_rate(),
        }
    }

    /// Whole days until the canister freezes at the burn rate: the liquid
    /// balance over the rate. `None` without a rate or with nothing burning.
    pub fn days_left(&self) -> Option<u128> {
        self.burn?.days_left(self.liquid)
    }

    /// The report's lines of the `/metrics` page, named `<prefix>_cycle*`.
    /// The rate, its window and the days left are left out until known.
    pub fn encode_metrics(&self, prefix: &str, page: &mut MetricsPage) {
        page.gauge(
            &format!("{prefix}_cycle_balance"),
            "The canister's cycle balance.",
            self.balance,
        );
        page.gauge(
            &format!("{prefix}_cycle_balance_liquid"),
            "Cycles above the freezing threshold: what the canister can spend before it freezes.",
            self.liquid,
        );
        let Some(burn) = self.burn else { return };
        page.gauge(
            &format!("{prefix}_cycles_burned_per_day"),
            "Cycles burned per day, measured over the last samples of the balance.",
            burn.cycles_per_day,
        );
        page.gauge(
            &format!("{prefix}_cycles_burn_window_seconds"),
            "How long the burn rate was measured over.",
            u128::from(burn.window_ns / 1_000_000_000),
        );
        if let Some(days) = self.days_left() {
            page.gauge(
                &format!("{prefix}_cycles_days_left"),
                "Whole days until the canister freezes at the burn rate: alert well above the days a top-up takes.",
                days,
            );
        }
    }
}

thread_local! {
    /// The canister's samples (heap only: an upgrade starts a new window).
    static SAMPLES: RefCell<CycleSamples> = const { RefCell::new(CycleSamples::new()) };
}

/// Records the canister's balance now in its samples; the periodic timers
/// call it.
pub fn observe(rt: &impl SystemApi) {
    let (now, cycles) = (rt.now_ns(), rt.cycle_balance());
    SAMPLES.with(|s| s.borrow_mut().record(now, cycles));
}

/// The canister's cycles now, for its `/metrics` page.
pub fn report(rt: &impl SystemApi) -> CyclesReport {
    SAMPLES.with(|s| CyclesReport::read(rt, &s.borrow()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::Principal;
    use std::cell::Cell;

    const MIN: u64 = 60_000_000_000;

    /// A clock and a balance the test sets.
    #[derive(Default)]
    struct Fake {
        now: Cell<u64>,
        balance: Cell<u128>,
        threshold: u128,
    }

    impl SystemApi for Fake {
        fn now_ns(&self) -> u64 {
            self.now.get()
        }
        fn self_id(&self) -> Principal {
            Principal::anonymous()
        }
        fn cycle_balance(&self) -> u128 {
            self.balance.get()
        }
        fn liquid_cycle_balance(&self) -> u128 {
            self.balance.get().saturating_sub(self.threshold)
        }
    }

    impl Fake {
        fn at(&self, minutes: u64, balance: u128) {
            self.now.set(minutes * MIN);
            self.balance.set(balance);
            observe(self);
        }
    }

    #[test]
    fn the_rate_spans_oldest_to_newest_sample() {
        let rt = Fake {
            threshold: 1_000,
            ..Default::default()
        };
        assert_eq!(report(&rt).burn, None);
        rt.at(0, 10_000_000);
        assert_eq!(report(&rt).burn, None, "one sample is no rate");
        // 600 cycles in 10 minutes: 86,400 a day.
        rt.at(5, 9_999_700);
        rt.at(10, 9_999_400);
        let r = report(&rt);
        assert_eq!(
            r.burn,
            Some(BurnRate {
                cycles_per_day: 86_400,
                window_ns: 10 * MIN
            })
        );
        assert_eq!(r.balance, 9_999_400);
        assert_eq!(r.liquid, 9_998_400);
        assert_eq!(r.days_left(), Some(9_998_400 / 86_400));
    }

    #[test]
    fn readings_sooner_than_the_spacing_are_not_kept() {
        let mut s = CycleSamples::new();
        s.record(0, 1_000);
        s.record(MIN, 900);
        s.record(4 * MIN, 800);
        assert_eq!(s.samples().count(), 1);
        s.record(5 * MIN, 700);
        assert_eq!(s.samples().count(), 2);
        assert_eq!(s.burn_rate().unwrap().cycles_per_day, 300 * 288);
    }

    #[test]
    fn a_top_up_restarts_the_window() {
        let mut s = CycleSamples::new();
        s.record(0, 1_000_000);
        s.record(5 * MIN, 900_000);
        s.record(10 * MIN, 5_000_000);
        assert_eq!(s.burn_rate(), None, "never a negative burn");
        assert_eq!(s.samples().count(), 1);
        s.record(15 * MIN, 4_990_000);
        assert_eq!(s.burn_rate().unwrap().cycles_per_day, 10_000 * 288);
        assert_eq!(s.burn_rate().unwrap().window_ns, 5 * MIN);
        // Even a top-up sooner than the spacing restarts it.
        s.record(16 * MIN, 4_995_000);
        assert_eq!(s.samples().count(), 1);
    }

    #[test]
    fn a_top_up_below_the_newest_sample_restarts_the_window_too() {
        let mut s = CycleSamples::new();
        s.record(0, 1_000_000);
        s.record(5 * MIN, 900_000);
        // A burst burns much between samples; a top-up follows that leaves
        // the balance below the newest sample's.
        s.record(6 * MIN, 100_000);
        s.record(7 * MIN, 600_000);
        assert_eq!(s.burn_rate(), None);
        s.record(12 * MIN, 500_000);
        assert_eq!(s.burn_rate().unwrap().cycles_per_day, 100_000 * 288);
    }

    #[test]
    fn the_ring_keeps_the_newest_samples() {
        let mut s = CycleSamples::new();
        for i in 0..(MAX_SAMPLES as u64 + 10) {
            s.record(i * 5 * MIN, 1_000_000 - u128::from(i));
        }
        assert_eq!(s.samples().count(), MAX_SAMPLES);
        assert_eq!(s.samples().next().unwrap().at_ns, 10 * 5 * MIN);
        assert_eq!(
            s.burn_rate().unwrap().window_ns,
            (MAX_SAMPLES as u64 - 1) * 5 * MIN
        );
    }

    #[test]
    fn nothing_burned_has_no_days_left_and_a_clock_going_back_restarts() {
        let mut s = CycleSamples::new();
        s.record(10 * MIN, 500);
        s.record(20 * MIN, 500);
        let rate = s.burn_rate().unwrap();
        assert_eq!(rate.cycles_per_day, 0);
        assert_eq!(rate.days_left(500), None);
        s.record(5 * MIN, 400);
        assert_eq!(s.samples().count(), 1);
    }

    #[test]
    fn a_rate_that_does_not_fit_is_left_out() {
        let mut s = CycleSamples::new();
        s.record(0, u128::MAX);
        s.record(5 * MIN, 0);
        assert_eq!(s.burn_rate(), None);
        // A huge balance burning slowly still fits.
        let mut s = CycleSamples::new();
        s.record(0, u128::MAX / 2);
        s.record(NANOS_PER_DAY as u64, u128::MAX / 2 - 7);
        assert_eq!(s.burn_rate().unwrap().cycles_per_day, 7);
    }

    #[test]
    fn the_page_shows_the_rate_once_known() {
        let mut page = MetricsPage::new(0);
        let mut report = CyclesReport {
            balance: 3_000,
            liquid: 2_000,
            burn: None,
        };
        report.encode_metrics("x", &mut page);
        let text = page.finish();
        assert!(text.contains("x_cycle_balance 3000 0\n"), "{text}");
        assert!(text.contains("x_cycle_balance_liquid 2000 0\n"), "{text}");
        assert!(!text.contains("x_cycles_burned_per_day"), "{text}");
        report.burn = Some(BurnRate {
            cycles_per_day: 500,
            window_ns: 600_000_000_000,
        });
        let mut page = MetricsPage::new(0);
        report.encode_metrics("x", &mut page);
        let text = page.finish();
        assert!(text.contains("x_cycles_burned_per_day 500 0\n"), "{text}");
        assert!(
            text.contains("x_cycles_burn_window_seconds 600 0\n"),
            "{text}"
        );
        assert!(text.contains("x_cycles_days_left 4 0\n"), "{text}");
    }
}
