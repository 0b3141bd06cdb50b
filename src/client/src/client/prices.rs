//! Prices as people write them, in a token (`0.01`, `0.01icp`,
//! `0.5teth`) or in XDR (`0.02xdr`), and as they read them: in the unit
//! they were set in, with what they are worth in ICP at the market's
//! rates ("0.02 XDR (about 0.005 ICP)"). Integer arithmetic only.
//!
//! Both command-line tools parse and print every price through this
//! module, so a price reads the same to buyers and providers.

use candid::Principal;
use market_api::Tokens;
use market_api::matcher::MatcherError;
use market_api::prices::{Currency, RateSource, RatesView, Valuation, format_xdr, lock_for_xdr};

use super::tokens::{ICP_DECIMALS, format_units, parse_units};

/// Decimals of an XDR amount: its smallest part is one cycle.
pub const XDR_DECIMALS: u32 = 12;

/// A ledger's token as prices name it: its symbol and decimals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUnit {
    /// The token's symbol (`ICP`), matched without regard to case.
    pub symbol: String,
    /// Decimals of one whole token (8 for ICP).
    pub decimals: u32,
}

impl TokenUnit {
    /// ICP: 8 decimals.
    pub fn icp() -> TokenUnit {
        TokenUnit {
            symbol: "ICP".into(),
            decimals: ICP_DECIMALS,
        }
    }

    /// `amount` smallest units as whole tokens (`1.5 ICP`).
    pub fn format(&self, amount: Tokens) -> String {
        format_units(amount, self.decimals, &self.symbol)
    }

    fn is_icp(&self) -> bool {
        self.symbol.eq_ignore_ascii_case("ICP") && self.decimals == ICP_DECIMALS
    }
}

/// A price: an amount in the paying ledger's smallest unit, or in XDR
/// counted in cycles (10^12 cycles = 1 XDR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price {
    /// Smallest units of the token, or cycles.
    pub amount: u128,
    /// Which of the two.
    pub currency: Currency,
}

impl Price {
    /// `units` of the paying token.
    pub fn token(units: Tokens) -> Price {
        Price {
            amount: units,
            currency: Currency::Token,
        }
    }

    /// `cycles` worth of XDR.
    pub fn xdr(cycles: u128) -> Price {
        Price {
            amount: cycles,
            currency: Currency::Xdr,
        }
    }

    /// The price a spec records: `amount` in `currency` (`None`: the token).
    pub fn of_spec(amount: u128, currency: Option<Currency>) -> Price {
        Price {
            amount,
            currency: currency.unwrap_or_default(),
        }
    }

    /// What a spec's `currency` field says of it: `None` for the token (as
    /// every spec priced in its token has said), `Some(Xdr)` for XDR.
    pub fn spec_currency(&self) -> Option<Currency> {
        match self.currency {
            Currency::Token => None,
            Currency::Xdr => Some(Currency::Xdr),
        }
    }

    /// Whether it is in XDR.
    pub fn is_xdr(&self) -> bool {
        self.currency == Currency::Xdr
    }

    /// The price without the rates, in its own unit: `0.02 XDR`, `0.01 ICP`.
    pub fn format(&self, unit: &TokenUnit) -> String {
        match self.currency {
            Currency::Token => unit.format(self.amount),
            Currency::Xdr => format_xdr(self.amount),
        }
    }
}

