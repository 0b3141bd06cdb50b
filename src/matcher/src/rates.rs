//! What each ledger's token is worth: the rates the matcher last read, and
//! the rules that price a bid with them (see `market_api::prices`).
//!
//! The rates are read by outbox steps (`Effect::ReadRate`, made by the
//! performer like every other call) on a timer and on a controller's
//! `refresh_rates`, and kept in stable memory ([`RateCache`]). The market
//! reads them through [`Pricing`], a heap copy of the configuration and of
//! the last valuations that the state refreshes whenever either changes.

use candid::Principal;
use market_api::Tokens;
use market_api::matcher::{MatcherError, MatcherInit};
use market_api::prices::{
    Currency, LedgerRate, PricingConfig, RateSource, RatesView, Ratio, Valuation,
};
use serde::{Deserialize, Serialize};

/// Longest error text kept for a failed read.
pub const MAX_RATE_ERROR_LEN: usize = 256;

/// One ledger's last reading.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RateReading {
    /// The ledger.
    pub ledger: Option<Principal>,
    /// Its latest valuation, if one was read.
    #[serde(default)]
    pub valuation: Option<Valuation>,
    /// Why the last read failed, if it did.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When it was last read (or tried), in nanoseconds.
    #[serde(default)]
    pub read_at_ns: u64,
}

/// The rates read so far, one reading per ledger (at most the stake ledger
/// and `market_api::prices::MAX_RATE_SOURCES` others: a ledger dropped from
/// the configuration is dropped here at the next reading).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RateCache {
    /// The readings.
    #[serde(default)]
    pub readings: Vec<RateReading>,
}

impl RateCache {
    /// The reading of `ledger`, if any.
    pub fn reading(&self, ledger: Principal) -> Option<&RateReading> {
        self.readings.iter().find(|r| r.ledger == Some(ledger))
    }

    /// Records a read of `ledger` at `now_ns`: its valuation, unless the
    /// one kept is newer (a reply that arrives late never replaces a later
    /// rate), or why it failed. Readings of ledgers no longer in `keep`
    /// are dropped.
    pub fn record(
        &mut self,
        now_ns: u64,
        ledger: Principal,
        read: Result<Valuation, String>,
        keep: &[Principal],
    ) {
        self.retain(keep);
        if !keep.contains(&ledger) {
            return;
        }
        let i = match self.readings.iter().position(|r| r.ledger == Some(ledger)) {
            Some(i) => i,
            None => {
                self.readings.push(RateReading {
                    ledger: Some(ledger),
                    ..RateReading::default()
                });
                self.readings.len() - 1
            }
        };
        let r = &mut self.readings[i];
        r.read_at_ns = now_ns;
        match read {
            Ok(v) => {
                if r.valuation
                    .is_none_or(|old| old.timestamp_secs <= v.timestamp_secs)
                {
                    r.valuation = Some(v);
                }
                r.last_error = None;
            }
            Err(mut e) => {
                if e.len() > MAX_RATE_ERROR_LEN {
                    let mut end = MAX_RATE_ERROR_LEN;
                    while !e.is_char_boundary(end) {
                        end -= 1;
                    }
                    e.truncate(end);
                }
                r.last_error = Some(e);
            }
        }
    }

    /// Drops the readings of ledgers not in `keep` (dropped from the
    /// configuration).
    pub fn retain(&mut self, keep: &[Principal]) {
        self.readings
            .retain(|r| r.ledger.is_some_and(|l| keep.contains(&l)));
    }

    /// Problems with the readings, for the check after an upgrade: a
    /// reading of a ledger the configuration does not value, two readings
    /// of one ledger, or a valuation of zero.
    pub fn problems(&self, pricing: &Pricing) -> Vec<String> {
        let ledgers = pricing.ledgers();
        let mut out = vec![];
        for (i, r) in self.readings.iter().enumerate() {
            let Some(l) = r.ledger else {
                out.push("a rate reading names no ledger".into());
                continue;
            };
            if !ledgers.contains(&l) {
                out.push(format!("a rate reading of {l}, which has no rate source"));
            }
            if self.readings[..i].iter().any(|o| o.ledger == Some(l)) {
                out.push(format!("two rate readings of {l}"));
            }
            if r.valuation
                .is_some_and(|v| v.cycles_per_unit.num == 0 || v.cycles_per_unit.den == 0)
            {
                out.push(format!("the valuation of {l} is not positive"));
            }
        }
        out
    }
}

/// How the market values tokens: the configuration and the latest
/// valuations. A market with no stake ledger set (a bare market, as native
/// tests of the book build) takes every ledger as the stake ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pricing {
    /// The stake ledger (ICP).
    pub stake_ledger: Option<Principal>,
    /// The pricing configuration (empty: none).
    pub config: PricingConfig,
    /// The latest valuation of each ledger read so far.
    pub valuations: Vec<(Principal, Valuation)>,
}

