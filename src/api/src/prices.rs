//! Prices in XDR, and the rates that value every token in cycles.
//!
//! A price is counted in its ledger's smallest unit ([`Currency::Token`])
//! or in XDR ([`Currency::Xdr`]), counted in cycles: one trillion cycles is
//! one XDR, the unit cycles are pegged to, so an XDR price is stable
//! whatever the paying token does.
//!
//! The matcher values each ledger's token in cycles per smallest unit (a
//! [`Valuation`]): the ICP ledger (the stake ledger) by the cycles minting
//! canister's ICP/XDR rate, a cycles ledger at one cycle per unit, any other
//! token by a configured [`RateSource`]. Through these it
//!
//! - converts an XDR price into the paying token: the lock at the rate when
//!   the funds are locked, plus a buffer ([`PricingConfig::rate_buffer_ppm`]),
//!   and the agreed price at the rate when the job is assigned (capped so the
//!   lock covers it); both rates are recorded in the job and its events;
//! - values a job in ICP, whatever it pays in, for the stake its provider
//!   bonds and is slashed.
//!
//! All arithmetic is on integers: a [`Ratio`] converts amounts rounding
//! down or up, and says so when a result would overflow.

use candid::{CandidType, Deserialize, Principal};
use serde::Serialize;

use crate::Tokens;

/// Cycles in one XDR.
pub const CYCLES_PER_XDR: u128 = 1_000_000_000_000;

/// What a price is counted in.
#[derive(
    CandidType,
    Deserialize,
    Serialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
)]
pub enum Currency {
    /// The smallest unit of the ledger the job pays with (e8s for ICP).
    #[default]
    Token,
    /// XDR, counted in cycles (10^12 cycles = 1 XDR); paid in the job's
    /// token at the rate of the day.
    Xdr,
}

/// An exact positive rate `num / den`, kept in lowest terms.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ratio {
    /// Numerator (more than zero).
    pub num: u128,
    /// Denominator (more than zero).
    pub den: u128,
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Ratio {
    /// One to one.
    pub const ONE: Ratio = Ratio { num: 1, den: 1 };

    /// `num / den` in lowest terms; `None` if either is zero.
    pub fn new(num: u128, den: u128) -> Option<Ratio> {
        if num == 0 || den == 0 {
            return None;
        }
        let g = gcd(num, den);
        Some(Ratio {
            num: num / g,
            den: den / g,
        })
    }

    /// `amount * num / den`, rounded down; `None` if it overflows.
    pub fn floor(&self, amount: u128) -> Option<u128> {
        if self.den == 0 {
            return None;
        }
        // amount = q * den + r with r < den: amount * num / den is
        // q * num + r * num / den, whose parts overflow later than the
        // plain product.
        let (q, r) = (amount / self.den, amount % self.den);
        q.checked_mul(self.num)?
            .checked_add(r.checked_mul(self.num)? / self.den)
    }

    /// `amount * num / den`, rounded up; `None` if it overflows.
    pub fn ceil(&self, amount: u128) -> Option<u128> {
        if self.den == 0 {
            return None;
        }
        let (q, r) = (amount / self.den, amount % self.den);
        q.checked_mul(self.num)?
            .checked_add(r.checked_mul(self.num)?.div_ceil(self.den))
    }

    /// The rate `den / num`.
    pub fn inverse(&self) -> Ratio {
        Ratio {
            num: self.den,
            den: self.num,
        }
    }

    /// This rate followed by `next` (their product); `None` if it overflows.
    pub fn then(&self, next: &Ratio) -> Option<Ratio> {
        let a = gcd(self.num, next.den).max(1);
        let b = gcd(next.num, self.den).max(1);
        Ratio::new(
            (self.num / a).checked_mul(next.num / b)?,
            (self.den / b).checked_mul(next.den / a)?,
        )
    }
}

/// What one smallest unit of a token is worth in cycles, as a rate source
/// last said.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Valuation {
    /// Cycles per smallest unit of the token.
    pub cycles_per_unit: Ratio,
    /// When the source measured it, in seconds since the Unix epoch.
    pub timestamp_secs: u64,
}

