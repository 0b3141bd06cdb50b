//! Prices in XDR for a buyer: what an XDR price locks in the paying token
//! at the matcher's current rate, how a job records the rates it was
//! converted at, and `market rates`.

use candid::Principal;
use market_api::Tokens;
use market_api::matcher::Job;
use market_api::prices::{Currency, RatesView, Valuation, lock_for_xdr};
use market_client::client::prices::{
    Price, Quote, TokenUnit, describe_source, format_rate, unit_of_source,
};
use market_client::client::time::format_time;
use market_client::client::{ClientError, MarketClient};
use market_client::transport::Transport;

use super::request::{format_ppm, job_lock};
use super::{BuyerError, with_retries};

/// The token the buyer's configured ledger pays in. The buyer's ledger is
/// the ICP (or test) ledger stakes are in.
pub fn paying_unit() -> TokenUnit {
    TokenUnit::icp()
}

/// The matcher's rates for the configured ledger; offline (prices shown
/// in their own unit only) when the matcher does not answer `get_rates`.
pub async fn quote<T: Transport>(client: &MarketClient<T>) -> Quote {
    match with_retries(|| client.rates()).await {
        Ok(rates) => Quote::at(&rates, client.ids().ledger, paying_unit()),
        Err(_) => Quote::offline(paying_unit()),
    }
}

/// What a cost of `cost` in `currency` locks in the configured ledger's
/// token now: itself for a token price; for an XDR price (`cost` in
/// cycles) the cost at the matcher's current rate, rounded up, plus its
/// buffer, refused as the matcher refuses it when the rate is missing or
/// too old. Returns the lock and the quote it was computed at.
pub async fn lock_now<T: Transport>(
    client: &MarketClient<T>,
    currency: Option<Currency>,
    cost: u128,
) -> Result<(Tokens, Quote), BuyerError> {
    if currency != Some(Currency::Xdr) {
        return Ok((cost, Quote::offline(paying_unit())));
    }
    let rates = with_retries(|| client.rates()).await?;
    let ledger = client.ids().ledger;
    let quote = Quote::at(&rates, ledger, paying_unit());
    let now_secs = client.time_ns().await? / 1_000_000_000;
    let lock = quote
        .xdr_lock(ledger, cost, now_secs)
        .map_err(ClientError::Matcher)?;
    Ok((lock, quote))
}

/// What a one-off job locked (its storage fee aside): its budget at its
/// highest price, twice when it may be audited; for an XDR job, converted
/// at the rate and with the buffer its record holds. `None` if unknown or
/// it overflows.
pub fn job_locked(job: &Job, audited: bool) -> Option<Tokens> {
    let cost = job_lock(job.spec.max_cost()?, u32::from(audited))?;
    match (job.spec.currency, &job.pricing) {
        (Some(Currency::Xdr), Some(p)) => {
            lock_for_xdr(cost, &p.terms.lock_rate, p.terms.buffer_ppm)
        }
        (Some(Currency::Xdr), None) => None,
        _ => Some(cost),
    }
}

/// One rate as the job's lines show it.
fn rate_text(v: &Valuation) -> String {
    format!(
        "{} (rate of {})",
        format_rate(v, TokenUnit::icp().decimals, "ICP"),
        format_time(v.timestamp_secs.saturating_mul(1_000_000_000))
    )
}

/// For a job priced in XDR, how it was paid in its token: its highest
/// price with what that was worth at the lock's rate, the rate and buffer
/// of its lock, and the rate its agreed price converted at (the "pricing"
/// line of the job's summary). `None` for a job priced in its token.
pub fn job_pricing_text(job: &Job) -> Option<String> {
    if job.spec.currency != Some(Currency::Xdr) {
        return None;
    }
    let max = Price::xdr(job.spec.max_price_per_gfuel);
    let Some(p) = &job.pricing else {
        return Some(format!(
            "at most {} per billion fuel; not locked yet",
            max.format(&paying_unit())
        ));
    };
    let at_lock = Quote {
        token: Some(p.terms.lock_rate),
        icp: Some(p.terms.lock_rate),
        ..Quote::offline(paying_unit())
    };
    let mut s = format!(
        "at most {} per billion fuel; locked at {}, {} buffer",
        at_lock.format(&max),
        rate_text(&p.terms.lock_rate),
        format_ppm(p.terms.buffer_ppm),
    );
    if let Some(c) = &p.conversion {
        s.push_str(&format!(
            "; agreed {} per billion fuel, converted at {}{}",
            Price::xdr(c.price_cycles).format(&paying_unit()),
            rate_text(&c.rate),
            if c.capped {
                " and capped to what the lock covers"
            } else {
                ""
            }
        ));
    }
    Some(s)
}