/// Parses a price written for a ledger whose token is `unit`:
///
/// - `0.02xdr`, `0.02 XDR`: XDR, up to 12 decimals, into cycles
///   (`0.02xdr` is 2*10^10 cycles);
/// - `0.01icp`, `0.5 TETH`: whole tokens of the ledger, named by its symbol
///   (any case), up to its decimals, into its smallest unit;
/// - `1000000cycles`: a whole number of cycles, an XDR price;
/// - a bare number (`0.01`) or `150000e8s`: the token, as before.
///
/// Exact, never rounded: more decimals than the unit has are refused, as
/// are signs, exponents, other units and amounts that overflow.
pub fn parse_price(text: &str, unit: &TokenUnit) -> Result<Price, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    // `e8s` (a count of the smallest unit) ends in a letter too: it is a
    // token amount, read as before.
    if lower.ends_with("e8s") {
        return parse_units(t, unit.decimals).map(Price::token);
    }
    let split = lower
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .len();
    let (number, suffix) = (t[..split].trim_end(), &lower[split..]);
    let bad = |e: String| format!("{text:?}: {e}");
    if suffix.is_empty() || suffix == unit.symbol.to_ascii_lowercase() {
        return amount(number, unit.decimals, &unit.symbol)
            .map(Price::token)
            .map_err(bad);
    }
    match suffix {
        "xdr" => amount(number, XDR_DECIMALS, "XDR")
            .map(Price::xdr)
            .map_err(bad),
        "cycles" => amount(number, 0, "cycles").map(Price::xdr).map_err(bad),
        other => Err(format!(
            "{text:?}: unknown unit {other:?}: write a price in XDR (`0.02xdr`), in the ledger's \
             token (`0.01{}`, or a bare number) or in cycles (`1000000cycles`)",
            unit.symbol.to_ascii_lowercase()
        )),
    }
}

/// A decimal amount of `decimals` decimals in the smallest unit.
fn amount(number: &str, decimals: u32, what: &str) -> Result<u128, String> {
    if number.is_empty() {
        return Err("not an amount: a number, then its unit (`0.02xdr`, `0.01`)".into());
    }
    if !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err("expected a decimal amount such as 0.01".into());
    }
    parse_units(number, decimals).map_err(|e| {
        // parse_units quotes the number; the caller quotes the whole text.
        let reason = e.split_once(": ").map_or(e.as_str(), |(_, r)| r);
        match decimals {
            0 => format!("a whole number of {what}"),
            _ if reason.starts_with("at most") => {
                format!(
                    "at most {decimals} decimals of {what} (the smallest part is 1e-{decimals})"
                )
            }
            _ => reason.to_string(),
        }
    })
}

/// The rates prices are shown and locked at: the paying ledger's token,
/// its valuation and ICP's, as the matcher's `get_rates` said (or none,
/// offline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// The paying ledger's token.
    pub unit: TokenUnit,
    /// Whether the paying token is ICP (the stake ledger's), whose prices
    /// need no ICP equivalent.
    pub token_is_icp: bool,
    /// The paying token's valuation, if known.
    pub token: Option<Valuation>,
    /// ICP's valuation (the stake ledger's), if known.
    pub icp: Option<Valuation>,
    /// What an XDR lock holds above its cost, in parts per million.
    pub buffer_ppm: u32,
    /// The oldest rate a lock may be converted at, in seconds.
    pub max_rate_age_secs: u64,
}

impl Quote {
    /// Prices in `unit` with no rates: each in its own unit only.
    pub fn offline(unit: TokenUnit) -> Quote {
        Quote {
            token_is_icp: unit.is_icp(),
            unit,
            token: None,
            icp: None,
            buffer_ppm: 0,
            max_rate_age_secs: 0,
        }
    }

    /// Prices paid in `ledger`'s token (`unit`) at the matcher's `rates`;
    /// the stake ledger (ICP) is the first of them.
    pub fn at(rates: &RatesView, ledger: Principal, unit: TokenUnit) -> Quote {
        let stake = rates.ledgers.iter().find(|l| l.source.is_none());
        Quote {
            token_is_icp: stake.is_some_and(|s| s.ledger == ledger)
                || (stake.is_none() && unit.is_icp()),
            unit,
            token: rates.valuation(ledger),
            icp: stake.and_then(|s| s.valuation),
            buffer_ppm: rates.rate_buffer_ppm,
            max_rate_age_secs: rates.max_rate_age_secs,
        }
    }