impl Valuation {
    /// The ICP ledger's valuation from the cycles minting canister's rate:
    /// one e8 is worth `xdr_permyriad_per_icp` cycles (one ICP is
    /// `xdr_permyriad_per_icp / 10^4` XDR, 10^8 e8s, 10^12 cycles per XDR).
    pub fn from_cmc(rate: &cmc::IcpXdrConversionRate) -> Option<Valuation> {
        Some(Valuation {
            cycles_per_unit: Ratio::new(u128::from(rate.xdr_permyriad_per_icp), 1)?,
            timestamp_secs: rate.timestamp_seconds,
        })
    }

    /// The ICP ledger's valuation at `xdr_permyriad_per_icp`, measured at
    /// `timestamp_secs` ([`Valuation::from_cmc`] of that rate; `None` for
    /// a zero rate).
    pub fn icp(xdr_permyriad_per_icp: u64, timestamp_secs: u64) -> Option<Valuation> {
        Valuation::from_cmc(&cmc::IcpXdrConversionRate {
            timestamp_seconds: timestamp_secs,
            xdr_permyriad_per_icp,
        })
    }

    /// A token's valuation from the exchange rate canister's rate of the
    /// token in XDR (`rate / 10^rate_decimals` XDR per whole token) for a
    /// token with `token_decimals` decimals.
    pub fn from_xrc(rate: &xrc::ExchangeRate, token_decimals: u8) -> Option<Valuation> {
        let scale =
            10u128.checked_pow(rate.metadata.decimals.checked_add(token_decimals.into())?)?;
        Some(Valuation {
            cycles_per_unit: Ratio::new(u128::from(rate.rate), scale)?
                .then(&Ratio::new(CYCLES_PER_XDR, 1)?)?,
            timestamp_secs: rate.timestamp,
        })
    }

    /// A cycles ledger's valuation: one unit is one cycle, at any time
    /// (its timestamp is the end of time: it never goes stale).
    pub fn cycles() -> Valuation {
        Valuation {
            cycles_per_unit: Ratio::ONE,
            timestamp_secs: u64::MAX,
        }
    }

    /// Whether it is a fixed rate (a cycles ledger's), which never moves.
    pub fn is_fixed(&self) -> bool {
        self.timestamp_secs == u64::MAX
    }

    /// Whether it is older than `max_age_secs` at `now_secs`.
    pub fn is_stale(&self, now_secs: u64, max_age_secs: u64) -> bool {
        now_secs.saturating_sub(self.timestamp_secs) > max_age_secs
    }

    /// `cycles` in the token's smallest unit, rounded down.
    pub fn units_floor(&self, cycles: u128) -> Option<Tokens> {
        self.cycles_per_unit.inverse().floor(cycles)
    }

    /// `cycles` in the token's smallest unit, rounded up.
    pub fn units_ceil(&self, cycles: u128) -> Option<Tokens> {
        self.cycles_per_unit.inverse().ceil(cycles)
    }

    /// `units` of the token in cycles, rounded down.
    pub fn cycles_floor(&self, units: Tokens) -> Option<u128> {
        self.cycles_per_unit.floor(units)
    }

    /// `units` of this token in the smallest unit of the token valued by
    /// `other` (ICP's e8s, say), rounded up: what the stake answering for a
    /// job worth `units` is measured in.
    pub fn convert_ceil(&self, units: Tokens, other: &Valuation) -> Option<Tokens> {
        self.cycles_per_unit
            .then(&other.cycles_per_unit.inverse())?
            .ceil(units)
    }

    /// Like [`Valuation::convert_ceil`], rounded down.
    pub fn convert_floor(&self, units: Tokens, other: &Valuation) -> Option<Tokens> {
        self.cycles_per_unit
            .then(&other.cycles_per_unit.inverse())?
            .floor(units)
    }
}