/// `market rates`: each ledger's rate, where it comes from and how old it
/// is at `now_secs`, and what XDR locks hold.
pub fn rates_text(rates: &RatesView, now_secs: u64, configured: Principal) -> String {
    let mut out = format!(
        "XDR prices lock at a rate at most {} s old, plus {} of the cost as a buffer (returned \
         at settle)",
        rates.max_rate_age_secs,
        format_ppm(rates.rate_buffer_ppm),
    );
    for l in &rates.ledgers {
        let unit = unit_of_source(l.source.as_ref());
        let rate = match &l.valuation {
            Some(v) if v.is_fixed() => format!("{}, fixed", format_rate(v, 12, "T cycles")),
            Some(v) => {
                let age = now_secs.saturating_sub(v.timestamp_secs);
                format!(
                    "{}, read {} ({age} s ago{})",
                    format_rate(v, unit.decimals, &unit.symbol),
                    format_time(v.timestamp_secs.saturating_mul(1_000_000_000)),
                    if v.is_stale(now_secs, rates.max_rate_age_secs) {
                        ": too old to lock at"
                    } else {
                        ""
                    }
                )
            }
            None => "not read yet".into(),
        };
        out.push_str(&format!(
            "\n\nledger {}{}\n  source  {}\n  rate    {rate}",
            l.ledger,
            if l.ledger == configured {
                " (configured)"
            } else {
                ""
            },
            describe_source(l.source.as_ref()),
        ));
        if let Some(e) = &l.last_error {
            out.push_str(&format!("\n  error   the last read failed: {e}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use market_api::prices::{LedgerRate, RateSource};

    fn icp_at(permyriad: u64, at: u64) -> Valuation {
        Valuation::icp(permyriad, at).unwrap()
    }

    #[test]
    fn rates_list_each_ledger_its_source_and_age() {
        let icp = Principal::management_canister();
        let view = RatesView {
            ledgers: vec![
                LedgerRate {
                    ledger: icp,
                    source: None,
                    valuation: Some(icp_at(42_000, 1_000)),
                    last_error: None,
                },
                LedgerRate {
                    ledger: Principal::anonymous(),
                    source: Some(RateSource::Cycles),
                    valuation: Some(Valuation::cycles()),
                    last_error: None,
                },
                LedgerRate {
                    ledger: Principal::from_slice(&[7]),
                    source: Some(RateSource::ExchangeRate {
                        canister: Principal::from_slice(&[8]),
                        symbol: "ETH".into(),
                        decimals: 18,
                    }),
                    valuation: None,
                    last_error: Some("RateLimited".into()),
                },
            ],
            max_rate_age_secs: 1_800,
            rate_buffer_ppm: 100_000,
        };
        let text = rates_text(&view, 1_120, icp);
        for expected in [
            "at most 1800 s old, plus 10% of the cost",
            "ledger aaaaa-aa (configured)\n  source  ICP, the stake ledger",
            "1 ICP = 4.2 XDR, read 1970-01-01 00:16:40 UTC (120 s ago)",
            "1 T cycles = 1 XDR, fixed",
            "ETH/XDR, 18 decimals\n  rate    not read yet\n  error   the last read failed: \
             RateLimited",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        let stale = rates_text(&view, 1_000 + 1_801, icp);
        assert!(
            stale.contains("(1801 s ago: too old to lock at)"),
            "{stale}"
        );
    }
}