    /// What `price` is worth in e8s of ICP, rounded up; `None` without the
    /// rates it needs.
    pub fn icp_e8s(&self, price: &Price) -> Option<Tokens> {
        match price.currency {
            Currency::Token if self.token_is_icp => Some(price.amount),
            Currency::Token => self.token?.convert_ceil(price.amount, self.icp.as_ref()?),
            Currency::Xdr => self.icp?.units_ceil(price.amount),
        }
    }

    /// `price` in the unit it was set in and, when that is not ICP, what it
    /// is worth in ICP at these rates, rounded up to the e8: "0.02 XDR
    /// (about 0.005 ICP)". Without the rates, the price alone.
    pub fn format(&self, price: &Price) -> String {
        let own = price.format(&self.unit);
        if price.currency == Currency::Token && self.token_is_icp {
            return own;
        }
        match self.icp_e8s(price) {
            Some(e8s) => format!("{own} (about {})", TokenUnit::icp().format(e8s)),
            None => own,
        }
    }

    /// What locking an XDR cost of `cycles` takes in the paying token at
    /// `now_secs`: the cost at the token's rate, rounded up, plus the
    /// buffer (as the matcher locks it). Refused as the matcher would
    /// refuse it: no rate for the ledger, or one too old to lock at.
    pub fn xdr_lock(
        &self,
        ledger: Principal,
        cycles: u128,
        now_secs: u64,
    ) -> Result<Tokens, MatcherError> {
        let Some(v) = self.token else {
            return Err(MatcherError::NoRateSource { ledger });
        };
        if !v.is_fixed() && v.is_stale(now_secs, self.max_rate_age_secs) {
            return Err(MatcherError::StaleRate {
                ledger,
                timestamp_secs: v.timestamp_secs,
                max_age_secs: self.max_rate_age_secs,
            });
        }
        lock_for_xdr(cycles, &v, self.buffer_ppm).ok_or_else(|| MatcherError::InvalidArgument {
            field: "max_price".into(),
            reason: "the lock in the ledger's token overflows".into(),
        })
    }
}

/// A valuation as a rate of one whole token (`decimals` decimals,
/// `symbol`) in XDR, rounded down to the cycle: "1 ICP = 4.2 XDR".
pub fn format_rate(v: &Valuation, decimals: u32, symbol: &str) -> String {
    let whole = 10u128
        .checked_pow(decimals)
        .and_then(|one| v.cycles_per_unit.floor(one));
    match whole {
        Some(cycles) => format!("1 {symbol} = {}", format_xdr(cycles)),
        None => format!(
            "1 {symbol} = {} / {} cycles per unit",
            v.cycles_per_unit.num, v.cycles_per_unit.den
        ),
    }
}

/// Where a ledger's rate comes from, in words.
pub fn describe_source(source: Option<&RateSource>) -> String {
    match source {
        None => "ICP, the stake ledger: the cycles minting canister's ICP/XDR rate".into(),
        Some(RateSource::Cycles) => "a cycles ledger: one unit is one cycle".into(),
        Some(RateSource::ExchangeRate {
            canister,
            symbol,
            decimals,
        }) => format!("the exchange rate canister {canister}: {symbol}/XDR, {decimals} decimals"),
    }
}