/// What pricing a new bid found: the rates its lock and its bonds convert
/// at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BidRates {
    /// Whether the price is in XDR.
    pub xdr: bool,
    /// The valuation of the bid's ledger, when rates were needed.
    pub ledger: Option<Valuation>,
    /// The stake ledger's valuation, when rates were needed.
    pub stake: Option<Valuation>,
    /// The rate from the bid's token to the stake ledger's smallest unit,
    /// when they differ.
    pub stake_rate: Option<Ratio>,
}

impl BidRates {
    /// The valuation an XDR price converts at (`None`: priced in tokens).
    pub fn xdr_valuation(&self) -> Option<Valuation> {
        self.ledger.filter(|_| self.xdr)
    }

    /// `e8s` of the stake ledger in the bid's token, rounded up (the same
    /// amount when the bid pays in the stake ledger's token).
    pub fn from_stake_ceil(&self, e8s: Tokens) -> Option<Tokens> {
        match (self.stake_rate, self.stake, self.ledger) {
            (Some(_), Some(stake), Some(ledger)) => stake.convert_ceil(e8s, &ledger),
            _ => Some(e8s),
        }
    }
}

impl Pricing {
    /// The pricing of a configuration with the valuations of `cache`.
    pub fn of(config: &MatcherInit, cache: &RateCache) -> Pricing {
        let mut p = Pricing {
            stake_ledger: Some(config.stake_ledger),
            config: config.pricing.clone().unwrap_or_default(),
            valuations: vec![],
        };
        p.valuations = cache
            .readings
            .iter()
            .filter_map(|r| Some((r.ledger?, r.valuation?)))
            .filter(|(l, _)| p.ledgers().contains(l))
            .collect();
        p
    }

    /// Whether `ledger` is the stake ledger.
    pub fn is_stake(&self, ledger: Principal) -> bool {
        self.stake_ledger.is_none_or(|s| s == ledger)
    }

    /// The ledgers whose rate is read: the stake ledger if a cycles minting
    /// canister is configured, then each configured ledger.
    pub fn ledgers(&self) -> Vec<Principal> {
        let stake = self
            .stake_ledger
            .filter(|_| self.config.cmc.is_some())
            .into_iter();
        stake
            .chain(self.config.ledgers.iter().map(|l| l.ledger))
            .collect()
    }

    /// The latest valuation of `ledger`'s token, however old (a cycles
    /// ledger's is fixed, read or not).
    pub fn valuation(&self, ledger: Principal) -> Option<Valuation> {
        if self.stake_ledger != Some(ledger)
            && matches!(self.config.source(ledger), Some(RateSource::Cycles))
        {
            return Some(Valuation::cycles());
        }
        self.valuations
            .iter()
            .find(|(l, _)| *l == ledger)
            .map(|(_, v)| *v)
    }

    /// Sets the latest valuation of `ledger`.
    pub fn set_valuation(&mut self, ledger: Principal, v: Valuation) {
        match self.valuations.iter_mut().find(|(l, _)| *l == ledger) {
            Some((_, old)) => *old = v,
            None => self.valuations.push((ledger, v)),
        }
    }

    /// The rate from `ledger`'s token to the stake ledger's smallest unit
    /// at the latest valuations (`None` for the stake ledger itself, or if
    /// either was never read).
    pub fn stake_rate(&self, ledger: Principal) -> Option<Ratio> {
        if self.is_stake(ledger) {
            return None;
        }
        let stake = self.valuation(self.stake_ledger?)?;
        self.valuation(ledger)?
            .cycles_per_unit
            .then(&stake.cycles_per_unit.inverse())
    }

    fn fresh(&self, now_secs: u64, ledger: Principal) -> Result<Valuation, MatcherError> {
        let max_age_secs = self.config.max_rate_age_secs();
        match self.valuation(ledger) {
            Some(v) if !v.is_stale(now_secs, max_age_secs) => Ok(v),
            v => Err(MatcherError::StaleRate {
                ledger,
                timestamp_secs: v.map_or(0, |v| v.timestamp_secs),
                max_age_secs,
            }),
        }
    }

    /// Whether an offer on `ledger` priced in `currency` may be posted: a
    /// ledger besides the stake ledger needs a rate source, an XDR price
    /// the cycles minting canister.
    pub fn check_source(
        &self,
        ledger: Principal,
        currency: Option<Currency>,
    ) -> Result<(), MatcherError> {
        let sourced = self.is_stake(ledger) || self.config.source(ledger).is_some();
        let xdr_ok = currency != Some(Currency::Xdr) || self.config.cmc.is_some();
        if !sourced || !xdr_ok {
            return Err(MatcherError::NoRateSource { ledger });
        }
        Ok(())
    }