/// What a lock for an XDR cost of `cycles` holds in a token valued at `v`:
/// the cost at that rate, rounded up, plus `buffer_ppm` parts per million
/// of it (rounded up) for the rate to move before the job is matched. A
/// token at a fixed rate (a cycles ledger) needs no buffer.
pub fn lock_for_xdr(cycles: u128, v: &Valuation, buffer_ppm: u32) -> Option<Tokens> {
    let base = v.units_ceil(cycles)?;
    if v.is_fixed() || buffer_ppm == 0 {
        return Some(base);
    }
    base.checked_add(Ratio::new(u128::from(buffer_ppm), 1_000_000)?.ceil(base)?)
}

/// The highest price per billion fuel at which `fuel` costs at most
/// `amount` (as [`crate::matcher::fuel_cost_ceil`] counts it); `None` if
/// `fuel` is zero or it overflows.
pub fn max_price_within(fuel: u64, amount: Tokens) -> Option<Tokens> {
    if fuel == 0 {
        return None;
    }
    Ratio::new(1_000_000_000, u128::from(fuel))?.floor(amount)
}

/// Where the matcher reads the value of a ledger's token.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum RateSource {
    /// A cycles ledger: one unit is one cycle.
    Cycles,
    /// The exchange rate canister's rate of `symbol` (a cryptocurrency) in
    /// XDR (its computed "CXDR"), for a token with `decimals` decimals;
    /// each request carries [`xrc::REQUEST_CYCLES`].
    ExchangeRate {
        canister: Principal,
        symbol: String,
        decimals: u8,
    },
}

/// A ledger the matcher values, and how.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct LedgerRateSource {
    /// The ledger (whitelisted by the escrow).
    pub ledger: Principal,
    /// Where its rate comes from.
    pub source: RateSource,
}

/// Most ledgers with a rate source besides the stake ledger.
pub const MAX_RATE_SOURCES: usize = 16;
/// [`PricingConfig::max_rate_age_secs`] when unset: half an hour, several
/// of the cycles minting canister's updates.
pub const DEFAULT_MAX_RATE_AGE_SECS: u64 = 1_800;
/// [`PricingConfig::rate_buffer_ppm`] when unset: ten per cent.
pub const DEFAULT_RATE_BUFFER_PPM: u32 = 100_000;
/// [`PricingConfig::refresh_secs`] when unset: every five minutes.
pub const DEFAULT_RATE_REFRESH_SECS: u64 = 300;
/// The most a buffer may be: the lock at most doubles.
pub const MAX_RATE_BUFFER_PPM: u32 = 1_000_000;

/// How the matcher values tokens: part of its init argument. Without it
/// (or without `cmc`) only jobs priced and paid in the stake ledger's own
/// token are taken.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PricingConfig {
    /// The cycles minting canister, for the ICP/XDR rate
    /// (`get_icp_xdr_conversion_rate`).
    pub cmc: Option<Principal>,
    /// The ledgers besides the stake ledger that jobs may pay with, each
    /// with its rate source (at most [`MAX_RATE_SOURCES`]). A ledger the
    /// escrow whitelists but that is missing here is refused for jobs,
    /// offers and reservations: their bonds could not be valued.
    pub ledgers: Vec<LedgerRateSource>,
    /// The oldest rate a lock may be converted at, in seconds (default
    /// [`DEFAULT_MAX_RATE_AGE_SECS`]).
    pub max_rate_age_secs: Option<u64>,
    /// What an XDR-priced lock holds above its cost at the lock's rate, in
    /// parts per million (default [`DEFAULT_RATE_BUFFER_PPM`], at most
    /// [`MAX_RATE_BUFFER_PPM`]); refunded at settle.
    pub rate_buffer_ppm: Option<u32>,
    /// How often the rates are read, in seconds (default
    /// [`DEFAULT_RATE_REFRESH_SECS`], 60 to a day).
    pub refresh_secs: Option<u64>,
}

impl PricingConfig {
    /// The oldest rate a lock may be converted at.
    pub fn max_rate_age_secs(&self) -> u64 {
        self.max_rate_age_secs.unwrap_or(DEFAULT_MAX_RATE_AGE_SECS)
    }

    /// The lock's buffer, in parts per million.
    pub fn rate_buffer_ppm(&self) -> u32 {
        self.rate_buffer_ppm.unwrap_or(DEFAULT_RATE_BUFFER_PPM)
    }