/// The symbol and decimals a ledger's rate is shown in.
pub fn unit_of_source(source: Option<&RateSource>) -> TokenUnit {
    match source {
        None => TokenUnit::icp(),
        Some(RateSource::Cycles) => TokenUnit {
            symbol: "cycles".into(),
            decimals: 0,
        },
        Some(RateSource::ExchangeRate {
            symbol, decimals, ..
        }) => TokenUnit {
            symbol: symbol.clone(),
            decimals: u32::from(*decimals),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use market_api::prices::{CYCLES_PER_XDR, LedgerRate, Ratio};

    fn xdr_cycles(xdr: u128) -> u128 {
        xdr * CYCLES_PER_XDR
    }

    fn icp() -> TokenUnit {
        TokenUnit::icp()
    }

    fn icp_at(permyriad: u64, at: u64) -> Valuation {
        Valuation::icp(permyriad, at).unwrap()
    }

    #[test]
    fn xdr_prices_parse_into_exact_cycles() {
        let two_hundredths = Price::xdr(20_000_000_000);
        assert_eq!(parse_price("0.02xdr", &icp()), Ok(two_hundredths));
        assert_eq!(parse_price("0.02 XDR", &icp()), Ok(two_hundredths));
        assert_eq!(parse_price(" 0.02Xdr ", &icp()), Ok(two_hundredths));
        assert_eq!(parse_price("3xdr", &icp()), Ok(Price::xdr(xdr_cycles(3))));
        assert_eq!(
            parse_price(".5xdr", &icp()),
            Ok(Price::xdr(xdr_cycles(1) / 2))
        );
        assert_eq!(
            parse_price("0.000000000001xdr", &icp()),
            Ok(Price::xdr(1)),
            "one cycle, the smallest XDR price"
        );
        assert_eq!(
            parse_price("1000000cycles", &icp()),
            Ok(Price::xdr(1_000_000))
        );
        assert_eq!(Price::xdr(1).spec_currency(), Some(Currency::Xdr));
    }

    #[test]
    fn token_prices_parse_as_before_and_by_symbol() {
        for (text, e8s) in [
            ("0.01", 1_000_000),
            ("0.01icp", 1_000_000),
            ("0.01 ICP", 1_000_000),
            ("1.5 ICP", 150_000_000),
            ("150000e8s", 150_000),
            ("0.00000001", 1),
        ] {
            assert_eq!(parse_price(text, &icp()), Ok(Price::token(e8s)), "{text}");
        }
        let teth = TokenUnit {
            symbol: "TETH".into(),
            decimals: 18,
        };
        assert_eq!(
            parse_price("0.5teth", &teth),
            Ok(Price::token(500_000_000_000_000_000))
        );
        assert_eq!(
            parse_price("0.5", &teth),
            Ok(Price::token(500_000_000_000_000_000))
        );
        assert_eq!(
            Price::token(1).spec_currency(),
            None,
            "as specs said before"
        );
        assert!(
            parse_price("0.5icp", &teth)
                .unwrap_err()
                .contains("unknown unit \"icp\"")
        );
    }

    #[test]
    fn bad_prices_are_refused_with_the_fix() {
        for (text, says) in [
            (
                "0.0000000000001xdr",
                "at most 12 decimals of XDR (the smallest part is 1e-12)",
            ),
            ("1e3", "expected a decimal amount such as 0.01"),
            ("1e3xdr", "expected a decimal amount such as 0.01"),
            ("-1", "expected a decimal amount such as 0.01"),
            ("-1xdr", "expected a decimal amount such as 0.01"),
            ("xdr", "not an amount: a number, then its unit"),
            ("", "not an amount"),
            ("0.000000001icp", "at most 8 decimals of ICP"),
            ("1.5cycles", "a whole number of cycles"),
            ("2 usd", "unknown unit \"usd\""),
            ("1x2xdr", "expected a decimal amount"),
            (
                "340282366920938463463374607431768211456xdr",
                "amount too large",
            ),
        ] {
            let e = parse_price(text, &icp()).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
            assert!(e.starts_with(&format!("{text:?}")), "{text}: {e}");
        }
    }

    fn rates(icp: Option<Valuation>, other: Option<(Principal, Valuation)>) -> RatesView {
        let mut ledgers = vec![LedgerRate {
            ledger: Principal::management_canister(),
            source: None,
            valuation: icp,
            last_error: None,
        }];
        if let Some((ledger, v)) = other {
            ledgers.push(LedgerRate {
                ledger,
                source: Some(RateSource::Cycles),
                valuation: Some(v),
                last_error: None,
            });
        }
        RatesView {
            ledgers,
            max_rate_age_secs: 1_800,
            rate_buffer_ppm: 100_000,
        }
    }

    #[test]
    fn prices_read_in_their_unit_with_the_icp_they_are_worth() {
        let stake = Principal::management_canister();
        let q = Quote::at(&rates(Some(icp_at(40_000, 1_000)), None), stake, icp());
        assert!(q.token_is_icp);
        // 0.02 XDR at 4 XDR per ICP is 0.005 ICP.
        assert_eq!(
            q.format(&Price::xdr(20_000_000_000)),
            "0.02 XDR (about 0.005 ICP)"
        );
        assert_eq!(q.format(&Price::token(1_000_000)), "0.01 ICP");
        // 1 XDR at 3 XDR per ICP: 33,333,333.3 e8s, rounded up.
        let q3 = Quote::at(&rates(Some(icp_at(30_000, 1_000)), None), stake, icp());
        assert_eq!(q3.icp_e8s(&Price::xdr(xdr_cycles(1))), Some(33_333_334));
        assert_eq!(
            q3.format(&Price::xdr(xdr_cycles(1))),
            "1 XDR (about 0.33333334 ICP)"
        );
        // Offline, or before the first rate: the price alone.
        let off = Quote::offline(icp());
        assert_eq!(off.format(&Price::xdr(20_000_000_000)), "0.02 XDR");
        let unread = Quote::at(&rates(None, None), stake, icp());
        assert_eq!(unread.format(&Price::xdr(20_000_000_000)), "0.02 XDR");

        // A token of another ledger: its own unit, and ICP through both rates.
        let cycles_ledger = Principal::anonymous();
        let tc = TokenUnit {
            symbol: "TCYCLES".into(),
            decimals: 12,
        };
        let q = Quote::at(
            &rates(
                Some(icp_at(40_000, 1_000)),
                Some((cycles_ledger, Valuation::cycles())),
            ),
            cycles_ledger,
            tc,
        );
        assert!(!q.token_is_icp);
        assert_eq!(
            q.format(&Price::token(xdr_cycles(2))),
            "2 TCYCLES (about 0.5 ICP)"
        );
    }

    #[test]
    fn an_xdr_lock_is_the_cost_at_the_rate_plus_the_buffer_and_refused_without_one() {
        let stake = Principal::management_canister();
        let q = Quote::at(&rates(Some(icp_at(40_000, 1_000)), None), stake, icp());
        // 0.02 XDR is 500,000 e8s; ten per cent more.
        assert_eq!(q.xdr_lock(stake, 20_000_000_000, 1_000), Ok(550_000));
        assert_eq!(q.xdr_lock(stake, 20_000_000_000, 2_800), Ok(550_000));
        assert_eq!(
            q.xdr_lock(stake, 20_000_000_000, 2_801),
            Err(MatcherError::StaleRate {
                ledger: stake,
                timestamp_secs: 1_000,
                max_age_secs: 1_800
            })
        );
        let unread = Quote::at(&rates(None, None), stake, icp());
        assert_eq!(
            unread.xdr_lock(stake, 1, 0),
            Err(MatcherError::NoRateSource { ledger: stake })
        );
        let huge = Quote {
            token: Some(Valuation {
                cycles_per_unit: Ratio::new(1, u128::MAX).unwrap(),
                timestamp_secs: 1_000,
            }),
            ..q
        };
        assert!(matches!(
            huge.xdr_lock(stake, u128::MAX, 1_000),
            Err(MatcherError::InvalidArgument { .. })
        ));
    }

    #[test]
    fn rates_read_per_whole_token() {
        assert_eq!(format_rate(&icp_at(42_000, 0), 8, "ICP"), "1 ICP = 4.2 XDR");
        assert_eq!(
            format_rate(&Valuation::cycles(), 12, "TCYCLES"),
            "1 TCYCLES = 1 XDR"
        );
        assert_eq!(
            describe_source(None).split(':').next(),
            Some("ICP, the stake ledger")
        );
        assert_eq!(unit_of_source(Some(&RateSource::Cycles)).decimals, 0);
    }
}