    /// The rates a new bid on `ledger` priced in `currency` is locked and
    /// bonded at, at `now_secs`: none for the stake ledger's token priced
    /// in its own units; else both its ledger's and the stake ledger's
    /// valuations, each younger than the configured age.
    pub fn bid_rates(
        &self,
        now_secs: u64,
        ledger: Principal,
        currency: Option<Currency>,
    ) -> Result<BidRates, MatcherError> {
        self.rates_with(ledger, currency, |l| self.fresh(now_secs, l))
    }

    /// Like [`Pricing::bid_rates`] at the latest valuations however old
    /// (what a proposal's summary quotes; the execution checks their age).
    pub fn latest_rates(
        &self,
        ledger: Principal,
        currency: Option<Currency>,
    ) -> Result<BidRates, MatcherError> {
        self.rates_with(ledger, currency, |l| {
            self.valuation(l).ok_or(MatcherError::StaleRate {
                ledger: l,
                timestamp_secs: 0,
                max_age_secs: self.config.max_rate_age_secs(),
            })
        })
    }

    fn rates_with(
        &self,
        ledger: Principal,
        currency: Option<Currency>,
        valuation: impl Fn(Principal) -> Result<Valuation, MatcherError>,
    ) -> Result<BidRates, MatcherError> {
        self.check_source(ledger, currency)?;
        let xdr = currency == Some(Currency::Xdr);
        if self.is_stake(ledger) && !xdr {
            return Ok(BidRates::default());
        }
        let stake_ledger = self
            .stake_ledger
            .ok_or(MatcherError::NoRateSource { ledger })?;
        let ledger_v = valuation(ledger)?;
        let stake_v = valuation(stake_ledger)?;
        let stake_rate = if ledger == stake_ledger {
            None
        } else {
            Some(
                ledger_v
                    .cycles_per_unit
                    .then(&stake_v.cycles_per_unit.inverse())
                    .ok_or(MatcherError::NoRateSource { ledger })?,
            )
        };
        Ok(BidRates {
            xdr,
            ledger: Some(ledger_v),
            stake: Some(stake_v),
            stake_rate,
        })
    }

    /// The rates as `get_rates` shows them, given the readings.
    pub fn view(&self, cache: &RateCache) -> RatesView {
        let reading = |l: Principal| cache.reading(l).cloned().unwrap_or_default();
        let mut ledgers = vec![];
        if let (Some(stake), Some(_)) = (self.stake_ledger, self.config.cmc) {
            let r = reading(stake);
            ledgers.push(LedgerRate {
                ledger: stake,
                source: None,
                valuation: r.valuation,
                last_error: r.last_error,
            });
        }
        for l in &self.config.ledgers {
            let r = reading(l.ledger);
            ledgers.push(LedgerRate {
                ledger: l.ledger,
                source: Some(l.source.clone()),
                valuation: r.valuation,
                last_error: r.last_error,
            });
        }
        RatesView {
            ledgers,
            max_rate_age_secs: self.config.max_rate_age_secs(),
            rate_buffer_ppm: self.config.rate_buffer_ppm(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(permyriad: u128, ts: u64) -> Valuation {
        Valuation {
            cycles_per_unit: Ratio::new(permyriad, 1).unwrap(),
            timestamp_secs: ts,
        }
    }

    #[test]
    fn an_older_reading_never_replaces_a_newer_one() {
        let l = Principal::from_slice(&[1]);
        let mut c = RateCache::default();
        c.record(5, l, Ok(at(40_000, 100)), &[l]);
        c.record(6, l, Ok(at(30_000, 90)), &[l]);
        let r = c.reading(l).unwrap();
        assert_eq!(r.valuation, Some(at(40_000, 100)));
        assert_eq!(r.read_at_ns, 6);
        c.record(7, l, Err("x".repeat(1_000)), &[l]);
        let r = c.reading(l).unwrap();
        assert_eq!(
            r.valuation,
            Some(at(40_000, 100)),
            "an error keeps the rate"
        );
        assert_eq!(r.last_error.as_ref().unwrap().len(), MAX_RATE_ERROR_LEN);
        c.record(8, l, Ok(at(50_000, 100)), &[l]);
        assert_eq!(c.reading(l).unwrap().valuation, Some(at(50_000, 100)));
        assert_eq!(c.reading(l).unwrap().last_error, None);
        // A ledger dropped from the configuration is dropped.
        let other = Principal::from_slice(&[2]);
        c.record(9, other, Ok(at(1, 1)), &[other]);
        assert!(c.reading(l).is_none());
        assert_eq!(c.readings.len(), 1);
    }
}