    /// How often the rates are read.
    pub fn refresh_secs(&self) -> u64 {
        self.refresh_secs.unwrap_or(DEFAULT_RATE_REFRESH_SECS)
    }

    /// The rate source of `ledger`, if it has one.
    pub fn source(&self, ledger: Principal) -> Option<&RateSource> {
        self.ledgers
            .iter()
            .find(|l| l.ledger == ledger)
            .map(|l| &l.source)
    }

    /// Checks the configuration's bounds.
    pub fn check(&self, stake_ledger: Principal) -> Result<(), String> {
        if self.ledgers.len() > MAX_RATE_SOURCES {
            return Err(format!(
                "at most {MAX_RATE_SOURCES} ledgers have a rate source"
            ));
        }
        for (i, l) in self.ledgers.iter().enumerate() {
            if l.ledger == stake_ledger {
                return Err("the stake ledger is valued by the cycles minting canister".into());
            }
            if self.ledgers[..i].iter().any(|o| o.ledger == l.ledger) {
                return Err(format!("ledger {} has two rate sources", l.ledger));
            }
            if let RateSource::ExchangeRate {
                symbol, decimals, ..
            } = &l.source
                && (symbol.is_empty() || symbol.len() > 16 || *decimals > 36)
            {
                return Err(format!("ledger {}: bad symbol or decimals", l.ledger));
            }
        }
        if self.cmc.is_none() && !self.ledgers.is_empty() {
            return Err("valuing other ledgers needs the cycles minting canister".into());
        }
        if self
            .rate_buffer_ppm
            .is_some_and(|b| b > MAX_RATE_BUFFER_PPM)
        {
            return Err(format!("rate_buffer_ppm is at most {MAX_RATE_BUFFER_PPM}"));
        }
        if self
            .refresh_secs
            .is_some_and(|s| !(60..=86_400).contains(&s))
        {
            return Err("refresh_secs is from 60 to 86400".into());
        }
        if self.max_rate_age_secs.is_some_and(|s| s < 60) {
            return Err("max_rate_age_secs is at least 60".into());
        }
        Ok(())
    }
}

/// The rate a ledger's token was last read at, as `get_rates` shows it.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct LedgerRate {
    /// The ledger.
    pub ledger: Principal,
    /// Where its rate comes from (`None`: the stake ledger, valued by the
    /// cycles minting canister).
    pub source: Option<RateSource>,
    /// Its last valuation, if one was read.
    pub valuation: Option<Valuation>,
    /// Why the last read failed, if it did.
    pub last_error: Option<String>,
}

/// The matcher's rates: what prices convert at now.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct RatesView {
    /// The stake ledger (ICP), then each ledger with a rate source.
    pub ledgers: Vec<LedgerRate>,
    /// The oldest rate a lock may be converted at, in seconds.
    pub max_rate_age_secs: u64,
    /// What an XDR-priced lock holds above its cost, in parts per million.
    pub rate_buffer_ppm: u32,
}

impl RatesView {
    /// The rates of a market that values its stake ledger `ledger` alone,
    /// at `valuation`, with the default oldest age and buffer.
    pub fn stake_only(ledger: Principal, valuation: Option<Valuation>) -> RatesView {
        RatesView {
            ledgers: vec![LedgerRate {
                ledger,
                source: None,
                valuation,
                last_error: None,
            }],
            max_rate_age_secs: DEFAULT_MAX_RATE_AGE_SECS,
            rate_buffer_ppm: DEFAULT_RATE_BUFFER_PPM,
        }
    }

    /// The valuation of `ledger`'s token, if one was read.
    pub fn valuation(&self, ledger: Principal) -> Option<Valuation> {
        self.ledgers
            .iter()
            .find(|l| l.ledger == ledger)
            .and_then(|l| l.valuation)
    }
}

/// How a job paying in a token was priced in XDR: recorded in the job and
/// its events, so anyone can recompute its charges.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdrTerms {
    /// The highest price the buyer accepts, in cycles (per billion fuel or
    /// per interval).
    pub max_price_cycles: u128,
    /// The rate the lock was converted at.
    pub lock_rate: Valuation,
    /// What the lock holds above its cost at that rate, in parts per million.
    pub buffer_ppm: u32,
}

/// How an XDR price agreed in a match became the price paid in the job's
/// token.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriceConversion {
    /// The offer's price, in cycles.
    pub price_cycles: u128,
    /// The rate it converted at.
    pub rate: Valuation,
    /// Whether the price was cut to what the lock covers (the rate moved
    /// past the buffer against the buyer).
    pub capped: bool,
}

/// The cycles minting canister's interface, as the matcher uses it.
pub mod cmc {
    use candid::{CandidType, Deserialize};
    use serde::Serialize;

    /// The ICP/XDR rate.
    #[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
    pub struct IcpXdrConversionRate {
        /// When the rate was set, in seconds since the Unix epoch.
        pub timestamp_seconds: u64,
        /// XDR per ICP, in ten-thousandths.
        pub xdr_permyriad_per_icp: u64,
    }

    /// The reply of `get_icp_xdr_conversion_rate`.
    #[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
    pub struct IcpXdrConversionRateResponse {
        /// The rate.
        pub data: IcpXdrConversionRate,
        /// The hash tree certifying it.
        #[serde(with = "serde_bytes")]
        pub hash_tree: Vec<u8>,
        /// The certificate of the tree.
        #[serde(with = "serde_bytes")]
        pub certificate: Vec<u8>,
    }

    /// The memo of a top-up transfer: "TPUP", as the 8 little-endian
    /// bytes of the ICP ledger's `u64` memo in an ICRC-1 transfer.
    pub const MEMO_TOP_UP: u64 = 0x5055_5054;

    /// The subaccount of the CMC's account that tops up `canister`: the
    /// principal's length, then its bytes, zero-padded (the IC's
    /// `principal_to_subaccount`).
    pub fn top_up_subaccount(canister: candid::Principal) -> [u8; 32] {
        let bytes = canister.as_slice();
        let mut sub = [0u8; 32];
        sub[0] = bytes.len() as u8;
        sub[1..1 + bytes.len()].copy_from_slice(bytes);
        sub
    }

    /// Argument of `notify_top_up`.
    #[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
    pub struct NotifyTopUpArg {
        /// The ICP ledger block of the transfer to the CMC.
        pub block_index: u64,
        /// The canister topped up.
        pub canister_id: candid::Principal,
    }

    /// Why `notify_top_up` failed.
    #[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
    pub enum NotifyError {
        /// The transfer was refunded.
        Refunded {
            reason: String,
            block_index: Option<u64>,
        },
        /// Another notification of the block is under way: ask again.
        Processing,
        /// The block is too old to be notified.
        TransactionTooOld(u64),
        /// The block is no top-up of the canister.
        InvalidTransaction(String),
        /// Anything else.
        Other {
            error_code: u64,
            error_message: String,
        },
    }

    /// Answer of `notify_top_up`: the cycles deposited, or why not.
    #[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
    pub enum NotifyTopUpResult {
        Ok(candid::Nat),
        Err(NotifyError),
    }
}

/// The exchange rate canister's interface, as the matcher uses it.
pub mod xrc {
    use candid::{CandidType, Deserialize};
    use serde::Serialize;

    /// Cycles sent with each `get_exchange_rate` request; the canister
    /// refunds what the request did not need.
    pub const REQUEST_CYCLES: u128 = 1_000_000_000;
    /// The quote asset the matcher asks for: the exchange rate canister's
    /// computed XDR.
    pub const XDR_SYMBOL: &str = "CXDR";

    /// Whether an asset is a cryptocurrency or a fiat currency.
    #[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
    pub enum AssetClass {
        Cryptocurrency,
        FiatCurrency,
    }

    /// An asset.
    #[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
    pub struct Asset {
        pub symbol: String,
        pub class: AssetClass,
    }

    /// The argument of `get_exchange_rate`.
    #[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
    pub struct GetExchangeRateRequest {
        pub base_asset: Asset,
        pub quote_asset: Asset,
        /// The time to get the rate at (`None`: now), in seconds.
        pub timestamp: Option<u64>,
    }

    /// How a rate was arrived at.
    #[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
    pub struct ExchangeRateMetadata {
        /// `rate` is scaled by 10^decimals.
        pub decimals: u32,
        pub base_asset_num_received_rates: u64,
        pub base_asset_num_queried_sources: u64,
        pub quote_asset_num_received_rates: u64,
        pub quote_asset_num_queried_sources: u64,
        pub standard_deviation: u64,
        pub forex_timestamp: Option<u64>,
    }

    /// A rate: one base asset is worth `rate / 10^decimals` quote assets.
    #[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
    pub struct ExchangeRate {
        pub base_asset: Asset,
        pub quote_asset: Asset,
        /// The time the rate is for, in seconds since the Unix epoch.
        pub timestamp: u64,
        pub rate: u64,
        pub metadata: ExchangeRateMetadata,
    }

    /// Why there is no rate.
    #[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
    pub enum ExchangeRateError {
        AnonymousPrincipalNotAllowed,
        Pending,
        CryptoBaseAssetNotFound,
        CryptoQuoteAssetNotFound,
        StablecoinRateNotFound,
        StablecoinRateTooFewRates,
        StablecoinRateZeroRate,
        ForexInvalidTimestamp,
        ForexBaseAssetNotFound,
        ForexQuoteAssetNotFound,
        ForexAssetsNotFound,
        RateLimited,
        NotEnoughCycles,
        FailedToAcceptCycles,
        InconsistentRatesReceived,
        Other { code: u32, description: String },
    }

    /// The reply of `get_exchange_rate`.
    #[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
    pub enum GetExchangeRateResult {
        Ok(ExchangeRate),
        Err(ExchangeRateError),
    }

    /// The request for `symbol`'s rate in XDR now.
    pub fn xdr_rate_of(symbol: &str) -> GetExchangeRateRequest {
        GetExchangeRateRequest {
            base_asset: Asset {
                symbol: symbol.to_string(),
                class: AssetClass::Cryptocurrency,
            },
            quote_asset: Asset {
                symbol: XDR_SYMBOL.to_string(),
                class: AssetClass::FiatCurrency,
            },
            timestamp: None,
        }
    }
}

/// `cycles` as XDR with up to 12 decimals and no trailing zeros
/// ("0.02 XDR").
pub fn format_xdr(cycles: u128) -> String {
    let whole = cycles / CYCLES_PER_XDR;
    let frac = cycles % CYCLES_PER_XDR;
    if frac == 0 {
        return format!("{whole} XDR");
    }
    let digits = format!("{frac:012}");
    format!("{whole}.{} XDR", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn icp_at(permyriad: u64) -> Valuation {
        Valuation::icp(permyriad, 1_000).unwrap()
    }

    #[test]
    fn an_icp_at_four_xdr_is_four_trillion_cycles() {
        let v = icp_at(40_000);
        assert_eq!(v.cycles_floor(100_000_000), Some(4 * CYCLES_PER_XDR));
        // 0.02 XDR is 0.005 ICP at 4 XDR per ICP.
        assert_eq!(v.units_ceil(CYCLES_PER_XDR / 50), Some(500_000));
        // A rate that doesn't divide evenly rounds each way.
        let v = icp_at(30_000);
        assert_eq!(v.units_floor(CYCLES_PER_XDR), Some(33_333_333));
        assert_eq!(v.units_ceil(CYCLES_PER_XDR), Some(33_333_334));
    }

    #[test]
    fn an_xrc_rate_values_an_eighteen_decimal_token() {
        // 2,500.5 XDR per whole token, rate with 9 decimals.
        let rate = xrc::ExchangeRate {
            base_asset: xrc::xdr_rate_of("ETH").base_asset,
            quote_asset: xrc::xdr_rate_of("ETH").quote_asset,
            timestamp: 7,
            rate: 2_500_500_000_000,
            metadata: xrc::ExchangeRateMetadata {
                decimals: 9,
                base_asset_num_received_rates: 1,
                base_asset_num_queried_sources: 1,
                quote_asset_num_received_rates: 1,
                quote_asset_num_queried_sources: 1,
                standard_deviation: 0,
                forex_timestamp: None,
            },
        };
        let token = Valuation::from_xrc(&rate, 18).unwrap();
        let one_token = 10u128.pow(18);
        assert_eq!(token.cycles_floor(one_token), Some(2_500_500_000_000_000));
        // In ICP at 5 XDR per ICP: 500.1 ICP.
        let icp = icp_at(50_000);
        assert_eq!(token.convert_ceil(one_token, &icp), Some(50_010_000_000));
        assert_eq!(token.convert_floor(one_token, &icp), Some(50_010_000_000));
        // A thousandth of a token, by ceil and floor alike.
        assert_eq!(token.convert_ceil(one_token / 1000, &icp), Some(50_010_000));
    }

    #[test]
    fn a_cycles_ledger_converts_one_to_one_and_needs_no_buffer() {
        let c = Valuation::cycles();
        assert_eq!(c.units_ceil(123), Some(123));
        assert!(!c.is_stale(u64::MAX, 60));
        assert_eq!(lock_for_xdr(1_000, &c, 100_000), Some(1_000));
        // 10^7 cycles at 10^4 cycles per e8 are 1,000 e8s, and 10 % more.
        assert_eq!(
            lock_for_xdr(10_000_000, &icp_at(10_000), 100_000),
            Some(1_100)
        );
        assert_eq!(lock_for_xdr(10_000_000, &icp_at(10_000), 0), Some(1_000));
        // The buffer rounds up: one e8's tenth is one more e8.
        assert_eq!(lock_for_xdr(1_000, &icp_at(10_000), 100_000), Some(2));
    }

    #[test]
    fn a_rate_goes_stale_after_its_age() {
        let v = icp_at(40_000);
        assert!(!v.is_stale(1_000 + 1_800, 1_800));
        assert!(v.is_stale(1_000 + 1_801, 1_800));
    }

    #[test]
    fn xdr_amounts_read_as_xdr() {
        assert_eq!(format_xdr(CYCLES_PER_XDR / 50), "0.02 XDR");
        assert_eq!(format_xdr(3 * CYCLES_PER_XDR), "3 XDR");
        assert_eq!(format_xdr(1), "0.000000000001 XDR");
    }

    #[test]
    fn max_price_within_is_the_highest_price_the_amount_covers() {
        use crate::matcher::fuel_cost_ceil;
        assert_eq!(max_price_within(0, 5), None);
        for (fuel, amount) in [(1u64, 7u128), (3_000_000_000, 10), (7, 0), (999, 1_000_001)] {
            let p = max_price_within(fuel, amount).unwrap();
            assert!(fuel_cost_ceil(fuel, p).unwrap() <= amount);
            assert!(fuel_cost_ceil(fuel, p + 1).unwrap() > amount);
        }
    }

    #[test]
    fn overflow_is_none_not_a_wrong_number() {
        let r = Ratio::new(u128::MAX, 3).unwrap();
        assert_eq!(r.floor(4), None);
        assert_eq!(
            Ratio::new(u128::MAX, 1)
                .unwrap()
                .then(&Ratio::new(2, 1).unwrap()),
            None
        );
        assert_eq!(Ratio::new(0, 1), None);
    }

    proptest! {
        #[test]
        fn floor_and_ceil_bracket_the_exact_product(
            amount in 0u128..1u128 << 100,
            num in 1u128..1u128 << 20,
            den in 1u128..1u128 << 20,
        ) {
            let r = Ratio::new(num, den).unwrap();
            let f = r.floor(amount).unwrap();
            let c = r.ceil(amount).unwrap();
            // f <= amount * num / den <= c, and they differ by at most one.
            prop_assert!(f * r.den <= amount * r.num);
            prop_assert!(c * r.den >= amount * r.num);
            prop_assert!(c - f <= 1);
        }

        #[test]
        fn converting_there_and_back_never_gains(
            units in 0u128..1u128 << 80,
            a in 1u64..1_000_000,
            b in 1u64..1_000_000,
        ) {
            let x = icp_at(a);
            let y = icp_at(b);
            let there = x.convert_floor(units, &y).unwrap();
            let back = y.convert_floor(there, &x).unwrap();
            prop_assert!(back <= units);
        }
    }
}
